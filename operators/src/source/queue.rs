//! `Source::queue(capacity, strategy)`: a source fed from outside the stream through a
//! [`SourceQueue`] handle. Wakeups use `std::sync::Mutex` + `Waker`, never a runtime.

use super::overflow::{BufferOverflow, OverflowStrategy};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// What happened to an offered element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueOfferResult {
    /// The element was buffered (possibly after dropping others, per the overflow strategy).
    Enqueued,
    /// The element was dropped (`OverflowStrategy::DropNew` with a full buffer).
    Dropped,
    /// The queue no longer accepts elements: completed, or the stream stopped.
    QueueClosed,
}

struct State<T> {
    buf: VecDeque<T>,
    capacity: usize,
    strategy: OverflowStrategy,
    /// Set by `complete` (Ok) or `fail` / overflow (Err).
    end: Option<Result<(), StageError>>,
    /// The stage stopped (downstream cancelled, or the stream is over).
    stopped: bool,
    consumer: Option<Waker>,
    producers: Vec<Waker>,
}

impl<T> State<T> {
    fn wake_producers(&mut self) {
        self.producers.drain(..).for_each(Waker::wake);
    }
    fn wake_consumer(&mut self) {
        if let Some(w) = self.consumer.take() {
            w.wake();
        }
    }
    fn finish(&mut self, end: Result<(), StageError>) {
        if self.end.is_none() {
            if end.is_err() {
                self.buf.clear();
            }
            self.end = Some(end);
        }
        self.wake_consumer();
        self.wake_producers();
    }
}

struct SourceQueueState<T>(Mutex<State<T>>);

impl<T> SourceQueueState<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Owned by the handles; when the last handle goes the queue completes.
struct Handle<T>(Arc<SourceQueueState<T>>);

impl<T> Drop for Handle<T> {
    fn drop(&mut self) {
        self.0.lock().finish(Ok(()));
    }
}

/// Feeds a running `Source::queue`; dropping every clone completes the source.
pub struct SourceQueue<T>(Arc<Handle<T>>);

impl<T> Clone for SourceQueue<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<T> std::fmt::Debug for SourceQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SourceQueue({} buffered)", self.0.0.lock().buf.len())
    }
}

impl<T: Send + 'static> SourceQueue<T> {
    /// Offers an element; with `Backpressure` it waits while the buffer is full.
    /// `Err` when the queue was failed (by `fail` or by `OverflowStrategy::Fail`).
    pub async fn offer(&self, x: T) -> Result<QueueOfferResult, StageError> {
        let mut item = Some(x);
        poll_fn(|cx| self.poll_offer(cx, &mut item)).await
    }

    fn poll_offer(
        &self,
        cx: &mut Context<'_>,
        item: &mut Option<T>,
    ) -> Poll<Result<QueueOfferResult, StageError>> {
        let mut st = self.0.0.lock();
        match &st.end {
            Some(Err(e)) => return Poll::Ready(Err(e.clone())),
            Some(Ok(())) => return Poll::Ready(Ok(QueueOfferResult::QueueClosed)),
            None if st.stopped => return Poll::Ready(Ok(QueueOfferResult::QueueClosed)),
            None => {}
        }
        let Some(x) = item.take() else {
            return Poll::Ready(Ok(QueueOfferResult::Dropped));
        };
        if st.buf.len() >= st.capacity {
            match st.strategy {
                OverflowStrategy::Backpressure => {
                    *item = Some(x);
                    if !st.producers.iter().any(|w| w.will_wake(cx.waker())) {
                        st.producers.push(cx.waker().clone());
                    }
                    return Poll::Pending;
                }
                OverflowStrategy::DropHead => drop(st.buf.pop_front()),
                OverflowStrategy::DropTail => drop(st.buf.pop_back()),
                OverflowStrategy::DropBuffer => st.buf.clear(),
                OverflowStrategy::DropNew => return Poll::Ready(Ok(QueueOfferResult::Dropped)),
                OverflowStrategy::Fail => {
                    let e = BufferOverflow {
                        capacity: st.capacity,
                    }
                    .into_stage_error();
                    st.finish(Err(e.clone()));
                    return Poll::Ready(Err(e));
                }
            }
        }
        st.buf.push_back(x);
        st.wake_consumer();
        Poll::Ready(Ok(QueueOfferResult::Enqueued))
    }

    /// Completes the source once the buffered elements are emitted; later offers see `QueueClosed`.
    pub fn complete(&self) {
        self.0.0.lock().finish(Ok(()));
    }

    /// Fails the source at once (buffered elements are dropped); later offers get `Err(error)`.
    pub fn fail(&self, error: StageError) {
        self.0.0.lock().finish(Err(error));
    }

    /// Elements currently buffered.
    pub fn buffered(&self) -> usize {
        self.0.0.lock().buf.len()
    }

    /// Whether the queue accepts no more elements: completed, failed, or its stream stopped
    /// (downstream cancelled or the run ended); offers then return `QueueClosed` (or the failure).
    pub fn is_closed(&self) -> bool {
        let st = self.0.0.lock();
        st.stopped || st.end.is_some()
    }
}

/// Drains the shared buffer into batches.
struct QueueLogic<T>(Arc<SourceQueueState<T>>);

impl<T> QueueLogic<T> {
    fn stop(&self) {
        let mut st = self.0.lock();
        st.stopped = true;
        st.buf.clear();
        st.wake_producers();
    }
}

impl<T> Drop for QueueLogic<T> {
    fn drop(&mut self) {
        self.stop();
    }
}

impl<T: Send + 'static> SourceLogic<T> for QueueLogic<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let mut st = self.0.lock();
        if let Some(Err(e)) = &st.end {
            return Poll::Ready(Err(e.clone()));
        }
        let n = st.buf.len().min(scx.batch_size().max(1));
        out.extend(st.buf.drain(..n));
        if n > 0 {
            st.wake_producers();
        }
        if st.buf.is_empty() && st.end.is_some() {
            return Poll::Ready(Ok(Step::Done));
        }
        if n > 0 {
            return Poll::Ready(Ok(Step::More));
        }
        st.consumer = Some(cx.waker().clone());
        Poll::Pending
    }

    /// Completion with nothing buffered, and failure, need no demand.
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.0.lock();
        match &st.end {
            Some(Err(_)) => Poll::Ready(()),
            Some(Ok(())) if st.buf.is_empty() => Poll::Ready(()),
            _ => {
                st.consumer = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn post_stop(&mut self) {
        self.stop();
    }
}

/// The queue's output is demand-driven: elements leave the buffer only when the consumer asks
/// for them, so `capacity` bounds everything the consumer has not requested. Completing an
/// empty queue, or failing it, ends the stream at once, with or without demand.
pub(crate) fn queue<T: Send + 'static>(
    capacity: usize,
    strategy: OverflowStrategy,
) -> Source<T, SourceQueue<T>> {
    let src: Source<T, SourceQueue<T>> = Source::from_logic("queue", move |_| {
        let shared = Arc::new(SourceQueueState(Mutex::new(State {
            buf: VecDeque::new(),
            capacity: capacity.max(1),
            strategy,
            end: None,
            stopped: false,
            consumer: None,
            producers: Vec::new(),
        })));
        let handle = SourceQueue(Arc::new(Handle(Arc::clone(&shared))));
        Ok((QueueLogic(shared), handle))
    });
    Source::from_module(weir_graph::on_demand_outputs(src.module())).reject(weir_graph::at_least(
        "queue: capacity",
        capacity,
        1,
    ))
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
