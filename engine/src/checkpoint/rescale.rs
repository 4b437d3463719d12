//! Restoring a stage subtask from the checkpoint: its own snapshot when the stage runs at the
//! checkpoint's parallelism, every old subtask's snapshot (to keep the key groups it owns now)
//! when the parallelism changed.

use super::Coordinator;
use weir_graph::{
    ErasedFlow, ErasedSink, ErasedSource, KeyGroupRange, Snapshot, StageError, StageInfo,
};

/// What a new stage subtask restores.
enum Plan<'a> {
    /// The checkpoint holds no state for it.
    Nothing,
    /// Its own subtask's snapshot (same parallelism).
    Same(&'a Snapshot),
    /// The parallelism changed: every old subtask's state and the key groups it owns now.
    Rescaled {
        from: usize,
        snapshots: Vec<Snapshot>,
        key_groups: KeyGroupRange,
    },
}

fn plan<'a>(ck: &'a Coordinator, info: &StageInfo) -> Plan<'a> {
    match ck.restored_parallelism(info.id) {
        Some(old) if old != info.parallelism => {
            let snapshots = ck.restored_all(info.id);
            if snapshots.is_empty() {
                return Plan::Nothing;
            }
            Plan::Rescaled {
                from: old,
                snapshots,
                key_groups: KeyGroupRange::for_subtask(info.subtask, info.parallelism),
            }
        }
        _ => match ck.restored(info.id, info.subtask) {
            Some(s) => Plan::Same(s),
            None => Plan::Nothing,
        },
    }
}

fn rescaled(info: &StageInfo, from: usize, key_groups: KeyGroupRange) {
    tracing::info!(
        stage = %info.path,
        from,
        to = info.parallelism,
        subtask = info.subtask,
        %key_groups,
        "restoring rescaled state"
    );
}

/// The error of a source or sink asked to restore at a changed parallelism.
fn not_splittable(info: &StageInfo, from: usize) -> StageError {
    StageError::internal(format!(
        "its state is not keyed, so it cannot be restored at parallelism {} from a checkpoint \
         taken at parallelism {from}",
        info.parallelism
    ))
}

/// Restores flow `logic` of `info` from the checkpoint `ck` restored.
pub(crate) fn restore_flow(
    ck: &Coordinator,
    info: &StageInfo,
    logic: &mut dyn ErasedFlow,
) -> Result<(), StageError> {
    match plan(ck, info) {
        Plan::Nothing => Ok(()),
        Plan::Same(s) => logic.restore(s),
        Plan::Rescaled {
            from,
            snapshots,
            key_groups,
        } => {
            rescaled(info, from, key_groups);
            logic.restore_rescaled(&snapshots, key_groups).map_err(|e| {
                StageError::internal(format!(
                    "{} (restoring at parallelism {} from a checkpoint taken at parallelism \
                         {from})",
                    e.message(),
                    info.parallelism
                ))
            })
        }
    }
}

/// Restores source `logic` of `info` (a source's state is never split).
pub(crate) fn restore_source(
    ck: &Coordinator,
    info: &StageInfo,
    logic: &mut dyn ErasedSource,
) -> Result<(), StageError> {
    match plan(ck, info) {
        Plan::Nothing => Ok(()),
        Plan::Same(s) => logic.restore(s),
        Plan::Rescaled { from, .. } => Err(not_splittable(info, from)),
    }
}

/// Restores sink `logic` of `info` (a sink's state is never split).
pub(crate) fn restore_sink(
    ck: &Coordinator,
    info: &StageInfo,
    logic: &mut dyn ErasedSink,
) -> Result<(), StageError> {
    match plan(ck, info) {
        Plan::Nothing => Ok(()),
        Plan::Same(s) => logic.restore(s),
        Plan::Rescaled { from, .. } => Err(not_splittable(info, from)),
    }
}
