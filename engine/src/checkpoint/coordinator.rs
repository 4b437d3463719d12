//! The coordinator of one run's checkpoints: triggers barriers on the run's clock (and
//! savepoints on demand), collects the stages' acknowledgements, writes each checkpoint once
//! complete, and hands restored state to the stages as they are created.

use super::store::{self, CheckpointError, StageStates};
use super::{CheckpointConfig, Checkpoints, lock};
use crate::shared::RunShared;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;
use weir_graph::{CheckpointFailed, Clock, Control, Snapshot, StageCheckpoint, StageId};

type Key = (StageId, usize);

/// Where a savepoint goes once complete, and who waits for it.
type SavepointReply = oneshot::Sender<Result<PathBuf, CheckpointError>>;

#[derive(Default)]
struct State {
    /// Every stage subtask that must acknowledge a checkpoint.
    expected: BTreeSet<Key>,
    /// Checkpoints triggered and not complete yet, with the acknowledgements so far.
    pending: BTreeMap<u64, StageStates>,
    /// When each pending checkpoint was triggered (the run's clock).
    triggered: BTreeMap<u64, Duration>,
    /// Stage subtasks whose island completed, with their final state (they see no more barriers).
    finished: StageStates,
    /// A final checkpoint a completed stage waits for (written once every stage finished).
    final_wanted: Option<u64>,
    /// Savepoints triggered and not written yet.
    savepoints: BTreeMap<u64, (PathBuf, SavepointReply)>,
    /// Acknowledgements of barriers not triggered here yet: a barrier relayed from another
    /// process of the job (a remote edge) can pass a stage before this run triggers its id.
    early: BTreeMap<u64, StageStates>,
}

/// A completed checkpoint on its way to the writer.
struct Done {
    id: u64,
    /// Every stage had finished: the checkpoint holds the run's final state.
    last: bool,
    states: StageStates,
    triggered: Option<Duration>,
    savepoint: Option<(PathBuf, SavepointReply)>,
}

/// What was restored: the checkpoint's states and where they came from.
struct Restore {
    states: HashMap<Key, Snapshot>,
    stages: BTreeSet<Key>,
    /// How many subtasks each stage of the restored checkpoint ran.
    parallelism: HashMap<StageId, usize>,
    /// The savepoint path, when the run started from one rather than from its own directory.
    savepoint: Option<PathBuf>,
    /// This run's node and the job's node count, when it restores the checkpoints of every
    /// node of a job that ran on another count (every stage is then redistributed).
    scope: Option<(usize, usize)>,
}

/// One run's checkpoint coordinator (a `RunShared` member when checkpoints are on).
pub(crate) struct Coordinator {
    cfg: CheckpointConfig,
    handle: Arc<Checkpoints>,
    restored: Option<Restore>,
    next_id: AtomicU64,
    clock: Mutex<Option<Arc<dyn Clock>>>,
    state: Mutex<State>,
    done: mpsc::UnboundedSender<Done>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Done>>>,
    /// Checkpoints failed since the last one completed.
    failed_in_a_row: AtomicU64,
    /// Set once more checkpoints failed in a row than the config tolerates: why the run fails.
    intolerable: Mutex<Option<String>>,
    /// Wakes the run loop to fail the run.
    fatal: tokio::sync::Notify,
    /// The run's start (Unix ms), the origin of its clock, for the history's trigger times.
    epoch_ms: AtomicU64,
}

