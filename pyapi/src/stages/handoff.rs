//! An iterator (`iter(x) is x`: a generator, a file, a socket reader) pulled on a blocking thread
//! of its own, its items handed over to the stage one by one as they arrive.
//!
//! The pulling thread calls `next()` and appends each item to a bounded hand-off; the stage takes
//! whatever has arrived whenever it wants the next batch (at most a batch), and waits only when
//! nothing has. So a partial batch goes out as soon as the iterator has nothing more ready (an
//! iterator that waits between items never holds back the items before), and backpressure holds:
//! the thread stops pulling while the hand-off holds a full batch the stage has not taken. Once
//! the stage is gone the thread stops after the call it is in returns (a call blocked for good is
//! left behind, as the run does not wait for it).

use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::PyIterator;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use tokio::sync::Notify;
use weir_graph::StageError;

/// How the iterator ended, after the items still in the hand-off.
#[derive(Debug)]
pub(crate) enum End {
    /// `next()` raised `StopIteration`.
    Exhausted,
    /// `next()` raised: the error, named after the stage.
    Failed(StageError),
}

/// What [`Handoff::take`] returns: the items that had arrived (at most a batch), and how the
/// iterator ended when no item is left behind them.
pub(crate) type Taken = (Vec<PyObj>, Option<End>);

#[derive(Default)]
struct State {
    items: Vec<PyObj>,
    end: Option<End>,
    /// The stage is gone: stop pulling.
    closed: bool,
    /// The stage waits for an item (the next push wakes it).
    waiting: bool,
    /// The thread waits for room (the next take wakes it).
    full: bool,
}

/// The bounded hand-off between an iterator's pulling thread and its stage.
pub(crate) struct Handoff {
    state: Mutex<State>,
    /// Wakes the pulling thread once the stage took items (or closed the hand-off).
    room: Condvar,
    /// Wakes the stage once an item (or the end) arrived.
    ready: Notify,
    /// Items the thread pulls ahead of the stage: one batch.
    capacity: usize,
}

impl Handoff {
    /// Starts pulling `it` on a blocking thread, at most `batch` items ahead of the stage;
    /// failures of `next()` are named after the stage at `path`. Dropping the returned guard
    /// closes the hand-off (the thread stops).
    pub(crate) fn start(it: Py<PyIterator>, batch: usize, path: String) -> Puller {
        let h = Arc::new(Handoff {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            ready: Notify::new(),
            capacity: batch.max(1),
        });
        let pulling = Arc::clone(&h);
        drop(tokio::task::spawn_blocking(move || {
            Python::attach(|py| pulling.pull(py, it.into_bound(py), &path));
        }));
        Puller(h)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A poisoned lock only means a thread panicked while holding it: the items are intact.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The pulling thread: `next()` until the iterator ends or the stage is gone.
    fn pull(&self, py: Python<'_>, mut it: Bound<'_, PyIterator>, path: &str) {
        loop {
            let next = it.next();
            let mut st = self.lock();
            if st.closed {
                return;
            }
            match next {
                Some(Ok(x)) => st.items.push(PyObj::from_bound(x)),
                Some(Err(e)) => {
                    // The lock is released while Python renders the error.
                    drop(st);
                    let e = user_error(py, e).with_stage(path);
                    self.finish(End::Failed(e));
                    return;
                }
                None => {
                    drop(st);
                    self.finish(End::Exhausted);
                    return;
                }
            }
            if std::mem::take(&mut st.waiting) {
                self.ready.notify_one();
            }
            if st.items.len() >= self.capacity {
                st.full = true;
                drop(st);
                // Waits without the GIL, so the stage's other Python work goes on.
                let closed = py.detach(|| {
                    let st = self.lock();
                    let st = self
                        .room
                        .wait_while(st, |s| s.full && !s.closed)
                        .unwrap_or_else(|p| p.into_inner());
                    st.closed
                });
                if closed {
                    return;
                }
            }
        }
    }

    /// Records how the iterator ended and wakes the stage.
    fn finish(&self, end: End) {
        let mut st = self.lock();
        st.end = Some(end);
        st.waiting = false;
        drop(st);
        self.ready.notify_one();
    }

    /// Takes what has arrived (at most `max` items) without waiting; `None` when nothing has
    /// (no item and no end), so the caller waits with [`Handoff::ready`] before trying again.
    pub(crate) fn try_take(&self, max: usize) -> Option<Taken> {
        let mut st = self.lock();
        if st.items.is_empty() {
            return st.end.take().map(|e| (Vec::new(), Some(e)));
        }
        let items = if st.items.len() <= max {
            std::mem::take(&mut st.items)
        } else {
            let rest = st.items.split_off(max);
            std::mem::replace(&mut st.items, rest)
        };
        let end = if st.items.is_empty() {
            st.end.take()
        } else {
            None
        };
        if std::mem::take(&mut st.full) {
            self.room.notify_one();
        }
        Some((items, end))
    }

    /// Waits until an item or the end has arrived (returns at once when one is there).
    pub(crate) async fn ready(&self) {
        loop {
            {
                let mut st = self.lock();
                if !st.items.is_empty() || st.end.is_some() {
                    return;
                }
                st.waiting = true;
            }
            // A notification sent after the lock was released is kept as a permit.
            self.ready.notified().await;
        }
    }

    /// Waits for what has arrived and takes it (at most `max` items), see [`Handoff::try_take`].
    pub(crate) async fn take(&self, max: usize) -> Taken {
        loop {
            if let Some(t) = self.try_take(max) {
                return t;
            }
            self.ready().await;
        }
    }
}

/// The stage's end of a [`Handoff`]: dropping it (the stage ended or was cancelled) stops the
/// pulling thread.
pub(crate) struct Puller(Arc<Handoff>);

impl Puller {}

impl std::ops::Deref for Puller {
    type Target = Handoff;
    fn deref(&self) -> &Handoff {
        &self.0
    }
}

impl Drop for Puller {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.room.notify_one();
    }
}
