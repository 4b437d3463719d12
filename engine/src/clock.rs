//! Clocks: [`SystemClock`] (tokio time) and [`VirtualClock`] (advanced by tests).

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

/// A clock that only moves when a test calls [`VirtualClock::advance`]; no test sleeps.
#[derive(Clone, Default)]
pub struct VirtualClock(Arc<Mutex<VState>>);

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

    /// Moves time forward by `d`, waking every timer that is due.
    pub fn advance(&self, d: Duration) {
        let due: Vec<Waker> = {
            let Ok(mut s) = self.0.lock() else { return };
            s.now += d;
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
        self.0.lock().map_or(0, |s| s.timers.len())
    }

    /// The earliest pending deadline, if any.
    pub fn next_deadline(&self) -> Option<Duration> {
        self.0
            .lock()
            .ok()
            .and_then(|s| s.timers.keys().next().map(|k| k.0))
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Duration {
        self.0.lock().map_or(Duration::ZERO, |s| s.now)
    }
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'static, ()> {
        Box::pin(VSleep {
            clock: self.clone(),
            deadline,
            key: None,
        })
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
        let Ok(mut s) = self.clock.0.lock() else {
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
            && let Ok(mut s) = self.clock.0.lock()
        {
            s.timers.remove(&k);
        }
    }
}
