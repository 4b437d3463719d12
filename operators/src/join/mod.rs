//! Joins of two keyed event-time streams: the window join (pairs of equal key in the same
//! tumbling or sliding window, emitted when the window fires) and the interval join (pairs
//! with `left.ts + lower <= right.ts <= left.ts + upper`, emitted as soon as both are there).
//!
//! Both sides are keyed by a key function of their own and hash-partitioned on the key (so
//! equal keys of both sides meet in one subtask); the join's watermark is the minimum of the
//! two inputs' watermarks, forwarded after what it fired. An element that arrives after
//! the watermark passed every window it belongs to (window join) or its own timestamp
//! (interval join) is *late*: it leaves as [`JoinOutput::LateLeft`] / [`JoinOutput::LateRight`]
//! (the side output), never joined and never dropped silently. Results carry a timestamp:
//! the window's last one (window join), the later of the pair's (interval join).
//!
//! Join state lives in memory. With [`JoinBy::checkpointed`] (serde keys and elements) a
//! checkpoint saves it by key group (see `snapshot.rs`) and a restore, also at another
//! parallelism, brings it back; without it a checkpoint barrier is refused (`no_codec`) rather
//! than the state lost. While a barrier aligns, the side that delivered it is not read.

mod interval;
mod snapshot;
mod stage;
mod window;

pub use snapshot::{JoinChoice, JoinCodec};

use crate::Via;
use crate::fan::common::built;
use crate::keyed::{InMemoryOnly, KeyedUpstream, SerdeState, pairs};
use crate::time::Timestamped;
use crate::window::Windows;
use stage::{JoinCore, JoinNode};
use std::hash::Hash;
use std::marker::PhantomData;
use weir_graph::{Flow, GraphBuilder, Source};

/// What a join emits: a joined pair's result, or a late element of either side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinOutput<K, O, L, R> {
    /// `f(left, right)` of a joined pair, at the pair's timestamp.
    Joined(Timestamped<O>),
    /// A left element that arrived too late to join.
    LateLeft {
        /// The element's key.
        key: K,
        /// The element.
        element: Timestamped<L>,
    },
    /// A right element that arrived too late to join.
    LateRight {
        /// The element's key.
        key: K,
        /// The element.
        element: Timestamped<R>,
    },
}

impl<K, O, L, R> JoinOutput<K, O, L, R> {
    /// The joined result, if this is one.
    pub fn joined(self) -> Option<Timestamped<O>> {
        match self {
            Self::Joined(x) => Some(x),
            _ => None,
        }
    }
    /// The late left element, if this is one.
    pub fn late_left(self) -> Option<(K, Timestamped<L>)> {
        match self {
            Self::LateLeft { key, element } => Some((key, element)),
            _ => None,
        }
    }
    /// The late right element, if this is one.
    pub fn late_right(self) -> Option<(K, Timestamped<R>)> {
        match self {
            Self::LateRight { key, element } => Some((key, element)),
            _ => None,
        }
    }
}

/// A join as a flow of the left side, materializing the right source's value (`None` only
/// when it was taken already).
pub type JoinFlow<K, O, L, R, MR> = Flow<Timestamped<L>, JoinOutput<K, O, L, R>, Option<MR>>;

/// `left key stage -> join(left, right key stage(other)) -> out`.
fn join_flow<K, L, R, O, M, KL, KR, C, MK>(
    name: &'static str,
    other: Source<Timestamped<R>, M>,
    left_key: KL,
    right_key: KR,
    par: Option<usize>,
    invalid: Option<String>,
    make: MK,
) -> JoinFlow<K, O, L, R, M>
where
    K: Hash + Eq + Clone + Send + 'static,
    L: Send + 'static,
    R: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    KL: FnMut(&Timestamped<L>) -> K + Clone + Send + Sync + 'static,
    KR: FnMut(&Timestamped<R>) -> K + Clone + Send + Sync + 'static,
    C: JoinCore<K, L, R, O>,
    MK: Fn() -> C + Send + Sync + 'static,
{
    let mut b = GraphBuilder::new();
    let j = b.add(JoinNode::new(name, make));
    let (src, mat) = b.add_source(other.via(pairs(right_key, None)));
    let r = (|| {
        b.connect(src, j.right)?;
        b.build_flow(j.left, j.outlet, move |v: &mut weir_graph::MatValues| {
            v.take(mat)
        })
    })();
    let join = built(name, r).reject(invalid.map(|e| format!("{name}: {e}")));
    pairs(left_key, par).via_mat(join, |(), m| m)
}

/// Two keyed streams awaiting their join ([`JoinBy::window`] or [`JoinBy::interval`]); `M`
/// says whether the join's state is checkpointed.
pub struct JoinBy<S, L, R, MR, K, KL, KR, M = InMemoryOnly> {
    upstream: S,
    other: Source<Timestamped<R>, MR>,
    left_key: KL,
    right_key: KR,
    _k: PhantomData<fn(L) -> (K, M)>,
}

