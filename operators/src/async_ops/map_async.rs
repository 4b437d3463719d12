//! `map_async`: runs a future per element, up to `parallelism` at once, emitting in input order.
//! Also holds the driver shared with `map_async_unordered`.

use crate::time::util::{flush_or_closed, maybe, race};
use futures::future::{BoxFuture, Either, FutureExt};
use futures::stream::{FuturesOrdered, FuturesUnordered, Stream, StreamExt};
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Directive, ErrorKind, Event, Flow, Output, Signal, StageError,
    render_element,
};

/// Applies the asynchronous `f` to every element with at most `parallelism` futures in flight
/// (0 counts as 1) and emits the results in input order. A failed future goes to supervision:
/// under Resume/Restart its element is dropped (to dead letters, with the element's rendering
/// when its type renders: `f` took the value); under Stop the results before it are emitted,
/// then the stage fails. A control (checkpoint barrier, watermark) waits behind the elements
/// received before it: nothing more is read until their results went out, then it follows them.
///
/// - **emits when** the future of the oldest element in flight has completed and downstream has room
/// - **backpressures when** `parallelism` futures (or their unsent results) are outstanding, or downstream backpressures
/// - **completes when** upstream completes and every future has completed and been emitted
/// - **cancels when** downstream cancels (the futures in flight are dropped)
/// - **fails when** upstream fails, or a future fails and supervision says Stop
pub fn map_async<T, O, E, Fut, F>(parallelism: usize, f: F) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
{
    map_async_flow::<T, O, E, Fut, F, Ordered>("map_async", parallelism, None, f)
}

/// [`map_async`] where every call gets at most `timeout` on the run's clock: a call still running
/// then is dropped and its element fails with [`CallTimeout`] (kind `Timeout`, naming the stage
/// and the element when its type renders), through supervision like any failed call.
///
/// - **emits when** the future of the oldest element in flight has completed or timed out and downstream has room
/// - **backpressures when** `parallelism` futures (or their unsent results) are outstanding, or downstream backpressures
/// - **completes when** upstream completes and every future has completed (or timed out) and been emitted
/// - **cancels when** downstream cancels (the futures in flight are dropped)
/// - **fails when** upstream fails, or a future fails or times out and supervision says Stop
pub fn map_async_with_timeout<T, O, E, Fut, F>(
    parallelism: usize,
    timeout: Duration,
    f: F,
) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
{
    map_async_flow::<T, O, E, Fut, F, Ordered>("map_async", parallelism, Some(timeout), f)
}

/// The failure of an asynchronous call that ran past its timeout (the call was dropped).
#[derive(Debug, Error)]
#[error("call timed out after {after:?}")]
pub struct CallTimeout {
    /// The timeout the call ran past.
    pub after: Duration,
}

/// How a pool orders its results.
pub(crate) trait PoolKind: Send + 'static {
    /// The pool running futures of type `Fut`.
    type Pool<Fut: Future + Send + 'static>: Pool<Fut>
    where
        Fut::Output: Send;
}

/// Results in input order.
pub(crate) struct Ordered;
/// Results in completion order.
pub(crate) struct Unordered;

impl PoolKind for Ordered {
    type Pool<Fut: Future + Send + 'static>
        = FuturesOrdered<Fut>
    where
        Fut::Output: Send;
}

impl PoolKind for Unordered {
    type Pool<Fut: Future + Send + 'static>
        = FuturesUnordered<Fut>
    where
        Fut::Output: Send;
}

/// A set of running futures: ordered or unordered.
pub(crate) trait Pool<Fut: Future>:
    Stream<Item = Fut::Output> + Unpin + Send + 'static
{
    /// An empty pool.
    fn empty() -> Self;
    /// Starts `f`.
    fn add(&mut self, f: Fut);
    /// Futures running or completed but not yet taken.
    fn in_flight(&self) -> usize;
}

impl<Fut: Future + Send + 'static> Pool<Fut> for FuturesOrdered<Fut>
where
    Fut::Output: Send,
{
    fn empty() -> Self {
        FuturesOrdered::new()
    }
    fn add(&mut self, f: Fut) {
        self.push_back(f)
    }
    fn in_flight(&self) -> usize {
        self.len()
    }
}

impl<Fut: Future + Send + 'static> Pool<Fut> for FuturesUnordered<Fut> {
    fn empty() -> Self {
        FuturesUnordered::new()
    }
    fn add(&mut self, f: Fut) {
        self.push(f)
    }
    fn in_flight(&self) -> usize {
        self.len()
    }
}

/// Builds a `map_async`-style flow running its futures in a pool of kind `K`, each call limited
/// to `timeout` when given.
pub(crate) fn map_async_flow<T, O, E, Fut, F, K>(
    name: &str,
    parallelism: usize,
    timeout: Option<Duration>,
    f: F,
) -> Flow<T, O>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
    K: PoolKind,
{
    Flow::from_async(name, move |_| {
        Ok((
            MapAsync::<T, F, K> {
                parallelism: parallelism.max(1),
                timeout,
                f: f.clone(),
                _t: PhantomData,
            },
            (),
        ))
    })
    .reject(weir_graph::at_least(
        &format!("{name}: parallelism"),
        parallelism,
        1,
    ))
}

struct MapAsync<T, F, K> {
    parallelism: usize,
    timeout: Option<Duration>,
    f: F,
    _t: PhantomData<fn(T) -> K>,
}

