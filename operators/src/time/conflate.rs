//! `batch`, `conflate` and `conflate_with_seed`: aggregate elements while downstream is slower.
//!
//! The output is demand-driven: while the consumer has open demand and nothing is aggregated,
//! each element passes through as `seed(element)`, as many as it asked for; every other element
//! is folded into one aggregate, emitted when the consumer next asks. A consumer that requests
//! nothing while 1000 elements arrive then receives exactly one aggregate of all of them.
//!
//! A control (checkpoint barrier, watermark) leaves after the aggregate holding the elements
//! that arrived before it. While a barrier waits, nothing more is read, so no element after
//! the barrier is folded into an aggregate before it: a checkpoint through the stage is exact.

use super::held::HeldControls;
use super::util::send_rows;
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Module, Signal, StageError, async_node};

/// Folds elements into aggregates of at most `max` elements (0 is reported as an invalid
/// parameter when the graph is validated) while downstream is backpressured; passes each element through as `seed(element)` when it is not.
///
/// - **emits when** downstream requests and there is an aggregate, or an element arrives while
///   downstream has open demand and nothing is aggregated
/// - **backpressures when** the current aggregate holds `max` elements and downstream backpressures
/// - **completes when** upstream completes and the last aggregate has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn batch<T, S, Seed, Agg>(max: usize, seed: Seed, aggregate: Agg) -> Flow<T, S>
where
    T: Send + 'static,
    S: Send + 'static,
    Seed: FnMut(T) -> S + Clone + Send + Sync + 'static,
    Agg: FnMut(S, T) -> S + Clone + Send + Sync + 'static,
{
    batch_named("batch", max.max(1), seed, aggregate).reject(weir_graph::at_least(
        "batch: max",
        max,
        1,
    ))
}

/// Folds elements into one aggregate (started by `seed`) while downstream is backpressured; never
/// backpressures upstream.
///
/// - **emits when** downstream requests and there is an aggregate, or an element arrives while
///   downstream has open demand and nothing is aggregated
/// - **backpressures when** never
/// - **completes when** upstream completes and the last aggregate has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn conflate_with_seed<T, S, Seed, Agg>(seed: Seed, aggregate: Agg) -> Flow<T, S>
where
    T: Send + 'static,
    S: Send + 'static,
    Seed: FnMut(T) -> S + Clone + Send + Sync + 'static,
    Agg: FnMut(S, T) -> S + Clone + Send + Sync + 'static,
{
    batch_named("conflate", usize::MAX, seed, aggregate)
}

/// Combines elements with `f` while downstream is backpressured; never backpressures upstream.
///
/// - **emits when** downstream requests and there is a combined value, or an element arrives
///   while downstream has open demand and nothing is combined
/// - **backpressures when** never
/// - **completes when** upstream completes and the last combined value has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn conflate<T, F>(f: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    batch_named("conflate", usize::MAX, |x: T| x, f)
}

fn batch_named<T, S, Seed, Agg>(name: &str, max: usize, seed: Seed, aggregate: Agg) -> Flow<T, S>
where
    T: Send + 'static,
    S: Send + 'static,
    Seed: FnMut(T) -> S + Clone + Send + Sync + 'static,
    Agg: FnMut(S, T) -> S + Clone + Send + Sync + 'static,
{
    let node = async_node(name, 1, vec![weir_graph::router_for::<S>()], move |_| {
        Ok((
            Batch {
                max,
                seed: seed.clone(),
                aggregate: aggregate.clone(),
                _t: PhantomData::<fn(T) -> S>,
            },
            (),
        ))
    })
    .with_parallelizable(true)
    .with_demand_outputs();
    Flow::from_module(Arc::new(Module::single(node)))
}

struct Batch<T, S, Seed, Agg> {
    max: usize,
    seed: Seed,
    aggregate: Agg,
    _t: PhantomData<fn(T) -> S>,
}

/// What the stage woke up for.
enum Wake<T> {
    /// Downstream asked for rows.
    Demand,
    /// Upstream sent something.
    In(Signal<T>),
    /// Downstream is gone.
    Gone,
}

impl<T, S, Seed, Agg> AsyncLogic for Batch<T, S, Seed, Agg>
where
    T: Send + 'static,
    S: Send + 'static,
    Seed: FnMut(T) -> S + Send + 'static,
    Agg: FnMut(S, T) -> S + Send + 'static,
{
    /// Controls wait behind the aggregate of the elements that arrived before them.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let Batch {
                max,
                mut seed,
                mut aggregate,
                ..
            } = *self;
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<S>(0)?;
            // Received elements not yet folded (non-empty only while the aggregate is full).
            let mut stash: VecDeque<T> = VecDeque::new();
            let mut agg: Option<S> = None;
            let mut count = 0usize;
            let mut ended = false;
            // Elements received and elements emitted (alone or in a sent aggregate).
            let (mut received, mut emitted) = (0u64, 0u64);
            let mut controls = HeldControls::default();
            loop {
                while count < max {
                    let Some(x) = stash.pop_front() else { break };
                    agg = Some(match agg.take() {
                        None => seed(x),
                        Some(a) => aggregate(a, x),
                    });
                    count += 1;
                }
                controls.release(emitted, &mut output);
                if ended && agg.is_none() {
                    return Ok(());
                }
                let has_agg = agg.is_some();
                let can_recv = !ended && stash.is_empty() && !controls.barrier_held();
                let wake = poll_fn(|cx| {
                    if has_agg {
                        if let Poll::Ready(r) = output.poll_demand(cx) {
                            return Poll::Ready(r.map_or(Wake::Gone, |_| Wake::Demand));
                        }
                    } else if output.poll_closed(cx).is_ready() {
                        return Poll::Ready(Wake::Gone);
                    }
                    if can_recv && let Poll::Ready(s) = input.poll_signal(cx) {
                        return Poll::Ready(Wake::In(s));
                    }
                    Poll::Pending
                })
                .await;
                match wake {
                    Wake::Gone => return Ok(()),
                    Wake::Demand => {
                        emitted += count as u64;
                        count = 0;
                        if send_rows(&mut output, agg.take().into_iter().collect())
                            .await
                            .is_err()
                        {
                            return Ok(());
                        }
                    }
                    Wake::In(Signal::Event(Event::Batch(b))) => {
                        received += b.len() as u64;
                        // Element by element, as downstream would see them one at a time: while
                        // it has demand and nothing is aggregated, an element passes on its own.
                        let demand = if agg.is_none() {
                            output.demand_now()
                        } else {
                            0
                        };
                        let mut rest = b.into_iter();
                        let direct: Vec<S> = rest.by_ref().take(demand).map(&mut seed).collect();
                        stash.extend(rest);
                        emitted += direct.len() as u64;
                        if send_rows(&mut output, direct).await.is_err() {
                            return Ok(());
                        }
                    }
                    Wake::In(Signal::Event(Event::End)) => ended = true,
                    Wake::In(Signal::Event(Event::Error(e))) => return Err(e),
                    Wake::In(Signal::Control(c)) => controls.arrive(received, c),
                }
            }
        }
        .boxed()
    }
}
