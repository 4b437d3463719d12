//! Keyed event-time windows: `window_by(key, Windows::tumbling(..) | sliding(..) | session(..))`
//! then `.reduce(..)`, `.aggregate(..)` (incremental) or `.process(..)` (all elements).
//!
//! Elements carry their event time ([`Timestamped`], from
//! [`assign_timestamps`](crate::time::assign_timestamps)); the stage is hash-partitioned by key
//! (as `key_by`) and fires a window of a key once the watermark reaches the window's last
//! timestamp (`end - 1`). With several upstream subtasks or merged inputs the stage sees the
//! minimum of their watermarks (the engine combines them). A window stays for
//! `allowed_lateness` after it fired: an element for it in that time updates it and fires it
//! again. An element whose windows are all past their allowed lateness is *late*: it is emitted
//! as [`WindowOutput::Late`] (the side output, split off to a sink with [`late_to`]), never
//! counted and never dropped silently.
//! When the input completes every window not fired yet fires (the end of event time).
//!
//! Results leave in firing order: by window end, then start, then key in first-seen order
//! (per subtask; a key's state goes with its last window, so a key that returns is seen anew).
//! Window state lives in memory. With [`WindowedStream::checkpointed`] (serde keys and window
//! contents) a checkpoint saves it by key group (watermark, key ids, open windows with their
//! accumulators and whether they fired) and a restore, also at another parallelism, brings it
//! back; without it a snapshot is refused (`no_codec`) rather than taken without the state.

mod assign;
mod builtin;
mod checkpoint;
mod contents;
mod keys;
mod late;
mod logic;
mod order;
mod processing;
mod snapshot;

pub use assign::{Window, Windows};
pub use builtin::{Builtin, Num, Numeric};
pub use contents::AggregateFunction;
pub use late::{LateOps, late_to};
pub use processing::{ProcessingWindowOps, ProcessingWindowedStream};
pub use snapshot::WindowCodec;

use crate::keyed::{InMemoryOnly, KeyedUpstream, SerdeState, StateChoice, pairs};
use crate::time::Timestamped;
use contents::{Aggregate, Contents, Process, Reduce};
use logic::WindowLogic;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{Flow, KeyGroupRange};

/// What a window stage emits: a window's result, or a late element (the side output).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowOutput<K, R, T> {
    /// `window` of `key` fired (again, after a late element within the allowed lateness).
    Fired {
        /// The key.
        key: K,
        /// The window.
        window: Window,
        /// The result of the window's elements.
        value: R,
    },
    /// An element that arrived after every window it belongs to was past its allowed lateness.
    Late {
        /// The element's key.
        key: K,
        /// The element.
        element: Timestamped<T>,
    },
}

impl<K, R, T> WindowOutput<K, R, T> {
    /// The fired result, if this is one.
    pub fn fired(self) -> Option<(K, Window, R)> {
        match self {
            Self::Fired { key, window, value } => Some((key, window, value)),
            Self::Late { .. } => None,
        }
    }

    /// The late element, if this is one.
    pub fn late(self) -> Option<(K, Timestamped<T>)> {
        match self {
            Self::Late { key, element } => Some((key, element)),
            Self::Fired { .. } => None,
        }
    }
}

/// A keyed stream of timestamped elements awaiting its window function; `M` says whether the
/// window state is checkpointed ([`StateChoice`]).
pub struct WindowedStream<S, T, K, F, M = InMemoryOnly> {
    upstream: S,
    key: F,
    windows: Windows,
    lateness: i64,
    _k: PhantomData<fn(T) -> (K, M)>,
}

impl<S, T, K, F> WindowedStream<S, T, K, F, InMemoryOnly> {
    /// Checkpoints the window state with serde: keys and window contents (the accumulator, the
    /// reduced value or the elements) must be serde types; without it a checkpoint of the
    /// stage is refused. Restores keep the watermark, fired windows and firing order, and
    /// rescale by key group.
    pub fn checkpointed(self) -> WindowedStream<S, T, K, F, SerdeState> {
        WindowedStream {
            upstream: self.upstream,
            key: self.key,
            windows: self.windows,
            lateness: self.lateness,
            _k: PhantomData,
        }
    }
}

