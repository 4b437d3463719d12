//! `RestartSink`: a sink started again after it cancels, with backoff.

use super::driver::{Incarnations, Restarts, poll_feed, ready, restart_stage};
use super::{RestartOn, RestartSettings};
use futures::FutureExt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{
    AsyncIo, Event, Flow, GraphBuilder, Input, Output, Sink, Source, SourceLogic, StageCx,
    StageError, Step, router_for,
};

/// Restarts a sink with exponential backoff: see [`RestartSink::with_backoff`].
#[derive(Debug, Clone, Copy)]
pub struct RestartSink;

impl RestartSink {
    /// A sink feeding the sink made by `factory`, and a fresh one after it cancels its input
    /// (it finished early, e.g. `head`, or failed), after the backoff of `settings`; elements
    /// arriving during a backoff wait upstream, elements inside an incarnation that fails are
    /// lost, those taken from upstream and not yet handed to it go to the next one. The wrapped sink's failure does not fail the run: it is logged and restarted.
    ///
    /// Emits when: never (a sink).
    /// Backpressures when: the current incarnation backpressures, or during a backoff.
    /// Completes when: upstream completes (passed to the current incarnation).
    /// Cancels when: an incarnation cancels and no restart is left.
    /// Fails when: upstream fails (passed to the current incarnation).
    pub fn with_backoff<T, M, F>(settings: RestartSettings, factory: F) -> Sink<T, ()>
    where
        T: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Sink<T, M> + Send + Sync + 'static,
    {
        Self::try_with_backoff(settings, ready(factory))
    }

    /// [`RestartSink::with_backoff`] for a factory that returns a future (it may fail or wait,
    /// e.g. on another thread): its error fails this sink.
    pub fn try_with_backoff<T, M, F, Fut>(settings: RestartSettings, factory: F) -> Sink<T, ()>
    where
        T: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Sink<T, M>, StageError>> + Send + 'static,
    {
        Sink::from_async(
            "restart_sink",
            restart_stage(settings, RestartOn::Always, factory, |io, r, f| {
                run(io, r, f).boxed()
            }),
        )
    }
}

/// One run of the wrapper: upstream's elements fed to the current incarnation, incarnations
/// one after the other (the wrapper ends when upstream ends or no restart is left).
async fn run<T, M, F>(
    mut io: AsyncIo,
    mut restarts: Restarts,
    factory: Arc<F>,
) -> Result<(), StageError>
where
    T: Send + 'static,
    M: Send + 'static,
    F: Incarnations<Sink<T, M>>,
{
    let path = Arc::clone(restarts.path());
    let mut input = io.input::<T>(0)?;
    // Rows taken from upstream and not yet handed to an incarnation (kept across restarts);
    // upstream is read only while it is empty, so its end never overtakes them.
    let mut held: Vec<T> = Vec::new();
    loop {
        let sink = restarts.make(&*factory).await?;
        let module = Arc::clone(as_flow(sink)?.module());
        let (tx, rx) = io
            .sub
            .flow_detached(module, router_for::<T>())
            .map_err(|e| e.with_stage(&path))?;
        let mut to_inner = Output::<T>::new(tx);
        // Keeps the incarnation's placeholder output open while it runs.
        let _keep = Input::<()>::new(rx, Arc::clone(&path));
        loop {
            let ev = poll_fn(|cx| {
                while !held.is_empty() {
                    match poll_feed(&mut held, &mut to_inner, cx) {
                        Poll::Ready(Ok(())) => {}
                        Poll::Ready(Err(_)) => return Poll::Ready(None),
                        Poll::Pending => return Poll::Pending,
                    }
                }
                if to_inner.poll_closed(cx).is_ready() {
                    return Poll::Ready(None);
                }
                input.poll_recv(cx).map(Some)
            })
            .await;
            match ev {
                None => break,
                Some(Event::Batch(v)) => held = v,
                Some(Event::End) => {
                    to_inner.complete();
                    return Ok(());
                }
                Some(Event::Error(e)) => {
                    to_inner.fail(e.clone());
                    return Err(e);
                }
            }
        }
        drop(to_inner);
        // On `Some`, returning drops `input`: upstream is cancelled.
        if let Some(end) = restarts.after("sink", Ok(()), |_| Poll::Pending).await {
            return end;
        }
    }
}

/// The sink as a flow whose output never emits, so it can run as a sub-graph of this run.
fn as_flow<T: Send + 'static, M: Send + 'static>(
    sink: Sink<T, M>,
) -> Result<Flow<T, (), ()>, StageError> {
    let mut b = GraphBuilder::new();
    let (inlet, _) = b.add_sink(sink);
    let (outlet, _) = b.add_source(Source::from_logic("restart_sink_idle", |_| Ok((Idle, ()))));
    b.build_flow(inlet, outlet, |_| ())
        .map_err(|e| StageError::internal(e.to_string()))
}

/// A source that never emits and ends only when cancelled.
struct Idle;

impl SourceLogic<()> for Idle {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        _out: &mut Vec<()>,
    ) -> Poll<Result<Step, StageError>> {
        Poll::Pending
    }
}
