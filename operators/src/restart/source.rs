//! `RestartSource`: a source started again after it ends, with backoff.

use super::driver::{Incarnations, Restarts, ready, restart_stage};
use super::{RestartOn, RestartSettings};
use futures::FutureExt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, Event, Input, Source, StageError};

/// Restarts a source with exponential backoff: see [`RestartSource::with_backoff`].
#[derive(Debug, Clone, Copy)]
pub struct RestartSource;

impl RestartSource {
    /// A source running the source made by `factory`, and a fresh one after each completion
    /// or failure, after the backoff of `settings`.
    ///
    /// Emits when: the current incarnation emits and downstream demands.
    /// Backpressures when: downstream backpressures.
    /// Completes when: an incarnation completes and no restart is left.
    /// Cancels when: downstream cancels (the current incarnation is cancelled, a pending
    /// restart is abandoned).
    /// Fails when: an incarnation fails and no restart is left (with its error).
    pub fn with_backoff<T, M, F>(settings: RestartSettings, factory: F) -> Source<T, ()>
    where
        T: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Source<T, M> + Send + Sync + 'static,
    {
        Self::try_with_backoff(settings, false, ready(factory))
    }

    /// Like [`RestartSource::with_backoff`], but only a failure restarts the source; its
    /// completion completes this source.
    ///
    /// Emits when: the current incarnation emits and downstream demands.
    /// Backpressures when: downstream backpressures.
    /// Completes when: an incarnation completes.
    /// Cancels when: downstream cancels.
    /// Fails when: an incarnation fails and no restart is left (with its error).
    pub fn on_failures_with_backoff<T, M, F>(settings: RestartSettings, factory: F) -> Source<T, ()>
    where
        T: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Source<T, M> + Send + Sync + 'static,
    {
        Self::try_with_backoff(settings, true, ready(factory))
    }

    /// [`RestartSource::with_backoff`] (or, with `only_on_failures`,
    /// [`RestartSource::on_failures_with_backoff`]) for a factory that returns a future (it may fail
    /// or wait, e.g. on another thread): its error fails this source.
    pub fn try_with_backoff<T, M, F, Fut>(
        settings: RestartSettings,
        only_on_failures: bool,
        factory: F,
    ) -> Source<T, ()>
    where
        T: Send + 'static,
        M: Send + 'static,
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Source<T, M>, StageError>> + Send + 'static,
    {
        Source::from_async(
            "restart_source",
            restart_stage(
                settings,
                RestartOn::only_on_failures(only_on_failures),
                factory,
                |io, r, f| run(io, r, f).boxed(),
            ),
        )
    }
}

/// One run of the wrapper: incarnations one after the other, their elements passed downstream.
async fn run<T, M, F>(
    mut io: AsyncIo,
    mut restarts: Restarts,
    factory: Arc<F>,
) -> Result<(), StageError>
where
    T: Send + 'static,
    M: Send + 'static,
    F: Incarnations<Source<T, M>>,
{
    let path = Arc::clone(restarts.path());
    let mut out = io.output::<T>(0)?;
    loop {
        let module = Arc::clone(restarts.make(&*factory).await?.module());
        let inner = io.sub.source(module).map_err(|e| e.with_stage(&path))?;
        let mut input = Input::<T>::new(inner, Arc::clone(&path));
        let ended = loop {
            let ev = poll_fn(|cx| {
                if out.poll_closed(cx).is_ready() {
                    return Poll::Ready(None);
                }
                input.poll_recv(cx).map(Some)
            })
            .await;
            match ev {
                None => return Ok(()),
                Some(Event::Batch(v)) => {
                    if out.send(v).await.is_err() {
                        return Ok(());
                    }
                }
                Some(Event::End) => break Ok(()),
                Some(Event::Error(e)) => break Err(e),
            }
        };
        drop(input);
        if let Some(end) = restarts
            .after("source", ended, |cx| out.poll_closed(cx))
            .await
        {
            return end;
        }
    }
}
