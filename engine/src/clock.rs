//! Clocks: [`SystemClock`] (tokio time) and [`VirtualClock`] (advanced by tests).

use crate::testkit::activity::Activity;
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weir_graph::Clock;

/// Real time through tokio's timer (which also honours tokio's paused test time).
#[derive(Debug, Clone)]
pub struct SystemClock {
    epoch: tokio::time::Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        Self {
            epoch: tokio::time::Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep_until(self.epoch + deadline))
    }
}

#[derive(Default)]
struct VState {
    now: Duration,
    next_id: u64,
    timers: BTreeMap<(Duration, u64), Waker>,
}

/// A clock that only moves when a test advances it; no test sleeps. It also knows when the run
/// it drives is idle (every task waits), so [`VirtualClock::run_for`] can step from timer to
/// timer and let the run settle at each: every timer fires at its exact deadline.
#[derive(Clone, Default)]
pub struct VirtualClock {
    state: Arc<Mutex<VState>>,
    activity: Arc<Activity>,
}

impl std::fmt::Debug for VirtualClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VirtualClock({:?})", self.now())
    }
}

impl VirtualClock {
    /// A clock at time zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time forward by `d` in one jump, waking every timer that is due (see
    /// [`VirtualClock::run_for`] for exact steps).
    pub fn advance(&self, d: Duration) {
        let to = self.now().saturating_add(d);
        self.set_time(to);
    }

    /// Sets the time to `to` (never backwards) and wakes every timer due by then.
    fn set_time(&self, to: Duration) {
        let due: Vec<Waker> = {
            let Ok(mut s) = self.state.lock() else { return };
            s.now = s.now.max(to);
            let now = s.now;
            let later = s.timers.split_off(&(now, u64::MAX));
            let due = std::mem::replace(&mut s.timers, later);
            due.into_values().collect()
        };
        for w in due {
            w.wake();
        }
    }

    /// Number of timers waiting.
    pub fn pending_timers(&self) -> usize {
        self.state.lock().map_or(0, |s| s.timers.len())
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.state
            .lock()
            .ok()
            .and_then(|s| s.timers.keys().next().map(|k| k.0))
    }

    /// Whether every task of the runs on this clock waits (none is running or woken).
    pub fn is_idle(&self) -> bool {
        self.activity.busy() == 0
    }

    /// Waits until every task of the runs on this clock waits, without moving time.
    pub async fn settle(&self) {
        self.activity.idle().await;
    }

    /// Blocks this thread until the runs on this clock are idle, at most `timeout` of real time
    /// (a safety net); whether they are.
    pub fn settle_blocking(&self, timeout: Duration) -> bool {
        self.activity.idle_blocking(timeout)
    }

    /// The next step of [`VirtualClock::run_for`] towards `target`: moves to the earliest timer
    /// due by `target` (or to `target`) and wakes what is due; false once at `target`.
    pub fn step_towards(&self, target: Duration) -> bool {
        let now = self.now();
        if now >= target {
            return false;
        }
        let to = self
            .next_deadline()
            .filter(|t| *t <= target)
            .unwrap_or(target);
        self.set_time(to);
        true
    }

    /// Moves time forward by `d` timer by timer: the run settles, time jumps to the next
    /// deadline (never past `now + d`), due timers fire, and so on; it settles at the end.
    pub async fn run_for(&self, d: Duration) {
        let target = self.now().saturating_add(d);
        self.settle().await;
        while self.step_towards(target) {
            self.settle().await;
        }
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.state.lock().map_or(Duration::ZERO, |s| s.now)
    }
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'static, ()> {
        Box::pin(VSleep {
            clock: self.clone(),
            deadline,
            key: None,
        })
    }
    fn tracks_tasks(&self) -> bool {
        true
    }
    fn track(&self, task: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
        self.activity.track(task)
    }
    fn busy(&self) -> Option<Box<dyn Send + Sync>> {
        Some(Box::new(crate::testkit::activity::Activity::hold(
            &self.activity,
        )))
    }
}

struct VSleep {
    clock: VirtualClock,
    deadline: Duration,
    key: Option<(Duration, u64)>,
}

impl Future for VSleep {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(mut s) = self.clock.state.lock() else {
            return Poll::Ready(());
        };
        if s.now >= self.deadline {
            if let Some(k) = self.key {
                s.timers.remove(&k);
            }
            drop(s);
            self.key = None;
            return Poll::Ready(());
        }
        let key = match self.key {
            Some(k) => k,
            None => {
                s.next_id += 1;
                (self.deadline, s.next_id)
            }
        };
        s.timers.insert(key, cx.waker().clone());
        drop(s);
        self.key = Some(key);
        Poll::Pending
    }
}

impl Drop for VSleep {
    fn drop(&mut self) {
        if let Some(k) = self.key
            && let Ok(mut s) = self.clock.state.lock()
        {
            s.timers.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// Spawns tracked tasks that sleep until each deadline (ms) and record when they woke.
    fn sleepers(clock: &VirtualClock, deadlines: &[u64]) -> Arc<StdMutex<Vec<(u64, u64)>>> {
        let woke = Arc::new(StdMutex::new(Vec::new()));
        for &d in deadlines {
            let (c, w) = (clock.clone(), Arc::clone(&woke));
            let task = clock.track(Box::pin(async move {
                c.sleep_until(Duration::from_millis(d)).await;
                let now = c.now().as_millis() as u64;
                w.lock().expect("not poisoned").push((d, now));
            }));
            tokio::spawn(task);
        }
        woke
    }

    #[tokio::test]
    async fn run_for_fires_every_timer_at_its_deadline() {
        let clock = VirtualClock::new();
        let woke = sleepers(&clock, &[20, 10, 30]);
        clock.settle().await;
        assert_eq!(clock.pending_timers(), 3);
        clock.run_for(Duration::from_millis(25)).await;
        assert_eq!(*woke.lock().unwrap(), vec![(10, 10), (20, 20)]);
        assert_eq!(clock.now(), Duration::from_millis(25));
        assert!(clock.is_idle());
        assert_eq!(clock.next_deadline(), Some(Duration::from_millis(30)));
    }

    #[tokio::test]
    async fn advance_jumps_and_wakes_every_due_timer_late() {
        let clock = VirtualClock::new();
        let woke = sleepers(&clock, &[10, 20]);
        clock.settle().await;
        clock.advance(Duration::from_millis(25));
        clock.settle().await;
        let mut got = woke.lock().unwrap().clone();
        got.sort();
        assert_eq!(got, vec![(10, 25), (20, 25)]);
        assert_eq!(clock.pending_timers(), 0);
    }

    #[test]
    fn step_towards_stops_at_each_deadline_then_at_the_target() {
        let clock = VirtualClock::new();
        let mut a = clock.sleep_until(Duration::from_millis(5));
        let waker = futures::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        assert!(a.as_mut().poll(&mut cx).is_pending());
        let target = Duration::from_millis(8);
        assert!(clock.step_towards(target));
        assert_eq!(clock.now(), Duration::from_millis(5));
        assert!(a.as_mut().poll(&mut cx).is_ready());
        assert!(clock.step_towards(target));
        assert_eq!(clock.now(), target);
        assert!(!clock.step_towards(target));
    }
}
