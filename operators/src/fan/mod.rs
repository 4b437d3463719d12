//! Junctions and linear fan operators.
//!
//! Junctions are asynchronous nodes added to a [`GraphBuilder`](weir_graph::GraphBuilder) with
//! `b.add(..)`, which returns typed ports:
//!
//! ```ignore
//! let bc = b.add(Broadcast::<i32>::new(2));
//! b.connect(src_out, bc.inlet)?;
//! b.connect(bc.outlets[0], sink_in)?;
//! ```
//!
//! Every junction reads and writes whole batches. Errors from any input fail the junction at once;
//! dropping an input (when the junction stops) cancels that upstream. [`FanOps`] offers the linear
//! forms (`merge`, `zip`, `also_to`, ...) on every [`Source`] and [`Flow`](weir_graph::Flow).

mod balance;
mod broadcast;
pub(crate) mod common;
mod concat;
mod linear;
mod merge;
mod merge_sorted;
mod partition;
mod zip;
mod zip_latest;

pub use balance::{Balance, BalancePorts};
pub use broadcast::{Broadcast, BroadcastPorts, WireTap, WireTapPorts};
pub use concat::{Concat, Interleave};
pub use merge::{Merge, MergePorts, MergePreferred, MergePreferredPorts, MergePrioritized};
pub use merge_sorted::{MergeSorted, MergeSortedBy, MergeSortedPorts};
pub use partition::{Partition, PartitionPorts};
pub use zip::{Unzip, UnzipPorts, Zip, ZipPorts, ZipWith};
pub use zip_latest::ZipLatest;

use crate::Via;
use weir_graph::{Sink, Source};

/// `merge`, `zip`, `also_to` and friends: linear forms of the junctions, on sources and flows.
pub trait FanOps: Via {
    /// Merges `other` into this stream (see [`Merge`]; `other`'s materialized value is dropped).
    ///
    /// Emits when: either stream has elements available.
    /// Backpressures when: downstream backpressures.
    /// Completes when: both streams complete.
    /// Cancels when: downstream cancels (both streams are cancelled).
    /// Fails when: either stream fails.
    fn merge<M: Send + 'static>(self, other: Source<Self::Out, M>) -> Self::Next<Self::Out> {
        self.via_flow(linear::merge(other))
    }

    /// Pairs elements with those of `other` (see [`Zip`]).
    ///
    /// Emits when: both streams have an element available.
    /// Backpressures when: downstream backpressures.
    /// Completes when: either stream completes with nothing left to pair.
    /// Cancels when: downstream cancels, or the zip completes (the other stream is cancelled).
    /// Fails when: either stream fails.
    fn zip<U: Send + 'static, M: Send + 'static>(
        self,
        other: Source<U, M>,
    ) -> Self::Next<(Self::Out, U)> {
        self.via_flow(linear::zip(other))
    }

    /// Combines elements with those of `other` using `f` (see [`ZipWith`]).
    ///
    /// Emits when: both streams have an element available.
    /// Backpressures when: downstream backpressures.
    /// Completes when: either stream completes with nothing left to pair.
    /// Cancels when: downstream cancels, or the zip completes (the other stream is cancelled).
    /// Fails when: either stream fails.
    fn zip_with<U: Send + 'static, O: Send + 'static, M: Send + 'static>(
        self,
        other: Source<U, M>,
        f: impl Fn(Self::Out, U) -> O + Send + Sync + 'static,
    ) -> Self::Next<O> {
        self.via_flow(linear::zip_with(other, f))
    }

    /// Emits this stream, then `other` (see [`Concat`]).
    ///
    /// Emits when: the current stream has elements available.
    /// Backpressures when: downstream backpressures.
    /// Completes when: `other` completes.
    /// Cancels when: downstream cancels (both streams are cancelled).
    /// Fails when: either stream fails.
    fn concat<M: Send + 'static>(self, other: Source<Self::Out, M>) -> Self::Next<Self::Out> {
        self.via_flow(linear::concat(other))
    }

    /// Alternates segments of `segment_size` elements with `other` (see [`Interleave`]).
    ///
    /// Emits when: the current stream has elements available.
    /// Backpressures when: downstream backpressures.
    /// Completes when: both streams complete.
    /// Cancels when: downstream cancels (both streams are cancelled).
    /// Fails when: either stream fails.
    fn interleave<M: Send + 'static>(
        self,
        other: Source<Self::Out, M>,
        segment_size: usize,
    ) -> Self::Next<Self::Out> {
        self.via_flow(linear::interleave(other, segment_size))
    }

    /// Merges with `other`, both sorted ascending, into one sorted stream (see [`MergeSorted`]).
    ///
    /// Emits when: both streams have an element available (or one completed).
    /// Backpressures when: downstream backpressures.
    /// Completes when: both streams complete.
    /// Cancels when: downstream cancels (both streams are cancelled).
    /// Fails when: either stream fails.
    fn merge_sorted<M: Send + 'static>(self, other: Source<Self::Out, M>) -> Self::Next<Self::Out>
    where
        Self::Out: Ord,
    {
        self.via_flow(linear::merge_sorted(other))
    }

    /// Sends every element to `sink` as well (a [`Broadcast`] with eager cancel).
    ///
    /// Emits when: an element arrives and both downstream and `sink` have credit.
    /// Backpressures when: downstream or `sink` backpressures.
    /// Completes when: upstream completes, or downstream or `sink` cancels.
    /// Cancels when: downstream or `sink` cancels.
    /// Fails when: upstream fails.
    fn also_to<M: Send + 'static>(self, sink: Sink<Self::Out, M>) -> Self::Next<Self::Out>
    where
        Self::Out: Clone,
    {
        self.via_flow(linear::also_to(sink))
    }

    /// Sends a copy of elements to `sink` when it has credit, dropping them otherwise (see [`WireTap`]).
    ///
    /// Emits when: an element arrives and downstream has credit (never waits for `sink`).
    /// Backpressures when: downstream backpressures.
    /// Completes when: upstream completes or downstream cancels (`sink` cancelling is ignored).
    /// Cancels when: downstream cancels (`sink` cancelling is ignored).
    /// Fails when: upstream fails.
    fn wire_tap<M: Send + 'static>(self, sink: Sink<Self::Out, M>) -> Self::Next<Self::Out>
    where
        Self::Out: Clone,
    {
        self.via_flow(linear::wire_tap(sink))
    }

    /// Sends elements matching `pred` to `sink` only; the others continue downstream.
    ///
    /// Emits when: an element not matching `pred` arrives and downstream has credit.
    /// Backpressures when: the destination of an element backpressures.
    /// Completes when: upstream completes, or downstream or `sink` cancels.
    /// Cancels when: downstream or `sink` cancels.
    /// Fails when: upstream fails.
    fn divert_to<M: Send + 'static>(
        self,
        sink: Sink<Self::Out, M>,
        pred: impl Fn(&Self::Out) -> bool + Send + Sync + 'static,
    ) -> Self::Next<Self::Out> {
        self.via_flow(linear::divert_to(sink, pred))
    }
}

impl<S: Via> FanOps for S {}
