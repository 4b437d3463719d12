//! `BroadcastHub`: a sink whose materialized source can be attached by any number of consumers.

use super::{lock, positive};
use futures::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weir_graph::{
    AsyncFn, Event, GraphError, Sink, Source, SourceLogic, StageCx, StageError, Step,
};

/// A dynamic fan-out: see [`BroadcastHub::sink`].
#[derive(Debug, Clone, Copy)]
pub struct BroadcastHub;

struct Consumer {
    /// Offset of the next element this consumer reads.
    offset: u64,
    waker: Option<Waker>,
}

struct State<T> {
    /// Elements not yet read by every consumer; `buf[0]` has offset `head`.
    buf: VecDeque<T>,
    head: u64,
    capacity: usize,
    consumers: HashMap<u64, Consumer>,
    next_id: u64,
    /// Set when upstream completed (Ok) or failed, or the hub stopped early (Err).
    end: Option<Result<(), StageError>>,
    producer: Option<Waker>,
}

impl<T> State<T> {
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }
    /// Drops the elements every consumer has read; with no consumer nothing is dropped.
    fn trim(&mut self) {
        let Some(min) = self.consumers.values().map(|c| c.offset).min() else {
            return;
        };
        let n = usize::try_from(min.saturating_sub(self.head)).unwrap_or(usize::MAX);
        let n = n.min(self.buf.len());
        if n > 0 {
            self.buf.drain(..n);
            self.head += n as u64;
            if let Some(w) = self.producer.take() {
                w.wake();
            }
        }
    }
    fn wake_consumers(&mut self) {
        for c in self.consumers.values_mut() {
            if let Some(w) = c.waker.take() {
                w.wake();
            }
        }
    }
    fn finish(&mut self, end: Result<(), StageError>) {
        if self.end.is_none() {
            self.end = Some(end);
        }
        self.wake_consumers();
    }
}

type Shared<T> = Arc<Mutex<State<T>>>;

impl BroadcastHub {
    /// A sink whose materialized value is a source; every materialization of that source (in
    /// this run or others) is a consumer receiving every element from its attach point on: the
    /// oldest element still buffered, i.e. where the slowest attached consumer is (or, for the
    /// first consumer, everything sent before it attached, up to `buffer_size`).
    ///
    /// Emits when: (each consumer) it has unread elements and downstream demands.
    /// Backpressures when: `buffer_size` elements are unread by the slowest attached consumer,
    /// or by nobody while no consumer is attached.
    /// Completes when: upstream completes; each consumer completes after reading what is left,
    /// and consumers attached later complete after the elements still buffered.
    /// Cancels when: never; a cancelled consumer only leaves the hub (it may release the
    /// slowest position).
    /// Fails when: upstream fails; every consumer (also those attached later) fails after the
    /// elements buffered before the failure.
    pub fn sink<T: Clone + Send + 'static>(
        buffer_size: usize,
    ) -> Result<Sink<T, Source<T, ()>>, GraphError> {
        let capacity = positive("broadcast_hub", "buffer_size", buffer_size)?;
        Ok(Sink::from_async("broadcast_hub", move |_info| {
            let shared: Shared<T> = Arc::new(Mutex::new(State {
                buf: VecDeque::new(),
                head: 0,
                capacity,
                consumers: HashMap::new(),
                next_id: 0,
                end: None,
                producer: None,
            }));
            let guard = HubGuard(Arc::clone(&shared));
            let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
                async move {
                    let mut input = io.input::<T>(0)?;
                    loop {
                        match input.recv().await {
                            Event::Batch(v) => guard.push(v).await,
                            Event::End => {
                                lock(&guard.0).finish(Ok(()));
                                return Ok(());
                            }
                            Event::Error(e) => {
                                lock(&guard.0).finish(Err(e.clone()));
                                return Err(e);
                            }
                        }
                    }
                }
                .boxed()
            });
            Ok((logic, consumer_source(shared)))
        }))
    }
}

/// The hub's producer side; if it stops before its upstream ended, consumers fail.
struct HubGuard<T>(Shared<T>);

impl<T> Drop for HubGuard<T> {
    fn drop(&mut self) {
        lock(&self.0).finish(Err(StageError::cancelled(
            "broadcast_hub stopped before its upstream completed",
        )));
    }
}

impl<T: Send + 'static> HubGuard<T> {
    /// Appends `batch` to the buffer as room frees up.
    async fn push(&self, batch: Vec<T>) {
        let mut rest = batch.into_iter();
        let mut left = rest.len();
        poll_fn(|cx| {
            let mut st = lock(&self.0);
            let room = st.capacity.saturating_sub(st.buf.len()).min(left);
            if room > 0 {
                st.buf.extend(rest.by_ref().take(room));
                left -= room;
                st.wake_consumers();
            }
            if left == 0 {
                return Poll::Ready(());
            }
            st.producer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
    }
}

/// The source materialized by the hub: one consumer per materialization.
fn consumer_source<T: Clone + Send + 'static>(shared: Shared<T>) -> Source<T, ()> {
    Source::from_logic("broadcast_hub_source", move |_info| {
        let mut st = lock(&shared);
        let id = st.next_id;
        st.next_id += 1;
        let offset = st.head;
        st.consumers.insert(
            id,
            Consumer {
                offset,
                waker: None,
            },
        );
        drop(st);
        Ok((
            HubConsumer {
                shared: Arc::clone(&shared),
                id,
            },
            (),
        ))
    })
}

struct HubConsumer<T> {
    shared: Shared<T>,
    id: u64,
}

impl<T> HubConsumer<T> {
    fn leave(&self) {
        let mut st = lock(&self.shared);
        if st.consumers.remove(&self.id).is_some() {
            st.trim();
        }
    }
}

impl<T> Drop for HubConsumer<T> {
    fn drop(&mut self) {
        self.leave();
    }
}

impl<T: Clone + Send + 'static> SourceLogic<T> for HubConsumer<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let mut st = lock(&self.shared);
        let (head, tail) = (st.head, st.tail());
        let Some(c) = st.consumers.get(&self.id) else {
            return Poll::Ready(Ok(Step::Done));
        };
        let from = c.offset.max(head);
        let n = usize::try_from(tail - from)
            .unwrap_or(usize::MAX)
            .min(scx.batch_size().max(1));
        if n == 0
            && let Some(Err(e)) = &st.end
        {
            // The failure comes after the elements accepted before it.
            return Poll::Ready(Err(e.clone()));
        }
        let at = usize::try_from(from - head).unwrap_or(usize::MAX);
        out.extend(st.buf.range(at..at + n).cloned());
        let done = matches!(st.end, Some(Ok(()))) && from + n as u64 == tail;
        if let Some(c) = st.consumers.get_mut(&self.id) {
            c.offset = from + n as u64;
            if n == 0 && !done {
                c.waker = Some(cx.waker().clone());
            }
        }
        if n > 0 {
            st.trim();
        }
        if done {
            return Poll::Ready(Ok(Step::Done));
        }
        if n > 0 {
            return Poll::Ready(Ok(Step::More));
        }
        Poll::Pending
    }

    fn post_stop(&mut self) {
        self.leave();
    }
}
