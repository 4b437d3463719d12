//! Event time: `assign_timestamps` stamps each element with its event timestamp and emits the
//! watermarks a [`WatermarkStrategy`] derives from them, in band ([`Control::Watermark`]).

use super::util::{maybe, race};
use crate::Via;
use futures::future::{BoxFuture, Either, FutureExt};
use std::sync::Arc;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Control, Event, Flow, Signal, StageError};

/// An element with its event timestamp (milliseconds).
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Timestamped<T> {
    /// Event time in milliseconds.
    pub ts: i64,
    /// The element.
    pub value: T,
}

impl<T> Timestamped<T> {
    /// `value` at event time `ts`.
    pub fn new(ts: i64, value: T) -> Self {
        Self { ts, value }
    }
}

/// Derives watermarks from the timestamps one stage instance sees (a custom strategy).
pub trait WatermarkGenerator: Send + 'static {
    /// An element with timestamp `ts` passed the stage.
    fn on_event(&mut self, ts: i64);
    /// The current watermark (no element `<=` it is expected any more), `None` before the first;
    /// asked once per batch.
    fn current(&self) -> Option<i64>;
}

/// Watermark = highest timestamp seen - `bound` - 1: elements up to `bound` ms behind the
/// highest one are on time.
#[derive(Debug, Clone)]
pub struct BoundedOutOfOrderness {
    bound: i64,
    max: Option<i64>,
}

impl BoundedOutOfOrderness {
    /// Elements may be up to `bound` ms behind the highest timestamp seen.
    pub fn new(bound_ms: i64) -> Self {
        Self {
            bound: bound_ms.max(0),
            max: None,
        }
    }
}

impl WatermarkGenerator for BoundedOutOfOrderness {
    fn on_event(&mut self, ts: i64) {
        self.max = Some(self.max.map_or(ts, |m| m.max(ts)));
    }
    fn current(&self) -> Option<i64> {
        self.max
            .map(|m| m.saturating_sub(self.bound).saturating_sub(1))
    }
}

type MakeGenerator = Arc<dyn Fn() -> Box<dyn WatermarkGenerator> + Send + Sync>;

/// How `assign_timestamps` derives watermarks: a generator per stage instance, and optionally an
/// idle timeout after which the stage declares itself idle ([`Control::Idle`]) until its next
/// element, so that a quiet input does not hold back the minimum downstream.
#[derive(Clone)]
pub struct WatermarkStrategy {
    make: MakeGenerator,
    idleness: Option<Duration>,
}

impl std::fmt::Debug for WatermarkStrategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WatermarkStrategy")
            .field("idleness", &self.idleness)
            .finish_non_exhaustive()
    }
}

impl WatermarkStrategy {
    /// Elements may arrive up to `bound` behind the highest timestamp seen (whole milliseconds).
    pub fn bounded_out_of_orderness(bound: Duration) -> Self {
        let ms = i64::try_from(bound.as_millis()).unwrap_or(i64::MAX);
        Self::custom(move || BoundedOutOfOrderness::new(ms))
    }

    /// Timestamps never decrease: watermark = highest timestamp seen - 1.
    pub fn monotonous() -> Self {
        Self::custom(|| BoundedOutOfOrderness::new(0))
    }

    /// A custom strategy: `make` builds one generator per stage instance.
    pub fn custom<G, F>(make: F) -> Self
    where
        G: WatermarkGenerator,
        F: Fn() -> G + Send + Sync + 'static,
    {
        Self {
            make: Arc::new(move || Box::new(make())),
            idleness: None,
        }
    }

    /// Declares the stream idle after `timeout` without an element (on the run's clock).
    pub fn with_idleness(mut self, timeout: Duration) -> Self {
        self.idleness = Some(timeout);
        self
    }
}

