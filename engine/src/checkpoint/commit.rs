//! The second phase of a checkpoint that spans processes: a run writes its part of checkpoint
//! `id`, then asks the job's commit log whether every participant wrote it too; only then is
//! the checkpoint complete for this run (its sinks commit the output it covers).

use futures::future::BoxFuture;
use std::fmt;
use std::sync::Arc;

/// Decides when a checkpoint this run wrote is complete for the whole job.
///
/// `prepared(id, last)` is called once the run wrote checkpoint `id` (`last`: every stage of
/// the run had finished, so it holds the run's final state). It resolves `Ok` once the job's
/// participants all wrote `id` (or, for a last checkpoint, once every participant wrote its
/// last one), and `Err` with the reason when that will not happen (the checkpoint then fails
/// for this run: nothing it covers is committed, a later checkpoint covers it).
pub trait CheckpointCommit: Send + Sync {
    /// Records that this run wrote checkpoint `id`; resolves once it is complete everywhere.
    fn prepared(&self, id: u64, last: bool) -> BoxFuture<'static, Result<(), String>>;

    /// Records that checkpoint `id` failed in this run (a stage declined it, its write
    /// failed), so the other participants stop waiting for it (best effort).
    fn aborted(&self, id: u64) -> BoxFuture<'static, ()> {
        let _ = id;
        Box::pin(async {})
    }
}

/// A shared [`CheckpointCommit`] in a [`super::CheckpointConfig`] (equal when the same one).
#[derive(Clone)]
pub struct CommitHook(pub Arc<dyn CheckpointCommit>);

impl fmt::Debug for CommitHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CommitHook")
    }
}

impl PartialEq for CommitHook {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for CommitHook {}
