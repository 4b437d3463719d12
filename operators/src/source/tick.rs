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

/// Emits one tick per poll once its deadline passed; missed ticks are skipped, not queued.
struct TickLogic<T> {
    value: T,
    initial_delay: Duration,
    interval: Duration,
    next: Option<Duration>,
    sleep: Option<(Duration, BoxFuture<'static, ()>)>,
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

impl<T: Clone + Send + 'static> SourceLogic<T> for TickLogic<T> {
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
        let deadline = *self.next.get_or_insert(now + self.initial_delay);
        if now < deadline {
            let sleep = match &mut self.sleep {
                Some((d, s)) if *d == deadline => s,
                slot => &mut slot.insert((deadline, scx.clock().sleep_until(deadline))).1,
            };
            if sleep.poll_unpin(cx).is_pending() {
                return Poll::Pending;
            }
        }
        self.sleep = None;
        out.push(self.value.clone());
        self.next = Some(self.after(deadline, scx.now().max(deadline)));
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn tick<T: Clone + Send + Sync + 'static>(
    initial_delay: Duration,
    interval: Duration,
    value: T,
) -> Source<T, Cancellable> {
    Source::from_logic("tick", move |_| {
        let cancel = Cancellable::default();
        let logic = TickLogic {
            value: value.clone(),
            initial_delay,
            interval,
            next: None,
            sleep: None,
            cancel: cancel.clone(),
        };
        Ok((logic, cancel))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn ticks_on_the_virtual_clock_and_skips_missed_ticks() {
        let (mut h, cancel) = source(&tick(10 * MS, 5 * MS, 'x'), 8);
        assert!(h.poll().is_none());
        h.clock.advance(9 * MS);
        assert!(h.poll().is_none());
        h.clock.advance(MS);
        assert!(h.flag.take());
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(h.poll().is_none());
        // 12 ms later (t = 22): the ticks at 15 and 20 collapse into one; next at 25.
        h.clock.advance(12 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(h.poll().is_none());
        h.clock.advance(3 * MS);
        assert_eq!(h.poll().unwrap().unwrap(), (vec!['x'], Step::More));
        assert!(cancel.cancel());
        assert!(!cancel.cancel());
        assert!(h.flag.take());
        assert_eq!(h.poll().unwrap().unwrap(), (vec![], Step::Done));
    }

    #[test]
    fn zero_delay_ticks_at_once() {
        let (mut h, _c) = source(&tick(Duration::ZERO, MS, 1u8), 8);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![1], Step::More));
        assert!(h.poll().is_none());
    }
}
