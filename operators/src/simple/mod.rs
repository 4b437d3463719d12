//! Synchronous one-to-one flows (`map`, `filter`, `scan`, `take`, ...), fused into islands.
//!
//! Every operator exists twice: as a [`SimpleOps`] method on anything a flow can be attached to
//! (a `Source` or a `Flow`), and as a free function returning a standalone `Flow`
//! (`simple::map(|x: u32| x + 1)`). User closures are cloned into every materialization, every
//! parallel subtask and every Restart, so each instance starts from a fresh copy of its state.

mod fallible;
mod grouped;
mod inspect;
mod intersperse;
mod limit;
mod map;
mod recover;
mod scan;
mod take;
#[cfg(test)]
pub(crate) mod testkit;
mod try_map;

pub use fallible::{
    try_drop_while, try_fold, try_inspect, try_reduce, try_scan, try_take_while,
    try_take_while_inclusive,
};
pub use grouped::{grouped, sliding};
pub use inspect::{inspect, log, log_at, zip_with_index};
pub use intersperse::{intersperse, intersperse_around, intersperse_framed};
pub use limit::{StreamLimitReached, limit};
pub use map::{filter, filter_map, flat_map, map, map_concat};
pub use recover::{recover, recover_with, try_recover};
pub use scan::{fold, fold_with_codec, reduce, scan, scan_with_codec};
pub use take::{drop, drop_while, take, take_while, take_while_inclusive};
pub use try_map::try_map;

use crate::Via;
use std::error::Error;
use std::fmt::Debug;
use weir_graph::StageError;

