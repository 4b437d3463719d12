//! Keyed processing-time windows: `window_by_processing_time(key, Windows::tumbling(..) |
//! sliding(..) | session(..))` then `.reduce(..)`, `.aggregate(..)` or `.process(..)`, with the
//! same [`WindowOutput`] as event-time windows.
//!
//! Each element is stamped with its arrival time on the run's clock (whole milliseconds;
//! virtual in tests) and assigned to windows by it; a window fires when the clock reaches its
//! end, driven by the clock's timers (no input needed). Arrival times only grow, so nothing is
//! ever late. When the input completes every open window fires at once (nothing accepted is
//! lost). Upstream watermarks pass through untouched. Results leave in firing order (by window
//! end, then start, then key in first-seen order). Window state lives in memory. With
//! [`ProcessingWindowedStream::checkpointed`] (serde keys and contents) a checkpoint saves the
//! open windows by key group, as event-time windows do; a restored window (also rescaled)
//! fires when the restored run's clock reaches its end, or at once when that is past. Without
//! it a checkpoint barrier is refused (`no_codec`).

use super::contents::{Aggregate, Contents, Process, Reduce};
use super::logic::WindowLogic;
use super::{AggregateFunction, Window, WindowOutput, Windows};
use crate::keyed::{InMemoryOnly, KeyedUpstream, SerdeState, StateChoice, pairs};
use crate::process::driver::{Driver, Timed};
use crate::time::Timestamped;
use std::collections::BTreeSet;
use std::hash::Hash;
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{Control, Flow, FlowLogic, KeyGroupRange, Snapshot, StageCx, StageError};

/// A keyed stream awaiting its processing-time window function; `M` says whether the window
/// state is checkpointed ([`StateChoice`]).
pub struct ProcessingWindowedStream<S, T, K, F, M = InMemoryOnly> {
    upstream: S,
    key: F,
    windows: Windows,
    _k: PhantomData<fn(T) -> (K, M)>,
}

impl<S, T, K, F> ProcessingWindowedStream<S, T, K, F, InMemoryOnly> {
    /// Checkpoints the open windows with serde: keys and window contents must be serde types;
    /// without it a checkpoint of the stage is refused. A restored window fires when the
    /// restored run's clock reaches its end (at once when past); restores rescale by key group.
    pub fn checkpointed(self) -> ProcessingWindowedStream<S, T, K, F, SerdeState> {
        ProcessingWindowedStream {
            upstream: self.upstream,
            key: self.key,
            windows: self.windows,
            _k: PhantomData,
        }
    }
}

/// The window stage driven by the clock.
struct ClockWindows<K, T, C: Contents<K, T>> {
    logic: WindowLogic<K, T, C>,
    /// Window ends to wake up at (ms of the run's clock).
    deadlines: BTreeSet<i64>,
    scratch: Vec<Window>,
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl<K, T, C> ClockWindows<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    /// After a restore: every open window fires when the clock reaches its end, whatever the
    /// old run's clock was (the restored watermark would make new arrivals late otherwise).
    fn restored(&mut self) {
        self.logic.watermark = None;
        self.deadlines = self.logic.order.ends().collect();
    }
}

