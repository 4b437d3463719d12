//! Checkpoints: aligned barrier snapshots of every stage of a run, written to a directory, and
//! restore from the latest complete one when a run starts with the same directory.
//!
//! The coordinator injects `Control::Barrier { id }` at every source of the run's graph each
//! interval on the run's clock; barriers align where inputs meet (the engine's `Aligner`); a
//! fused chain snapshots each of its stages as the barrier passes and acknowledges to the
//! coordinator, which writes the checkpoint once every stage did (see [`store`]).

mod coordinator;
mod rescale;
pub mod store;

pub(crate) use coordinator::Coordinator;
pub(crate) use rescale::{restore_flow, restore_sink, restore_source};
pub use store::CheckpointError;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

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
}

impl CheckpointConfig {
    /// Checkpoints every `interval` into `dir`, keeping the newest 3.
    pub fn new(interval: Duration, dir: impl Into<PathBuf>) -> Self {
        Self {
            interval,
            dir: dir.into(),
            retain: 3,
        }
    }

    /// Keeps the newest `n` complete checkpoints (at least 1).
    pub fn retain(mut self, n: usize) -> Self {
        self.retain = n.max(1);
        self
    }
}

/// The run's view of its checkpoints, a service in `StageInfo::services` (sinks commit on the
/// completion notice) and on `RunHandle::checkpoints`.
#[derive(Debug, Default)]
pub struct Checkpoints {
    completed: AtomicU64,
    restored: Option<u64>,
    notify: tokio::sync::Notify,
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

    fn complete(&self, id: u64) {
        self.completed.fetch_max(id, Ordering::AcqRel);
        self.notify.notify_waiters();
    }
}
