//! Materialization: blueprint -> physical plan -> channels -> logics -> spawned islands, and the
//! [`RunHandle`] that owns every task of a run.

use crate::EngineError;
use crate::clock::SystemClock;
use crate::executor::IslandExecutor;
use crate::metrics::{MetricsEntry, StageMetricsSnapshot};
use crate::plan::{PhysicalPlan, PlanConfig, plan};
use crate::watch::IslandProbe;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use weir_graph::{Clock, RunnableGraph, Sink, Source, StageError};
use weir_graph::{ExecutorId, Services};

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 1024;
/// Default channel capacity in rows at the default batch size (a channel holds
/// [`crate::plan::BUFFER_BATCHES`] batches).
pub const DEFAULT_BUFFER_ROWS: usize = crate::plan::BUFFER_BATCHES * DEFAULT_BATCH_SIZE;
/// Default channel capacity in bytes.
pub const DEFAULT_BUFFER_BYTES: usize = 64 << 20;
/// Default time a cancelled run gives its stages to stop before `wait()` reports the stuck ones.
pub const DEFAULT_CANCEL_GRACE: Duration = Duration::from_secs(3);

/// Turns blueprints into running graphs; holds the run settings (clock, batch size, buffers).
#[derive(Clone)]
pub struct Materializer {
    clock: Option<Arc<dyn Clock>>,
    batch_size: usize,
    buffer_rows: Option<usize>,
    handle: Option<tokio::runtime::Handle>,
    grace: Duration,
    /// The first out-of-range setting, reported by `materialize`.
    invalid: Option<String>,
    executors: HashMap<ExecutorId, Arc<dyn IslandExecutor>>,
    default_executor: ExecutorId,
    services: Services,
}

impl std::fmt::Debug for Materializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materializer")
            .field("batch_size", &self.batch_size)
            .field("buffer_rows", &self.buffer_rows)
            .field("cancel_grace", &self.grace)
            .finish()
    }
}

impl Default for Materializer {
    fn default() -> Self {
        Self::new()
    }
}

impl Materializer {
    /// A materializer with the real clock and default batch and buffer sizes.
    pub fn new() -> Self {
        Self {
            clock: None,
            batch_size: DEFAULT_BATCH_SIZE,
            buffer_rows: None,
            handle: None,
            grace: DEFAULT_CANCEL_GRACE,
            invalid: None,
            executors: HashMap::new(),
            default_executor: ExecutorId::TOKIO,
            services: Services::new(),
        }
    }
    /// Registers `executor` under `id`: islands of stages set `on_executor(id)` (or all of
    /// them, with [`Materializer::with_default_executor`]) run there instead of on tokio.
    pub fn with_executor(mut self, id: ExecutorId, executor: Arc<dyn IslandExecutor>) -> Self {
        self.executors.insert(id, executor);
        self
    }
    /// Runs the islands of stages that set no executor on `id` (registered with
    /// [`Materializer::with_executor`], or [`ExecutorId::TOKIO`]).
    pub fn with_default_executor(mut self, id: ExecutorId) -> Self {
        self.default_executor = id;
        self
    }
    /// Makes `service` available to every stage factory of the run (`StageInfo::services`).
    pub fn with_service<T: std::any::Any + Send + Sync>(mut self, service: Arc<T>) -> Self {
        self.services = self.services.with(service);
        self
    }
    /// Uses `clock` for every stage (e.g. a [`crate::VirtualClock`] in tests).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = Some(clock);
        self
    }
    /// Sets the default rows per batch (0 makes `materialize` fail with
    /// [`EngineError::InvalidSetting`]).
    pub fn with_batch_size(mut self, rows: usize) -> Self {
        self.reject(weir_graph::at_least("batch_size", rows, 1));
        self.batch_size = rows.max(1);
        self
    }
    /// Sets the default channel capacity in rows (otherwise eight batches of the larger batch
    /// size of the channel's two stages; 0 makes `materialize` fail with
    /// [`EngineError::InvalidSetting`]).
    pub fn with_buffer_rows(mut self, rows: usize) -> Self {
        self.reject(weir_graph::at_least("buffer_rows", rows, 1));
        self.buffer_rows = Some(rows.max(1));
        self
    }
    fn reject(&mut self, reason: Option<String>) {
        if self.invalid.is_none() {
            self.invalid = reason;
        }
    }
    /// How long a cancelled (or failed) run waits for its stages to stop before `wait()` gives
    /// up on the ones stuck in a blocking call and returns a timeout error naming them
    /// (default [`DEFAULT_CANCEL_GRACE`]).
    pub fn with_cancel_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }
    /// Runs on this runtime instead of the current one.
    pub fn with_runtime(mut self, handle: tokio::runtime::Handle) -> Self {
        self.handle = Some(handle);
        self
    }

    /// The physical plan the graph would run with.
    pub fn plan<M: Send + 'static>(
        &self,
        graph: &RunnableGraph<M>,
    ) -> Result<PhysicalPlan, EngineError> {
        if let Some(reason) = &self.invalid {
            return Err(EngineError::InvalidSetting(reason.clone()));
        }
        Ok(plan(Arc::clone(graph.module()), self.plan_config())?)
    }

    fn plan_config(&self) -> PlanConfig {
        PlanConfig {
            buffer_rows: self.buffer_rows,
            batch_size: self.batch_size,
            executor: self.default_executor,
        }
    }

    /// Starts the graph; returns its materialized value and the handle owning the run.
    pub fn materialize<M: Send + 'static>(
        &self,
        graph: &RunnableGraph<M>,
    ) -> Result<(M, RunHandle), EngineError> {
        if let Some(reason) = &self.invalid {
            return Err(EngineError::InvalidSetting(reason.clone()));
        }
        let handle = match &self.handle {
            Some(h) => h.clone(),
            None => tokio::runtime::Handle::try_current().map_err(|_| EngineError::NoRuntime)?,
        };
        let clock: Arc<dyn Clock> = match &self.clock {
            Some(c) => Arc::clone(c),
            None => Arc::new(SystemClock::new()),
        };
        let cancel = CancellationToken::new();
        let shared = Arc::new(RunShared {
            producers: cancel.child_token(),
            cancel,
            tracker: TaskTracker::new(),
            aborts: Mutex::new(Vec::new()),
            failure: Mutex::new(None),
            metrics: Mutex::new(Vec::new()),
            clock,
            batch_size: self.batch_size,
            cfg: self.plan_config(),
            handle,
            islands: std::sync::atomic::AtomicUsize::new(0),
            probes: Mutex::new(Vec::new()),
            probes_prune_at: std::sync::atomic::AtomicUsize::new(PROBES_PRUNE_MIN),
            grace: self.grace,
            sinks_left: std::sync::atomic::AtomicUsize::new(0),
            sinks_done: CancellationToken::new(),
            executors: self.executors.clone(),
            services: self.services.clone(),
            injectors: crate::control::Injectors::default(),
        });
        let mat = crate::launch::launch(&shared, Arc::clone(graph.module()), vec![], vec![])?;
        let mat = RunnableGraph::<M>::downcast_mat(mat)?;
        Ok((
            mat,
            RunHandle {
                shared,
                detached: false,
            },
        ))
    }
}

