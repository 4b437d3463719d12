//! `PartitionHub`: a sink routing each element to one of the consumers attached to its source.

use super::fanout::{FanOut, HubGuard, Producer, hub_stage};
use super::{lock, positive, wake};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use weir_graph::{GraphError, Sink, Source, StageError};

/// A dynamic, routed fan-out: see [`PartitionHub::sink`].
#[derive(Debug, Clone, Copy)]
pub struct PartitionHub;

/// What a [`Partitioner`] made of a batch: the batch itself and one consumer index per element
/// (fewer when it failed: the indices of the elements before the failing one, and the error).
#[derive(Debug)]
pub struct Routed<T> {
    /// The batch that was routed, in order.
    pub batch: Vec<T>,
    /// `0..consumers` routes the element to that consumer (attach order); negative drops it.
    pub routes: Vec<i64>,
    /// Why routing stopped early, if it did (the elements with an index are still delivered).
    pub error: Option<StageError>,
}

/// Picks the consumer of each element of a batch, given how many consumers are attached; may
/// wait (e.g. for a Python dispatcher), so routing returns a future.
pub trait Partitioner<T>: Send + 'static {
    /// Routes `batch` among `consumers` consumers.
    fn route(&mut self, consumers: usize, batch: Vec<T>) -> BoxFuture<'static, Routed<T>>;
}

/// A [`Partitioner`] calling a function per element.
struct FnPartitioner<F>(F);

impl<T, F> Partitioner<T> for FnPartitioner<F>
where
    T: Send + 'static,
    F: FnMut(usize, &T) -> i64 + Send + 'static,
{
    fn route(&mut self, consumers: usize, batch: Vec<T>) -> BoxFuture<'static, Routed<T>> {
        let routes = batch.iter().map(|x| (self.0)(consumers, x)).collect();
        futures::future::ready(Routed {
            batch,
            routes,
            error: None,
        })
        .boxed()
    }
}

struct Consumer<T> {
    id: u64,
    queue: VecDeque<T>,
    waker: Option<Waker>,
}

struct State<T> {
    /// Attached consumers in attach order (the partitioner's indices).
    consumers: Vec<Consumer<T>>,
    next_id: u64,
    /// Elements queued for all consumers together.
    queued: usize,
    capacity: usize,
    start_after: usize,
    /// `start_after` consumers have attached once: routing has begun.
    started: bool,
    /// Bumped whenever a consumer attaches or leaves (routes computed before are stale).
    generation: u64,
    end: Option<Result<(), StageError>>,
    producer: Option<Waker>,
}

impl<T> State<T> {
    fn changed(&mut self) {
        self.generation += 1;
        if self.consumers.len() >= self.start_after {
            self.started = true;
        }
        wake(&mut self.producer);
    }
}

type PartitionHubState<T> = Arc<Mutex<State<T>>>;

impl PartitionHub {
    /// A sink whose materialized value is a source; every materialization of that source is a
    /// consumer, and `partitioner(n, &x)` picks which of the `n` attached consumers (index in
    /// attach order) gets `x`; a negative index drops `x`, an index `>= n` fails the hub.
    /// Routing starts once `start_after_nr_of_consumers` consumers attached; until then (and
    /// whenever no consumer is attached) elements wait upstream. `buffer_size` bounds the
    /// elements queued for all consumers together.
    ///
    /// Emits when: (each consumer) elements were routed to it and downstream demands.
    /// Backpressures when: `buffer_size` elements are queued, fewer than
    /// `start_after_nr_of_consumers` consumers ever attached, or none is attached.
    /// Completes when: upstream completes; each consumer completes after its queue, and
    /// consumers attached later complete at once.
    /// Cancels when: never; a cancelled consumer leaves the hub and its queued elements are
    /// dropped.
    /// Fails when: upstream fails, or the partitioner fails or returns an index out of range;
    /// every consumer (also those attached later) fails after the elements routed to it
    /// before the failure.
    pub fn sink<T, F>(
        partitioner: F,
        start_after_nr_of_consumers: usize,
        buffer_size: usize,
    ) -> Result<Sink<T, Source<T, ()>>, GraphError>
    where
        T: Send + 'static,
        F: Fn(usize, &T) -> i64 + Clone + Send + Sync + 'static,
    {
        Self::batch_sink(
            move || FnPartitioner(partitioner.clone()),
            start_after_nr_of_consumers,
            buffer_size,
        )
    }

