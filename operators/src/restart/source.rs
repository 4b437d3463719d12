//! `RestartSource`: a source started again after it ends, with backoff.

use super::{Backoff, RestartOn, RestartSettings, wait_backoff};
use futures::FutureExt;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncFn, AsyncIo, Event, Input, Source, StageError};

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
        restart_source(settings, RestartOn::Always, move || {
            std::future::ready(Ok(factory()))
        })
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
        restart_source(settings, RestartOn::Failures, move || {
            std::future::ready(Ok(factory()))
        })
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
        let on = if only_on_failures {
            RestartOn::Failures
        } else {
            RestartOn::Always
        };
        restart_source(settings, on, factory)
    }
}

fn restart_source<T, M, F, Fut>(
    settings: RestartSettings,
    on: RestartOn,
    factory: F,
) -> Source<T, ()>
where
    T: Send + 'static,
    M: Send + 'static,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<Source<T, M>, StageError>> + Send + 'static,
{
    let factory = Arc::new(factory);
    Source::from_async("restart_source", move |_info| {
        let factory = Arc::clone(&factory);
        let settings = settings.clone();
        let logic = AsyncFn(move |mut io: AsyncIo| {
            async move {
                let path: Arc<str> = Arc::from(io.info.path.as_str());
                let mut out = io.output::<T>(0)?;
                let clock = Arc::clone(&io.clock);
                let mut backoff = Backoff::new(settings, clock.now());
                loop {
                    let module =
                        Arc::clone(factory().await.map_err(|e| e.with_stage(&path))?.module());
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
                    let exhausted = backoff.exhausted(clock.now());
                    match ended {
                        Ok(()) if on == RestartOn::Failures || exhausted => return Ok(()),
                        Err(e) if exhausted => return Err(e),
                        Ok(()) => tracing::debug!(stage = %path, "source completed, restarting"),
                        Err(e) => {
                            tracing::debug!(stage = %path, error = %e, "source failed, restarting")
                        }
                    }
                    let delay = backoff.next_delay();
                    if !wait_backoff(&*clock, delay, |cx| out.poll_closed(cx)).await {
                        return Ok(());
                    }
                    backoff.started(clock.now());
                }
            }
            .boxed()
        });
        Ok((logic, ()))
    })
}
