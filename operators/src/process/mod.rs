//! Keyed process functions with state and timers (Flink's `KeyedProcessFunction`):
//! `key_by(key).process(f)` / `.process_with_codec(f, StateCodec::serde())`.
//!
//! The stage runs after the `key_by` hash exchange (parallel by key group, as keyed
//! aggregates). For each element, [`KeyedProcessFunction::process_element`] gets the element
//! and a [`ProcessContext`] of its key: the key's value state ([`ValueState`], an `Option<S>`),
//! `emit`, the current watermark and processing time, and the key's timers. Event-time timers
//! fire ([`KeyedProcessFunction::on_timer`], same context) once the watermark reaches them,
//! processing-time timers once the run's clock (virtual in tests) does; both in time order,
//! then by key in first-seen order, at most once per key and time. A timer registered at or
//! before the current time fires right after the call that registered it. A key with neither
//! state nor timers is forgotten. At the end of the input the watermark goes to the end of
//! time: pending event-time timers fire, processing-time timers do not (as Flink's bounded
//! inputs). The stage forwards the watermark after the timers it fired.
//!
//! State and timers checkpoint through a serde codec ([`ProcessState`] with
//! [`StateCodec::serde`]); the stage built with [`Keyed::process`] has none and refuses a
//! barrier (`no_codec`) rather than be checkpointed without its state. A restore at another
//! parallelism keeps, in each new subtask, the keys of its key groups out of every old
//! subtask's state, with their timers (the watermark is the smallest saved one).
//!
//! The five rules of both constructors:
//! - **emits when** the function emits, for an element or a timer that fired
//! - **backpressures when** downstream backpressures
//! - **completes when** upstream completes and the pending event-time timers fired
//! - **cancels when** downstream cancels
//! - **fails when** upstream fails, or the function fails on an element or timer (the error
//!   names the stage and the element or timer, after the rows emitted before it; under
//!   supervision Resume the element is dead-lettered and the key keeps its state)

mod context;
pub(crate) mod driver;
mod logic;

pub use context::{ProcessContext, Timer, ValueState};

use crate::keyed::{Keyed, KeyedUpstream, pairs};
use driver::Driver;
use logic::ProcessLogic;
use serde::{Deserialize, Serialize};
use std::hash::Hash;
use std::time::Duration;
use weir_graph::{Flow, StageError, StateCodec};

/// A function over the elements of each key, with per-key state and timers.
pub trait KeyedProcessFunction<K, T>: Send + 'static {
    /// The per-key value state.
    type State: Clone + Send + 'static;
    /// What the function emits.
    type Out: Send + 'static;
    /// Handles one element of key `cx.key()`.
    fn process_element(
        &mut self,
        element: &T,
        cx: &mut ProcessContext<'_, K, Self::State, Self::Out>,
    ) -> Result<(), StageError>;
    /// A timer of key `cx.key()` fired (nothing by default).
    fn on_timer(
        &mut self,
        timer: Timer,
        cx: &mut ProcessContext<'_, K, Self::State, Self::Out>,
    ) -> Result<(), StageError> {
        let _ = (timer, cx);
        Ok(())
    }
}

/// The checkpointed state of a keyed process stage: every key's value and timers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessState<K, S> {
    /// The watermark reached.
    pub watermark: Option<i64>,
    /// The next key id.
    pub next_id: u64,
    /// `(key id, key, value)` of every key with state or timers.
    pub keys: Vec<(u64, K, Option<S>)>,
    /// `(timestamp, key id)` of every event-time timer.
    pub event_timers: Vec<(i64, u64)>,
    /// `(time, key id)` of every processing-time timer.
    pub processing_timers: Vec<(Duration, u64)>,
}

/// A [`KeyedProcessFunction`] made of two closures (see [`process_fn`]).
#[derive(Clone)]
pub struct ProcessFn<S, O, E, F> {
    on_element: E,
    on_timer: F,
    _so: std::marker::PhantomData<fn() -> (S, O)>,
}

