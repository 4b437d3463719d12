//! Restoring an asynchronous stage subtask from the checkpoint: its own snapshot at the
//! checkpoint's parallelism, every old subtask's (to keep the key groups it owns now) when the
//! parallelism changed.

use crate::checkpoint::Coordinator;
use weir_graph::{AsyncLogic, KeyGroupRange, StageError, StageInfo};

/// Restores async `logic` of `info` from the checkpoint `ck` restored (nothing when it holds
/// no state for the stage).
pub(crate) fn restore_async(
    ck: &Coordinator,
    info: &StageInfo,
    logic: &mut dyn AsyncLogic,
) -> Result<(), StageError> {
    match ck.restored_parallelism(info.id) {
        Some(old) if old != info.parallelism => {
            let snapshots = ck.restored_all(info.id);
            if snapshots.is_empty() {
                return Ok(());
            }
            let key_groups = KeyGroupRange::for_subtask(info.subtask, info.parallelism);
            tracing::info!(
                stage = %info.path,
                from = old,
                to = info.parallelism,
                subtask = info.subtask,
                %key_groups,
                "restoring rescaled state"
            );
            logic.restore_rescaled(&snapshots, key_groups).map_err(|e| {
                StageError::internal(format!(
                    "{} (restoring at parallelism {} from a checkpoint taken at parallelism \
                     {old})",
                    e.message(),
                    info.parallelism
                ))
            })
        }
        _ => match ck.restored(info.id, info.subtask) {
            Some(s) => logic.restore(s),
            None => Ok(()),
        },
    }
}
