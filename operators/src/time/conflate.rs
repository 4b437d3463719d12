//! `batch`, `conflate` and `conflate_with_seed`: aggregate elements while downstream is slower.
//!
//! While no send is outstanding every element passes through as `seed(element)` (a whole input
//! batch at a time). Once a send waits for credit, arriving elements are folded into one
//! aggregate, emitted as soon as the outstanding send completes.

use super::util::{flush_or_closed, race};
use futures::future::{BoxFuture, Either, FutureExt};
use std::collections::VecDeque;
use std::marker::PhantomData;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Folds elements into aggregates of at most `max` elements (0 counts as 1) while downstream is
/// backpressured; passes each element through as `seed(element)` when it is not.
///
/// - **emits when** downstream has room and there is an aggregate or a seeded element
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
    batch_named("batch", max.max(1), seed, aggregate)
}

/// Folds elements into one aggregate (started by `seed`) while downstream is backpressured; never
/// backpressures upstream.
///
/// - **emits when** downstream has room and there is an aggregate or a seeded element
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
/// - **emits when** downstream has room and there is an element or a combined value
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
    Flow::from_async(name, move |_| {
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
}

struct Batch<T, S, Seed, Agg> {
    max: usize,
    seed: Seed,
    aggregate: Agg,
    _t: PhantomData<fn(T) -> S>,
}

impl<T, S, Seed, Agg> AsyncLogic for Batch<T, S, Seed, Agg>
where
    T: Send + 'static,
    S: Send + 'static,
    Seed: FnMut(T) -> S + Send + 'static,
    Agg: FnMut(S, T) -> S + Send + 'static,
{
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
            // Rows handed to the output whose send has not completed yet.
            let mut flushing = false;
            let mut ended = false;
            loop {
                if !flushing {
                    let rows: Vec<S> = match agg.take() {
                        Some(a) => {
                            count = 0;
                            vec![a]
                        }
                        None => stash.drain(..).map(&mut seed).collect(),
                    };
                    if !rows.is_empty() {
                        output.push(rows);
                        flushing = true;
                    }
                }
                while count < max {
                    let Some(x) = stash.pop_front() else { break };
                    agg = Some(match agg.take() {
                        None => seed(x),
                        Some(a) => aggregate(a, x),
                    });
                    count += 1;
                }
                let can_recv = !ended && stash.is_empty();
                let ev = match (flushing, can_recv) {
                    (false, false) => return Ok(()),
                    (true, false) => {
                        if output.flush(true).await.is_err() {
                            return Ok(());
                        }
                        flushing = false;
                        continue;
                    }
                    (_, true) => {
                        match race(flush_or_closed(&mut output, flushing), input.recv()).await {
                            Either::Left(Ok(())) => {
                                flushing = false;
                                continue;
                            }
                            Either::Left(Err(_)) => return Ok(()),
                            Either::Right(ev) => ev,
                        }
                    }
                };
                match ev {
                    Event::Batch(b) => stash.extend(b),
                    Event::End => ended = true,
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
