//! Sources: `from_iter`, `range`, `tick`, `queue`, ... as constructors on [`Source`] through
//! [`SourceCtors`] (`Source::from_iter(vec![1, 2, 3])`).

mod blocking;
mod iter;
mod overflow;
mod queue;
mod range;
mod replay;
mod stream;
mod tick;
mod unfold;

#[cfg(test)]
pub(crate) mod test_support;

pub use blocking::{BlockingIterLogic, PullThread};
pub use overflow::{BufferOverflow, OverflowStrategy};
pub use queue::{QueueOfferResult, SourceQueue};
pub use range::RangeInt;
pub use replay::ReplayedIterLogic;
pub use tick::Cancellable;

use std::future::Future;
use std::time::Duration;
use weir_graph::{Source, StageError};

/// Source constructors, called as `Source::from_iter(..)`.
pub trait SourceCtors<T: Send + 'static>: Sized {
    /// The items of `items` (cloned per materialization), a whole batch per poll.
    /// Emits when: downstream has demand and items remain.
    /// Backpressures when: never (it only produces on demand).
    /// Completes when: the iterator is exhausted.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn from_iter<I>(items: I) -> Source<T>
    where
        I: IntoIterator<Item = T> + Clone + Send + Sync + 'static,
        I::IntoIter: Send + 'static;

    /// The items of a blocking iterator built by `make` once per materialization, pulled on a
    /// thread of its own (at most a batch ahead) and handed over as they arrive.
    /// Emits when: items have arrived and downstream has demand (a partial batch as soon as
    /// nothing more is ready).
    /// Backpressures when: never: the thread stops pulling while a batch waits to be taken.
    /// Completes when: the iterator is exhausted.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels, even
    /// while `next()` blocks; the blocked call is left to return).
    /// Fails when: the iterator yields `Err` (after the items before it).
    fn from_blocking_iter<I, F>(make: F) -> Source<T>
    where
        I: Iterator<Item = Result<T, StageError>> + 'static,
        F: Fn() -> I + Send + Sync + 'static;

    /// [`SourceCtors::from_blocking_iter`] for an iterator that yields the same items every
    /// time `make` builds it, checkpointed by count: a snapshot saves how many items went out,
    /// and a restored source skips that many of the new iterator's items (on its thread) first.
    /// Emits when: items have arrived and downstream has demand.
    /// Backpressures when: never: the thread stops pulling while a batch waits to be taken.
    /// Completes when: the iterator is exhausted.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: the iterator yields `Err` (after the items before it), or ends before a
    /// restored position.
    fn from_replayable_iter<I, F>(make: F) -> Source<T>
    where
        I: Iterator<Item = Result<T, StageError>> + 'static,
        F: Fn() -> I + Send + Sync + 'static;

    /// The items of a `futures::Stream` built by `factory` once per materialization.
    /// Emits when: the stream yields an item and downstream has demand.
    /// Backpressures when: never (the stream is only polled on demand).
    /// Completes when: the stream ends.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn from_stream<S, F>(factory: F) -> Source<T>
    where
        S: futures::Stream<Item = T> + Send + 'static,
        F: Fn() -> S + Send + Sync + 'static;

    /// The `Ok` items of a fallible stream built by `factory` once per materialization.
    /// Emits when: the stream yields `Ok` and downstream has demand.
    /// Backpressures when: never (the stream is only polled on demand).
    /// Completes when: the stream ends.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: the stream yields `Err` (after the elements before it).
    fn from_try_stream<S, F>(factory: F) -> Source<T>
    where
        S: futures::Stream<Item = Result<T, StageError>> + Send + 'static,
        F: Fn() -> S + Send + Sync + 'static;

    /// One element.
    /// Emits when: downstream has demand.
    /// Backpressures when: never.
    /// Completes when: the element was emitted.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn single(x: T) -> Source<T>
    where
        T: Clone + Sync;

    /// No element.
    /// Emits when: never.
    /// Backpressures when: never.
    /// Completes when: at once.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn empty() -> Source<T>;

    /// No element and a failure.
    /// Emits when: never.
    /// Backpressures when: never.
    /// Completes when: never.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: at once, with `error`.
    fn failed(error: StageError) -> Source<T>;

    /// `x` forever, a whole batch per poll.
    /// Emits when: downstream has demand.
    /// Backpressures when: never.
    /// Completes when: never (use `take`).
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn repeat(x: T) -> Source<T>
    where
        T: Clone + Sync;

    /// `value` after `initial_delay`, then every `interval` on the stage's clock; ticks missed
    /// while downstream backpressures are dropped. Materializes a [`Cancellable`].
    /// Emits when: a tick is due and downstream has demand.
    /// Backpressures when: never (missed ticks are skipped).
    /// Completes when: the `Cancellable` is cancelled.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn tick(initial_delay: Duration, interval: Duration, value: T) -> Source<T, Cancellable>
    where
        T: Clone + Sync;

    /// [`SourceCtors::tick`] with each tick's element made by `make()` when it is emitted (for
    /// elements that are not `Clone`, such as objects of an embedded interpreter).
    /// Emits when: a tick is due and downstream has demand.
    /// Backpressures when: never (missed ticks are skipped, nothing is made for them).
    /// Completes when: the `Cancellable` is cancelled.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn tick_with<F>(initial_delay: Duration, interval: Duration, make: F) -> Source<T, Cancellable>
    where
        F: Fn() -> T + Send + Sync + 'static;

    /// The elements produced by `f(state) -> Some((next_state, element))`.
    /// Emits when: `f` returns `Some` and downstream has demand.
    /// Backpressures when: never (`f` is only called on demand).
    /// Completes when: `f` returns `None`.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn unfold<S, F>(state: S, f: F) -> Source<T>
    where
        S: Clone + Send + Sync + 'static,
        F: FnMut(S) -> Option<(S, T)> + Clone + Send + Sync + 'static;

    /// Like [`SourceCtors::unfold`] with an async `f` (one call in flight at a time).
    /// Emits when: the future returns `Some` and downstream has demand.
    /// Backpressures when: never (`f` is only called on demand).
    /// Completes when: a future returns `None`.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn unfold_async<S, F, Fut>(state: S, f: F) -> Source<T>
    where
        S: Clone + Send + Sync + 'static,
        F: FnMut(S) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Option<(S, T)>> + Send + 'static;

    /// The integers of `start..end` (end exclusive), a whole batch per poll (the fast path).
    /// Emits when: downstream has demand.
    /// Backpressures when: never.
    /// Completes when: `end` is reached (at once if `start >= end`).
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: never.
    fn range(start: T, end: T) -> Source<T>
    where
        T: RangeInt;

    /// A source fed through the materialized [`SourceQueue`] (`capacity` at least 1). Its output
    /// is demand-driven: elements leave the buffer only as the consumer requests them, so the
    /// overflow strategy applies to everything not requested (`queue(2, DropHead)` offered 1..=5
    /// before any request delivers exactly `[4, 5]`).
    /// Emits when: an element is buffered and downstream has demand.
    /// Backpressures when: never itself; `offer` waits on a full buffer under `Backpressure`.
    /// Completes when: `complete` is called (or every handle dropped) and the buffer is drained
    /// (at once when it is empty, without waiting for demand).
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: `fail` is called, or the buffer overflows under `OverflowStrategy::Fail`.
    fn queue(capacity: usize, strategy: OverflowStrategy) -> Source<T, SourceQueue<T>>;
}

