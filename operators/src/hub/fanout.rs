//! What the fan-out hubs ([`BroadcastHub`](super::BroadcastHub) and
//! [`PartitionHub`](super::PartitionHub)) share: consumers attaching and leaving, the producer
//! loop, and the guard that fails the consumers when the hub stops early.

use super::lock;
use futures::FutureExt;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use weir_graph::{
    AsyncFn, AsyncIo, AsyncLogic, Event, Input, Source, SourceLogic, StageCx, StageError, Step,
};

/// The shared state of a fan-out hub, as its producer and consumers use it.
pub(crate) trait FanOut: Send + 'static {
    /// The elements the hub hands out.
    type Item: Send + 'static;
    /// The hub stage's name (in the error its consumers get when it stops early).
    const NAME: &'static str;
    /// Registers a new consumer; returns its id.
    fn attach(&mut self) -> u64;
    /// Removes consumer `id` if it is still attached.
    fn detach(&mut self, id: u64);
    /// Moves up to `max` of consumer `id`'s elements to `out`: how many, and whether nothing
    /// is left for it; `None` once it is detached.
    fn take(&mut self, id: u64, max: usize, out: &mut Vec<Self::Item>) -> Option<(usize, bool)>;
    /// Consumer `id` waits for elements: `waker` is woken when some arrive or the hub ends.
    fn park(&mut self, id: u64, waker: &Waker);
    /// How the hub ended: `Some(Ok)` upstream completed, `Some(Err)` it failed or the hub
    /// stopped early.
    fn end(&mut self) -> &mut Option<Result<(), StageError>>;
    /// Wakes every parked consumer.
    fn wake_consumers(&mut self);

    /// The hub's upstream ended (or the hub stopped): consumers see the first `end` after
    /// what they hold.
    fn finish(&mut self, end: Result<(), StageError>) {
        let slot = self.end();
        if slot.is_none() {
            *slot = Some(end);
        }
        self.wake_consumers();
    }
}

/// One poll of consumer `id`: its elements, then the hub's completion or failure.
fn poll_consumer<S: FanOut>(
    st: &mut S,
    id: u64,
    cx: &mut Context<'_>,
    max: usize,
    out: &mut Vec<S::Item>,
) -> Poll<Result<Step, StageError>> {
    let Some((n, drained)) = st.take(id, max, out) else {
        return Poll::Ready(Ok(Step::Done));
    };
    match st.end() {
        // The failure comes after the elements accepted before it.
        Some(Err(e)) if n == 0 => return Poll::Ready(Err(e.clone())),
        Some(Ok(())) if drained => return Poll::Ready(Ok(Step::Done)),
        None if n == 0 => st.park(id, cx.waker()),
        _ => {}
    }
    if n > 0 {
        Poll::Ready(Ok(Step::More))
    } else {
        Poll::Pending
    }
}

/// The hub's producer side; if it stops before its upstream ended, consumers fail.
pub(crate) struct HubGuard<S: FanOut>(pub(crate) Arc<Mutex<S>>);

impl<S: FanOut> Drop for HubGuard<S> {
    fn drop(&mut self) {
        lock(&self.0).finish(Err(StageError::cancelled(format!(
            "{} stopped before its upstream completed",
            S::NAME
        ))));
    }
}

/// The producer side of a fan-out hub: what puts a batch into it.
pub(crate) trait Producer<T>: Send {
    /// The hub's shared state.
    type Hub: FanOut;
    /// The hub this producer feeds.
    fn hub(&self) -> &Arc<Mutex<Self::Hub>>;
    /// Puts `batch` into the hub as room frees up; an error stops the hub.
    fn push(&mut self, batch: Vec<T>) -> impl Future<Output = Result<(), StageError>> + Send;
}

/// The logic of a fan-out hub stage, feeding `producer` from its input, and the source its
/// consumers attach through (stage name `consumers`).
pub(crate) fn hub_stage<T: Send + 'static, P: Producer<T> + 'static>(
    mut producer: P,
    consumers: &str,
) -> (impl AsyncLogic, Source<<P::Hub as FanOut>::Item, ()>) {
    let source = consumer_source(consumers, Arc::clone(producer.hub()));
    let logic = AsyncFn(move |mut io: AsyncIo| {
        async move {
            let mut input = io.input::<T>(0)?;
            feed(&mut input, &mut producer).await
        }
        .boxed()
    });
    (logic, source)
}

/// Feeds the hub from `input` through `producer` until upstream ends or a push fails; the
/// consumers then see that end, which is also returned.
async fn feed<T: Send + 'static>(
    input: &mut Input<T>,
    producer: &mut impl Producer<T>,
) -> Result<(), StageError> {
    let r = loop {
        match input.recv().await {
            Event::Batch(v) => {
                if let Err(e) = producer.push(v).await {
                    break Err(e);
                }
            }
            Event::End => break Ok(()),
            Event::Error(e) => break Err(e),
        }
    };
    lock(producer.hub()).finish(r.clone());
    r
}

/// The source materialized by a fan-out hub, named `name`: one consumer per materialization.
fn consumer_source<S: FanOut>(name: &str, shared: Arc<Mutex<S>>) -> Source<S::Item, ()> {
    Source::from_logic(name, move |_info| {
        let id = lock(&shared).attach();
        Ok((
            HubConsumer {
                shared: Arc::clone(&shared),
                id,
            },
            (),
        ))
    })
}

/// One attached consumer; it leaves the hub when it stops, whatever the reason.
struct HubConsumer<S: FanOut> {
    shared: Arc<Mutex<S>>,
    id: u64,
}

impl<S: FanOut> Drop for HubConsumer<S> {
    fn drop(&mut self) {
        lock(&self.shared).detach(self.id);
    }
}

impl<S: FanOut> SourceLogic<S::Item> for HubConsumer<S> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<S::Item>,
    ) -> Poll<Result<Step, StageError>> {
        let max = scx.batch_size().max(1);
        poll_consumer(&mut *lock(&self.shared), self.id, cx, max, out)
    }

    fn post_stop(&mut self) {
        lock(&self.shared).detach(self.id);
    }
}