impl Coordinator {
    /// A coordinator for `cfg`, with the state of the latest complete checkpoint in its
    /// directory (else of the savepoint `cfg.restore_from`) loaded for restore.
    pub(crate) fn open(cfg: CheckpointConfig) -> Result<Self, CheckpointError> {
        if let Some(id) = cfg.discard_after {
            store::discard_newer(&cfg.dir, id)?;
        }
        let own = store::latest(&cfg.dir)?;
        let newest = store::newest_id(&cfg.dir)?.unwrap_or(0);
        let mut scope = None;
        let (restored, savepoint) = match (own, &cfg.restore_from, &cfg.restore_from_nodes) {
            (Some(r), _, _) => (Some(r), None),
            (None, _, Some(n)) if !n.parts.is_empty() => {
                tracing::info!(
                    from = n.parts.len(),
                    to = n.nodes,
                    node = n.node,
                    "starting from the checkpoints of every node of a job on another node count"
                );
                scope = Some((n.node, n.nodes.max(1)));
                (Some(store::read_nodes(&n.parts)?), n.parts.first().cloned())
            }
            (None, Some(path), _) => {
                tracing::info!(savepoint = %path.display(), "starting from a savepoint");
                (Some(store::read(path)?), Some(path.clone()))
            }
            (None, None, _) => (None, None),
        };
        let restored_id = restored.as_ref().map(|r| r.id);
        if let Some(r) = &restored {
            tracing::info!(
                checkpoint = r.id,
                stages = r.states.len(),
                "restoring checkpoint"
            );
        }
        let next = newest
            .max(restored_id.unwrap_or(0))
            .max(cfg.number_after.unwrap_or(0))
            + 1;
        let (done, rx) = mpsc::unbounded_channel();
        Ok(Self {
            cfg,
            handle: Arc::new(Checkpoints {
                restored: restored_id,
                skipped: restored
                    .as_ref()
                    .map(|r| r.skipped.clone())
                    .unwrap_or_default(),
                ..Checkpoints::default()
            }),
            restored: restored.map(|r| Restore {
                states: r.states,
                stages: r.stages,
                parallelism: r.parallelism,
                savepoint,
                scope,
            }),
            next_id: AtomicU64::new(next),
            clock: Mutex::new(None),
            state: Mutex::new(State::default()),
            done,
            rx: Mutex::new(Some(rx)),
            failed_in_a_row: AtomicU64::new(0),
            intolerable: Mutex::new(None),
            fatal: tokio::sync::Notify::new(),
            epoch_ms: AtomicU64::new(0),
        })
    }

    /// Adds checkpoint `id` (triggered at `triggered` on the run's clock) to the history.
    fn history(
        &self,
        id: u64,
        triggered: Option<Duration>,
        bytes: u64,
        status: super::CheckpointStatus,
    ) {
        let now = lock(&self.clock).as_ref().map(|c| c.now());
        let at = triggered.or(now).unwrap_or_default();
        let duration = now.map_or(Duration::ZERO, |n| n.saturating_sub(at));
        self.handle.record(super::CheckpointRecord {
            id,
            started_at_ms: self.epoch_ms.load(Ordering::Relaxed) + at.as_millis() as u64,
            duration,
            bytes,
            status,
        });
    }

