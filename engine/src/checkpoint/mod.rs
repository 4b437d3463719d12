//! Checkpoints: aligned barrier snapshots of every stage of a run, written to a directory, and
//! restore from the latest complete one when a run starts with the same directory.
//!
//! The coordinator injects `Control::Barrier { id }` at every source of the run's graph each
//! interval on the run's clock; barriers align where inputs meet (the engine's `Aligner`,
//! blocking the inputs that delivered them); every stage snapshots as the barrier passes and
//! acknowledges to the coordinator, which writes the checkpoint once every stage did (see
//! [`store`]). Savepoints are checkpoints written on demand into a directory of their own.

mod commit;
mod coordinator;
pub mod files;
mod manifest;
mod rescale;
pub mod store;

pub use commit::{CheckpointCommit, CommitHook};
pub(crate) use coordinator::{AsyncCheckpoint, Coordinator};
pub(crate) use rescale::{owned, restore_flow, restore_sink, restore_source};
pub use store::CheckpointError;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;
use weir_graph::{CheckpointFailed, StageId};

/// How a run checkpoints: every `interval` on the run's clock, into `dir`, keeping the newest
/// `retain` complete checkpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointConfig {
    /// Time between two barriers.
    pub interval: Duration,
    /// The directory holding one directory per checkpoint.
    pub dir: PathBuf,
    /// How many complete checkpoints are kept.
    pub retain: usize,
    /// A savepoint (or checkpoint directory) to start from when `dir` holds no checkpoint.
    pub restore_from: Option<PathBuf>,
    /// Whether state in the savepoint whose stage is no longer in the graph is ignored (else
    /// it is an error).
    pub allow_unmatched: bool,
    /// How many consecutive checkpoints may fail (a write error such as a full disk, or a
    /// declined alignment) before the run fails; `None`: never (the default).
    pub tolerable_failed: Option<usize>,
    /// Makes a written checkpoint complete only once every participant of a job spread over
    /// processes wrote it (see [`CheckpointCommit`]); `None`: complete once written.
    pub commit: Option<CommitHook>,
    /// Checkpoints newer than this id are discarded when the run starts, so it restores this
    /// one (the job's last globally complete checkpoint) and numbers the next ones after it.
    pub discard_after: Option<u64>,
    /// Numbers the run's checkpoints after this id at least (see [`CheckpointConfig::number_after`]).
    pub number_after: Option<u64>,
    /// The checkpoints of every node of a job that ran on another node count, to start from
    /// when `dir` holds no checkpoint (see [`CheckpointConfig::restore_from_nodes`]).
    pub restore_from_nodes: Option<NodesRestore>,
}

/// A start from one checkpoint of every node of a job that ran on another number of nodes: a
/// cluster job rescaled through a savepoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodesRestore {
    /// Each old node's checkpoint directory (`.../chk-ID`), in node order; all of one id.
    pub parts: Vec<PathBuf>,
    /// This run's node.
    pub node: usize,
    /// The nodes the job runs on now.
    pub nodes: usize,
}

impl CheckpointConfig {
    /// Checkpoints every `interval` into `dir`, keeping the newest 3.
    pub fn new(interval: Duration, dir: impl Into<PathBuf>) -> Self {
        Self {
            interval,
            dir: dir.into(),
            retain: 3,
            restore_from: None,
            allow_unmatched: false,
            tolerable_failed: None,
            commit: None,
            discard_after: None,
            number_after: None,
            restore_from_nodes: None,
        }
    }

    /// Completes each written checkpoint only once `commit` says every participant wrote it
    /// (a job whose stages run in several processes); sinks commit output only then.
    pub fn with_commit(mut self, commit: std::sync::Arc<dyn CheckpointCommit>) -> Self {
        self.commit = Some(CommitHook(commit));
        self
    }

    /// Discards the checkpoints newer than `id` (0: all) when the run starts: it restores
    /// `id` and numbers the next checkpoints from `id + 1`.
    pub fn discard_after(mut self, id: u64) -> Self {
        self.discard_after = Some(id);
        self
    }

