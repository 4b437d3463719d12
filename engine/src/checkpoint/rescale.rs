//! Restoring a stage subtask from the checkpoint: its own snapshot when the stage runs at the
//! checkpoint's parallelism, every old subtask's snapshot (to keep the key groups it owns now)
//! when the parallelism changed.

use super::Coordinator;
use weir_graph::{
    ErasedFlow, ErasedSink, ErasedSource, KeyGroupRange, Share, Snapshot, StageError, StageInfo,
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
        /// Its place among the stage's subtasks across the job's nodes, when the job's node
        /// count changed (a source or sink takes the old states that fall to it).
        share: Option<Share>,
    },
}

/// The key groups subtask `sub` of `parallelism` owns now, and its share across the job's
/// nodes when the run restores the checkpoints of a job on another node count (the groups are
/// then those both the subtask and this node own).
pub(crate) fn owned(
    ck: &Coordinator,
    sub: usize,
    parallelism: usize,
) -> (KeyGroupRange, Option<Share>) {
    let mine = KeyGroupRange::for_subtask(sub, parallelism);
    match ck.restored_scope() {
        Some((node, nodes)) => (
            mine.intersect(&KeyGroupRange::for_subtask(node, nodes)),
            Some(Share::of(node, nodes, sub, parallelism)),
        ),
        None => (mine, None),
    }
}

fn plan<'a>(ck: &'a Coordinator, info: &StageInfo) -> Plan<'a> {
    if ck.restored_scope().is_some() {
        let Some(from) = ck.restored_parallelism(info.id) else {
            return Plan::Nothing;
        };
        let snapshots = ck.restored_all(info.id);
        if snapshots.is_empty() {
            return Plan::Nothing;
        }
        let (key_groups, share) = owned(ck, info.subtask, info.parallelism);
        return Plan::Rescaled {
            from,
            snapshots,
            key_groups,
            share,
        };
    }
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
                share: None,
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
            ..
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

/// The error of a source or sink that could not take its part of the old states.
fn not_redistributed(info: &StageInfo, share: Share, from: usize, e: &StageError) -> StageError {
    StageError::internal(format!(
        "{} (restoring {share} from {from} subtasks across the job's nodes)",
        e.message()
    ))
    .with_stage(&info.path)
}

/// Restores source `logic` of `info`: its state is never split at a changed parallelism, but
/// redistributed when the job's node count changed.
pub(crate) fn restore_source(
    ck: &Coordinator,
    info: &StageInfo,
    logic: &mut dyn ErasedSource,
) -> Result<(), StageError> {
    match plan(ck, info) {
        Plan::Nothing => Ok(()),
        Plan::Same(s) => logic.restore(s),
        Plan::Rescaled {
            from,
            snapshots,
            share: Some(share),
            ..
        } => {
            tracing::info!(stage = %info.path, from, %share, "restoring redistributed state");
            logic
                .restore_redistributed(&snapshots, share)
                .map_err(|e| not_redistributed(info, share, from, &e))
        }
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