impl<T, O, E, Fut, F, K> AsyncLogic for MapAsync<T, F, K>
where
    T: Send + 'static,
    O: Send + 'static,
    E: Into<StageError> + Send + 'static,
    Fut: Future<Output = Result<O, E>> + Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    K: PoolKind,
{
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let mut f = self.f;
        let timeout = self.timeout;
        let clock = Arc::clone(&io.clock);
        // The element's rendering is kept for failures only where someone reads it: under
        // supervision (dead letters) or with a timeout; the default path renders nothing.
        let track = io.supervision.is_some() || timeout.is_some();
        let call = move |x: T| {
            let repr = if track { render_element(&x) } else { None };
            let timer = timeout.map(|d| (d, clock.sleep(d)));
            let fut = f(x);
            async move {
                let r = match timer {
                    None => fut.await.map_err(Into::into),
                    Some((after, timer)) => match race(fut, timer).await {
                        Either::Left(r) => r.map_err(Into::into),
                        Either::Right(()) => Err(StageError::from_boxed(
                            ErrorKind::Timeout,
                            Box::new(CallTimeout { after }),
                        )),
                    },
                };
                (r, repr)
            }
        };
        let pool = pool_for::<K, T, _, _>(&call);
        drive(io, self.parallelism, call, pool).boxed()
    }

    /// Controls (barriers, watermarks) wait behind the elements in flight: a checkpoint
    /// barrier leaves once their results did, so none passes it.
    fn handles_control(&self) -> bool {
        true
    }
}

/// An empty pool of kind `K` for the futures `call` makes.
fn pool_for<K: PoolKind, T, C, Fut>(_call: &C) -> K::Pool<Fut>
where
    C: FnMut(T) -> Fut,
    Fut: Future + Send + 'static,
    Fut::Output: Send,
{
    <K::Pool<Fut> as Pool<Fut>>::empty()
}

/// The outcome of one call and its element's rendering (when kept).
type Outcome<O> = (Result<O, StageError>, Option<String>);

/// Hands a completed call's result to `ready`, or its error to supervision.
fn settle<O>(io: &AsyncIo, ready: &mut Vec<O>, (r, repr): Outcome<O>) -> Result<(), StageError> {
    match r {
        Ok(o) => {
            ready.push(o);
            Ok(())
        }
        // Restart acts as Resume: the dead letter is sent and `f` goes on (the futures in
        // flight are its own).
        Err(e) => match io.stage_cx().element_failed(e, None, repr) {
            Err(e) if io.stage_cx().decide(&e) == Directive::Restart => Ok(()),
            r => r,
        },
    }
}

/// Emits the results that completed before a failure, then returns the failure.
pub(crate) async fn fail_after<O: Send + 'static>(
    output: &mut Output<O>,
    flushing: bool,
    ready: Vec<O>,
    e: StageError,
) -> Result<(), StageError> {
    if (!flushing || output.flush(true).await.is_ok()) && !ready.is_empty() {
        output.push(ready);
        let _ = output.flush(true).await;
    }
    Err(e)
}

async fn drive<T, O, Fut, F, P>(
    mut io: AsyncIo,
    parallelism: usize,
    mut f: F,
    mut pool: P,
) -> Result<(), StageError>
where
    T: Send + 'static,
    O: Send + 'static,
    Fut: Future<Output = Outcome<O>> + Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    P: Pool<Fut>,
{
    let mut input = io.input::<T>(0)?;
    let mut output = io.output::<O>(0)?;
    // Received elements whose future has not started (only while the pool is full).
    let mut stash: VecDeque<T> = VecDeque::new();
    // Results not yet handed to the output (only while a send is outstanding).
    let mut ready: Vec<O> = Vec::new();
    let mut flushing = false;
    let mut ended = false;
    // Controls that arrived behind elements still in flight; nothing is read meanwhile.
    let mut held: VecDeque<Control> = VecDeque::new();
    loop {
        while pool.in_flight() + ready.len() < parallelism {
            let Some(x) = stash.pop_front() else { break };
            pool.add(f(x));
        }
        if !flushing && !ready.is_empty() {
            output.push(std::mem::take(&mut ready));
            flushing = true;
        }
        if !held.is_empty() && stash.is_empty() && pool.in_flight() == 0 && ready.is_empty() {
            // Every result of the elements before them was handed over: they go out after.
            for c in held.drain(..) {
                output.control(c);
            }
        }
        if ended && stash.is_empty() && pool.in_flight() == 0 && !flushing {
            return Ok(());
        }
        let can_recv = !ended
            && held.is_empty()
            && stash.is_empty()
            && pool.in_flight() + ready.len() < parallelism;
        let flush = flush_or_closed(&mut output, flushing);
        let next = maybe((pool.in_flight() > 0).then(|| pool.next()));
        let recv = maybe(can_recv.then(|| input.recv_signal()));
        match race(flush, race(next, recv)).await {
            Either::Left(Ok(())) => flushing = false,
            Either::Left(Err(_)) => return Ok(()),
            Either::Right(Either::Left(Some(r))) => {
                let mut failed = settle(&io, &mut ready, r).err();
                // Take every other result that is already there, to emit them together.
                while failed.is_none()
                    && let Some(Some(r)) = pool.next().now_or_never()
                {
                    failed = settle(&io, &mut ready, r).err();
                }
                if let Some(e) = failed {
                    return fail_after(&mut output, flushing, ready, e).await;
                }
            }
            Either::Right(Either::Left(None)) => {}
            Either::Right(Either::Right(ev)) => match ev {
                Signal::Event(Event::Batch(b)) => stash.extend(b),
                Signal::Event(Event::End) => ended = true,
                Signal::Event(Event::Error(e)) => return Err(e),
                Signal::Control(c) => held.push_back(c),
            },
        }
    }
}
