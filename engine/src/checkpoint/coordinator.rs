//! The coordinator of one run's checkpoints: triggers barriers on the run's clock, collects the
//! stages' acknowledgements, writes each checkpoint once complete, and hands restored state to
//! the stages as they are created.

use super::store::{self, CheckpointError, StageStates};
use super::{CheckpointConfig, Checkpoints};
use crate::shared::RunShared;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::mpsc;
use weir_graph::{Control, Snapshot, StageId};

type Key = (StageId, usize);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct State {
    /// Every stage subtask that must acknowledge a checkpoint.
    expected: BTreeSet<Key>,
    /// Checkpoints triggered and not complete yet, with the acknowledgements so far.
    pending: BTreeMap<u64, StageStates>,
    /// Stage subtasks whose island completed, with their final state (they see no more barriers).
    finished: StageStates,
}

/// One run's checkpoint coordinator (a `RunShared` member when checkpoints are on).
pub(crate) struct Coordinator {
    cfg: CheckpointConfig,
    handle: Arc<Checkpoints>,
    restored: HashMap<Key, Snapshot>,
    /// How many subtasks each stage of the restored checkpoint ran.
    restored_parallelism: HashMap<StageId, usize>,
    next_id: AtomicU64,
    state: Mutex<State>,
    done: mpsc::UnboundedSender<(u64, StageStates)>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<(u64, StageStates)>>>,
}

impl Coordinator {
    /// A coordinator for `cfg`, with the state of the latest complete checkpoint in its
    /// directory loaded for restore.
    pub(crate) fn open(cfg: CheckpointConfig) -> Result<Self, CheckpointError> {
        let restored = store::latest(&cfg.dir)?;
        let newest = store::newest_id(&cfg.dir)?.unwrap_or(0);
        let (restored_id, states, restored_parallelism) = match restored {
            Some(r) => {
                tracing::info!(
                    checkpoint = r.id,
                    stages = r.states.len(),
                    "restoring checkpoint"
                );
                (Some(r.id), r.states, r.parallelism)
            }
            None => (None, HashMap::new(), HashMap::new()),
        };
        let (done, rx) = mpsc::unbounded_channel();
        Ok(Self {
            cfg,
            handle: Arc::new(Checkpoints {
                restored: restored_id,
                ..Checkpoints::default()
            }),
            restored: states,
            restored_parallelism,
            next_id: AtomicU64::new(newest + 1),
            state: Mutex::new(State::default()),
            done,
            rx: Mutex::new(Some(rx)),
        })
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
        self.restored.get(&(stage, sub))
    }

    /// How many subtasks `stage` ran in the restored checkpoint (`None`: it is not in it).
    pub(crate) fn restored_parallelism(&self, stage: StageId) -> Option<usize> {
        self.restored_parallelism.get(&stage).copied()
    }

    /// Every restored subtask state of `stage`, in subtask order (subtasks without state left out).
    pub(crate) fn restored_all(&self, stage: StageId) -> Vec<Snapshot> {
        let n = self.restored_parallelism(stage).unwrap_or(0);
        (0..n)
            .filter_map(|sub| self.restored.get(&(stage, sub)).cloned())
            .collect()
    }

    /// The id of the checkpoint restored from.
    pub(crate) fn restored_id(&self) -> Option<u64> {
        self.handle.restored
    }

    /// A stage subtask passed barrier `id` with `state`.
    pub(crate) fn ack(&self, id: u64, stage: StageId, sub: usize, state: Option<Snapshot>) {
        let mut s = lock(&self.state);
        if let Some(acks) = s.pending.get_mut(&id) {
            acks.insert((stage, sub), state);
        }
        self.complete(&mut s);
    }

    /// A stage subtask's island completed with `state`: later checkpoints hold it as it is.
    pub(crate) fn finished(&self, stage: StageId, sub: usize, state: Option<Snapshot>) {
        let mut s = lock(&self.state);
        s.finished.insert((stage, sub), state);
        self.complete(&mut s);
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
        let mut acks = s.pending.remove(&id).unwrap_or_default();
        s.pending.retain(|p, _| *p > id);
        for k in &s.expected {
            if !acks.contains_key(k)
                && let Some(f) = s.finished.get(k)
            {
                acks.insert(*k, f.clone());
            }
        }
        acks.retain(|k, _| s.expected.contains(k));
        let _ = self.done.send((id, acks));
    }

    /// The run's clock time of the first barrier, read when the run starts.
    pub(crate) fn first_barrier(&self, clock: &dyn weir_graph::Clock) -> std::time::Duration {
        clock.now() + self.cfg.interval
    }

    /// Triggers a barrier every interval from `next` on and writes completed checkpoints, until
    /// the run ends.
    pub(crate) async fn run(
        self: Arc<Self>,
        shared: Arc<RunShared>,
        mut next: std::time::Duration,
    ) {
        let Some(mut rx) = lock(&self.rx).take() else {
            return;
        };
        let clock = Arc::clone(&shared.clock);
        loop {
            tokio::select! {
                _ = shared.cancel.cancelled() => break,
                _ = shared.sinks_done.cancelled() => break,
                _ = clock.sleep_until(next) => {
                    next += self.cfg.interval;
                    let id = self.next_id.fetch_add(1, Ordering::Relaxed);
                    lock(&self.state).pending.insert(id, StageStates::new());
                    let reached = shared.injectors.inject(&Control::barrier(id));
                    tracing::debug!(checkpoint = id, sources = reached, "barrier injected");
                    let mut s = lock(&self.state);
                    self.complete(&mut s);
                }
                Some((id, states)) = rx.recv() => {
                    let dir = self.cfg.dir.clone();
                    let retain = self.cfg.retain;
                    let written = tokio::task::spawn_blocking(move || {
                        store::write(&dir, id, &states, retain)
                    })
                    .await;
                    match written {
                        Ok(Ok(path)) => {
                            tracing::debug!(checkpoint = id, dir = %path.display(), "checkpoint complete");
                            self.handle.complete(id);
                        }
                        // A failed write fails the checkpoint, never the run.
                        Ok(Err(e)) => tracing::warn!(checkpoint = id, error = %e, "checkpoint failed"),
                        Err(e) => tracing::warn!(checkpoint = id, error = %e, "checkpoint writer failed"),
                    }
                }
            }
        }
    }
}
