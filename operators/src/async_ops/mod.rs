//! Asynchronous per-element work: `map_async` (ordered) and `map_async_unordered`.
//!
//! User futures return `Result<O, E>` with `E: Into<StageError>` (wrap foreign errors with
//! [`StageError::from_error`]); failures go through the stage's supervision policy.

mod map_async;
mod map_async_unordered;

pub(crate) use map_async::fail_after;
pub use map_async::{CallTimeout, map_async, map_async_with_timeout};
pub use map_async_unordered::{map_async_unordered, map_async_unordered_with_timeout};

use crate::Via;
use std::future::Future;
use std::time::Duration;
use weir_graph::StageError;

/// `map_async` and friends on every [`Source`](weir_graph::Source) and [`Flow`](weir_graph::Flow).
pub trait AsyncOps: Via {
    /// Runs `f` per element, `parallelism` at once, keeping input order (see [`map_async()`]).
    fn map_async<O, E, Fut, F>(self, parallelism: usize, f: F) -> Self::Next<O>
    where
        O: Send + 'static,
        E: Into<StageError> + Send + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        F: FnMut(Self::Out) -> Fut + Clone + Send + Sync + 'static,
    {
        self.via_flow(map_async(parallelism, f))
    }

    /// Runs `f` per element, `parallelism` at once, in completion order (see [`map_async_unordered()`]).
    fn map_async_unordered<O, E, Fut, F>(self, parallelism: usize, f: F) -> Self::Next<O>
    where
        O: Send + 'static,
        E: Into<StageError> + Send + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        F: FnMut(Self::Out) -> Fut + Clone + Send + Sync + 'static,
    {
        self.via_flow(map_async_unordered(parallelism, f))
    }

    /// [`AsyncOps::map_async`] with a per-call `timeout` (see [`map_async_with_timeout()`]).
    fn map_async_with_timeout<O, E, Fut, F>(
        self,
        parallelism: usize,
        timeout: Duration,
        f: F,
    ) -> Self::Next<O>
    where
        O: Send + 'static,
        E: Into<StageError> + Send + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        F: FnMut(Self::Out) -> Fut + Clone + Send + Sync + 'static,
    {
        self.via_flow(map_async_with_timeout(parallelism, timeout, f))
    }

    /// [`AsyncOps::map_async_unordered`] with a per-call `timeout` (see
    /// [`map_async_unordered_with_timeout()`]).
    fn map_async_unordered_with_timeout<O, E, Fut, F>(
        self,
        parallelism: usize,
        timeout: Duration,
        f: F,
    ) -> Self::Next<O>
    where
        O: Send + 'static,
        E: Into<StageError> + Send + 'static,
        Fut: Future<Output = Result<O, E>> + Send + 'static,
        F: FnMut(Self::Out) -> Fut + Clone + Send + Sync + 'static,
    {
        self.via_flow(map_async_unordered_with_timeout(parallelism, timeout, f))
    }
}

impl<S: Via> AsyncOps for S {}