    /// [`PartitionHub::sink`] with a [`Partitioner`] made by `factory` for every
    /// materialization (it may keep state, e.g. round robin), routing a batch per call.
    pub fn batch_sink<T, P, F>(
        factory: F,
        start_after_nr_of_consumers: usize,
        buffer_size: usize,
    ) -> Result<Sink<T, Source<T, ()>>, GraphError>
    where
        T: Send + 'static,
        P: Partitioner<T>,
        F: Fn() -> P + Send + Sync + 'static,
    {
        let capacity = positive("partition_hub", "buffer_size", buffer_size)?;
        let start_after = start_after_nr_of_consumers;
        Ok(Sink::from_async("partition_hub", move |info| {
            let shared: PartitionHubState<T> = Arc::new(Mutex::new(State {
                consumers: Vec::new(),
                next_id: 0,
                queued: 0,
                capacity,
                start_after,
                started: start_after == 0,
                generation: 0,
                end: None,
                producer: None,
            }));
            let router = Router {
                guard: HubGuard(shared),
                partitioner: factory(),
                path: info.path.clone(),
            };
            Ok(hub_stage(router, "partition_hub_source"))
        }))
    }
}

/// The hub's producer side: routes each batch among the attached consumers.
struct Router<T: Send + 'static, P> {
    guard: HubGuard<State<T>>,
    partitioner: P,
    path: String,
}

impl<T: Send + 'static, P: Partitioner<T>> Producer<T> for Router<T, P> {
    type Hub = State<T>;

    fn hub(&self) -> &PartitionHubState<T> {
        &self.guard.0
    }

    /// Routes `batch` as the consumers free room; fails on a bad index.
    async fn push(&mut self, batch: Vec<T>) -> Result<(), StageError> {
        let mut pending: VecDeque<T> = batch.into();
        while !pending.is_empty() {
            // Wait for room and consumers, then route what fits with the current consumer set.
            let shared = &self.guard.0;
            let len = pending.len();
            let (n, k, generation) = poll_fn(|cx| {
                let mut st = lock(shared);
                let room = st.capacity.saturating_sub(st.queued);
                if st.started && !st.consumers.is_empty() && room > 0 {
                    return Poll::Ready((st.consumers.len(), room.min(len), st.generation));
                }
                st.producer = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
            let chunk: Vec<T> = pending.drain(..k).collect();
            let Routed {
                batch: chunk,
                mut routes,
                error,
            } = self.partitioner.route(n, chunk).await;
            let mut failure = error.map(|e| e.with_stage(&self.path));
            if routes.len() > chunk.len() || (failure.is_none() && routes.len() < chunk.len()) {
                return Err(StageError::internal(format!(
                    "partitioner returned {} indices for {} elements",
                    routes.len(),
                    chunk.len()
                ))
                .with_stage(&self.path));
            }
            if let Some(at) = routes.iter().position(|&i| i >= n as i64) {
                let bad = routes[at];
                routes.truncate(at);
                failure = Some(
                    StageError::user(format!("partition index {bad} out of range 0..{n}"))
                        .with_stage(&self.path),
                );
            }
            let mut st = lock(&self.guard.0);
            if st.generation != generation {
                // A consumer came or went while routing: route the chunk again.
                drop(st);
                for x in chunk.into_iter().rev() {
                    pending.push_front(x);
                }
                continue;
            }
            let mut added = 0;
            for (x, &i) in chunk.into_iter().zip(&routes) {
                // Indices were checked against this consumer set (same generation).
                if let Ok(i) = usize::try_from(i)
                    && let Some(c) = st.consumers.get_mut(i)
                {
                    c.queue.push_back(x);
                    added += 1;
                }
            }
            st.queued += added;
            for c in &mut st.consumers {
                if !c.queue.is_empty() {
                    wake(&mut c.waker);
                }
            }
            if let Some(e) = failure {
                // The elements routed before the failing one stay with their consumers.
                return Err(e);
            }
        }
        Ok(())
    }
}

impl<T: Send + 'static> FanOut for State<T> {
    type Item = T;
    const NAME: &'static str = "partition_hub";

    fn attach(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.consumers.push(Consumer {
            id,
            queue: VecDeque::new(),
            waker: None,
        });
        self.changed();
        id
    }

    fn detach(&mut self, id: u64) {
        if let Some(i) = self.consumers.iter().position(|c| c.id == id) {
            let c = self.consumers.remove(i);
            self.queued = self.queued.saturating_sub(c.queue.len());
            self.changed();
        }
    }

    fn take(&mut self, id: u64, max: usize, out: &mut Vec<T>) -> Option<(usize, bool)> {
        let c = self.consumers.iter_mut().find(|c| c.id == id)?;
        let n = c.queue.len().min(max);
        out.extend(c.queue.drain(..n));
        let drained = c.queue.is_empty();
        if n > 0 {
            self.queued = self.queued.saturating_sub(n);
            wake(&mut self.producer);
        }
        Some((n, drained))
    }

    fn park(&mut self, id: u64, waker: &Waker) {
        if let Some(c) = self.consumers.iter_mut().find(|c| c.id == id) {
            c.waker = Some(waker.clone());
        }
    }

    fn end(&mut self) -> &mut Option<Result<(), StageError>> {
        &mut self.end
    }

    fn wake_consumers(&mut self) {
        for c in &mut self.consumers {
            wake(&mut c.waker);
        }
    }
}
