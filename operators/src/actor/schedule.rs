//! Deliveries scheduled from outside the stage (`ActorRef::send_after`, `send_interval`) on the
//! run's clock: kept by the stage's shared state, fired by the stage's event loop, cancelled
//! by their handle or when the stage stops.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

const ACTIVE: u8 = 0;
const DONE: u8 = 1;
const CANCELLED: u8 = 2;

/// A delivery scheduled with `ActorRef::send_after` or `send_interval`; cancel it with
/// [`ScheduleHandle::cancel`]. Dropping the handle does not cancel it.
#[derive(Clone, Debug)]
pub struct ScheduleHandle(Arc<AtomicU8>);

impl ScheduleHandle {
    /// A handle of a delivery that was refused (its stage stopped).
    pub(crate) fn cancelled() -> Self {
        Self(Arc::new(AtomicU8::new(CANCELLED)))
    }
    /// Cancels the delivery; `true` when it was still pending (a once-delivery not yet sent,
    /// or an interval).
    pub fn cancel(&self) -> bool {
        self.0
            .compare_exchange(ACTIVE, CANCELLED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    /// Whether the delivery is still pending: not sent (once), not cancelled, and its stage
    /// has not stopped.
    pub fn is_active(&self) -> bool {
        self.0.load(Ordering::Acquire) == ACTIVE
    }
    /// Whether it was cancelled (by the handle or because its stage stopped).
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Acquire) == CANCELLED
    }
}

/// Sends the scheduled message; `false` once its actor stopped.
pub(crate) type Deliver = Box<dyn FnMut() -> bool + Send>;

struct Entry {
    /// The deadline on the run's clock (`None` until the stage started: then `delay` after it).
    at: Option<Duration>,
    delay: Duration,
    interval: Option<Duration>,
    deliver: Deliver,
    state: Arc<AtomicU8>,
    /// Order of scheduling, among deliveries due at the same time.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    entries: Vec<Entry>,
    stopped: bool,
    seq: u64,
}

/// The outside deliveries of one stage.
#[derive(Default)]
pub(crate) struct Scheduled(Mutex<Inner>);

impl Scheduled {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a delivery due `delay` after `now` (after the stage's start when `now` is `None`),
    /// repeated every `interval` when given; `None` when the stage stopped already.
    pub(crate) fn add(
        &self,
        now: Option<Duration>,
        delay: Duration,
        interval: Option<Duration>,
        deliver: Deliver,
    ) -> Option<ScheduleHandle> {
        let state = Arc::new(AtomicU8::new(ACTIVE));
        let mut inner = self.lock();
        if inner.stopped {
            return None;
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.entries.push(Entry {
            seq,
            at: now.map(|n| n + delay),
            delay,
            interval: interval.map(|i| i.max(Duration::from_nanos(1))),
            deliver,
            state: Arc::clone(&state),
        });
        Some(ScheduleHandle(state))
    }

    /// The earliest deadline of an active delivery (fixing those waiting for the start at `now`).
    pub(crate) fn next_at(&self, now: Duration) -> Option<Duration> {
        let mut inner = self.lock();
        inner
            .entries
            .retain(|e| e.state.load(Ordering::Acquire) == ACTIVE);
        inner
            .entries
            .iter_mut()
            .map(|e| *e.at.get_or_insert(now + e.delay))
            .min()
    }

    /// Whether a delivery is pending.
    pub(crate) fn is_pending(&self) -> bool {
        self.lock()
            .entries
            .iter()
            .any(|e| e.state.load(Ordering::Acquire) == ACTIVE)
    }

    /// Sends every delivery due at `now` (outside the lock); intervals are due again one
    /// interval later.
    pub(crate) fn fire(&self, now: Duration) {
        let due: Vec<Entry> = {
            let mut inner = self.lock();
            let mut due = Vec::new();
            let mut i = 0;
            while i < inner.entries.len() {
                let e = &mut inner.entries[i];
                let at = *e.at.get_or_insert(now + e.delay);
                if at <= now || e.state.load(Ordering::Acquire) != ACTIVE {
                    due.push(inner.entries.swap_remove(i));
                } else {
                    i += 1;
                }
            }
            due.sort_by_key(|e| (e.at, e.seq));
            due
        };
        let mut again = Vec::new();
        for mut e in due {
            if e.state.load(Ordering::Acquire) != ACTIVE {
                continue;
            }
            let alive = (e.deliver)();
            match e.interval {
                Some(i) if alive => {
                    e.at = e.at.map(|at| at + i);
                    again.push(e);
                }
                _ => {
                    let _ =
                        e.state
                            .compare_exchange(ACTIVE, DONE, Ordering::AcqRel, Ordering::Acquire);
                }
            }
        }
        if !again.is_empty() {
            let mut inner = self.lock();
            if inner.stopped {
                for e in again {
                    e.state.store(CANCELLED, Ordering::Release);
                }
            } else {
                inner.entries.extend(again);
            }
        }
    }

    /// Cancels every delivery (the stage stopped); later ones are refused.
    pub(crate) fn stop(&self) {
        let entries = {
            let mut inner = self.lock();
            inner.stopped = true;
            std::mem::take(&mut inner.entries)
        };
        for e in entries {
            let _ =
                e.state
                    .compare_exchange(ACTIVE, CANCELLED, Ordering::AcqRel, Ordering::Acquire);
        }
    }
}