impl<K, T, C> Timed<(K, T), WindowOutput<K, C::Out, T>> for ClockWindows<K, T, C>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Clone + Send + 'static,
    C: Contents<K, T>,
{
    fn on_batch(
        &mut self,
        batch: Vec<(K, T)>,
        now: Duration,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if batch.is_empty() {
            return Ok(());
        }
        let ts = millis(now);
        // Every element of the batch arrived at `ts`: one assignment for the batch.
        self.scratch.clear();
        self.logic.windows.assign(ts, &mut self.scratch);
        self.deadlines.extend(self.scratch.iter().map(|w| w.end));
        let mut rows: Vec<_> = batch
            .into_iter()
            .map(|(k, x)| (k, Timestamped::new(ts, x)))
            .collect();
        self.logic.on_batch(&mut rows, out, scx)
    }

    fn on_watermark(
        &mut self,
        _ms: i64,
        _now: Duration,
        _out: &mut Vec<WindowOutput<K, C::Out, T>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<bool, StageError> {
        Ok(true)
    }

    fn on_time(
        &mut self,
        now: Duration,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let ts = millis(now);
        while self.deadlines.first().is_some_and(|&d| d <= ts) {
            self.deadlines.pop_first();
        }
        // The clock at `ts`: every window ending by then is complete.
        self.logic
            .on_control(Control::watermark(ts.saturating_sub(1)), out, scx)
            .map(|_| ())
    }

    fn next_deadline(&self) -> Option<Duration> {
        self.deadlines
            .first()
            .map(|&d| Duration::from_millis(u64::try_from(d).unwrap_or(0)))
    }

    fn on_finish(
        &mut self,
        _now: Duration,
        out: &mut Vec<WindowOutput<K, C::Out, T>>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.deadlines.clear();
        self.logic.on_finish(out, scx)
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        self.logic.snapshot()
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.logic.restore(snapshot)?;
        self.restored();
        Ok(())
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.logic.restore_rescaled(snapshots, key_groups)?;
        self.restored();
        Ok(())
    }
}

impl<S, T, K, F, M> ProcessingWindowedStream<S, T, K, F, M>
where
    S: KeyedUpstream<Out = T>,
    T: Clone + Send + 'static,
    K: Hash + Eq + Clone + Send + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
{
    fn build<C, Mk>(self, name: &'static str, make: Mk) -> S::Next<WindowOutput<K, C::Out, T>>
    where
        C: Contents<K, T>,
        Mk: Fn() -> C + Send + Sync + 'static,
        M: StateChoice<K, C::Acc>,
    {
        let windows = self.windows;
        let invalid = windows.invalid();
        let codec = M::windows();
        let stage = Flow::from_async(name, move |info| {
            let owned = KeyGroupRange::for_subtask(info.subtask, info.parallelism);
            let logic = ClockWindows {
                logic: WindowLogic::new(windows, 0, make()).checkpointed(codec, owned),
                deadlines: BTreeSet::new(),
                scratch: Vec::new(),
            };
            Ok((Driver::new(logic), ()))
        })
        .reject(invalid.map(|e| format!("{name}: {e}")));
        let par = self.upstream.outlet_parallelism();
        self.upstream.via_flow(pairs(self.key, par).via(stage))
    }

    /// Reduces each window's elements pairwise.
    ///
    /// - **emits when** the run's clock reaches a window's end (one result per key and
    ///   window), or upstream completes (every open window)
    /// - **backpressures when** downstream backpressures
    /// - **completes when** upstream completes and every window fired
    /// - **cancels when** downstream cancels
    /// - **fails when** upstream fails
    pub fn reduce<G>(self, f: G) -> S::Next<WindowOutput<K, T, T>>
    where
        G: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
        M: StateChoice<K, T>,
    {
        self.build("processing_window_reduce", move || Reduce(f.clone()))
    }

    /// Aggregates each window's elements incrementally with `agg`.
    ///
    /// Emits, backpressures, completes, cancels and fails as [`Self::reduce`].
    pub fn aggregate<A>(self, agg: A) -> S::Next<WindowOutput<K, A::Out, T>>
    where
        A: AggregateFunction<T>,
        M: StateChoice<K, A::Acc>,
    {
        self.build("processing_window_aggregate", move || {
            Aggregate(agg.clone(), PhantomData)
        })
    }

    /// Calls `f` with all elements of a window (stamped with their arrival ms) when it fires.
    ///
    /// Emits, backpressures, completes, cancels and fails as [`Self::reduce`].
    pub fn process<R, G>(self, f: G) -> S::Next<WindowOutput<K, R, T>>
    where
        R: Send + 'static,
        G: FnMut(&K, Window, &[Timestamped<T>]) -> R + Clone + Send + Sync + 'static,
        M: StateChoice<K, Vec<Timestamped<T>>>,
    {
        self.build("processing_window_process", move || Process(f.clone()))
    }
}

/// `window_by_processing_time` for every [`Source`](weir_graph::Source) and [`Flow`].
pub trait ProcessingWindowOps: KeyedUpstream {
    /// Groups elements by `key` into processing-time `windows` (see the module docs).
    fn window_by_processing_time<K, F>(
        self,
        key: F,
        windows: Windows,
    ) -> ProcessingWindowedStream<Self, Self::Out, K, F>
    where
        Self::Out: Clone,
        K: Hash + Eq + Clone + Send + 'static,
        F: FnMut(&Self::Out) -> K + Clone + Send + Sync + 'static,
    {
        ProcessingWindowedStream {
            upstream: self,
            key,
            windows,
            _k: PhantomData,
        }
    }
}

impl<S: KeyedUpstream> ProcessingWindowOps for S {}
