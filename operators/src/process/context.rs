//! What a keyed process function sees: the current key, its value state, the times and the
//! timer service, and the output.

use std::collections::BTreeSet;
use std::time::Duration;

/// A timer that fired: event time (the watermark passed it) or processing time (the run's
/// clock reached it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Timer {
    /// An event-time timer at this timestamp (ms).
    Event(i64),
    /// A processing-time timer at this time of the run's clock.
    Processing(Duration),
}

/// The per-key value state of a process function: `Option<S>` to read, set and clear.
#[derive(Debug)]
pub struct ValueState<'a, S>(pub(crate) &'a mut Option<S>);

impl<S> ValueState<'_, S> {
    /// The current key's value, if set.
    pub fn get(&self) -> Option<&S> {
        self.0.as_ref()
    }
    /// The current key's value, to update in place.
    pub fn get_mut(&mut self) -> Option<&mut S> {
        self.0.as_mut()
    }
    /// Sets the current key's value.
    pub fn set(&mut self, value: S) {
        *self.0 = Some(value);
    }
    /// Takes the current key's value out, leaving it unset.
    pub fn take(&mut self) -> Option<S> {
        self.0.take()
    }
    /// Clears the current key's value.
    pub fn clear(&mut self) {
        *self.0 = None;
    }
}

/// The timers of every key of one subtask, in firing order (time, then key in first-seen
/// order); a timer is registered once per key and time.
pub(crate) struct TimerSets {
    pub(crate) event: BTreeSet<(i64, u64)>,
    pub(crate) processing: BTreeSet<(Duration, u64)>,
}

/// The context of one call of a process function: one key, its state and timers.
pub struct ProcessContext<'a, K, S, O> {
    pub(crate) key: &'a K,
    pub(crate) kid: u64,
    pub(crate) state: &'a mut Option<S>,
    pub(crate) timers: &'a mut TimerSets,
    /// The key's timer count (a key without state and timers is forgotten).
    pub(crate) count: &'a mut usize,
    pub(crate) out: &'a mut Vec<O>,
    pub(crate) watermark: Option<i64>,
    pub(crate) now: Duration,
}

impl<K, S, O> ProcessContext<'_, K, S, O> {
    /// The current key.
    pub fn key(&self) -> &K {
        self.key
    }
    /// The current key's value state.
    pub fn state(&mut self) -> ValueState<'_, S> {
        ValueState(self.state)
    }
    /// Emits `value` downstream (after the rows emitted before it).
    pub fn emit(&mut self, value: O) {
        self.out.push(value);
    }
    /// The current watermark (`None` before the first one).
    pub fn watermark(&self) -> Option<i64> {
        self.watermark
    }
    /// The run's clock (virtual in tests) when the batch or timer was handled.
    pub fn processing_time(&self) -> Duration {
        self.now
    }
    /// Fires `on_timer(Timer::Event(ts))` for the current key once the watermark reaches
    /// `ts` (at once after this call when it already has); registering it again is a no-op.
    pub fn register_event_timer(&mut self, ts: i64) {
        if self.timers.event.insert((ts, self.kid)) {
            *self.count += 1;
        }
    }
    /// Removes the current key's event-time timer at `ts`, if registered.
    pub fn delete_event_timer(&mut self, ts: i64) {
        if self.timers.event.remove(&(ts, self.kid)) {
            *self.count = self.count.saturating_sub(1);
        }
    }
    /// Fires `on_timer(Timer::Processing(at))` for the current key once the run's clock
    /// reaches `at`; registering it again is a no-op.
    pub fn register_processing_timer(&mut self, at: Duration) {
        if self.timers.processing.insert((at, self.kid)) {
            *self.count += 1;
        }
    }
    /// Removes the current key's processing-time timer at `at`, if registered.
    pub fn delete_processing_timer(&mut self, at: Duration) {
        if self.timers.processing.remove(&(at, self.kid)) {
            *self.count = self.count.saturating_sub(1);
        }
    }
}