    /// Numbers the run's checkpoints after `id` at least, even when it restores an older one
    /// (a node of a job that had finished restores its final checkpoint while the others
    /// restore a newer one: all number alike).
    pub fn number_after(mut self, id: u64) -> Self {
        self.number_after = Some(id);
        self
    }

    /// Fails the run once more than `n` consecutive checkpoints failed (Flink's
    /// `tolerable-failed-checkpoints`); a completed checkpoint resets the count. Without it a
    /// failed checkpoint never fails the run.
    pub fn tolerable_failed_checkpoints(mut self, n: usize) -> Self {
        self.tolerable_failed = Some(n);
        self
    }

    /// Keeps the newest `n` complete checkpoints (at least 1).
    pub fn retain(mut self, n: usize) -> Self {
        self.retain = n.max(1);
        self
    }

    /// Starts from the savepoint at `path` (a directory written by `RunHandle::savepoint`)
    /// unless `dir` holds a complete checkpoint of its own (the run then resumes from that).
    pub fn restore_from(mut self, path: impl Into<PathBuf>) -> Self {
        self.restore_from = Some(path.into());
        self
    }

    /// Starts from the checkpoints `parts` of every node of a job that ran on another number
    /// of nodes (in node order, all of one id) as node `node` of `nodes`, unless `dir` holds a
    /// checkpoint of its own: every stage subtask restores from every old subtask's state
    /// (subtasks numbered node by node) what falls to it now. A keyed stage keeps the key
    /// groups both its subtask and this node own (`KeyGroupRange::for_subtask(node, nodes)`,
    /// the groups a cluster exchange routes here); a source or sink takes the old states that
    /// fall to its [`weir_graph::Share`] (`SourceLogic::restore_redistributed`); any other
    /// state refuses.
    pub fn restore_from_nodes(mut self, parts: Vec<PathBuf>, node: usize, nodes: usize) -> Self {
        self.restore_from_nodes = Some(NodesRestore { parts, node, nodes });
        self
    }

    /// Ignores state in the restored savepoint whose stage is not in the graph any more
    /// (Flink's `--allowNonRestoredState`); without it that is an error.
    pub fn allow_unmatched(mut self) -> Self {
        self.allow_unmatched = true;
        self
    }
}

/// How many checkpoint durations [`Checkpoints::durations`] keeps (the newest).
pub const DURATIONS_KEPT: usize = 10_000;

/// How many checkpoints [`Checkpoints::history`] keeps (the newest).
pub const HISTORY_KEPT: usize = 1_000;

/// How a checkpoint ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckpointStatus {
    /// Written completely.
    Completed,
    /// Its write failed or a stage declined it (the reason says which).
    Failed(String),
    /// A newer checkpoint completed first and subsumed it.
    Skipped,
}

impl CheckpointStatus {
    /// `completed`, `failed` or `skipped`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Completed => "completed",
            Self::Failed(_) => "failed",
            Self::Skipped => "skipped",
        }
    }
}

/// How many checkpoints of a run ended each way (all of them, not only those in the history).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CheckpointTotals {
    /// Written completely.
    pub completed: u64,
    /// Failed.
    pub failed: u64,
    /// Subsumed by a newer one.
    pub skipped: u64,
}

/// One checkpoint of a run as it ended ([`Checkpoints::history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointRecord {
    /// The checkpoint number.
    pub id: u64,
    /// When its barrier was triggered (Unix milliseconds).
    pub started_at_ms: u64,
    /// From its trigger to its end, on the run's clock.
    pub duration: Duration,
    /// Bytes the store wrote for it (stage files and manifest; state an incremental
    /// checkpoint shares with older ones is not counted again); 0 unless completed.
    pub bytes: u64,
    /// How it ended.
    pub status: CheckpointStatus,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The run's view of its checkpoints, a service in `StageInfo::services` (sinks commit on the