impl<S, L, R, MR, K, KL, KR> JoinBy<S, L, R, MR, K, KL, KR, InMemoryOnly> {
    /// Checkpoints the join's state with serde: keys and both sides' elements must be serde
    /// types. A checkpoint saves, by key group, the watermark, the keys and every buffered
    /// element (window join: per open window), and a restore (also at another parallelism)
    /// brings them back; without it a checkpoint of the join is refused.
    pub fn checkpointed(self) -> JoinBy<S, L, R, MR, K, KL, KR, SerdeState> {
        JoinBy {
            upstream: self.upstream,
            other: self.other,
            left_key: self.left_key,
            right_key: self.right_key,
            _k: PhantomData,
        }
    }
}

impl<S, L, R, MR, K, KL, KR, M> JoinBy<S, L, R, MR, K, KL, KR, M>
where
    S: KeyedUpstream<Out = Timestamped<L>>,
    K: Hash + Eq + Clone + Send + 'static,
    L: Clone + Send + 'static,
    R: Clone + Send + 'static,
    MR: Send + 'static,
    KL: FnMut(&Timestamped<L>) -> K + Clone + Send + Sync + 'static,
    KR: FnMut(&Timestamped<R>) -> K + Clone + Send + Sync + 'static,
    M: JoinChoice<K, L, R>,
{
    /// Joins in event-time `windows` (tumbling or sliding): when a window fires, emits
    /// `f(left, right)` for every pair of equal key in it, lefts in arrival order, each with
    /// the rights in arrival order.
    ///
    /// - **emits when** the combined watermark reaches a window's end (its pairs), at the end
    ///   of both inputs (every window left), or an element is late (`LateLeft`/`LateRight`)
    /// - **backpressures when** downstream backpressures (a side that delivered a checkpoint
    ///   barrier is not read until the other delivered it too)
    /// - **completes when** both inputs completed and every window fired
    /// - **cancels when** downstream cancels (both inputs are cancelled)
    /// - **fails when** either input fails (after the results emitted before), or a barrier
    ///   reaches a join not [`checkpointed`](JoinBy::checkpointed)
    pub fn window<O, F>(self, windows: Windows, f: F) -> S::Next<JoinOutput<K, O, L, R>>
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        let (upstream, join) = self.window_parts(windows, f);
        upstream.via_flow(join)
    }

    /// [`JoinBy::window`], combining the materialized values of this stream and of `other`
    /// with `combine` (a binding that hands both sides' values to its caller; `other`'s is
    /// `None` only when it was taken already).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`JoinBy::window`].
    pub fn window_mat<O, F, M3>(
        self,
        windows: Windows,
        f: F,
        combine: impl Fn(S::Mat, Option<MR>) -> M3 + Send + Sync + 'static,
    ) -> S::NextMat<JoinOutput<K, O, L, R>, M3>
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
        M3: Send + 'static,
    {
        let (upstream, join) = self.window_parts(windows, f);
        upstream.via_flow_mat(join, combine)
    }

    /// The upstream and the window join after it (materializing `other`'s value).
    fn window_parts<O, F>(self, windows: Windows, f: F) -> (S, JoinFlow<K, O, L, R, MR>)
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        let invalid = windows.invalid().or_else(|| {
            windows
                .merging()
                .then(|| "session windows cannot be joined".to_owned())
        });
        let par = self.upstream.outlet_parallelism();
        let codec = M::codec();
        let core = move || window::WindowJoin::new(windows, f.clone()).checkpointed(codec);
        let join = join_flow(
            "window_join",
            self.other,
            self.left_key,
            self.right_key,
            par,
            invalid,
            core,
        );
        (self.upstream, join)
    }

    /// Joins on `left.ts + lower <= right.ts <= left.ts + upper` (ms, bounds included;
    /// `lower` may be negative): emits `f(left, right)` as soon as both elements of a pair of
    /// equal key arrived; an element's state is dropped once the watermark passes the last
    /// timestamp it can still join.
    ///
    /// - **emits when** an element arrives that joins buffered ones of the other side, or is
    ///   late (`LateLeft`/`LateRight`: its timestamp is at or below the watermark)
    /// - **backpressures when** downstream backpressures (a side that delivered a checkpoint
    ///   barrier is not read until the other delivered it too)
    /// - **completes when** both inputs completed
    /// - **cancels when** downstream cancels (both inputs are cancelled)
    /// - **fails when** either input fails (after the results emitted before), or a barrier
    ///   reaches a join not [`checkpointed`](JoinBy::checkpointed)
    pub fn interval<O, F>(self, lower: i64, upper: i64, f: F) -> S::Next<JoinOutput<K, O, L, R>>
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        let (upstream, join) = self.interval_parts(lower, upper, f);
        upstream.via_flow(join)
    }

    /// [`JoinBy::interval`], combining the materialized values of this stream and of `other`
    /// with `combine` (as [`JoinBy::window_mat`]).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`JoinBy::interval`].
    pub fn interval_mat<O, F, M3>(
        self,
        lower: i64,
        upper: i64,
        f: F,
        combine: impl Fn(S::Mat, Option<MR>) -> M3 + Send + Sync + 'static,
    ) -> S::NextMat<JoinOutput<K, O, L, R>, M3>
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
        M3: Send + 'static,
    {
        let (upstream, join) = self.interval_parts(lower, upper, f);
        upstream.via_flow_mat(join, combine)
    }

    /// The upstream and the interval join after it (materializing `other`'s value).
    fn interval_parts<O, F>(self, lower: i64, upper: i64, f: F) -> (S, JoinFlow<K, O, L, R, MR>)
    where
        O: Send + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        let invalid = (lower > upper).then(|| {
            format!("interval join: lower bound {lower} ms is above upper bound {upper} ms")
        });
        let par = self.upstream.outlet_parallelism();
        let codec = M::codec();
        let core = move || interval::IntervalJoin::new(lower, upper, f.clone()).checkpointed(codec);
        let join = join_flow(
            "interval_join",
            self.other,
            self.left_key,
            self.right_key,
            par,
            invalid,
            core,
        );
        (self.upstream, join)
    }
}

