//! How an asynchronous stage that handles control takes part in the run's checkpoints: it
//! acknowledges each barrier with its state, reports its final state when it completes, and a
//! two-phase sink waits for a checkpoint to complete before it commits.

use crate::Snapshot;
use futures::future::BoxFuture;

/// Why a checkpoint a stage waits for will not complete.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("checkpoint {id} failed: {reason}")]
pub struct CheckpointFailed {
    /// The checkpoint.
    pub id: u64,
    /// What went wrong (a write error, a declined alignment).
    pub reason: String,
}

/// One stage subtask's handle on the run's checkpoints (`AsyncIo::checkpoint`, present when the
/// run checkpoints and the stage belongs to the run's graph).
pub trait StageCheckpoint: Send + Sync {
    /// Acknowledges barrier `id` with the stage's state as of the barrier (`None`: stateless).
    /// Call it before forwarding the barrier; forwarding a barrier without acknowledging it
    /// acknowledges it without state.
    fn ack(&self, id: u64, state: Option<Snapshot>);
    /// The stage completed with `state`, which stands in for it in later checkpoints; returns
    /// the checkpoint that will hold it (the run writes a final one if none is pending).
    fn finish(&self, state: Option<Snapshot>) -> u64;
    /// The newest checkpoint of the run that is complete.
    fn latest_completed(&self) -> Option<u64>;
    /// Completes once checkpoint `id` (or a newer one) is complete, or fails once `id` failed
    /// and no newer one completed.
    fn wait_completed(&self, id: u64) -> BoxFuture<'_, Result<(), CheckpointFailed>>;
    /// The state restored for this stage subtask, when the run restored some.
    fn restored(&self) -> Option<Snapshot>;
    /// The newer complete checkpoints the run skipped as corrupt to restore an older one, each
    /// with its error (a two-phase sink whose output holds what they committed cannot fall
    /// back exactly).
    fn skipped(&self) -> Vec<String> {
        Vec::new()
    }
}
