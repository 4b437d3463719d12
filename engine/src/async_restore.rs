//! Restoring an asynchronous stage subtask from the checkpoint: its own snapshot at the
//! checkpoint's parallelism, every old subtask's (to keep the key groups it owns now) when the
//! parallelism changed.

use crate::checkpoint::Coordinator;
use weir_graph::{AsyncLogic, StageError, StageInfo};

/// Restores async `logic` of `info` (subtask `sub`) from the checkpoint `ck` restored
/// (nothing when it holds no state for the stage).
pub(crate) fn restore_async(
    ck: &Coordinator,
    info: &StageInfo,
    sub: usize,
    logic: &mut dyn AsyncLogic,
) -> Result<(), StageError> {
    let scope = ck.restored_scope();
    let rescaled = ck
        .restored_parallelism(info.id)
        .filter(|&old| scope.is_some() || old != info.parallelism);
    let snapshots = match rescaled {
        Some(_) => ck.restored_all(info.id),
        None => Vec::new(),
    };
    let Some(old) = rescaled.filter(|_| !snapshots.is_empty()) else {
        return match ck.restored(info.id, sub) {
            Some(s) => logic.restore(s),
            None => Ok(()),
        };
    };
    let (key_groups, share) = crate::checkpoint::owned(ck, sub, info.parallelism);
    if let Some(share) = share {
        tracing::info!(stage = %info.path, from = old, %share, %key_groups, "restoring redistributed state");
        return logic
            .restore_redistributed(&snapshots, key_groups, share)
            .map_err(|e| {
                StageError::internal(format!(
                    "{} (restoring {share} from {old} subtasks across the job's nodes)",
                    e.message()
                ))
            });
    }
    tracing::info!(
        stage = %info.path,
        from = old,
        to = info.parallelism,
        subtask = sub,
        %key_groups,
        "restoring rescaled state"
    );
    logic.restore_rescaled(&snapshots, key_groups).map_err(|e| {
        StageError::internal(format!(
            "{} (restoring at parallelism {} from a checkpoint taken at parallelism {old})",
            e.message(),
            info.parallelism
        ))
    })
}