/// Window and interval joins on every [`Source`] and [`Flow`] of [`Timestamped`] elements.
pub trait JoinOps: KeyedUpstream {
    /// Pairs this stream (left) with `other` (right) by key (one key function per side), to
    /// join with [`JoinBy::window`] or [`JoinBy::interval`] (after
    /// [`JoinBy::checkpointed`] to checkpoint the join).
    fn join_by<L, R, K, M, KL, KR>(
        self,
        other: Source<Timestamped<R>, M>,
        left_key: KL,
        right_key: KR,
    ) -> JoinBy<Self, L, R, M, K, KL, KR>
    where
        Self: Via<Out = Timestamped<L>>,
    {
        JoinBy {
            upstream: self,
            other,
            left_key,
            right_key,
            _k: PhantomData,
        }
    }

    /// Joins this stream (left) with `other` (right) in event-time `windows`, state in memory
    /// only: `self.join_by(other, left_key, right_key).window(windows, f)` (see
    /// [`JoinBy::window`]; a checkpoint barrier fails it).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`JoinBy::window`].
    fn window_join<L, R, K, O, M, KL, KR, F>(
        self,
        other: Source<Timestamped<R>, M>,
        left_key: KL,
        right_key: KR,
        windows: Windows,
        f: F,
    ) -> Self::Next<JoinOutput<K, O, L, R>>
    where
        Self: Via<Out = Timestamped<L>>,
        K: Hash + Eq + Clone + Send + 'static,
        L: Clone + Send + 'static,
        R: Clone + Send + 'static,
        O: Send + 'static,
        M: Send + 'static,
        KL: FnMut(&Timestamped<L>) -> K + Clone + Send + Sync + 'static,
        KR: FnMut(&Timestamped<R>) -> K + Clone + Send + Sync + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        self.join_by(other, left_key, right_key).window(windows, f)
    }

    /// Joins this stream (left) with `other` (right) on `left.ts + lower <= right.ts <=
    /// left.ts + upper`, state in memory only: `self.join_by(other, left_key,
    /// right_key).interval(lower, upper, f)` (see [`JoinBy::interval`]).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`JoinBy::interval`].
    fn interval_join<L, R, K, O, M, KL, KR, F>(
        self,
        other: Source<Timestamped<R>, M>,
        left_key: KL,
        right_key: KR,
        lower: i64,
        upper: i64,
        f: F,
    ) -> Self::Next<JoinOutput<K, O, L, R>>
    where
        Self: Via<Out = Timestamped<L>>,
        K: Hash + Eq + Clone + Send + 'static,
        L: Clone + Send + 'static,
        R: Clone + Send + 'static,
        O: Send + 'static,
        M: Send + 'static,
        KL: FnMut(&Timestamped<L>) -> K + Clone + Send + Sync + 'static,
        KR: FnMut(&Timestamped<R>) -> K + Clone + Send + Sync + 'static,
        F: FnMut(&L, &R) -> O + Clone + Send + Sync + 'static,
    {
        self.join_by(other, left_key, right_key)
            .interval(lower, upper, f)
    }
}

impl<S: KeyedUpstream> JoinOps for S {}

#[cfg(test)]
mod checkpoint_tests;
#[cfg(test)]
mod tests;
