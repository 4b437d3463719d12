//! Materialized values that complete later: a [`Promise`] kept by a running stage and the
//! [`SinkFuture`] handed to the user.

use crate::StageError;
use futures::channel::oneshot;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// The producing side of a [`SinkFuture`]; dropping it uncompleted fails the future as cancelled.
#[derive(Debug)]
pub struct Promise<T>(Option<oneshot::Sender<Result<T, StageError>>>);

/// A future of a stage's result (e.g. the collected elements of `Sink::collect`).
#[derive(Debug)]
#[must_use = "a SinkFuture does nothing unless awaited"]
pub struct SinkFuture<T>(oneshot::Receiver<Result<T, StageError>>);

/// A new promise and the future it completes.
pub fn promise<T>() -> (Promise<T>, SinkFuture<T>) {
    let (tx, rx) = oneshot::channel();
    (Promise(Some(tx)), SinkFuture(rx))
}

impl<T> Promise<T> {
    /// Completes the future (only the first call has an effect).
    pub fn complete(&mut self, r: Result<T, StageError>) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(r);
        }
    }
    /// Whether the promise was completed already.
    pub fn is_completed(&self) -> bool {
        self.0.is_none()
    }
}

impl<T> Future for SinkFuture<T> {
    type Output = Result<T, StageError>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|r| match r {
            Ok(r) => r,
            Err(_) => Err(StageError::cancelled(
                "stream was cancelled before completion",
            )),
        })
    }
}

impl<T> SinkFuture<T> {
    /// The result if already available.
    pub fn try_get(&mut self) -> Option<Result<T, StageError>> {
        match self.0.try_recv() {
            Ok(Some(r)) => Some(r),
            Ok(None) => None,
            Err(_) => Some(Err(StageError::cancelled(
                "stream was cancelled before completion",
            ))),
        }
    }
}
