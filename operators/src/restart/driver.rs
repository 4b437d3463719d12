//! What the three restart wrappers share: adapting their constructors' factories, starting the
//! wrapper stage, and the decision taken each time an incarnation ends.

use super::{Backoff, RestartOn, RestartSettings, wait_backoff};
use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{AsyncFn, AsyncIo, Cancelled, Clock, Output, StageError, StageInfo};

/// A plain blueprint factory as the future-returning factory the wrappers run.
pub(crate) fn ready<X>(
    factory: impl Fn() -> X + Send + Sync + 'static,
) -> impl Fn() -> std::future::Ready<Result<X, StageError>> + Send + Sync + 'static {
    move || std::future::ready(Ok(factory()))
}

/// What the wrappers restart from: a function returning a future of a fresh blueprint `B`.
pub(crate) trait Incarnations<B>: Fn() -> Self::Next + Send + Sync + 'static {
    /// The future of one blueprint.
    type Next: Future<Output = Result<B, StageError>> + Send + 'static;
}

impl<B, F, Fut> Incarnations<B> for F
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<B, StageError>> + Send + 'static,
{
    type Next = Fut;
}

impl RestartOn {
    /// `Failures` when only failures restart, else `Always`.
    pub(crate) fn only_on_failures(yes: bool) -> Self {
        if yes { Self::Failures } else { Self::Always }
    }
}

/// The logic of a wrapper stage: the boxed body of one run.
pub(crate) type RestartLogic =
    AsyncFn<Box<dyn FnOnce(AsyncIo) -> BoxFuture<'static, Result<(), StageError>> + Send>>;

/// The stage factory of a wrapper whose run is `body(io, restarts, factory)`.
pub(crate) fn restart_stage<F, B>(
    settings: RestartSettings,
    on: RestartOn,
    factory: F,
    body: B,
) -> impl Fn(&StageInfo) -> Result<(RestartLogic, ()), StageError> + Send + Sync + 'static
where
    F: Send + Sync + 'static,
    B: Fn(AsyncIo, Restarts, Arc<F>) -> BoxFuture<'static, Result<(), StageError>>
        + Copy
        + Send
        + Sync
        + 'static,
{
    let factory = Arc::new(factory);
    move |_info| {
        let factory = Arc::clone(&factory);
        let settings = settings.clone();
        let run: Box<dyn FnOnce(AsyncIo) -> BoxFuture<'static, _> + Send> =
            Box::new(move |io: AsyncIo| {
                let restarts = Restarts::new(&io, settings, on);
                body(io, restarts, factory)
            });
        Ok((AsyncFn(run), ()))
    }
}

/// The restart bookkeeping of one run of a wrapper stage.
pub(crate) struct Restarts {
    backoff: Backoff,
    clock: Arc<dyn Clock>,
    path: Arc<str>,
    on: RestartOn,
}

impl Restarts {
    fn new(io: &AsyncIo, settings: RestartSettings, on: RestartOn) -> Self {
        let clock = Arc::clone(&io.clock);
        Self {
            backoff: Backoff::new(settings, clock.now()),
            clock,
            path: Arc::from(io.info.path.as_str()),
            on,
        }
    }

    /// The wrapper stage's path.
    pub(crate) fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// A fresh blueprint from `factory`; its error names the wrapper stage.
    pub(crate) async fn make<X, Fut>(&self, factory: &impl Fn() -> Fut) -> Result<X, StageError>
    where
        Fut: Future<Output = Result<X, StageError>>,
    {
        factory().await.map_err(|e| e.with_stage(&self.path))
    }

    /// An incarnation (a `what`) ended with `ended`: `Some` ends the wrapper with that result
    /// (no restart left, a completion not followed by a restart, or `closed` became ready during
    /// the backoff); `None` once the backoff passed and the next incarnation is to start.
    pub(crate) async fn after(
        &mut self,
        what: &str,
        ended: Result<(), StageError>,
        closed: impl FnMut(&mut Context<'_>) -> Poll<()>,
    ) -> Option<Result<(), StageError>> {
        let exhausted = self.backoff.exhausted(self.clock.now());
        match ended {
            Ok(()) if self.on == RestartOn::Failures || exhausted => return Some(Ok(())),
            Err(e) if exhausted => return Some(Err(e)),
            Ok(()) => tracing::debug!(stage = %self.path, "{what} ended, restarting"),
            Err(e) => tracing::debug!(stage = %self.path, error = %e, "{what} failed, restarting"),
        }
        let delay = self.backoff.next_delay();
        if !wait_backoff(&*self.clock, delay, closed).await {
            return Some(Ok(()));
        }
        self.backoff.started(self.clock.now());
        None
    }
}

/// Hands the current incarnation as much of `held` as its input takes now and keeps the rest,
/// so rows taken from upstream but not yet handed over go to the next incarnation when this one
/// ends. Ready once rows moved, pending while the input has no room, `Err` once it is gone.
pub(crate) fn poll_feed<T: Send + 'static>(
    held: &mut Vec<T>,
    to: &mut Output<T>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Cancelled>> {
    match to.poll_demand(cx) {
        Poll::Ready(Ok(n)) => {
            let rest = held.split_off(n.min(held.len()));
            to.push(std::mem::replace(held, rest));
            // The room is there: this sends without waiting (what a router cannot place yet
            // stays in the output, handed over).
            match to.poll_flush(cx, true) {
                Poll::Ready(Err(c)) => Poll::Ready(Err(c)),
                _ => Poll::Ready(Ok(())),
            }
        }
        other => other.map(|r| r.map(|_| ())),
    }
}