/// completion notice) and on `RunHandle::checkpoints`.
#[derive(Debug, Default)]
pub struct Checkpoints {
    completed: AtomicU64,
    restored: Option<u64>,
    notify: tokio::sync::Notify,
    /// Checkpoints that failed (write error, declined alignment), newest last.
    failed: Mutex<BTreeSet<u64>>,
    /// Trigger-to-complete time of the latest completed checkpoints (at most
    /// [`DURATIONS_KEPT`]), on the run's clock.
    durations: Mutex<std::collections::VecDeque<(u64, Duration)>>,
    /// Stage subtasks of the graph that the restored checkpoint holds nothing for.
    started_empty: Mutex<Vec<(StageId, usize)>>,
    /// Newer complete checkpoints skipped as corrupt when restoring, each with its error.
    skipped: Vec<String>,
    /// How the latest checkpoints ended (at most [`HISTORY_KEPT`]), in the order they ended.
    history: Mutex<std::collections::VecDeque<CheckpointRecord>>,
    /// How many ended each way.
    totals: Mutex<CheckpointTotals>,
}

impl Checkpoints {
    /// The newest checkpoint written completely by this run (`None` before the first).
    pub fn latest_completed(&self) -> Option<u64> {
        match self.completed.load(Ordering::Acquire) {
            0 => None,
            id => Some(id),
        }
    }

    /// The checkpoint this run restored from, if any.
    pub fn restored(&self) -> Option<u64> {
        self.restored
    }

    /// The newer complete checkpoints skipped as corrupt to restore an older one (their errors
    /// name the damaged file), newest first.
    pub fn skipped(&self) -> Vec<String> {
        self.skipped.clone()
    }

    /// Waits until checkpoint `id` (or a newer one) is complete.
    pub async fn wait_completed(&self, id: u64) {
        loop {
            let notified = self.notify.notified();
            if self.latest_completed().is_some_and(|c| c >= id) {
                return;
            }
            notified.await;
        }
    }

    /// Waits until checkpoint `id` (or a newer one) is complete, or fails once `id` failed
    /// (and none newer completed).
    pub async fn wait_outcome(&self, id: u64) -> Result<(), CheckpointFailed> {
        loop {
            let notified = self.notify.notified();
            if self.latest_completed().is_some_and(|c| c >= id) {
                return Ok(());
            }
            if lock(&self.failed).contains(&id) {
                return Err(CheckpointFailed {
                    id,
                    reason: "the checkpoint failed (see the run's warnings)".into(),
                });
            }
            notified.await;
        }
    }

    /// The checkpoints of this run that failed, in id order.
    pub fn failed(&self) -> Vec<u64> {
        lock(&self.failed).iter().copied().collect()
    }

    /// How long each completed checkpoint took from its barrier's trigger to its completion
    /// (on the run's clock), in completion order (the newest [`DURATIONS_KEPT`]).
    pub fn durations(&self) -> Vec<(u64, Duration)> {
        lock(&self.durations).iter().copied().collect()
    }

    /// The stage subtasks (stable id, subtask) that found no state in the checkpoint or
    /// savepoint the run restored from, and started empty.
    pub fn started_empty(&self) -> Vec<(StageId, usize)> {
        lock(&self.started_empty).clone()
    }

    /// How the latest checkpoints of this run ended (completed, failed and skipped; at most
    /// [`HISTORY_KEPT`]), in the order they ended.
    pub fn history(&self) -> Vec<CheckpointRecord> {
        lock(&self.history).iter().cloned().collect()
    }

    /// How many checkpoints of this run ended each way.
    pub fn totals(&self) -> CheckpointTotals {
        *lock(&self.totals)
    }

    fn record(&self, r: CheckpointRecord) {
        {
            let mut t = lock(&self.totals);
            match r.status {
                CheckpointStatus::Completed => t.completed += 1,
                CheckpointStatus::Failed(_) => t.failed += 1,
                CheckpointStatus::Skipped => t.skipped += 1,
            }
        }
        let mut h = lock(&self.history);
        if h.len() == HISTORY_KEPT {
            h.pop_front();
        }
        h.push_back(r);
    }

    fn complete(&self, id: u64, took: Duration) {
        let mut d = lock(&self.durations);
        if d.len() == DURATIONS_KEPT {
            d.pop_front();
        }
        d.push_back((id, took));
        drop(d);
        self.completed.fetch_max(id, Ordering::AcqRel);
        self.notify.notify_waiters();
    }

    fn fail(&self, id: u64) {
        lock(&self.failed).insert(id);
        self.notify.notify_waiters();
    }
}