/// Synchronous element-wise operators for every [`Via`] (`Source` and `Flow`).
pub trait SimpleOps: Via {
    /// Transforms each element with `f`.
    /// Emits when: `f` returned for an element.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails (or `f` panics).
    fn map<O: Send + 'static>(
        self,
        f: impl FnMut(Self::Out) -> O + Clone + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(map(f))
    }
    /// Keeps the elements for which `pred` is true.
    /// Emits when: an element passes `pred`.
    /// Backpressures when: an element passes and downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn filter(
        self,
        pred: impl FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(filter(pred))
    }
    /// Transforms each element and keeps the `Some` results.
    /// Emits when: `f` returned `Some`.
    /// Backpressures when: `f` returned `Some` and downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn filter_map<O: Send + 'static>(
        self,
        f: impl FnMut(Self::Out) -> Option<O> + Clone + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(filter_map(f))
    }
    /// Maps each element to an iterable and emits its items in order.
    /// Emits when: the current element's iterable has items left.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes and every iterable is drained.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn flat_map<O: Send + 'static, It: IntoIterator<Item = O>>(
        self,
        f: impl FnMut(Self::Out) -> It + Clone + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(flat_map(f))
    }
    /// Akka's name for [`SimpleOps::flat_map`].
    /// Emits when: the current element's iterable has items left.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes and every iterable is drained.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn map_concat<O: Send + 'static, It: IntoIterator<Item = O>>(
        self,
        f: impl FnMut(Self::Out) -> It + Clone + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(map_concat(f))
    }
    /// Fallible map: an `Err` goes through the stage's supervision (dead letter keeps the element).
    /// Emits when: `f` returned `Ok`.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels (or `f` returned `Err` under `Stop`).
    /// Fails when: `f` returned `Err` under `Stop` (the default), or upstream fails.
    fn try_map<O: Send + 'static, E: Into<Box<dyn Error + Send + Sync>> + 'static>(
        self,
        f: impl FnMut(&Self::Out) -> Result<O, E> + Clone + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(try_map(f))
    }
    /// Running aggregate: emits `zero`, then `f(acc, x)` after every element.
    /// Emits when: first demand (`zero`), then each element's new accumulator.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes (an empty stream still emits `zero`).
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails (after `zero`).
    fn scan<S: Clone + Send + Sync + 'static>(
        self,
        zero: S,
        f: impl FnMut(&S, Self::Out) -> S + Clone + Send + Sync + 'static,
    ) -> Self::Next<S> {
        self.via_flow(scan(zero, f))
    }
    /// Final aggregate: folds every element into `zero` and emits the result once.
    /// Emits when: upstream completes.
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and the result is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn fold<S: Clone + Send + Sync + 'static>(
        self,
        zero: S,
        f: impl FnMut(S, Self::Out) -> S + Clone + Send + Sync + 'static,
    ) -> Self::Next<S> {
        self.via_flow(fold(zero, f))
    }
    /// Final aggregate seeded with the first element; emits the result once.
    /// Emits when: upstream completes after at least one element.
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and the result is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails, or completes without any element (like Akka).
    fn reduce(
        self,
        f: impl FnMut(Self::Out, Self::Out) -> Self::Out + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(reduce(f))
    }
    /// Passes the first `n` elements, then cancels upstream.
    /// Emits when: fewer than `n` elements were emitted.
    /// Backpressures when: downstream backpressures (a demand-driven upstream is asked for
    /// no more than the elements still missing).
    /// Completes when: `n` elements were emitted or upstream completes.
    /// Cancels when: `n` elements were emitted, or downstream cancels.
    /// Fails when: upstream fails before `n` elements.
    fn take(self, n: usize) -> Self::Next<Self::Out> {
        self.via_flow(take(n))
    }
    /// Passes elements unchanged while at most `n` arrived; one more fails the stream.
    /// Emits when: upstream emits and at most `n` elements arrived.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream emits an `n + 1`-th element ([`StreamLimitReached`]), or upstream fails.
    fn limit(self, n: usize) -> Self::Next<Self::Out> {
        self.via_flow(limit(n))
    }
    /// Passes elements while `pred` holds; the first failing one is dropped and upstream cancelled.
    /// Emits when: `pred` holds for the element.
    /// Backpressures when: downstream backpressures.
    /// Completes when: `pred` fails for an element or upstream completes.
    /// Cancels when: `pred` fails for an element, or downstream cancels.
    /// Fails when: upstream fails.
    fn take_while(
        self,
        pred: impl FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(take_while(pred))
    }
    /// Like [`SimpleOps::take_while`] but also emits the first element failing `pred`.
    /// Emits when: `pred` holds, or for the first element where it fails.
    /// Backpressures when: downstream backpressures.
    /// Completes when: the first failing element is emitted or upstream completes.
    /// Cancels when: `pred` fails for an element, or downstream cancels.
    /// Fails when: upstream fails.
    fn take_while_inclusive(
        self,
        pred: impl FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(take_while_inclusive(pred))
    }
    /// Discards the first `n` elements.
    /// Emits when: `n` elements were dropped and an element arrives.
    /// Backpressures when: `n` elements were dropped and downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn drop(self, n: usize) -> Self::Next<Self::Out> {
        self.via_flow(drop(n))
    }
    /// Discards elements while `pred` holds, then passes everything.
    /// Emits when: `pred` failed once and an element arrives.
    /// Backpressures when: `pred` failed once and downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn drop_while(
        self,
        pred: impl FnMut(&Self::Out) -> bool + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(drop_while(pred))
    }
    /// Chunks elements into vectors of `n` (the last may be shorter; `n` is at least 1).
    /// Emits when: `n` elements were buffered, or upstream completed with some buffered.
    /// Backpressures when: a group is complete and downstream backpressures.
    /// Completes when: upstream completes and the last group is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn grouped(self, n: usize) -> Self::Next<Vec<Self::Out>> {
        self.via_flow(grouped(n))
    }
    /// Windows of `n` elements every `step` elements (a last short window holds unseen elements).
    /// Emits when: a window is full, or upstream completed with a short window of new elements.
    /// Backpressures when: a window is full and downstream backpressures.
    /// Completes when: upstream completes and the last window is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn sliding(self, n: usize, step: usize) -> Self::Next<Vec<Self::Out>>
    where
        Self::Out: Clone,
    {
        self.via_flow(sliding(n, step))
    }
    /// Emits `sep` between consecutive elements.
    /// Emits when: an element arrives (preceded by `sep` unless it is the first).
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn intersperse(self, sep: Self::Out) -> Self::Next<Self::Out>
    where
        Self::Out: Clone + Sync,
    {
        self.via_flow(intersperse(sep))
    }
    /// Emits `start`, the elements separated by `sep`, then `end` (both even for an empty stream).
    /// Emits when: first element or completion (`start`), each element, completion (`end`).
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes and `end` is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails (`end` is not emitted).
    fn intersperse_around(
        self,
        start: Self::Out,
        sep: Self::Out,
        end: Self::Out,
    ) -> Self::Next<Self::Out>
    where
        Self::Out: Clone + Sync,
    {
        self.via_flow(intersperse_around(start, sep, end))
    }
    /// Pairs each element with its index, counting from 0.
    /// Emits when: an element arrives.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn zip_with_index(self) -> Self::Next<(Self::Out, u64)> {
        self.via_flow(zip_with_index())
    }
    /// Calls `f` on each element and passes it on unchanged.
    /// Emits when: an element arrives and `f` returned.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn inspect(
        self,
        f: impl FnMut(&Self::Out) + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(inspect(f))
    }
    /// Logs each element's `Debug` form (and completion or failure) at `debug` level via `tracing`.
    /// Emits when: an element arrives.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn log(self, name: impl Into<String>) -> Self::Next<Self::Out>
    where
        Self::Out: Debug,
    {
        self.via_flow(log(name))
    }
    /// Logs each element's `Debug` form and the completion at `level`, a failure at `ERROR`,
    /// via `tracing` (target `weir::log`, field `name`).
    /// Emits when: an element arrives (unchanged).
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    fn log_at(self, name: impl Into<String>, level: tracing::Level) -> Self::Next<Self::Out>
    where
        Self::Out: Debug,
    {
        self.via_flow(log_at(name, level))
    }
    /// On upstream failure emits `f(&err)` and completes; `None` propagates the failure.
    /// Emits when: an element arrives, or upstream failed and `f` returned `Some`.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes, or fails and `f` returned `Some`.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails and `f` returned `None`.
    fn recover(
        self,
        f: impl FnMut(&StageError) -> Option<Self::Out> + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(recover(f))
    }
    /// Like [`SimpleOps::recover`] but emits several elements (see `SubstreamOps` for retries).
    /// Emits when: an element arrives, or upstream failed and `f` returned `Some`.
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes, or fails and `f` returned `Some`.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails and `f` returned `None`.
    fn recover_with(
        self,
        f: impl FnMut(&StageError) -> Option<Vec<Self::Out>> + Clone + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(recover_with(f))
    }
}

impl<S: Via> SimpleOps for S {}

/// Moves every row of `input` to the end of `out`; O(1) (a buffer swap) when `out` is empty.
pub(crate) fn pass<T>(input: &mut Vec<T>, out: &mut Vec<T>) {
    if out.is_empty() {
        std::mem::swap(input, out);
    } else {
        out.append(input);
    }
}
