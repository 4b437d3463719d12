//! Sinks: `collect`, `fold`, `for_each`, `head`, `queue`, ... as constructors on [`Sink`]
//! through [`SinkCtors`] (`Sink::collect()`). Future-valued results are [`SinkFuture`]s that
//! complete with `Ok` when the stream completes and with the error when it fails.

mod acc;
mod for_each_async;
mod from_sink;
mod queue;

pub use acc::EmptyStream;
pub use queue::{DEFAULT_STREAM_BUFFER, SinkQueue, SinkStream};

use std::error::Error;
use std::future::Future;
use weir_graph::{Sink, SinkFuture, StageCx, StageError};

/// Sink constructors, called as `Sink::collect()`.
pub trait SinkCtors<T: Send + 'static>: Sized {
    /// Every element, in order, as a `Vec`.
    /// Consumes when: always (whole batches).
    /// Completes when: upstream completes (the future yields the elements).
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails (the future yields the error).
    fn collect() -> Sink<T, SinkFuture<Vec<T>>>;

    /// The fold of every element with `f`, starting from `init`.
    /// Consumes when: always.
    /// Completes when: upstream completes (the future yields the accumulator).
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails.
    fn fold<A, F>(init: A, f: F) -> Sink<T, SinkFuture<A>>
    where
        A: Clone + Send + Sync + 'static,
        F: FnMut(A, T) -> A + Clone + Send + Sync + 'static;

    /// The fold of every batch with `f(&mut acc, batch, cx)`, starting from `init()` (called per
    /// materialization): for user code called a batch at a time (e.g. a host-language loop).
    /// `f` consumes the batch (what it leaves is dropped) and reports failed elements with
    /// `StageCx::element_failed`, so the stage's supervision applies; an error it returns fails
    /// the sink.
    /// Consumes when: always (`f` runs synchronously).
    /// Completes when: upstream completes (the future yields the accumulator).
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails, or `f` returns an error.
    fn fold_batches<A, I, F>(init: I, f: F) -> Sink<T, SinkFuture<A>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        F: FnMut(&mut A, &mut Vec<T>, &mut StageCx<'_>) -> Result<(), StageError>
            + Clone
            + Send
            + Sync
            + 'static;

    /// [`SinkCtors::collect`] whose result is `then(elements)`, computed by the sink when
    /// upstream completes (e.g. to convert into a host-language list).
    /// Consumes when: always (whole batches).
    /// Completes when: upstream completes (the future yields `then`'s result).
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails, or `then` fails.
    fn collect_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Vec<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static;

    /// [`SinkCtors::head`] whose result is `then(first)`.
    /// Consumes when: until the first element (it asks a demand-driven upstream for one).
    /// Completes when: the first element arrives.
    /// Cancels when: after the first element.
    /// Fails when: upstream fails first, completes empty ([`EmptyStream`]), or `then` fails.
    fn head_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static;

    /// [`SinkCtors::head_option`] whose result is `then(first)`.
    /// Consumes when: until the first element (it asks a demand-driven upstream for one).
    /// Completes when: the first element arrives or upstream completes.
    /// Cancels when: after the first element.
    /// Fails when: upstream fails first, or `then` fails.
    fn head_option_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static;

    /// [`SinkCtors::last`] whose result is `then(last)`.
    /// Consumes when: always.
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails, completes empty ([`EmptyStream`]), or `then` fails.
    fn last_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static;

    /// [`SinkCtors::last_option`] whose result is `then(last)`.
    /// Consumes when: always.
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails, or `then` fails.
    fn last_option_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static;

    /// Calls `f` on every element.
    /// Consumes when: always (`f` runs synchronously).
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails.
    fn for_each<F>(f: F) -> Sink<T, SinkFuture<()>>
    where
        F: FnMut(T) + Clone + Send + Sync + 'static;

    /// Runs `f(element)` with at most `parallelism` futures in flight (own task).
    /// Consumes when: fewer than `parallelism` futures are running.
    /// Completes when: upstream completes and every future finished.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails (running futures are dropped).
    fn for_each_async<F, Fut>(parallelism: usize, f: F) -> Sink<T, SinkFuture<()>>
    where
        F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static;

    /// Discards every element.
    /// Consumes when: always.
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails.
    fn ignore() -> Sink<T, SinkFuture<()>>;

    /// The first element; upstream is cancelled once it arrived.
    /// Consumes when: until the first element (it asks a demand-driven upstream for one).
    /// Completes when: the first element arrives.
    /// Cancels when: after the first element.
    /// Fails when: upstream fails first, or completes empty ([`EmptyStream`]).
    fn head() -> Sink<T, SinkFuture<T>>;

    /// The first element, or `None` for an empty stream; upstream is cancelled after it.
    /// Consumes when: until the first element (it asks a demand-driven upstream for one).
    /// Completes when: the first element arrives or upstream completes.
    /// Cancels when: after the first element.
    /// Fails when: upstream fails first.
    fn head_option() -> Sink<T, SinkFuture<Option<T>>>;

    /// The last element.
    /// Consumes when: always.
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails, or completes empty ([`EmptyStream`]).
    fn last() -> Sink<T, SinkFuture<T>>;

    /// The last element, or `None` for an empty stream.
    /// Consumes when: always.
    /// Completes when: upstream completes.
    /// Cancels when: never (it consumes until upstream completes or fails).
    /// Fails when: upstream fails.
    fn last_option() -> Sink<T, SinkFuture<Option<T>>>;

    /// Elements pulled through the materialized [`SinkQueue`] (buffer of `capacity`, at least 1).
    /// Consumes when: the buffer has room (backpressures while it is full).
    /// Completes when: upstream completes (`pull` yields `None` after the buffer) or the handle is dropped (upstream cancelled).
    /// Cancels when: the [`SinkQueue`] handle is dropped.
    /// Fails when: upstream fails (`pull` yields the error after the buffer).
    fn queue(capacity: usize) -> Sink<T, SinkQueue<T>>;

    /// The elements as a materialized `futures::Stream` of `Result<T, StageError>` ([`SinkStream`]).
    /// Consumes when: its buffer of [`DEFAULT_STREAM_BUFFER`] has room.
    /// Completes when: upstream completes (the stream ends) or the stream is dropped (upstream cancelled).
    /// Cancels when: the stream is dropped.
    /// Fails when: upstream fails (the stream yields `Err` and ends).
    fn into_stream() -> Sink<T, SinkStream<T>>;

    /// Writes into a `futures::Sink` built by `factory` per materialization (fed, flushed per batch, closed at the end).
    /// Consumes when: the wrapped sink accepts the elements.
    /// Completes when: upstream completes and the wrapped sink closed.
    /// Cancels when: the wrapped sink fails.
    /// Fails when: upstream fails, or the wrapped sink errors (kind `External`).
    fn from_sink<S, F>(factory: F) -> Sink<T, SinkFuture<()>>
    where
        S: futures::Sink<T> + Send + 'static,
        S::Error: Into<Box<dyn Error + Send + Sync>>,
        F: Fn() -> S + Send + Sync + 'static;
}

