//! `expand`: extrapolates elements from the last one seen while downstream is faster than upstream.

use super::util::yield_now;
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Module, StageError, async_node};

/// Turns every element into an iterator with `f` (Akka's `expand`): each element's first item is
/// emitted when downstream asks for it (every element is expanded at least once, so an element
/// whose first item downstream has not requested backpressures upstream); the following items
/// only while downstream asks for more and no new input is ready (a new element replaces the
/// iterator). The output is demand-driven: a consumer requesting `k` receives exactly `k` items.
///
/// - **emits when** downstream requests and there is an element not yet expanded, or the
///   current iterator has more items and no input is ready
/// - **backpressures when** an element received has not been expanded yet
/// - **completes when** upstream completes and its last element has been expanded (remaining
///   extrapolated items are not emitted)
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn expand<T, U, I, F>(f: F) -> Flow<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
    I: Iterator<Item = U> + Send + 'static,
    F: FnMut(T) -> I + Clone + Send + Sync + 'static,
{
    let node = async_node(
        "expand",
        1,
        vec![weir_graph::router_for::<U>()],
        move |_| {
            Ok((
                Expand {
                    f: f.clone(),
                    _t: PhantomData::<fn(T) -> U>,
                },
                (),
            ))
        },
    )
    .with_parallelizable(true)
    .with_demand_outputs();
    Flow::from_module(Arc::new(Module::single(node)))
}

struct Expand<T, U, F> {
    f: F,
    _t: PhantomData<fn(T) -> U>,
}

/// What the stage woke up for.
enum Wake<T> {
    /// Downstream asked for this many rows.
    Demand(usize),
    /// Upstream sent something.
    In(Event<T>),
    /// Downstream is gone.
    Gone,
}

impl<T, U, I, F> AsyncLogic for Expand<T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
    I: Iterator<Item = U> + Send + 'static,
    F: FnMut(T) -> I + Send + 'static,
{
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut f = self.f;
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<U>(0)?;
            let max_rows = io.batch_size.max(1);
            // Elements received and not expanded yet, in order.
            let mut fresh: VecDeque<T> = VecDeque::new();
            // The iterator of the last expanded element.
            let mut iter: Option<I> = None;
            let mut ended = false;
            loop {
                if ended && fresh.is_empty() {
                    return Ok(());
                }
                let can_recv = !ended && fresh.is_empty();
                let has_items = !fresh.is_empty() || iter.is_some();
                let wake = poll_fn(|cx| {
                    // New input first: extrapolation only fills in while upstream is slower.
                    if can_recv && let Poll::Ready(ev) = input.poll_recv(cx) {
                        return Poll::Ready(Wake::In(ev));
                    }
                    if has_items {
                        if let Poll::Ready(r) = output.poll_demand(cx) {
                            return Poll::Ready(r.map_or(Wake::Gone, Wake::Demand));
                        }
                    } else if output.poll_closed(cx).is_ready() {
                        return Poll::Ready(Wake::Gone);
                    }
                    Poll::Pending
                })
                .await;
                let n = match wake {
                    Wake::Gone => return Ok(()),
                    Wake::In(Event::Batch(b)) => {
                        fresh.extend(b);
                        continue;
                    }
                    Wake::In(Event::End) => {
                        ended = true;
                        continue;
                    }
                    Wake::In(Event::Error(e)) => return Err(e),
                    Wake::Demand(n) => n.min(max_rows),
                };
                let mut rows = Vec::with_capacity(n.min(64));
                let mut extrapolated = false;
                let mut failed = None;
                while rows.len() < n {
                    if let Some(x) = fresh.pop_front() {
                        let mut it = f(x);
                        rows.extend(it.next());
                        iter = Some(it);
                        continue;
                    }
                    if ended {
                        break;
                    }
                    // Extrapolate only while no new input (nor its end) is ready.
                    let mut noop = Context::from_waker(Waker::noop());
                    match input.poll_recv(&mut noop) {
                        Poll::Ready(Event::Batch(b)) => {
                            fresh.extend(b);
                            continue;
                        }
                        Poll::Ready(Event::End) => {
                            ended = true;
                            break;
                        }
                        Poll::Ready(Event::Error(e)) => {
                            failed = Some(e);
                            break;
                        }
                        Poll::Pending => {}
                    }
                    match iter.as_mut().and_then(Iterator::next) {
                        Some(u) => {
                            rows.push(u);
                            extrapolated = true;
                        }
                        None => {
                            iter = None;
                            break;
                        }
                    }
                }
                if !rows.is_empty() && output.send(rows).await.is_err() {
                    return Ok(());
                }
                if let Some(e) = failed {
                    return Err(e);
                }
                if extrapolated {
                    // A fast consumer and an endless iterator: let the other tasks run.
                    yield_now().await;
                }
            }
        }
        .boxed()
    }
}