/// Stamps every element with `ts(&element)` and emits watermarks from `strategy`.
///
/// Upstream watermarks and idleness are replaced by this stage's own; other control (markers)
/// passes through in order.
///
/// - **emits when** upstream emits (one `Timestamped` per element); after each batch, a
///   [`Control::Watermark`] when the strategy's watermark advanced, and [`Control::Idle`] once
///   the idle timeout passed without an element
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn assign_timestamps<T, F>(ts: F, strategy: WatermarkStrategy) -> Flow<T, Timestamped<T>>
where
    T: Send + 'static,
    F: FnMut(&T) -> i64 + Clone + Send + Sync + 'static,
{
    let idle = strategy.idleness;
    let flow = Flow::from_async("assign_timestamps", move |_| {
        Ok((
            Assign {
                _t: std::marker::PhantomData::<fn(T)>,
                ts: ts.clone(),
                generator: (strategy.make)(),
                idleness: strategy.idleness,
            },
            (),
        ))
    });
    match idle {
        Some(d) => flow.reject(weir_graph::positive("assign_timestamps: idleness", d)),
        None => flow,
    }
}

struct Assign<T, F> {
    _t: std::marker::PhantomData<fn(T)>,
    ts: F,
    generator: Box<dyn WatermarkGenerator>,
    idleness: Option<Duration>,
}

impl<T, F> AsyncLogic for Assign<T, F>
where
    T: Send + 'static,
    F: FnMut(&T) -> i64 + Send + 'static,
{
    fn handles_control(&self) -> bool {
        true
    }

    fn run(mut self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<Timestamped<T>>(0)?;
            let clock = io.clock;
            let mut emitted: Option<i64> = None;
            let mut idle = false;
            let mut deadline = self.idleness.map(|d| clock.now().saturating_add(d));
            loop {
                let signal = race(
                    race(input.recv_signal(), output.closed()),
                    maybe(deadline.map(|d| clock.sleep_until(d))),
                )
                .await;
                let batch = match signal {
                    Either::Left(Either::Left(Signal::Event(Event::Batch(b)))) => b,
                    Either::Left(Either::Left(Signal::Event(Event::End))) => return Ok(()),
                    Either::Left(Either::Left(Signal::Event(Event::Error(e)))) => return Err(e),
                    Either::Left(Either::Left(Signal::Control(
                        Control::Watermark { .. } | Control::Idle,
                    ))) => continue,
                    Either::Left(Either::Left(Signal::Control(c))) => {
                        output.control(c);
                        continue;
                    }
                    Either::Left(Either::Right(())) => return Ok(()),
                    Either::Right(()) => {
                        if !idle {
                            idle = true;
                            output.control(Control::Idle);
                        }
                        deadline = None;
                        continue;
                    }
                };
                if batch.is_empty() {
                    continue;
                }
                let mut rows = Vec::with_capacity(batch.len());
                for value in batch {
                    let t = (self.ts)(&value);
                    self.generator.on_event(t);
                    rows.push(Timestamped { ts: t, value });
                }
                if output.send(rows).await.is_err() {
                    return Ok(());
                }
                let current = self.generator.current();
                let advanced = current.is_some_and(|c| emitted.is_none_or(|e| c > e));
                // After idleness the current watermark goes out even unchanged: it marks the
                // input active again downstream.
                if (advanced || idle)
                    && let Some(ms) = current.max(emitted)
                {
                    emitted = Some(ms);
                    output.control(Control::Watermark { ms });
                }
                idle = false;
                deadline = self.idleness.map(|d| clock.now().saturating_add(d));
            }
        }
        .boxed()
    }
}

/// `assign_timestamps` on every [`Source`](weir_graph::Source) and [`Flow`](weir_graph::Flow).
pub trait EventTimeOps: Via {
    /// Stamps elements with their event time and emits watermarks (see [`assign_timestamps()`]).
    fn assign_timestamps<F>(
        self,
        ts: F,
        strategy: WatermarkStrategy,
    ) -> Self::Next<Timestamped<Self::Out>>
    where
        F: FnMut(&Self::Out) -> i64 + Clone + Send + Sync + 'static,
    {
        self.via_flow(assign_timestamps(ts, strategy))
    }
}

impl<S: Via> EventTimeOps for S {}
