//! Append notifications for live queries: a counter bumped by every append and the wakers of the
//! tasks waiting for it to move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::{Context, Poll, Waker};

/// Wakes the tasks waiting for a journal's next append.
#[derive(Debug, Default)]
pub struct JournalWatch {
    appends: AtomicU64,
    wakers: Mutex<Vec<Waker>>,
}

impl JournalWatch {
    /// The number of appends so far.
    pub fn appends(&self) -> u64 {
        self.appends.load(Ordering::Acquire)
    }
    /// Ready once the journal saw more than `seen` appends.
    pub fn poll_after(&self, seen: u64, cx: &mut Context<'_>) -> Poll<u64> {
        let now = self.appends();
        if now > seen {
            return Poll::Ready(now);
        }
        self.wakers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(cx.waker().clone());
        let now = self.appends();
        if now > seen {
            Poll::Ready(now)
        } else {
            Poll::Pending
        }
    }
    /// Records an append and wakes every waiting task.
    pub fn notify(&self) {
        self.appends.fetch_add(1, Ordering::AcqRel);
        let wakers =
            std::mem::take(&mut *self.wakers.lock().unwrap_or_else(PoisonError::into_inner));
        for w in wakers {
            w.wake();
        }
    }
}
