//! `Sink::queue(capacity)` and `Sink::into_stream()`: pull the stream's elements from outside
//! through a bounded buffer ([`SinkQueue`], or a `futures::Stream` [`SinkStream`]).
//! Wakeups use `std::sync::Mutex` + `Waker`, never a runtime.

use futures::{FutureExt, Stream};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use weir_graph::{AsyncFn, AsyncIo, Event, Input, Sink, StageError};

/// Buffer size of [`SinkCtors::into_stream`](super::SinkCtors::into_stream).
pub const DEFAULT_STREAM_BUFFER: usize = 256;

struct State<T> {
    buf: VecDeque<T>,
    capacity: usize,
    /// Upstream completed (Ok) or failed (Err), or the stage stopped early (Err cancelled).
    end: Option<Result<(), StageError>>,
    /// Every pulling handle is gone.
    closed: bool,
    puller: Option<Waker>,
    pusher: Option<Waker>,
}

struct SinkQueueState<T>(Mutex<State<T>>);

impl<T> SinkQueueState<T> {
    fn lock(&self) -> MutexGuard<'_, State<T>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn finish(&self, end: Result<(), StageError>) {
        let mut st = self.lock();
        if st.end.is_none() {
            st.end = Some(end);
        }
        if let Some(w) = st.puller.take() {
            w.wake();
        }
    }
    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.buf.clear();
        if let Some(w) = st.pusher.take() {
            w.wake();
        }
    }
    fn poll_pull(&self, cx: &mut Context<'_>) -> Poll<Result<Option<T>, StageError>> {
        let mut st = self.lock();
        if let Some(x) = st.buf.pop_front() {
            if let Some(w) = st.pusher.take() {
                w.wake();
            }
            return Poll::Ready(Ok(Some(x)));
        }
        match &st.end {
            Some(Ok(())) => Poll::Ready(Ok(None)),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                st.puller = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// The stage's side: ends the queue with a cancellation if the stage stops without finishing.
struct Pusher<T>(Arc<SinkQueueState<T>>);

impl<T> Drop for Pusher<T> {
    fn drop(&mut self) {
        self.0.finish(Err(StageError::cancelled(
            "queue sink stopped before the stream completed",
        )));
    }
}

impl<T: Send + 'static> Pusher<T> {
    /// Moves `pending` into the buffer as room frees up; false once every handle is gone.
    async fn push(&self, pending: &mut VecDeque<T>) -> bool {
        poll_fn(|cx| {
            let mut st = self.0.lock();
            if st.closed {
                return Poll::Ready(false);
            }
            let room = st.capacity.saturating_sub(st.buf.len()).min(pending.len());
            st.buf.extend(pending.drain(..room));
            if room > 0
                && let Some(w) = st.puller.take()
            {
                w.wake();
            }
            if pending.is_empty() {
                return Poll::Ready(true);
            }
            st.pusher = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The next input event, or `None` once every handle is gone.
    async fn next(&self, input: &mut Input<T>) -> Option<Event<T>> {
        poll_fn(|cx| {
            {
                let mut st = self.0.lock();
                if st.closed {
                    return Poll::Ready(None);
                }
                st.pusher = Some(cx.waker().clone());
            }
            input.poll_recv(cx).map(Some)
        })
        .await
    }

    async fn run(self, mut input: Input<T>) -> Result<(), StageError> {
        let mut pending = VecDeque::new();
        loop {
            match self.next(&mut input).await {
                // Returning drops `input`, which cancels upstream.
                None => return Ok(()),
                Some(Event::Batch(v)) => {
                    pending.extend(v);
                    if !self.push(&mut pending).await {
                        return Ok(());
                    }
                }
                Some(Event::End) => {
                    self.0.finish(Ok(()));
                    return Ok(());
                }
                Some(Event::Error(e)) => {
                    self.0.finish(Err(e.clone()));
                    return Err(e);
                }
            }
        }
    }
}

/// Owned by the pulling handle; dropping it cancels the stream.
struct Puller<T>(Arc<SinkQueueState<T>>);

impl<T> Drop for Puller<T> {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// Pulls the elements of a running `Sink::queue`; dropping it cancels the stream.
pub struct SinkQueue<T>(Puller<T>);

impl<T> std::fmt::Debug for SinkQueue<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SinkQueue({} buffered)", self.0.0.lock().buf.len())
    }
}

impl<T: Send + 'static> SinkQueue<T> {
    /// The next element; `Ok(None)` once the stream completed, `Err` if it failed.
    pub async fn pull(&mut self) -> Result<Option<T>, StageError> {
        poll_fn(|cx| self.0.0.poll_pull(cx)).await
    }
    /// Cancels the stream (upstream is cancelled; buffered elements are dropped).
    pub fn cancel(self) {}
}

/// The elements of a running `Sink::into_stream`, as a `futures::Stream`; dropping it cancels.
pub struct SinkStream<T> {
    puller: Puller<T>,
    terminated: bool,
}

impl<T> std::fmt::Debug for SinkStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkStream")
            .field("terminated", &self.terminated)
            .finish()
    }
}

impl<T: Send + 'static> Stream for SinkStream<T> {
    type Item = Result<T, StageError>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.terminated {
            return Poll::Ready(None);
        }
        let r = self.puller.0.poll_pull(cx);
        match r {
            Poll::Ready(Ok(Some(x))) => Poll::Ready(Some(Ok(x))),
            Poll::Ready(Ok(None)) => {
                self.terminated = true;
                Poll::Ready(None)
            }
            Poll::Ready(Err(e)) => {
                self.terminated = true;
                Poll::Ready(Some(Err(e)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: Send + 'static> futures::stream::FusedStream for SinkStream<T> {
    fn is_terminated(&self) -> bool {
        self.terminated
    }
}

/// A bounded-buffer sink whose materialized value is built from the pulling side by `wrap`.
fn pull_sink<T: Send + 'static, M: Send + 'static>(
    name: &str,
    capacity: usize,
    wrap: fn(Puller<T>) -> M,
) -> Sink<T, M> {
    let invalid = weir_graph::at_least(&format!("{name}: capacity"), capacity, 1);
    let capacity = capacity.max(1);
    Sink::from_async(name, move |_| {
        let shared = Arc::new(SinkQueueState(Mutex::new(State {
            buf: VecDeque::new(),
            capacity,
            end: None,
            closed: false,
            puller: None,
            pusher: None,
        })));
        let pusher = Pusher(Arc::clone(&shared));
        let logic = AsyncFn(move |mut io: AsyncIo| {
            async move {
                let input = io.input::<T>(0)?;
                pusher.run(input).await
            }
            .boxed()
        });
        Ok((logic, wrap(Puller(shared))))
    })
    .reject(invalid)
}

pub(crate) fn queue<T: Send + 'static>(capacity: usize) -> Sink<T, SinkQueue<T>> {
    pull_sink("queue", capacity, SinkQueue)
}

pub(crate) fn into_stream<T: Send + 'static>() -> Sink<T, SinkStream<T>> {
    pull_sink("into_stream", DEFAULT_STREAM_BUFFER, |puller| SinkStream {
        puller,
        terminated: false,
    })
}

#[cfg(test)]
#[path = "queue_tests.rs"]
mod tests;