    /// Counts checkpoint `id` failed (`why`); past the tolerated number in a row, the run
    /// loop fails the run.
    fn failed(&self, id: u64, triggered: Option<Duration>, why: &str) {
        self.history(
            id,
            triggered,
            0,
            super::CheckpointStatus::Failed(why.to_owned()),
        );
        self.handle.fail(id);
        if let Some(c) = &self.cfg.commit
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            // The job's other processes stop waiting for this checkpoint.
            rt.spawn(c.0.aborted(id));
        }
        let n = self.failed_in_a_row.fetch_add(1, Ordering::AcqRel) + 1;
        let Some(t) = self.cfg.tolerable_failed else {
            return;
        };
        if n > t as u64 {
            let mut fatal = lock(&self.intolerable);
            if fatal.is_none() {
                *fatal = Some(format!(
                    "{n} checkpoints failed in a row, more than tolerable_failed_checkpoints({t}); \
                     the last, {id}: {why}"
                ));
                self.fatal.notify_one();
            }
        }
    }

    /// The run's public view of its checkpoints.
    pub(crate) fn handle(&self) -> Arc<Checkpoints> {
        Arc::clone(&self.handle)
    }

    /// Stage `stage` subtask `sub` takes part in every checkpoint.
    pub(crate) fn expect(&self, stage: StageId, sub: usize) {
        lock(&self.state).expected.insert((stage, sub));
    }

    /// The restored state of a stage subtask, if the checkpoint holds some.
    pub(crate) fn restored(&self, stage: StageId, sub: usize) -> Option<&Snapshot> {
        self.restored.as_ref()?.states.get(&(stage, sub))
    }

    /// How many subtasks `stage` ran in the restored checkpoint (`None`: it is not in it).
    pub(crate) fn restored_parallelism(&self, stage: StageId) -> Option<usize> {
        self.restored.as_ref()?.parallelism.get(&stage).copied()
    }

    /// Every restored subtask state of `stage`, in subtask order (subtasks without state left out).
    pub(crate) fn restored_all(&self, stage: StageId) -> Vec<Snapshot> {
        let Some(r) = self.restored.as_ref() else {
            return Vec::new();
        };
        let n = r.parallelism.get(&stage).copied().unwrap_or(0);
        (0..n)
            .filter_map(|sub| r.states.get(&(stage, sub)).cloned())
            .collect()
    }

    /// This run's node and the job's node count when every stage is redistributed from the
    /// checkpoints of a job on another node count.
    pub(crate) fn restored_scope(&self) -> Option<(usize, usize)> {
        self.restored.as_ref()?.scope
    }

    /// The id of the checkpoint restored from.
    pub(crate) fn restored_id(&self) -> Option<u64> {
        self.handle.restored
    }

    /// Once every stage of the run's graph is expected: reports the stages the restored
    /// checkpoint holds nothing for (they start empty), and fails when a savepoint holds state
    /// of stages the graph no longer has (unless `allow_unmatched`).
    pub(crate) fn check_restored(&self) -> Result<(), CheckpointError> {
        let Some(r) = &self.restored else {
            return Ok(());
        };
        let expected = lock(&self.state).expected.clone();
        let mut now: HashMap<StageId, usize> = HashMap::new();
        for k in &expected {
            *now.entry(k.0).or_default() += 1;
        }
        // A subtask of a stage that ran at another parallelism gets its part of the stage's
        // state (by key group), so only a stage the checkpoint lacks, or a subtask missing at
        // the same parallelism, starts empty.
        let empty: Vec<Key> = expected
            .iter()
            .filter(|k| match r.scope {
                // Every stage the checkpoints hold is redistributed.
                Some(_) => !r.parallelism.contains_key(&k.0),
                None => {
                    !r.stages.contains(k)
                        && r.parallelism
                            .get(&k.0)
                            .is_none_or(|p| Some(p) == now.get(&k.0))
                }
            })
            .copied()
            .collect();
        if !empty.is_empty() {
            tracing::warn!(
                stages = %render(&empty),
                "stages without state in the restored checkpoint start empty"
            );
        }
        *lock(&self.handle.started_empty) = empty;
        let ids: BTreeSet<StageId> = expected.iter().map(|k| k.0).collect();
        let gone: Vec<Key> = r
            .states
            .keys()
            .filter(|k| !ids.contains(&k.0))
            .copied()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        if gone.is_empty() {
            return Ok(());
        }
        let path = r.savepoint.clone().unwrap_or_else(|| self.cfg.dir.clone());
        if self.cfg.allow_unmatched {
            tracing::warn!(stages = %render(&gone), savepoint = %path.display(), "state of stages not in the graph is ignored");
            Ok(())
        } else {
            Err(CheckpointError::Unmatched {
                path,
                stages: render(&gone),
            })
        }
    }

    /// A stage subtask passed barrier `id` with `state` (a repeated acknowledgement keeps the
    /// first).
    pub(crate) fn ack(&self, id: u64, stage: StageId, sub: usize, state: Option<Snapshot>) {
        let mut s = lock(&self.state);
        if let Some(acks) = s.pending.get_mut(&id) {
            acks.entry((stage, sub)).or_insert(state);
        } else if id >= self.next_id.load(Ordering::Acquire) {
            s.early
                .entry(id)
                .or_default()
                .entry((stage, sub))
                .or_insert(state);
        }
        self.complete(&mut s);
    }

    /// A stage subtask's island completed with `state`: later checkpoints hold it as it is.
    pub(crate) fn finished(&self, stage: StageId, sub: usize, state: Option<Snapshot>) {
        let mut s = lock(&self.state);
        s.finished.entry((stage, sub)).or_insert(state);
        self.final_if_wanted(&mut s);
        self.complete(&mut s);
    }

    /// Like [`Coordinator::finished`], returning the checkpoint that will hold the final state
    /// (a final checkpoint is written once every stage finished, unless one is pending).
    fn finish_waiting(&self, stage: StageId, sub: usize, state: Option<Snapshot>) -> u64 {
        let mut s = lock(&self.state);
        s.finished.entry((stage, sub)).or_insert(state);
        // The oldest pending checkpoint the stage has not acknowledged takes its final state
        // (one it acknowledged holds its state as of that barrier).
        let cover = s
            .pending
            .iter()
            .find(|(_, acks)| !acks.contains_key(&(stage, sub)))
            .map(|(id, _)| *id);
        let cover = match cover {
            Some(id) => id,
            None => {
                let id = self.next_id.load(Ordering::Acquire);
                s.final_wanted = Some(id);
                id
            }
        };
        self.final_if_wanted(&mut s);
        self.complete(&mut s);
        cover
    }

    /// A junction could not align barrier `id` without stalling: the checkpoint fails.
    pub(crate) fn decline(&self, id: u64, stage: &str) {
        let mut s = lock(&self.state);
        if s.pending.remove(&id).is_some() {
            let triggered = s.triggered.remove(&id);
            tracing::warn!(
                checkpoint = id,
                stage,
                "checkpoint declined: the stage cannot align its inputs without stalling"
            );
            if let Some((_, reply)) = s.savepoints.remove(&id) {
                let _ = reply.send(Err(CheckpointError::Savepoint {
                    id,
                    reason: format!("declined by '{stage}'"),
                }));
            }
            drop(s);
            self.failed(
                id,
                triggered,
                &format!("declined by '{stage}', which cannot align its inputs without stalling"),
            );
        }
    }

    /// Triggers the final checkpoint a finished stage waits for once every stage finished.
    fn final_if_wanted(&self, s: &mut State) {
        let Some(want) = s.final_wanted else { return };
        if s.pending.contains_key(&want) || !s.expected.iter().all(|k| s.finished.contains_key(k)) {
            return;
        }
        s.final_wanted = None;
        if self.handle.latest_completed().is_some_and(|c| c >= want) {
            return;
        }
        let id = self.begin(s);
        tracing::debug!(checkpoint = id, "final checkpoint");
        let now = lock(&self.clock).as_ref().map(|c| c.now());
        if let Some(now) = now {
            s.triggered.insert(id, now);
        }
    }

    /// Sends every pending checkpoint all stages acknowledged to the writer; an older pending
    /// one is subsumed by a newer complete one.
    fn complete(&self, s: &mut State) {
        let ready = s.pending.iter().rev().find_map(|(id, acks)| {
            s.expected
                .iter()
                .all(|k| acks.contains_key(k) || s.finished.contains_key(k))
                .then_some(*id)
        });
        let Some(id) = ready else { return };
        weir_graph::failpoint("checkpoint.acks_complete");
        let mut acks = s.pending.remove(&id).unwrap_or_default();
        let older: Vec<u64> = s.pending.keys().filter(|p| **p < id).copied().collect();
        for o in older {
            s.pending.remove(&o);
            let triggered = s.triggered.remove(&o);
            self.history(o, triggered, 0, super::CheckpointStatus::Skipped);
            if let Some((_, reply)) = s.savepoints.remove(&o) {
                let _ = reply.send(Err(CheckpointError::Savepoint {
                    id: o,
                    reason: format!("subsumed by checkpoint {id}"),
                }));
            }
        }
        for k in &s.expected {
            if !acks.contains_key(k)
                && let Some(f) = s.finished.get(k)
            {
                acks.insert(*k, f.clone());
            }
        }
        acks.retain(|k, _| s.expected.contains(k));
        let last = s.expected.iter().all(|k| s.finished.contains_key(k));
        let _ = self.done.send(Done {
            id,
            last,
            states: acks,
            triggered: s.triggered.remove(&id),
            savepoint: s.savepoints.remove(&id),
        });
    }

    /// The run's clock time of the first barrier, read when the run starts.
    pub(crate) fn first_barrier(&self, clock: &Arc<dyn Clock>) -> Duration {
        *lock(&self.clock) = Some(Arc::clone(clock));
        clock.now() + self.cfg.interval
    }

    /// Numbers the next checkpoint and makes it pending, with the acknowledgements of its
    /// barrier that came before it (relayed from another process of the job).
    fn begin(&self, s: &mut State) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::AcqRel);
        let early = s.early.remove(&id).unwrap_or_default();
        s.pending.insert(id, early);
        id
    }

    /// Triggers a barrier now; `savepoint` also writes the checkpoint into that directory.
    fn trigger(&self, shared: &RunShared, savepoint: Option<(PathBuf, SavepointReply)>) -> u64 {
        let id = {
            // Numbered under the state lock, so an early acknowledgement is never lost between.
            let mut s = lock(&self.state);
            let id = self.begin(&mut s);
            s.triggered.insert(id, shared.clock.now());
            if let Some(sp) = savepoint {
                s.savepoints.insert(id, sp);
            }
            id
        };
        let reached = shared.injectors.inject(&Control::barrier(id));
        tracing::debug!(checkpoint = id, sources = reached, "barrier injected");
        weir_graph::failpoint("checkpoint.barrier_injected");
        let mut s = lock(&self.state);
        self.complete(&mut s);
        id
    }

    /// Takes a savepoint now: a barrier whose checkpoint is also written into `dir`.
    pub(crate) async fn savepoint(
        &self,
        shared: &RunShared,
        dir: PathBuf,
    ) -> Result<PathBuf, CheckpointError> {
        let ended = |id| CheckpointError::Savepoint {
            id,
            reason: "the run ended before it completed".into(),
        };
        if shared.cancel.is_cancelled() || shared.sinks_done.is_cancelled() {
            return Err(ended(0));
        }
        let (tx, rx) = oneshot::channel();
        let id = self.trigger(shared, Some((dir, tx)));
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| Err(ended(id))),
            _ = shared.cancel.cancelled() => Err(ended(id)),
            _ = shared.sinks_done.cancelled() => Err(ended(id)),
        }
    }

    /// Triggers a barrier every interval from `next` on and writes completed checkpoints, until
    /// the run ends.
    pub(crate) async fn run(self: Arc<Self>, shared: Arc<RunShared>, mut next: Duration) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        self.epoch_ms
            .store(crate::errlog::unix_ms(shared.started), Ordering::Relaxed);
        let clock = Arc::clone(&shared.clock);
        loop {
            tokio::select! {
                biased;
                Some(done) = rx.recv() => {
                    let span = tracing::info_span!(parent: &shared.span(), "checkpoint", id = done.id, duration_ms = tracing::field::Empty, bytes = tracing::field::Empty);
                    self.write(done, &clock).instrument(span).await
                }
                () = self.fatal.notified() => {
                    let why = lock(&self.intolerable).clone().unwrap_or_default();
                    tracing::error!(reason = %why, "the run fails: too many failed checkpoints");
                    shared.record_failure(&weir_graph::StageError::internal(why));
                    break;
                }
                _ = shared.cancel.cancelled() => break,
                _ = shared.sinks_done.cancelled() => break,
                _ = clock.sleep_until(next) => {
                    next += self.cfg.interval;
                    self.trigger(&shared, None);
                }
            }
        }
    }

    /// Writes one completed checkpoint (and its savepoint), then reports it complete.
    async fn write(&self, done: Done, clock: &Arc<dyn Clock>) {
        let Done {
            id,
            last,
            states,
            triggered,
            savepoint,
        } = done;
        let dir = self.cfg.dir.clone();
        let retain = self.cfg.retain;
        let (sp_dir, reply) = match savepoint {
            Some((d, r)) => (Some(d), Some(r)),
            None => (None, None),
        };
        let written = tokio::task::spawn_blocking(move || {
            if let Some(d) = &sp_dir {
                let existed = d.exists();
                if let Err(e) = store::write_dir(d, id, &states) {
                    // A savepoint directory the write created goes again (never half a savepoint).
                    if !existed {
                        store::discard(d);
                    }
                    return Err(e);
                }
            }
            store::write_sized(&dir, id, &states, retain).map(|(p, n)| (sp_dir.unwrap_or(p), n))
        })
        .await
        .unwrap_or_else(|e| {
            Err(CheckpointError::Io {
                path: self.cfg.dir.clone(),
                reason: format!("the checkpoint writer failed: {e}"),
            })
        });
        // A job spread over processes: complete only once every participant wrote it.
        let written = match (written, &self.cfg.commit) {
            (Ok(w), Some(c)) => match c.0.prepared(id, last).await {
                Ok(()) => Ok(w),
                Err(reason) => Err(CheckpointError::Commit { id, reason }),
            },
            (w, _) => w,
        };
        match written {
            Ok((path, bytes)) => {
                let took = triggered.map_or(Duration::ZERO, |t| clock.now().saturating_sub(t));
                let span = tracing::Span::current();
                span.record("duration_ms", took.as_millis() as u64);
                span.record("bytes", bytes);
                tracing::debug!(checkpoint = id, dir = %path.display(), duration_ms = took.as_millis() as u64, bytes, "checkpoint complete");
                self.history(id, triggered, bytes, super::CheckpointStatus::Completed);
                self.failed_in_a_row.store(0, Ordering::Release);
                self.handle.complete(id, took);
                if let Some(r) = reply {
                    let _ = r.send(Ok(path));
                }
            }
            // A failed write fails the checkpoint, never the run (unless more fail in a row
            // than tolerated).
            Err(e) => {
                tracing::warn!(checkpoint = id, error = %e, "checkpoint failed");
                self.failed(id, triggered, &e.to_string());
                if let Some(r) = reply {
                    let _ = r.send(Err(e));
                }
            }
        }
    }
}

