//! `Source::maybe` (at most one element, given through the materialized handle) and
//! `Source::never`.

use futures::channel::oneshot;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

type Slot<T> = Arc<Mutex<Option<oneshot::Sender<Result<Option<T>, StageError>>>>>;

/// The handle materialized by `Source::maybe`: completes the source with or without an element.
/// Dropping every clone without completing completes the source without an element.
pub struct MaybeHandle<T> {
    tx: Slot<T>,
    stopped: Arc<AtomicBool>,
}

impl<T> Clone for MaybeHandle<T> {
    fn clone(&self) -> Self {
        Self {
            tx: Arc::clone(&self.tx),
            stopped: Arc::clone(&self.stopped),
        }
    }
}

impl<T> std::fmt::Debug for MaybeHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaybeHandle")
            .field("completed", &self.is_completed())
            .field("stopped", &self.is_stopped())
            .finish()
    }
}

impl<T> MaybeHandle<T> {
    /// Whether one of the completing methods was called.
    pub fn is_completed(&self) -> bool {
        self.tx.lock().map(|g| g.is_none()).unwrap_or(true)
    }
    /// Whether the source stopped (it emitted, completed, or was cancelled).
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

impl<T: Send + 'static> MaybeHandle<T> {
    fn settle(&self, r: Result<Option<T>, StageError>) -> bool {
        let tx = self.tx.lock().ok().and_then(|mut g| g.take());
        match tx {
            Some(tx) => tx.send(r).is_ok(),
            None => false,
        }
    }
    /// Emits `x` and completes; `false` when the handle was completed already or the stage stopped.
    pub fn success(&self, x: T) -> bool {
        self.settle(Ok(Some(x)))
    }
    /// Completes without an element; `false` when completed already or the stage stopped.
    pub fn empty(&self) -> bool {
        self.settle(Ok(None))
    }
    /// Completes with `Some(x)` (emit) or `None` (no element).
    pub fn complete(&self, x: Option<T>) -> bool {
        self.settle(Ok(x))
    }
    /// Fails the source with `e`; `false` when completed already or the stage stopped.
    pub fn fail(&self, e: StageError) -> bool {
        self.settle(Err(e))
    }
}

struct MaybeLogic<T> {
    rx: oneshot::Receiver<Result<Option<T>, StageError>>,
    stopped: Arc<AtomicBool>,
}

impl<T: Send + 'static> SourceLogic<T> for MaybeLogic<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        match Pin::new(&mut self.rx).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(Ok(Some(x)))) => {
                out.push(x);
                Poll::Ready(Ok(Step::Done))
            }
            Poll::Ready(Ok(Ok(None))) | Poll::Ready(Err(oneshot::Canceled)) => {
                Poll::Ready(Ok(Step::Done))
            }
            Poll::Ready(Ok(Err(e))) => Poll::Ready(Err(e)),
        }
    }

    fn post_stop(&mut self) {
        self.stopped.store(true, Ordering::Release);
        self.rx.close();
    }
}

pub(crate) fn maybe<T: Send + 'static>() -> Source<T, MaybeHandle<T>> {
    Source::from_logic("maybe", |_| {
        let (tx, rx) = oneshot::channel();
        let stopped = Arc::new(AtomicBool::new(false));
        let handle = MaybeHandle {
            tx: Arc::new(Mutex::new(Some(tx))),
            stopped: Arc::clone(&stopped),
        };
        Ok((MaybeLogic { rx, stopped }, handle))
    })
}

struct NeverLogic;

impl<T: Send + 'static> SourceLogic<T> for NeverLogic {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        _out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        // Nothing will ever wake this source: it ends only by cancellation.
        Poll::Pending
    }
}

pub(crate) fn never<T: Send + 'static>() -> Source<T> {
    Source::from_logic("never", |_| Ok((NeverLogic, ())))
}
