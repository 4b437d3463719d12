//! `RestartFlow`: a flow started again after it ends, with backoff.

use super::driver::{Incarnations, Restarts, poll_feed, ready, restart_stage};
use super::{RestartOn, RestartSettings};
use futures::FutureExt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, Event, Flow, Input, Output, StageError, router_for};

/// Restarts a flow with exponential backoff: see [`RestartFlow::with_backoff`].
#[derive(Debug, Clone, Copy)]
pub struct RestartFlow;

impl RestartFlow {
    /// A flow running the flow made by `factory`, and a fresh one after it completes or fails,
    /// after the backoff of `settings`. An incarnation that cancels its input is not fed any
    /// more; its output's end (completion or failure) decides what follows. Elements inside an
    /// incarnation when it ends are lost; those taken from upstream and not yet handed to it go
    /// to the next one.
    ///
    /// Emits when: the current incarnation emits and downstream demands.
    /// Backpressures when: the current incarnation backpressures, or during a backoff.
    /// Completes when: upstream completed and the incarnation that got the completion
    /// completed, or an incarnation ends and no restart is left.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails (passed through the incarnation), or an incarnation fails
    /// and no restart is left (with its error).
    pub fn with_backoff<I, O, M, F>(settings: RestartSettings, factory: F) -> Flow<I, O, ()>
    where
        I: Send + 'static,
        O: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Flow<I, O, M> + Send + Sync + 'static,
    {
        Self::try_with_backoff(settings, false, ready(factory))
    }

    /// Like [`RestartFlow::with_backoff`], but only a failure restarts the flow; when an
    /// incarnation completes (or cancels its input) this flow completes.
    ///
    /// Emits when: the current incarnation emits and downstream demands.
    /// Backpressures when: the current incarnation backpressures, or during a backoff.
    /// Completes when: an incarnation completes.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails, or an incarnation fails and no restart is left.
    pub fn on_failures_with_backoff<I, O, M, F>(
        settings: RestartSettings,
        factory: F,
    ) -> Flow<I, O, ()>
    where
        I: Send + 'static,
        O: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Flow<I, O, M> + Send + Sync + 'static,
    {
        Self::try_with_backoff(settings, true, ready(factory))
    }

    /// [`RestartFlow::with_backoff`] (or, with `only_on_failures`,
    /// [`RestartFlow::on_failures_with_backoff`]) for a factory that returns a future (it may fail
    /// or wait, e.g. on another thread): its error fails this flow.
    pub fn try_with_backoff<I, O, M, F, Fut>(
        settings: RestartSettings,
        only_on_failures: bool,
        factory: F,
    ) -> Flow<I, O, ()>
    where
        I: Send + 'static,
        O: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Flow<I, O, M>, StageError>> + Send + 'static,
    {
        Flow::from_async(
            "restart_flow",
            restart_stage(
                settings,
                RestartOn::only_on_failures(only_on_failures),
                factory,
                |io, r, f| run(io, r, f).boxed(),
            ),
        )
    }
}

/// What woke the pump of one incarnation.
enum Wake<I, O> {
    Up(Event<I>),
    Inner(Event<O>),
    InnerCancelled,
    Cancelled,
}

/// One run of the wrapper: upstream's elements fed to the current incarnation, its elements
/// passed downstream, incarnations one after the other.
async fn run<I, O, M, F>(
    mut io: AsyncIo,
    mut restarts: Restarts,
    factory: Arc<F>,
) -> Result<(), StageError>
where
    I: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    F: Incarnations<Flow<I, O, M>>,
{
    let path = Arc::clone(restarts.path());
    let mut input = io.input::<I>(0)?;
    let mut out = io.output::<O>(0)?;
    // Upstream's end once seen: `Some(Ok)` completed, `Some(Err)` failed.
    let mut up_end: Option<Result<(), StageError>> = None;
    // Rows taken from upstream and not yet handed to an incarnation (kept across restarts).
    // Upstream is read only while it is empty, so its end never overtakes them.
    let mut held: Vec<I> = Vec::new();
    loop {
        let module = Arc::clone(restarts.make(&*factory).await?.module());
        let (tx, rx) = io
            .sub
            .flow(module, router_for::<I>())
            .map_err(|e| e.with_stage(&path))?;
        let mut to_inner = Output::<I>::new(tx);
        let mut from_inner = Input::<O>::new(rx, Arc::clone(&path));
        match &up_end {
            Some(Ok(())) => to_inner.complete(),
            Some(Err(e)) => to_inner.fail(e.clone()),
            None => {}
        }
        let mut to_out_busy = false;
        // The incarnation cancelled its input: it is ending, and its output says
        // how (completion or failure), so only that is awaited now.
        let mut inner_in_closed = false;
        let ended = loop {
            let wake = poll_fn(|cx| {
                loop {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Wake::Cancelled);
                    }
                    let mut progress = false;
                    if to_out_busy {
                        match out.poll_flush(cx, true) {
                            Poll::Ready(Ok(())) => (to_out_busy, progress) = (false, true),
                            Poll::Ready(Err(_)) => return Poll::Ready(Wake::Cancelled),
                            Poll::Pending => {}
                        }
                    }
                    if !held.is_empty() && !inner_in_closed {
                        match poll_feed(&mut held, &mut to_inner, cx) {
                            Poll::Ready(Ok(())) => progress = true,
                            Poll::Ready(Err(_)) => return Poll::Ready(Wake::InnerCancelled),
                            Poll::Pending => {}
                        }
                    }
                    if !to_out_busy && let Poll::Ready(ev) = from_inner.poll_recv(cx) {
                        return Poll::Ready(Wake::Inner(ev));
                    }
                    if up_end.is_none() && !inner_in_closed {
                        if to_inner.poll_closed(cx).is_ready() {
                            return Poll::Ready(Wake::InnerCancelled);
                        }
                        if held.is_empty()
                            && let Poll::Ready(ev) = input.poll_recv(cx)
                        {
                            return Poll::Ready(Wake::Up(ev));
                        }
                    }
                    if !progress {
                        return Poll::Pending;
                    }
                }
            })
            .await;
            match wake {
                Wake::Cancelled => return Ok(()),
                Wake::InnerCancelled => inner_in_closed = true,
                Wake::Inner(Event::End) => break Ok(()),
                Wake::Inner(Event::Error(e)) => break Err(e),
                Wake::Inner(Event::Batch(v)) => {
                    out.push(v);
                    to_out_busy = true;
                }
                Wake::Up(Event::Batch(v)) => held = v,
                Wake::Up(Event::End) => {
                    up_end = Some(Ok(()));
                    to_inner.complete();
                }
                Wake::Up(Event::Error(e)) => {
                    up_end = Some(Err(e.clone()));
                    to_inner.fail(e);
                }
            }
        };
        drop((to_inner, from_inner));
        if to_out_busy && out.flush(true).await.is_err() {
            return Ok(());
        }
        if up_end.is_some() {
            // The incarnation that got upstream's end is finished: so is this flow.
            return ended;
        }
        if let Some(end) = restarts
            .after("flow", ended, |cx| out.poll_closed(cx))
            .await
        {
            return end;
        }
    }
}
