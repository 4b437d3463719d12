//! The state every island of a run shares: cancellation, the task tracker, the failure, metrics,
//! the clock and the plan settings.

use crate::EngineError;
use crate::executor::IslandExecutor;
use crate::metrics::MetricsEntry;
use crate::plan::PhysicalPlan;
use crate::plan::PlanConfig;
use crate::watch::IslandProbe;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use weir_graph::{Clock, StageError};
use weir_graph::{ExecutorId, Services};

/// What every island of a run shares.
pub(crate) struct RunShared {
    /// The run's process-unique number.
    pub(crate) id: u64,
    /// The run's name.
    pub(crate) name: Arc<str>,
    /// When the run started.
    pub(crate) started: std::time::SystemTime,
    /// Whether the run was cancelled while some task was alive (a handle dropped after the run
    /// ended cancels nothing that ran).
    pub(crate) cancelled_live: std::sync::atomic::AtomicBool,
    /// Cancels every island: the user cancelled, or the handle was dropped.
    pub(crate) cancel: CancellationToken,
    /// Cancels every island but the sinks fed by channels (a child of `cancel`): a failure that
    /// reached a sink stops the run's producers, and the other sinks still take what was
    /// already sent to them (elements ahead of an in-band failure are never lost) before they
    /// see their inputs end and report the run's failure.
    pub(crate) producers: CancellationToken,
    pub(crate) tracker: TaskTracker,
    pub(crate) aborts: Mutex<Vec<Abort>>,
    pub(crate) failure: Mutex<Option<StageError>>,
    pub(crate) metrics: Mutex<Vec<MetricsEntry>>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) batch_size: usize,
    pub(crate) cfg: PlanConfig,
    pub(crate) handle: tokio::runtime::Handle,
    pub(crate) islands: std::sync::atomic::AtomicUsize,
    /// One per island subtask spawned (ended ones pruned now and then), to name what is stuck
    /// when the run cannot stop.
    pub(crate) probes: Mutex<Vec<Arc<IslandProbe>>>,
    /// Length of `probes` at which the ended ones are dropped next.
    pub(crate) probes_prune_at: std::sync::atomic::AtomicUsize,
    pub(crate) grace: Duration,
    /// Islands ending in a sink still running, and the token cancelled when none is left.
    pub(crate) sinks_left: std::sync::atomic::AtomicUsize,
    pub(crate) sinks_done: CancellationToken,
    /// Executors other than tokio, by id.
    pub(crate) executors: HashMap<ExecutorId, Arc<dyn IslandExecutor>>,
    /// The run's services, given to every stage.
    pub(crate) services: Mutex<Services>,
    /// The values stages publish about themselves (also one of `services`).
    pub(crate) gauges: Arc<weir_graph::StageGauges>,
    /// The source islands that [`RunHandle::inject`] reaches.
    pub(crate) injectors: crate::control::Injectors,
    /// The checkpoint coordinator, when the run checkpoints.
    pub(crate) checkpoints: Option<Arc<crate::checkpoint::Coordinator>>,
    /// The run's newest supervised failures and dead letters.
    pub(crate) errors: Arc<crate::errlog::ErrorLog>,
    /// The run's stall detector.
    pub(crate) stall: crate::stall::StallWatch,
    /// The run's tracing span (name, id): every island's span is a child of it; taken (so
    /// closed, and exported) once the run ended or its owner let go.
    pub(crate) span: Mutex<Option<tracing::Span>>,
}

/// Stops a task of the run wherever it runs.
pub(crate) enum Abort {
    /// A task on tokio.
    Tokio(tokio::task::AbortHandle),
    /// A task on another executor.
    Other(futures::future::AbortHandle),
}

impl Abort {
    /// Stops the task.
    pub(crate) fn abort(&self) {
        match self {
            Self::Tokio(h) => h.abort(),
            Self::Other(h) => h.abort(),
        }
    }
}

/// `probes` is first pruned at this length.
pub(crate) const PROBES_PRUNE_MIN: usize = 256;

impl RunShared {
    /// The run's services (none once the run ended and let go of them).
    pub(crate) fn services(&self) -> Services {
        self.services.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Lets go of the run's services (state backends, journals) so that views of an ended run
    /// kept by operations tooling hold no resources; stages hold their own clones while alive.
    /// The run's span is closed too (islands still running keep their own children of it).
    pub(crate) fn release_services(&self) {
        if let Ok(mut s) = self.services.lock() {
            *s = Services::default();
        }
        if let Ok(mut s) = self.span.lock() {
            s.take();
        }
    }

    /// The run's span (a disabled one once the run let go of it).
    pub(crate) fn span(&self) -> tracing::Span {
        self.span
            .lock()
            .ok()
            .and_then(|s| s.clone())
            .unwrap_or_else(tracing::Span::none)
    }

    /// Cancels the run on behalf of its owner, remembering whether anything was still running.
    pub(crate) fn cancel_run(&self) {
        if !self.tracker.is_empty() {
            self.cancelled_live
                .store(true, std::sync::atomic::Ordering::Release);
        }
        self.cancel.cancel();
    }

    /// The one place the engine spawns tasks: tracked by the run, aborted with it.
    pub(crate) fn spawn(
        &self,
        executor: ExecutorId,
        name: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        // Below `debug` the island span is off: the task runs in the run span instead, so its
        // events still name their run.
        let span = match tracing::debug_span!(parent: &self.span(), "island", name = %name) {
            s if s.is_disabled() => self.span(),
            s => s,
        };
        let abort = match self.executors.get(&executor) {
            Some(ex) if executor != ExecutorId::TOKIO => {
                let (fut, h) = futures::future::abortable(fut.instrument(span));
                let fut: futures::future::BoxFuture<'static, ()> =
                    Box::pin(self.tracker.track_future(async move {
                        let _ = fut.await;
                    }));
                let fut = if self.clock.tracks_tasks() {
                    self.clock.track(fut)
                } else {
                    fut
                };
                ex.spawn(&name, fut);
                Abort::Other(h)
            }
            _ => {
                let jh = if self.clock.tracks_tasks() {
                    let task = self.clock.track(Box::pin(fut.instrument(span)));
                    self.tracker.spawn_on(task, &self.handle)
                } else {
                    self.tracker.spawn_on(fut.instrument(span), &self.handle)
                };
                Abort::Tokio(jh.abort_handle())
            }
        };
        if let Ok(mut a) = self.aborts.lock() {
            a.push(abort);
        }
    }

    /// Fails unless every executor the plan names is registered.
    pub(crate) fn check_executors(&self, p: &PhysicalPlan) -> Result<(), EngineError> {
        for isl in &p.islands {
            if isl.executor != ExecutorId::TOKIO && !self.executors.contains_key(&isl.executor) {
                return Err(EngineError::InvalidSetting(format!(
                    "island {} runs on executor '{}', which the materializer does not have",
                    isl.id, isl.executor
                )));
            }
        }
        Ok(())
    }

    /// Counts a sink island of the run as started.
    pub(crate) fn sink_started(&self) {
        self.sinks_left
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }

    /// Counts a sink island as ended; the last one marks every sink done.
    pub(crate) fn sink_ended(&self) {
        if self
            .sinks_left
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.sinks_done.cancel();
        }
    }

    /// Records the run's failure (the first one wins) and stops every other island: a failure
    /// that reached a sink fails the whole run, as in Flink.
    pub(crate) fn record_failure(&self, e: &StageError) {
        if let Ok(mut f) = self.failure.lock()
            && f.is_none()
        {
            *f = Some(e.clone());
        }
        self.producers.cancel();
    }
}
