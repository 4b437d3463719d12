//! `map_async_unordered`: runs a future per element, up to `parallelism` at once, emitting results
//! as they complete.

use super::map_async::{Unordered, map_async_flow};
use std::future::Future;
use std::time::Duration;
use weir_graph::{Flow, StageError};

/// Applies the asynchronous `f` to every element with at most `parallelism` futures in flight
/// (0 is reported as an invalid parameter when the graph is validated) and emits the results
/// in completion order. A failed future goes to supervision: under Resume/Restart its element is
/// dropped (to dead letters, with the element's rendering when its type renders).
///
/// - **emits when** any future in flight has completed and downstream has room
/// - **backpressures when** `parallelism` futures (or their unsent results) are outstanding, or downstream backpressures
/// - **completes when** upstream completes and every future has completed and been emitted
/// - **cancels when** downstream cancels (the futures in flight are dropped)
/// - **fails when** upstream fails, or a future fails and supervision says Stop
pub fn map_async_unordered<T, O, E, Fut, F>(parallelism: usize, f: F) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
{
    map_async_flow::<T, O, E, Fut, F, Unordered>("map_async_unordered", parallelism, None, f)
}

/// [`map_async_unordered`] where every call gets at most `timeout` on the run's clock (see
/// [`map_async_with_timeout`](super::map_async_with_timeout)): a late call is dropped and its
/// element fails with [`CallTimeout`](super::CallTimeout) through supervision.
///
/// - **emits when** any future in flight has completed and downstream has room
/// - **backpressures when** `parallelism` futures (or their unsent results) are outstanding, or downstream backpressures
/// - **completes when** upstream completes and every future has completed (or timed out) and been emitted
/// - **cancels when** downstream cancels (the futures in flight are dropped)
/// - **fails when** upstream fails, or a future fails or times out and supervision says Stop
pub fn map_async_unordered_with_timeout<T, O, E, Fut, F>(
    parallelism: usize,
    timeout: Duration,
    f: F,
) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
{
    map_async_flow::<T, O, E, Fut, F, Unordered>(
        "map_async_unordered",
        parallelism,
        Some(timeout),
        f,
    )
}
