//! `tick(initial_delay, interval, value)`: emits `value` periodically on the stage's clock.

use futures::FutureExt;
use futures::future::BoxFuture;
use futures::task::AtomicWaker;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

#[derive(Default)]
struct CancelState {
    cancelled: AtomicBool,
    waker: AtomicWaker,
}

/// Stops a running `tick` source: it completes at its next poll.
#[derive(Clone, Default)]
pub struct Cancellable(Arc<CancelState>);

impl std::fmt::Debug for Cancellable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Cancellable(cancelled: {})", self.is_cancelled())
    }
}

impl Cancellable {
    /// Cancels the source; returns false if it was cancelled already.
    pub fn cancel(&self) -> bool {
        let first = !self.0.cancelled.swap(true, Ordering::AcqRel);
        self.0.waker.wake();
        first
    }
    /// Whether `cancel` was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.cancelled.load(Ordering::Acquire)
    }
}

/// Emits the ticks on the grid `initial_delay + k * interval`. A tick is dropped only when the
/// consumer had no demand at its time (as Akka's `tick`): while the source waits for its timer it
/// is being asked for an element, so every grid point that passed meanwhile (a timer that woke
/// late) is emitted; grid points that passed while the consumer had no demand are dropped, and
/// demand arriving between grid points gets the next one.
struct TickLogic<T> {
    /// Makes the element of one tick.
    make: Arc<dyn Fn() -> T + Send + Sync>,
    initial_delay: Duration,
    interval: Duration,
    next: Option<Duration>,
    sleep: Option<(Duration, BoxFuture<'static, ()>)>,
    /// Whether the last poll waited for the timer (the consumer asked for a tick meanwhile).
    parked: bool,
    cancel: Cancellable,
}

impl<T> TickLogic<T> {
    /// The first deadline after `now` on the grid `deadline + k * interval` (k >= 1).
    fn after(&self, deadline: Duration, now: Duration) -> Duration {
        let step = self.interval.as_nanos();
        if step == 0 {
            return now;
        }
        let missed = now.saturating_sub(deadline).as_nanos() / step;
        let ahead = u64::try_from((missed + 1) * step).unwrap_or(u64::MAX);
        deadline.saturating_add(Duration::from_nanos(ahead))
    }
}

impl<T: Send + 'static> SourceLogic<T> for TickLogic<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        self.cancel.0.waker.register(cx.waker());
        if self.cancel.is_cancelled() {
            return Poll::Ready(Ok(Step::Done));
        }
        let now = scx.now();
        let asked = now;
        let deadline = *self.next.get_or_insert(now + self.initial_delay);
        if now < deadline {
            let sleep = match &mut self.sleep {
                Some((d, s)) if *d == deadline => s,
                slot => &mut slot.insert((deadline, scx.clock().sleep_until(deadline))).1,
            };
            if sleep.poll_unpin(cx).is_pending() {
                // A look-ahead poll with a waker that wakes nothing (the chain's fast path,
                // which then flushes and may wait for credit) is not a consumer waiting.
                if !cx.waker().data().is_null() {
                    self.parked = true;
                }
                return Poll::Pending;
            }
        }
        self.sleep = None;
        // `asked` is when this poll began: a deadline before it that no waiting poll saw
        // passed without demand.
        if !self.parked && asked > deadline && !self.interval.is_zero() {
            let off_grid = !(asked - deadline)
                .as_nanos()
                .is_multiple_of(self.interval.as_nanos());
            if off_grid {
                // Nobody asked while the grid points since `deadline` passed: they are dropped,
                // and the next tick is the next grid point (Akka's rule).
                self.next = Some(self.after(deadline, asked));
                return self.poll_next(cx, scx, out);
            }
        }
        let now = scx.now().max(deadline);
        let next = self.after(deadline, now);
        let due = if self.parked && !self.interval.is_zero() {
            let passed = (now - deadline).as_nanos() / self.interval.as_nanos();
            usize::try_from(passed + 1).unwrap_or(usize::MAX)
        } else {
            1
        };
        let n = due.min(scx.batch_size().max(1));
        out.extend(std::iter::repeat_with(&*self.make).take(n));
        if n < due {
            // More than a batch is owed: the rest comes with the next poll, still on demand.
            let step = self
                .interval
                .saturating_mul(u32::try_from(n).unwrap_or(u32::MAX));
            self.next = Some(deadline.saturating_add(step));
        } else {
            self.parked = false;
            self.next = Some(next);
        }
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn tick<T: Clone + Send + Sync + 'static>(
    initial_delay: Duration,
    interval: Duration,
    value: T,
) -> Source<T, Cancellable> {
    tick_with(initial_delay, interval, move || value.clone())
}

