//! `map_async_unordered`: runs a future per element, up to `parallelism` at once, emitting results
//! as they complete.

use super::map_async::map_async_flow;
use futures::stream::FuturesUnordered;
use std::future::Future;
use weir_graph::{Flow, StageError};

/// Applies the asynchronous `f` to every element with at most `parallelism` futures in flight
/// (0 is reported as an invalid parameter when the graph is validated) and emits the results in completion order. A failed future goes to
/// supervision: under Resume/Restart its element is dropped (to dead letters, without the element).
///
/// - **emits when** any future in flight has completed and downstream has room
/// - **backpressures when** `parallelism` futures (or their unsent results) are outstanding, or downstream backpressures
/// - **completes when** upstream completes and every future has completed and been emitted
/// - **cancels when** downstream cancels (futures in flight are dropped)
/// - **fails when** upstream fails, or a future fails and supervision says Stop
pub fn map_async_unordered<T, O, E, Fut, F>(parallelism: usize, f: F) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
{
    map_async_flow::<T, O, E, Fut, F, FuturesUnordered<Fut>>("map_async_unordered", parallelism, f)
}