impl<T: Send + 'static> SourceCtors<T> for Source<T, ()> {
    fn from_iter<I>(items: I) -> Source<T>
    where
        I: IntoIterator<Item = T> + Clone + Send + Sync + 'static,
        I::IntoIter: Send + 'static,
    {
        iter::from_iter(items)
    }
    fn from_blocking_iter<I, F>(make: F) -> Source<T>
    where
        I: Iterator<Item = Result<T, StageError>> + 'static,
        F: Fn() -> I + Send + Sync + 'static,
    {
        blocking::from_blocking_iter(make)
    }
    fn from_replayable_iter<I, F>(make: F) -> Source<T>
    where
        I: Iterator<Item = Result<T, StageError>> + 'static,
        F: Fn() -> I + Send + Sync + 'static,
    {
        replay::from_replayable_iter(make)
    }
    fn from_stream<S, F>(factory: F) -> Source<T>
    where
        S: futures::Stream<Item = T> + Send + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        stream::from_stream(factory)
    }
    fn from_try_stream<S, F>(factory: F) -> Source<T>
    where
        S: futures::Stream<Item = Result<T, StageError>> + Send + 'static,
        F: Fn() -> S + Send + Sync + 'static,
    {
        stream::from_try_stream(factory)
    }
    fn single(x: T) -> Source<T>
    where
        T: Clone + Sync,
    {
        iter::single(x)
    }
    fn empty() -> Source<T> {
        iter::empty()
    }
    fn failed(error: StageError) -> Source<T> {
        iter::failed(error)
    }
    fn repeat(x: T) -> Source<T>
    where
        T: Clone + Sync,
    {
        iter::repeat(x)
    }
    fn tick(initial_delay: Duration, interval: Duration, value: T) -> Source<T, Cancellable>
    where
        T: Clone + Sync,
    {
        tick::tick(initial_delay, interval, value)
    }
    fn tick_with<F>(initial_delay: Duration, interval: Duration, make: F) -> Source<T, Cancellable>
    where
        F: Fn() -> T + Send + Sync + 'static,
    {
        tick::tick_with(initial_delay, interval, make)
    }
    fn unfold<S, F>(state: S, f: F) -> Source<T>
    where
        S: Clone + Send + Sync + 'static,
        F: FnMut(S) -> Option<(S, T)> + Clone + Send + Sync + 'static,
    {
        unfold::unfold(state, f)
    }
    fn unfold_async<S, F, Fut>(state: S, f: F) -> Source<T>
    where
        S: Clone + Send + Sync + 'static,
        F: FnMut(S) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Option<(S, T)>> + Send + 'static,
    {
        unfold::unfold_async(state, f)
    }
    fn range(start: T, end: T) -> Source<T>
    where
        T: RangeInt,
    {
        range::range(start, end)
    }
    fn queue(capacity: usize, strategy: OverflowStrategy) -> Source<T, SourceQueue<T>> {
        queue::queue(capacity, strategy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;

    #[test]
    fn constructors_infer_through_the_trait() {
        let s = Source::from_iter(vec![1u8, 2]);
        assert_eq!(source(&s, 8).0.drain().unwrap(), vec![1, 2]);
        let r = Source::range(0u64, 3);
        assert_eq!(source(&r, 8).0.drain().unwrap(), vec![0, 1, 2]);
        let u = Source::unfold(0, |n| (n < 2).then_some((n + 1, n)));
        assert_eq!(source(&u, 8).0.drain().unwrap(), vec![0, 1]);
        let e: Source<u8> = Source::empty();
        assert!(source(&e, 8).0.drain().unwrap().is_empty());
        let (_h, q) = source(&Source::<u8>::queue(2, OverflowStrategy::DropNew), 8);
        assert_eq!(q.buffered(), 0);
    }
}
