//! Materialization: blueprint -> physical plan -> channels -> logics -> spawned islands, and the
//! [`RunHandle`] that owns every task of a run.

use crate::EngineError;
use crate::clock::SystemClock;
use crate::defaults::{DEFAULT_BATCH_SIZE, DEFAULT_BUFFER_BYTES, DEFAULT_CANCEL_GRACE};
use crate::executor::IslandExecutor;
use crate::metrics::{MetricsEntry, StageMetricsSnapshot};
use crate::plan::{PhysicalPlan, PlanConfig, plan};
use crate::shared::{PROBES_PRUNE_MIN, RunShared};
use crate::watch::IslandProbe;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weir_graph::{Clock, RunnableGraph, Sink, Source, StageError};
use weir_graph::{ExecutorId, Services};

/// Turns blueprints into running graphs; holds the run settings (clock, batch size, buffers).
#[derive(Clone)]
pub struct Materializer {
    clock: Option<Arc<dyn Clock>>,
    batch_size: usize,
    buffer_rows: Option<usize>,
    buffer_bytes: usize,
    parallelism: usize,
    handle: Option<tokio::runtime::Handle>,
    grace: Duration,
    /// The first out-of-range setting, reported by `materialize`.
    invalid: Option<String>,
    executors: HashMap<ExecutorId, Arc<dyn IslandExecutor>>,
    default_executor: ExecutorId,
    services: Services,
    checkpoints: Option<crate::checkpoint::CheckpointConfig>,
    name: Option<Arc<str>>,
    /// Stall threshold (`None`: no stall detection).
    stall: Option<Duration>,
}

impl std::fmt::Debug for Materializer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Materializer")
            .field("batch_size", &self.batch_size)
            .field("buffer_rows", &self.buffer_rows)
            .field("buffer_bytes", &self.buffer_bytes)
            .field("parallelism", &self.parallelism)
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
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            parallelism: 1,
            handle: None,
            grace: DEFAULT_CANCEL_GRACE,
            invalid: None,
            executors: HashMap::new(),
            default_executor: ExecutorId::TOKIO,
            services: Services::new(),
            checkpoints: None,
            name: None,
            stall: Some(crate::stall::DEFAULT_STALL_THRESHOLD),
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
    /// Checkpoints the run as `config` says, and restores it from the latest complete
    /// checkpoint in `config.dir` when there is one.
    pub fn with_checkpoints(mut self, config: crate::checkpoint::CheckpointConfig) -> Self {
        self.checkpoints = Some(config);
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
    /// Sets the capacity in bytes of every channel (default [`DEFAULT_BUFFER_BYTES`]; 0 makes
    /// `materialize` fail with [`EngineError::InvalidSetting`]).
    pub fn with_buffer_bytes(mut self, bytes: usize) -> Self {
        self.reject(weir_graph::at_least("buffer_bytes", bytes, 1));
        self.buffer_bytes = bytes.max(1);
        self
    }
    /// Sets the default parallelism of the stages that take the run's
    /// ([`weir_graph::Node::inherits_parallelism`]: `map`, `filter`, `filter_map`, `flat_map`,
    /// `range`) and set none of their own; other stages keep 1 unless told (default 1; 0, or
    /// more than [`weir_graph::MAX_KEY_GROUPS`], makes `materialize` fail with
    /// [`EngineError::InvalidSetting`]).
    pub fn with_parallelism(mut self, n: usize) -> Self {
        self.reject(weir_graph::at_least("parallelism", n, 1));
        if n > weir_graph::MAX_KEY_GROUPS {
            self.reject(Some(format!(
                "parallelism must be at most {} (the key groups), got {n}",
                weir_graph::MAX_KEY_GROUPS
            )));
        }
        self.parallelism = n.clamp(1, weir_graph::MAX_KEY_GROUPS);
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
            buffer_bytes: self.buffer_bytes,
            parallelism: self.parallelism,
        }
    }

    /// Reports a run as stalled (a `tracing` warning naming the bottleneck stage, and
    /// `RunView::stall`) once it made no progress for `threshold` while input waits (default
    /// [`crate::observe::DEFAULT_STALL_THRESHOLD`]).
    pub fn with_stall_threshold(mut self, threshold: Duration) -> Self {
        self.stall = Some(threshold);
        self
    }

    /// Turns stall detection off.
    pub fn without_stall_detection(mut self) -> Self {
        self.stall = None;
        self
    }

    /// Names the runs this materializer starts (shown by operations tooling).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(Arc::from(name.into()));
        self
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
        let checkpoints = match &self.checkpoints {
            Some(cfg) => Some(Arc::new(crate::checkpoint::Coordinator::open(cfg.clone())?)),
            None => None,
        };
        let services = match &checkpoints {
            Some(c) => self.services.clone().with(c.handle()),
            None => self.services.clone(),
        };
        // The values stages publish about themselves (read by the handle and `/metrics`).
        let gauges = Arc::new(weir_graph::StageGauges::default());
        let services = services.with(Arc::clone(&gauges));
        let cancel = CancellationToken::new();
        let id = crate::observe::next_run_id();
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| Arc::from(format!("run-{id}")));
        // `job`, not `name`: JSON log lines give a span's own name under `name`.
        let span = tracing::info_span!("run", id, job = %name);
        let shared = Arc::new(RunShared {
            id,
            name,
            started: std::time::SystemTime::now(),
            cancelled_live: std::sync::atomic::AtomicBool::new(false),
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
            services: Mutex::new(services),
            gauges,
            injectors: crate::control::Injectors::default(),
            checkpoints,
            errors: Arc::default(),
            stall: crate::stall::StallWatch::new(self.stall),
            span: Mutex::new(Some(span)),
        });
        let mat = crate::launch::launch(&shared, Arc::clone(graph.module()), vec![], vec![])?;
        let mat = RunnableGraph::<M>::downcast_mat(mat)?;
        if let Some(c) = &shared.checkpoints {
            if let Err(e) = c.check_restored() {
                shared.cancel.cancel();
                return Err(e.into());
            }
            let first = c.first_barrier(&shared.clock);
            let task = Arc::clone(c).run(Arc::clone(&shared), first);
            if shared.clock.tracks_tasks() {
                shared.handle.spawn(shared.clock.track(Box::pin(task)));
            } else {
                shared.handle.spawn(task);
            }
        }
        watch_stalls(&shared);
        if crate::observe::any_observer() {
            let plan = plan(Arc::clone(graph.module()), shared.cfg)
                .ok()
                .map(Arc::new);
            crate::observe::notify(&crate::observe::RunView::new(Arc::clone(&shared), plan));
        }
        Ok((
            mat,
            RunHandle {
                shared,
                detached: false,
            },
        ))
    }
}