pub(crate) fn tick_with<T: Send + 'static>(
    initial_delay: Duration,
    interval: Duration,
    make: impl Fn() -> T + Send + Sync + 'static,
) -> Source<T, Cancellable> {
    let make: Arc<dyn Fn() -> T + Send + Sync> = Arc::new(make);
    Source::from_logic("tick", move |_| {
        let cancel = Cancellable::default();
        let logic = TickLogic {
            make: Arc::clone(&make),
            initial_delay,
            interval,
            next: None,
            sleep: None,
            parked: false,
            cancel: cancel.clone(),
        };
        Ok((logic, cancel))
    })
    .reject(weir_graph::positive("tick: interval", interval))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_waiting_consumer_gets_every_tick_even_when_the_timer_wakes_late() {
        let (mut h, cancel) = source(&tick(10 * MS, 5 * MS, 'x'), 8);
        assert!(h.poll().is_none());
        h.clock.advance(9 * MS);
        assert!(h.poll().is_none());
        h.clock.advance(MS);
        assert!(h.flag.take());
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(h.poll().is_none(), "the consumer asks for the tick at 15");
        // Woken 7 ms late (t = 22): the consumer waited all along, so the ticks of 15 and 20
        // are both emitted; the next one is at 25.
        h.clock.advance(12 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x', 'x'], Step::More));
        assert!(h.poll().is_none());
        h.clock.advance(2 * MS);
        assert!(h.poll().is_none());
        h.clock.advance(MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(cancel.cancel());
        assert!(!cancel.cancel());
        assert!(h.flag.take());
        assert_eq!(h.poll().unwrap().unwrap(), (vec![], Step::Done));
    }

    #[test]
    fn ticks_without_demand_are_dropped() {
        let (mut h, _c) = source(&tick(Duration::ZERO, 5 * MS, 'x'), 8);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        // Not polled until t = 22 (downstream was busy): the ticks at 5, 10, 15 and 20 had no
        // demand and are dropped; the demand at 22 gets the tick of 25.
        h.clock.advance(22 * MS);
        assert!(h.poll().is_none());
        h.clock.advance(3 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
    }

    #[test]
    fn a_long_wait_emits_every_tick_a_batch_at_a_time() {
        let (mut h, _c) = source(&tick(Duration::ZERO, MS, 'x'), 4);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(h.poll().is_none());
        h.clock.advance(10 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'; 4], Step::More));
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'; 4], Step::More));
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'; 2], Step::More));
        assert!(
            h.poll().is_none(),
            "the ten ticks up to 10 ms are out; the next is at 11 ms"
        );
        h.clock.advance(MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
    }

    #[test]
    fn tick_with_makes_each_element_when_it_is_due() {
        let made = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let m = Arc::clone(&made);
        let src = tick_with(Duration::ZERO, 5 * MS, move || {
            m.fetch_add(1, Ordering::SeqCst) * 10
        });
        let (mut h, _c) = source(&src, 8);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![0], Step::More));
        assert!(h.poll().is_none());
        assert_eq!(
            made.load(Ordering::SeqCst),
            1,
            "nothing made ahead of its tick"
        );
        h.clock.advance(10 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![10, 20], Step::More));
        assert_eq!(made.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn zero_delay_ticks_at_once() {
        let (mut h, _c) = source(&tick(Duration::ZERO, MS, 1u8), 8);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![1], Step::More));
        assert!(h.poll().is_none());
    }
}