pub(crate) struct RunShared {
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
    pub(crate) services: Services,
    /// The source islands that [`RunHandle::inject`] reaches.
    pub(crate) injectors: crate::control::Injectors,
}

/// Stops a task of the run wherever it runs.
pub(crate) enum Abort {
    /// A task on tokio.
    Tokio(tokio::task::AbortHandle),
    /// A task on another executor.
    Other(futures::future::AbortHandle),
}

impl Abort {
    fn abort(&self) {
        match self {
            Self::Tokio(h) => h.abort(),
            Self::Other(h) => h.abort(),
        }
    }
}

/// `probes` is first pruned at this length.
pub(crate) const PROBES_PRUNE_MIN: usize = 256;

impl RunShared {
    /// The one place the engine spawns tasks: tracked by the run, aborted with it.
    pub(crate) fn spawn(
        &self,
        executor: ExecutorId,
        name: String,
        fut: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let span = tracing::debug_span!("island", name = %name);
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

/// Owns a running graph: wait for it, cancel it, read its metrics. Dropping it cancels the run
/// (unless detached); no task of the run outlives it.
pub struct RunHandle {
    shared: Arc<RunShared>,
    detached: bool,
}

impl std::fmt::Debug for RunHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

impl RunHandle {
    /// Waits until every task of the run has ended; `Err` if a sink saw a failure or the run was
    /// cancelled. Always returns: once the run is cancelled (or failed), stages still stuck in a
    /// blocking call after the cancel grace are reported (a `tracing` warning and a
    /// [`weir_graph::ErrorKind::Timeout`] error naming the stage and its thread) and left behind;
    /// once every sink has finished, stages upstream that are stuck after the grace are reported
    /// (a warning) and left behind, and the run's result is returned.
    pub async fn wait(&self) -> Result<(), StageError> {
        let sh = &self.shared;
        sh.tracker.close();
        tokio::select! {
            biased;
            () = sh.tracker.wait() => {}
            () = sh.producers.cancelled() => {
                if !self.ends_within_grace().await && let Some(e) = self.stuck_error() {
                    return Err(e);
                }
            }
            () = sh.sinks_done.cancelled() => {
                if !self.ends_within_grace().await {
                    // Warns about each stuck stage; the sinks' results stand.
                    let _ = self.stuck_error();
                }
            }
        }
        if let Some(e) = self.shared.failure.lock().ok().and_then(|f| f.clone()) {
            return Err(e);
        }
        if self.shared.cancel.is_cancelled() {
            return Err(StageError::cancelled("run was cancelled"));
        }
        Ok(())
    }

    /// Whether every task ends within the cancel grace.
    async fn ends_within_grace(&self) -> bool {
        let sh = &self.shared;
        // The run's own timer, so a wait polled outside its runtime works too.
        let grace = {
            let _rt = sh.handle.enter();
            tokio::time::sleep(sh.grace)
        };
        tokio::select! {
            biased;
            () = sh.tracker.wait() => true,
            () = grace => false,
        }
    }

    /// The error naming the islands that did not stop within the grace (each warned about).
    fn stuck_error(&self) -> Option<StageError> {
        let sh = &self.shared;
        let stuck: Vec<Arc<IslandProbe>> = sh
            .probes
            .lock()
            .map(|v| v.iter().filter(|p| !p.is_done()).cloned().collect())
            .unwrap_or_default();
        let first = stuck.first()?;
        for p in &stuck {
            tracing::warn!(
                stage = p.stage(),
                island = %p.name,
                thread = %p.thread(),
                grace = ?sh.grace,
                "stage did not stop after cancellation: stuck in a blocking call; left running"
            );
        }
        let cause = sh
            .failure
            .lock()
            .ok()
            .and_then(|f| {
                f.as_ref()
                    .map(|e| format!(" (the run stopped because: {e})"))
            })
            .unwrap_or_default();
        let others = if stuck.len() > 1 {
            let rest: Vec<&str> = stuck[1..].iter().map(|p| p.stage()).collect();
            format!("; also stuck: {}", rest.join(", "))
        } else {
            String::new()
        };
        Some(
            StageError::timeout(format!(
                "did not stop within {:?} of cancellation: stuck in a blocking call on thread \
                 {} ({}){others}{cause}",
                sh.grace,
                first.thread(),
                first.name
            ))
            .with_stage(first.stage()),
        )
    }

    /// Injects `control` at every source island still running: each emits it in band after
    /// the batch it is producing, and it travels through the whole graph (aligned at every
    /// stage with several inputs) to reach each sink input once. Returns how many source
    /// islands it reached.
    pub fn inject(&self, control: weir_graph::Control) -> usize {
        self.shared.injectors.inject(&control)
    }

    /// Cancels the run: every island stops at its next await point and runs its stop hooks.
    pub fn cancel(&self) {
        self.shared.cancel.cancel();
    }

    /// Whether every task of the run has ended.
    pub fn is_finished(&self) -> bool {
        self.shared.tracker.is_empty()
    }

    /// Number of tasks of the run still alive.
    pub fn live_tasks(&self) -> usize {
        self.shared.tracker.len()
    }

    /// A snapshot of every stage subtask's metrics.
    pub fn metrics(&self) -> Vec<StageMetricsSnapshot> {
        self.shared
            .metrics
            .lock()
            .map(|v| v.iter().map(MetricsEntry::snapshot).collect())
            .unwrap_or_default()
    }

    /// Lets the run go on after this handle is dropped.
    pub fn detach(mut self) {
        self.detached = true;
    }
}

impl Drop for RunHandle {
    fn drop(&mut self) {
        if self.detached {
            return;
        }
        self.shared.cancel.cancel();
        if let Ok(a) = self.shared.aborts.lock() {
            for h in a.iter() {
                h.abort();
            }
        }
    }
}

/// Running a closed graph.
pub trait RunnableExt<M> {
    /// Starts the graph on the current tokio runtime and returns its materialized value; the run
    /// goes on until it completes.
    fn run(&self) -> Result<M, EngineError>;
    /// Starts the graph and returns its materialized value and a handle owning the run.
    fn start(&self) -> Result<(M, RunHandle), EngineError>;
    /// Starts the graph with the given materializer, detached.
    fn run_on(&self, m: &Materializer) -> Result<M, EngineError>;
}

impl<M: Send + 'static> RunnableExt<M> for RunnableGraph<M> {
    fn run(&self) -> Result<M, EngineError> {
        self.run_on(&Materializer::new())
    }
    fn start(&self) -> Result<(M, RunHandle), EngineError> {
        Materializer::new().materialize(self)
    }
    fn run_on(&self, m: &Materializer) -> Result<M, EngineError> {
        let (mat, h) = m.materialize(self)?;
        h.detach();
        Ok(mat)
    }
}

/// Running a source into a sink.
pub trait SourceRunExt<T> {
    /// Connects `sink` and runs, returning the sink's materialized value.
    fn run_with<M2: Send + 'static>(self, sink: Sink<T, M2>) -> Result<M2, EngineError>;
    /// Like [`SourceRunExt::run_with`] with a given materializer.
    fn run_with_on<M2: Send + 'static>(
        self,
        sink: Sink<T, M2>,
        m: &Materializer,
    ) -> Result<M2, EngineError>;
}

impl<T: Send + 'static, M: Send + 'static> SourceRunExt<T> for Source<T, M> {
    fn run_with<M2: Send + 'static>(self, sink: Sink<T, M2>) -> Result<M2, EngineError> {
        self.to_sink_mat(sink).run()
    }
    fn run_with_on<M2: Send + 'static>(
        self,
        sink: Sink<T, M2>,
        m: &Materializer,
    ) -> Result<M2, EngineError> {
        self.to_sink_mat(sink).run_on(m)
    }
}