/// Samples the run for stalls every period of its detector until it ends (under the system
/// clock; a virtual clock's run is sampled when `RunView::stall` is read).
fn watch_stalls(shared: &Arc<RunShared>) {
    let Some(period) = shared.stall.period() else {
        return;
    };
    if shared.clock.tracks_tasks() {
        return;
    }
    let run = Arc::downgrade(shared);
    let (cancel, done) = (shared.cancel.clone(), shared.sinks_done.clone());
    shared.handle.spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => break,
                _ = done.cancelled() => break,
                () = tokio::time::sleep(period) => {}
            }
            let Some(run) = run.upgrade() else { break };
            if run.tracker.is_empty() {
                break;
            }
            run.stall.sample(&run);
        }
    });
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

    /// The run's checkpoints, when it was materialized `with_checkpoints`.
    pub fn checkpoints(&self) -> Option<Arc<crate::checkpoint::Checkpoints>> {
        self.shared.checkpoints.as_ref().map(|c| c.handle())
    }

    /// Takes a savepoint now: triggers a barrier and, once every stage acknowledged it, writes
    /// a self-contained checkpoint into `dir` (never removed by retention; a run restores it
    /// with `CheckpointConfig::restore_from`). Returns the savepoint's directory.
    pub async fn savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, crate::checkpoint::CheckpointError> {
        let Some(c) = &self.shared.checkpoints else {
            return Err(crate::checkpoint::CheckpointError::Savepoint {
                id: 0,
                reason: "the run was materialized without checkpoints".into(),
            });
        };
        c.savepoint(&self.shared, dir.into()).await
    }

    /// Cancels the run: every island stops at its next await point and runs its stop hooks.
    pub fn cancel(&self) {
        self.shared.cancel_run();
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

    /// What the run's stages publish about themselves now ([`weir_graph::StageGauges`]).
    pub fn stage_gauges(&self) -> Vec<weir_graph::GaugeSample> {
        self.shared.gauges.samples()
    }

    /// A cloneable view of the run for operations tooling (never cancels it when dropped).
    pub fn view(&self) -> crate::observe::RunView {
        crate::observe::RunView::new(Arc::clone(&self.shared), None)
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
        self.shared.cancel_run();
        self.shared.release_services();
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
