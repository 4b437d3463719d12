//! Knowing when a run is idle: every task of a run on a virtual clock is wrapped so the clock can
//! count the tasks that are running or woken. Zero means every task waits on something only the
//! test can provide (time, a probe command, demand).

use futures::future::BoxFuture;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

/// The count of tasks that are running or woken, with ways to wait for it to reach zero.
#[derive(Default)]
pub(crate) struct Activity {
    busy: AtomicUsize,
    notify: Notify,
    lock: Mutex<()>,
    cv: Condvar,
}

impl Activity {
    fn enter(&self) {
        self.busy.fetch_add(1, Ordering::AcqRel);
    }

    fn exit(&self) {
        if self.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.notify.notify_waiters();
            let _g = self.lock.lock();
            self.cv.notify_all();
        }
    }

    /// Counts as one busy task until the guard drops (work outside the run's tasks).
    pub(crate) fn hold(self: &Arc<Self>) -> Hold {
        self.enter();
        Hold(Arc::clone(self))
    }

    /// Tasks running or woken right now.
    pub(crate) fn busy(&self) -> usize {
        self.busy.load(Ordering::Acquire)
    }

    /// Waits until no task is running or woken.
    pub(crate) async fn idle(&self) {
        loop {
            let n = self.notify.notified();
            let mut n = std::pin::pin!(n);
            n.as_mut().enable();
            if self.busy() == 0 {
                return;
            }
            n.await;
        }
    }

    /// Blocks this thread until no task is running or woken, at most `timeout`; whether it is idle.
    pub(crate) fn idle_blocking(&self, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let Ok(mut g) = self.lock.lock() else {
            return self.busy() == 0;
        };
        while self.busy() != 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            g = match self.cv.wait_timeout(g, left.min(Duration::from_millis(5))) {
                Ok((g, _)) => g,
                Err(_) => return self.busy() == 0,
            };
        }
        true
    }

    /// Wraps `task` so its runs and wake-ups are counted.
    pub(crate) fn track(self: &Arc<Self>, task: BoxFuture<'static, ()>) -> BoxFuture<'static, ()> {
        self.enter();
        Box::pin(Tracked {
            fut: task,
            state: Arc::new(TaskState {
                state: AtomicU8::new(SCHEDULED),
                activity: Arc::clone(self),
            }),
            waker: None,
        })
    }
}

/// Work outside the run's tasks, counted busy until dropped.
pub(crate) struct Hold(Arc<Activity>);

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.exit();
    }
}

const IDLE: u8 = 0;
const SCHEDULED: u8 = 1;
const DONE: u8 = 2;

struct TaskState {
    state: AtomicU8,
    activity: Arc<Activity>,
}

impl TaskState {
    fn schedule(&self) {
        if self
            .state
            .compare_exchange(IDLE, SCHEDULED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.activity.enter();
        }
    }

    fn finish(&self) {
        if self.state.swap(DONE, Ordering::AcqRel) == SCHEDULED {
            self.activity.exit();
        }
    }
}

struct TaskWaker {
    inner: Waker,
    task: Arc<TaskState>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Count the wake-up before it can run, so the count never reads zero in between.
        self.task.schedule();
        self.inner.wake_by_ref();
    }
}

struct Tracked {
    fut: BoxFuture<'static, ()>,
    state: Arc<TaskState>,
    waker: Option<(Waker, Waker)>,
}

impl Future for Tracked {
    type Output = ();
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = &mut *self;
        if this.state.state.swap(IDLE, Ordering::AcqRel) != SCHEDULED {
            this.state.activity.enter();
        }
        let ours = match &this.waker {
            Some((inner, ours)) if inner.will_wake(cx.waker()) => ours.clone(),
            _ => {
                let ours = Waker::from(Arc::new(TaskWaker {
                    inner: cx.waker().clone(),
                    task: Arc::clone(&this.state),
                }));
                this.waker = Some((cx.waker().clone(), ours.clone()));
                ours
            }
        };
        let r = this.fut.as_mut().poll(&mut Context::from_waker(&ours));
        if r.is_ready() {
            this.state.finish();
        }
        this.state.activity.exit();
        r
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.state.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_running_and_woken_tasks() {
        let a = Arc::new(Activity::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let t = tokio::spawn(a.track(Box::pin(async move {
            let _ = rx.await;
        })));
        assert_eq!(a.busy(), 1, "a new task is scheduled");
        a.idle().await;
        assert_eq!(a.busy(), 0, "the task waits on the channel");
        tx.send(()).ok();
        assert_eq!(a.busy(), 1, "the send woke it");
        a.idle().await;
        t.await.ok();
        assert_eq!(a.busy(), 0);
        assert!(a.idle_blocking(Duration::from_millis(1)));
    }
}