fn render(keys: &[Key]) -> String {
    keys.iter()
        .map(|(s, sub)| format!("{s}#{sub}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An asynchronous stage subtask's handle on the coordinator (`AsyncIo::checkpoint`).
pub(crate) struct AsyncCheckpoint {
    pub(crate) ck: Arc<Coordinator>,
    pub(crate) stage: StageId,
    pub(crate) sub: usize,
    /// Whether the stage reported its final state itself.
    pub(crate) finished: std::sync::atomic::AtomicBool,
}

impl StageCheckpoint for AsyncCheckpoint {
    fn ack(&self, id: u64, state: Option<Snapshot>) {
        self.ck.ack(id, self.stage, self.sub, state);
    }
    fn finish(&self, state: Option<Snapshot>) -> u64 {
        self.finished.store(true, Ordering::Release);
        self.ck.finish_waiting(self.stage, self.sub, state)
    }
    fn latest_completed(&self) -> Option<u64> {
        self.ck.handle.latest_completed()
    }
    fn wait_completed(&self, id: u64) -> BoxFuture<'_, Result<(), CheckpointFailed>> {
        self.ck.handle.wait_outcome(id).boxed()
    }
    fn restored(&self) -> Option<Snapshot> {
        self.ck.restored(self.stage, self.sub).cloned()
    }
    fn skipped(&self) -> Vec<String> {
        self.ck.handle.skipped()
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