impl<T: Send + 'static> SinkCtors<T> for Sink<T, ()> {
    fn collect() -> Sink<T, SinkFuture<Vec<T>>> {
        acc::collect()
    }
    fn fold<A, F>(init: A, f: F) -> Sink<T, SinkFuture<A>>
    where
        A: Clone + Send + Sync + 'static,
        F: FnMut(A, T) -> A + Clone + Send + Sync + 'static,
    {
        acc::fold(init, f)
    }
    fn for_each<F>(f: F) -> Sink<T, SinkFuture<()>>
    where
        F: FnMut(T) + Clone + Send + Sync + 'static,
    {
        acc::for_each(f)
    }
    fn fold_batches<A, I, F>(init: I, f: F) -> Sink<T, SinkFuture<A>>
    where
        A: Send + 'static,
        I: Fn() -> A + Send + Sync + 'static,
        F: FnMut(&mut A, &mut Vec<T>, &mut StageCx<'_>) -> Result<(), StageError>
            + Clone
            + Send
            + Sync
            + 'static,
    {
        acc::fold_batches(init, f)
    }
    fn collect_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Vec<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
    {
        acc::collect_then(then)
    }
    fn head_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
    {
        acc::head_then(then)
    }
    fn head_option_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
    {
        acc::head_option_then(then)
    }
    fn last_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
    {
        acc::last_then(then)
    }
    fn last_option_then<O, F>(then: F) -> Sink<T, SinkFuture<O>>
    where
        O: Send + 'static,
        F: FnMut(Option<T>) -> Result<O, StageError> + Clone + Send + Sync + 'static,
    {
        acc::last_option_then(then)
    }
    fn for_each_async<F, Fut>(parallelism: usize, f: F) -> Sink<T, SinkFuture<()>>
    where
        F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        for_each_async::for_each_async(parallelism, f)
    }
    fn ignore() -> Sink<T, SinkFuture<()>> {
        acc::ignore()
    }
    fn head() -> Sink<T, SinkFuture<T>> {
        acc::head()
    }
    fn head_option() -> Sink<T, SinkFuture<Option<T>>> {
        acc::head_option()
    }
    fn last() -> Sink<T, SinkFuture<T>> {
        acc::last()
    }
    fn last_option() -> Sink<T, SinkFuture<Option<T>>> {
        acc::last_option()
    }
    fn queue(capacity: usize) -> Sink<T, SinkQueue<T>> {
        queue::queue(capacity)
    }
    fn into_stream() -> Sink<T, SinkStream<T>> {
        queue::into_stream()
    }
    fn from_sink<S, F>(factory: F) -> Sink<T, SinkFuture<()>>
    where
        S: futures::Sink<T> + Send + 'static,
        S::Error: Into<Box<dyn Error + Send + Sync>>,
        F: Fn() -> S + Send + Sync + 'static,
    {
        from_sink::from_sink(factory)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::sink;

    #[test]
    fn constructors_infer_through_the_trait() {
        let (mut h, mut fut) = sink(&Sink::collect());
        h.batch(vec![1u8]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), vec![1]);
        let (mut h, mut fut) = sink(&Sink::fold(0, |a, x: i32| a + x));
        h.batch(vec![1, 2]).unwrap();
        h.finish().unwrap();
        assert_eq!(fut.try_get().unwrap().unwrap(), 3);
        let s: Sink<u8, SinkStream<u8>> = Sink::into_stream();
        assert!(format!("{s:?}").contains("Sink"));
    }
}
