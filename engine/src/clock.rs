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
