//! Operations hooks: a cloneable [`RunView`] of a running graph (metrics, plan, cancel,
//! savepoint) and process-wide [`RunObserver`]s told about every run that starts, so a metrics
//! endpoint or web UI sees the runs of a process whichever API (Rust or Python) started them.

use crate::checkpoint::{CheckpointError, Checkpoints};
use crate::metrics::{MetricsEntry, StageMetricsSnapshot};
use crate::plan::PhysicalPlan;
use crate::shared::RunShared;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, SystemTime};
use weir_graph::StageError;

pub use crate::checkpoint::{CheckpointRecord, CheckpointStatus, CheckpointTotals};
pub use crate::errlog::ERRORS_KEPT;
pub use crate::stall::{DEFAULT_STALL_THRESHOLD, Stall};

/// One supervised failure or dead letter of a run ([`RunView::recent_errors`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    /// Path of the stage that failed (`name#position`).
    pub stage: String,
    /// Its subtask.
    pub subtask: usize,
    /// The error's text.
    pub error: String,
    /// The element it failed on, rendered, when known.
    pub element: Option<String>,
    /// When it happened (Unix milliseconds).
    pub at_ms: u64,
    /// Whether the element was dropped (Resume or Restart): a dead letter.
    pub dead_letter: bool,
}

/// Told about every run materialized in this process after it started.
pub trait RunObserver: Send + Sync {
    /// A run started; `run` stays valid (and cheap to clone) after the run ends.
    fn run_started(&self, run: RunView);
}

fn observers() -> &'static RwLock<Vec<Arc<dyn RunObserver>>> {
    static OBSERVERS: OnceLock<RwLock<Vec<Arc<dyn RunObserver>>>> = OnceLock::new();
    OBSERVERS.get_or_init(|| RwLock::new(Vec::new()))
}

/// Registers `observer` for every run materialized from now on in this process.
pub fn add_observer(observer: Arc<dyn RunObserver>) {
    if let Ok(mut v) = observers().write() {
        v.push(observer);
    }
}

/// Unregisters `observer` (compared by pointer); returns whether it was registered.
pub fn remove_observer(observer: &Arc<dyn RunObserver>) -> bool {
    let Ok(mut v) = observers().write() else {
        return false;
    };
    let before = v.len();
    v.retain(|o| !Arc::ptr_eq(o, observer));
    v.len() != before
}

/// Whether any observer is registered (materialize skips building a view otherwise).
pub(crate) fn any_observer() -> bool {
    observers().read().is_ok_and(|v| !v.is_empty())
}

/// Tells every observer about `view`.
pub(crate) fn notify(view: &RunView) {
    let list: Vec<Arc<dyn RunObserver>> = observers().read().map(|v| v.clone()).unwrap_or_default();
    for o in list {
        o.run_started(view.clone());
    }
}

/// A process-unique run number.
pub(crate) fn next_run_id() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How a run stands now.
#[derive(Debug, Clone)]
pub enum RunState {
    /// Some task of the run is alive and nothing failed or cancelled it.
    Running,
    /// Every task ended without a failure or cancellation.
    Finished,
    /// The run was cancelled.
    Cancelled,
    /// A stage failed the run (the error names the stage).
    Failed(StageError),
}

/// A cloneable view of a run for operations tooling: never cancels the run when dropped.
#[derive(Clone)]
pub struct RunView {
    shared: Arc<RunShared>,
    started: SystemTime,
    plan: Option<Arc<PhysicalPlan>>,
}

impl std::fmt::Debug for RunView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunView")
            .field("id", &self.shared.id)
            .field("name", &self.shared.name)
            .finish()
    }
}

impl RunView {
    pub(crate) fn new(shared: Arc<RunShared>, plan: Option<Arc<PhysicalPlan>>) -> Self {
        Self {
            started: shared.started,
            shared,
            plan,
        }
    }

    /// The run's process-unique number.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The run's name (`Materializer::with_name`, else `run-<id>`).
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// When the run started.
    pub fn started_at(&self) -> SystemTime {
        self.started
    }

    /// The run's physical plan (islands, channel edges, parallelism), when it was kept.
    pub fn plan(&self) -> Option<&PhysicalPlan> {
        self.plan.as_deref()
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

    /// How the run stands now.
    pub fn state(&self) -> RunState {
        if let Some(e) = self.shared.failure.lock().ok().and_then(|f| f.clone()) {
            return RunState::Failed(e);
        }
        let cancelled_live = self.shared.cancelled_live.load(Ordering::Acquire);
        if self.is_finished() {
            return if cancelled_live {
                RunState::Cancelled
            } else {
                RunState::Finished
            };
        }
        if self.shared.cancel.is_cancelled() {
            return RunState::Cancelled;
        }
        RunState::Running
    }

    /// Whether every task of the run has ended.
    pub fn is_finished(&self) -> bool {
        let done = self.shared.tracker.is_empty();
        if done {
            // A detached run has no handle to let go of its services when it ends.
            self.shared.release_services();
        }
        done
    }

    /// Number of tasks of the run still alive.
    pub fn live_tasks(&self) -> usize {
        self.shared.tracker.len()
    }

    /// Cancels the run, as [`crate::RunHandle::cancel`] does.
    pub fn cancel(&self) {
        self.shared.cancel_run();
    }

    /// The run's checkpoints, when it checkpoints.
    pub fn checkpoints(&self) -> Option<Arc<Checkpoints>> {
        self.shared.checkpoints.as_ref().map(|c| c.handle())
    }

    /// Takes a savepoint into `dir`, as [`crate::RunHandle::savepoint`] does.
    pub async fn savepoint(
        &self,
        dir: impl Into<std::path::PathBuf>,
    ) -> Result<std::path::PathBuf, CheckpointError> {
        let Some(c) = &self.shared.checkpoints else {
            return Err(CheckpointError::Savepoint {
                id: 0,
                reason: "the run was materialized without checkpoints".into(),
            });
        };
        c.savepoint(&self.shared, dir.into()).await
    }

    /// The run's newest supervised failures and dead letters (at most [`ERRORS_KEPT`]),
    /// oldest first.
    pub fn recent_errors(&self) -> Vec<ErrorRecord> {
        self.shared.errors.records()
    }

    /// The stage holding the run up, when its throughput dropped to zero while input waits
    /// for longer than the materializer's stall threshold (samples the run now).
    pub fn stall(&self) -> Option<Stall> {
        self.shared.stall.sample(&self.shared)
    }

    /// How far the event-time watermark at the run's sinks (the lowest over the sinks that
    /// received one) trails the run's clock (its start time plus the clock's time); `None`
    /// before a sink received a watermark.
    pub fn watermark_lag(&self) -> Option<Duration> {
        let wm = self.shared.metrics.lock().ok().and_then(|v| {
            v.iter()
                .filter(|e| e.sink)
                .filter_map(|e| e.m.watermark())
                .min()
        })?;
        let now = crate::errlog::unix_ms(self.started + self.shared.clock.now());
        let now = i64::try_from(now).unwrap_or(i64::MAX);
        Some(Duration::from_millis(now.saturating_sub(wm).max(0) as u64))
    }

    /// The tokio runtime the run's tasks live on.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.shared.handle
    }
}