/// A process function from `on_element(&element, cx)` and `on_timer(timer, cx)`.
pub fn process_fn<K, T, S, O, E, F>(on_element: E, on_timer: F) -> ProcessFn<S, O, E, F>
where
    E: FnMut(&T, &mut ProcessContext<'_, K, S, O>) -> Result<(), StageError>,
    F: FnMut(Timer, &mut ProcessContext<'_, K, S, O>) -> Result<(), StageError>,
{
    ProcessFn {
        on_element,
        on_timer,
        _so: std::marker::PhantomData,
    }
}

impl<K, T, S, O, E, F> KeyedProcessFunction<K, T> for ProcessFn<S, O, E, F>
where
    S: Clone + Send + 'static,
    O: Send + 'static,
    E: FnMut(&T, &mut ProcessContext<'_, K, S, O>) -> Result<(), StageError> + Send + 'static,
    F: FnMut(Timer, &mut ProcessContext<'_, K, S, O>) -> Result<(), StageError> + Send + 'static,
{
    type State = S;
    type Out = O;
    fn process_element(
        &mut self,
        element: &T,
        cx: &mut ProcessContext<'_, K, S, O>,
    ) -> Result<(), StageError> {
        (self.on_element)(element, cx)
    }
    fn on_timer(
        &mut self,
        timer: Timer,
        cx: &mut ProcessContext<'_, K, S, O>,
    ) -> Result<(), StageError> {
        (self.on_timer)(timer, cx)
    }
}

/// The keyed process stage over `(key, element)` pairs, without a key stage.
fn process_stage<K, T, P>(
    f: P,
    codec: Option<StateCodec<ProcessState<K, P::State>>>,
) -> Flow<(K, T), P::Out>
where
    K: Hash + Eq + Clone + Send + 'static,
    T: Send + 'static,
    P: KeyedProcessFunction<K, T> + Clone + Sync,
{
    Flow::from_async("keyed_process", move |_| {
        Ok((Driver::new(ProcessLogic::new(f.clone(), codec)), ()))
    })
}

impl<S, K, F> Keyed<S, K, F>
where
    S: KeyedUpstream,
    K: Hash + Eq + Clone + Send + 'static,
    F: FnMut(&S::Out) -> K + Clone + Send + Sync + 'static,
{
    /// Runs `f` over each key's elements with per-key state and timers (see the
    /// [module docs](crate::process)); refuses a checkpoint barrier (no codec).
    ///
    /// - **emits when** `f` emits, for an element or a timer that fired
    /// - **backpressures when** downstream backpressures
    /// - **completes when** upstream completes and the pending event-time timers fired
    /// - **cancels when** downstream cancels
    /// - **fails when** upstream fails, or `f` fails on an element or timer (naming the stage
    ///   and the element or timer)
    pub fn process<P>(self, f: P) -> S::Next<P::Out>
    where
        P: KeyedProcessFunction<K, S::Out> + Clone + Sync,
    {
        self.process_inner(f, None)
    }

    /// [`Self::process`], checkpointing state and timers with `codec`.
    ///
    /// Emits, backpressures, completes, cancels and fails as [`Self::process`].
    pub fn process_with_codec<P>(
        self,
        f: P,
        codec: StateCodec<ProcessState<K, P::State>>,
    ) -> S::Next<P::Out>
    where
        P: KeyedProcessFunction<K, S::Out> + Clone + Sync,
    {
        self.process_inner(f, Some(codec))
    }

    fn process_inner<P>(
        self,
        f: P,
        codec: Option<StateCodec<ProcessState<K, P::State>>>,
    ) -> S::Next<P::Out>
    where
        P: KeyedProcessFunction<K, S::Out> + Clone + Sync,
    {
        let (upstream, key) = self.into_parts();
        let par = upstream.outlet_parallelism();
        upstream.via_flow(pairs(key, par).via(process_stage(f, codec)))
    }
}

#[cfg(test)]
mod tests;