impl<S, T, K, F, M> WindowedStream<S, T, K, F, M>
where
    S: KeyedUpstream<Out = Timestamped<T>>,
    T: Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    F: FnMut(&Timestamped<T>) -> K + Clone + Send + Sync + 'static,
{
    /// Keeps fired windows for `lateness` (whole milliseconds) to update them with late elements.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.lateness = i64::try_from(lateness.as_millis()).unwrap_or(i64::MAX);
        self
    }

    fn build<C, Mk>(self, name: &'static str, make: Mk) -> S::Next<WindowOutput<K, C::Out, T>>
    where
        C: Contents<K, T>,
        Mk: Fn() -> C + Send + Sync + 'static,
        M: StateChoice<K, C::Acc>,
    {
        let (windows, lateness) = (self.windows, self.lateness);
        let invalid = windows.invalid();
        let codec = M::windows();
        let stage = Flow::from_logic(name, move |info| {
            let owned = KeyGroupRange::for_subtask(info.subtask, info.parallelism);
            let logic = WindowLogic::new(windows, lateness, make()).checkpointed(codec, owned);
            Ok((logic, ()))
        })
        .reject(invalid.map(|e| format!("{name}: {e}")));
        let par = self.upstream.outlet_parallelism();
        self.upstream.via_flow(pairs(self.key, par).via(stage))
    }

    /// Reduces each window's elements pairwise.
    ///
    /// - **emits when** the watermark reaches a window's end (one result per key and window),
    ///   a late element within the allowed lateness updates a fired window, an element is late
    ///   (`Late`), or upstream completes (every window not fired yet)
    /// - **backpressures when** downstream backpressures
    /// - **completes when** upstream completes and every window fired
    /// - **cancels when** downstream cancels
    /// - **fails when** upstream fails
    pub fn reduce<G>(self, f: G) -> S::Next<WindowOutput<K, T, T>>
    where
        G: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
        M: StateChoice<K, T>,
    {
        self.build("window_reduce", move || Reduce(f.clone()))
    }

    /// Aggregates each window's elements incrementally with `agg` (one accumulator per window).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`Self::reduce`].
    pub fn aggregate<A>(self, agg: A) -> S::Next<WindowOutput<K, A::Out, T>>
    where
        A: AggregateFunction<T>,
        M: StateChoice<K, A::Acc>,
    {
        self.build("window_aggregate", move || {
            Aggregate(agg.clone(), PhantomData)
        })
    }

    /// Calls `f` with all elements of a window when it fires (in arrival order; merged
    /// sessions keep their elements in window order, the merging element last).
    ///
    /// Emits, backpressures, completes, cancels and fails as [`Self::reduce`].
    pub fn process<R, G>(self, f: G) -> S::Next<WindowOutput<K, R, T>>
    where
        R: Send + 'static,
        G: FnMut(&K, Window, &[Timestamped<T>]) -> R + Clone + Send + Sync + 'static,
        M: StateChoice<K, Vec<Timestamped<T>>>,
    {
        self.build("window_process", move || Process(f.clone()))
    }
}

/// `window_by` for every [`Source`](weir_graph::Source) and [`Flow`] of [`Timestamped`] elements.
pub trait WindowOps: KeyedUpstream {
    /// Groups elements by `key` into event-time `windows` (see the [module docs](self)).
    fn window_by<T, K, F>(self, key: F, windows: Windows) -> WindowedStream<Self, T, K, F>
    where
        Self: KeyedUpstream<Out = Timestamped<T>>,
        T: Clone + Send + 'static,
        K: Hash + Eq + Clone + Send + 'static,
        F: FnMut(&Timestamped<T>) -> K + Clone + Send + Sync + 'static,
    {
        WindowedStream {
            upstream: self,
            key,
            windows,
            lateness: 0,
            _k: PhantomData,
        }
    }
}

impl<S: KeyedUpstream> WindowOps for S {}

#[cfg(test)]
mod tests;
