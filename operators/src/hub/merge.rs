//! `MergeHub`: a source fed by any number of producer sinks attached while it runs.

use super::{lock, positive, wake};
use futures::FutureExt;
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weir_graph::{
    AsyncFn, Event, GraphError, Input, Sink, Source, SourceLogic, StageCx, StageError, Step,
};

/// A dynamic fan-in: see [`MergeHub::source`].
#[derive(Debug, Clone, Copy)]
pub struct MergeHub;

struct Producer {
    /// Rows of this producer queued in the hub and not emitted yet.
    queued: usize,
    waker: Option<Waker>,
}

struct State<T> {
    /// Chunks in arrival order, tagged with their producer.
    queue: VecDeque<(u64, Vec<T>)>,
    producers: HashMap<u64, Producer>,
    next_id: u64,
    per_producer: usize,
    consumer: Option<Waker>,
    /// The hub source stopped (cancelled or its run ended): producers are cancelled.
    closed: bool,
}

impl<T> State<T> {
    fn credit(&mut self, id: u64, n: usize) {
        if let Some(p) = self.producers.get_mut(&id) {
            p.queued = p.queued.saturating_sub(n);
            wake(&mut p.waker);
        }
    }
    fn close(&mut self) {
        self.closed = true;
        self.queue.clear();
        for p in self.producers.values_mut() {
            wake(&mut p.waker);
        }
    }
}

type MergeHubState<T> = Arc<Mutex<State<T>>>;

impl MergeHub {
    /// A source emitting what every producer attached to it sends; its materialized value is a
    /// sink that may be materialized any number of times (in this run or others), each
    /// materialization one producer with a buffer of `per_producer_buffer_size` rows in the hub.
    ///
    /// Emits when: any producer has buffered elements (in arrival order across producers).
    /// Backpressures when: never itself; a producer whose buffer is full waits (backpressure).
    /// Completes when: never (producers come and go); downstream cancelling stops the hub.
    /// Cancels when: downstream cancels; every producer is then cancelled, and producers
    /// attached later are cancelled at once.
    /// Fails when: never; a failing producer fails only its own stream and leaves the hub.
    pub fn source<T: Send + 'static>(
        per_producer_buffer_size: usize,
    ) -> Result<Source<T, Sink<T, ()>>, GraphError> {
        let per_producer = positive(
            "merge_hub",
            "per_producer_buffer_size",
            per_producer_buffer_size,
        )?;
        Ok(Source::from_logic("merge_hub", move |_info| {
            let shared: MergeHubState<T> = Arc::new(Mutex::new(State {
                queue: VecDeque::new(),
                producers: HashMap::new(),
                next_id: 0,
                per_producer,
                consumer: None,
                closed: false,
            }));
            Ok((HubSource(Arc::clone(&shared)), producer_sink(shared)))
        }))
    }
}

/// The hub's output: drains the shared queue into batches.
struct HubSource<T>(MergeHubState<T>);

impl<T> Drop for HubSource<T> {
    fn drop(&mut self) {
        lock(&self.0).close();
    }
}

impl<T: Send + 'static> SourceLogic<T> for HubSource<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let mut st = lock(&self.0);
        let want = scx.batch_size().max(1);
        let start = out.len();
        while out.len() - start < want {
            let room = want - (out.len() - start);
            let Some((id, chunk)) = st.queue.front_mut() else {
                break;
            };
            let id = *id;
            let n = room.min(chunk.len());
            if n == chunk.len() {
                if let Some((_, chunk)) = st.queue.pop_front() {
                    out.extend(chunk);
                }
            } else {
                out.extend(chunk.drain(..n));
            }
            st.credit(id, n);
        }
        if out.len() > start {
            return Poll::Ready(Ok(Step::More));
        }
        st.consumer = Some(cx.waker().clone());
        Poll::Pending
    }

    fn post_stop(&mut self) {
        lock(&self.0).close();
    }
}

/// Unregisters a producer when its sink stops, whatever the reason.
struct ProducerGuard<T> {
    shared: MergeHubState<T>,
    id: u64,
}

impl<T> Drop for ProducerGuard<T> {
    fn drop(&mut self) {
        lock(&self.shared).producers.remove(&self.id);
    }
}

impl<T: Send + 'static> ProducerGuard<T> {
    /// The next input event, or `None` once the hub is closed.
    async fn next(&self, input: &mut Input<T>) -> Option<Event<T>> {
        poll_fn(|cx| {
            {
                let mut st = lock(&self.shared);
                if st.closed {
                    return Poll::Ready(None);
                }
                if let Some(p) = st.producers.get_mut(&self.id) {
                    p.waker = Some(cx.waker().clone());
                }
            }
            input.poll_recv(cx).map(Some)
        })
        .await
    }

    /// Queues `batch` in the hub once this producer has room; false once the hub is closed.
    async fn push(&self, batch: Vec<T>) -> bool {
        let mut batch = Some(batch);
        poll_fn(|cx| {
            let mut st = lock(&self.shared);
            if st.closed {
                return Poll::Ready(false);
            }
            let cap = st.per_producer;
            let len = batch.as_ref().map_or(0, Vec::len);
            let Some(p) = st.producers.get_mut(&self.id) else {
                return Poll::Ready(false);
            };
            // A batch larger than the buffer is admitted into an empty one (as channels do).
            if p.queued > 0 && p.queued + len > cap {
                p.waker = Some(cx.waker().clone());
                return Poll::Pending;
            }
            p.queued += len;
            if let Some(b) = batch.take() {
                st.queue.push_back((self.id, b));
            }
            wake(&mut st.consumer);
            Poll::Ready(true)
        })
        .await
    }
}

/// The sink materialized by the hub: one producer per materialization.
fn producer_sink<T: Send + 'static>(shared: MergeHubState<T>) -> Sink<T, ()> {
    Sink::from_async("merge_hub_sink", move |_info| {
        let id = {
            let mut st = lock(&shared);
            let id = st.next_id;
            st.next_id += 1;
            if !st.closed {
                st.producers.insert(
                    id,
                    Producer {
                        queued: 0,
                        waker: None,
                    },
                );
            }
            id
        };
        let guard = ProducerGuard {
            shared: Arc::clone(&shared),
            id,
        };
        let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
            async move {
                let mut input = io.input::<T>(0)?;
                loop {
                    match guard.next(&mut input).await {
                        // Hub gone: returning drops `input`, which cancels this producer.
                        None | Some(Event::End) => return Ok(()),
                        Some(Event::Batch(v)) => {
                            if !guard.push(v).await {
                                return Ok(());
                            }
                        }
                        Some(Event::Error(e)) => return Err(e),
                    }
                }
            }
            .boxed()
        });
        Ok((logic, ()))
    })
}
