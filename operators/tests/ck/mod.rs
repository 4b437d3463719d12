//! Helpers of the checkpoint tests: a gated replayable source, a two-phase sink over an
//! in-memory store, checkpoint directories and a materializer on the virtual clock.
#![allow(dead_code)]

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::{CheckpointConfig, Checkpoints};
use weir_graph::{
    Control, Sink, SinkLogic, Snapshot, Source, SourceLogic, StageCx, StageError, Step,
};

pub const SECOND: Duration = Duration::from_secs(1);

/// How far the test lets a [`Counting`] source go (it emits `0..limit`, then waits).
#[derive(Default)]
pub struct Gate {
    pub limit: AtomicU64,
    pub waker: Mutex<Option<Waker>>,
    /// How far the source has emitted (its position after its last batch).
    pub emitted: AtomicU64,
}

impl Gate {
    pub fn open(&self, to: u64) {
        self.limit.store(to, Ordering::Release);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// Emits `0..n` as far as its gate allows; its snapshot is its position (replayable).
pub struct Counting {
    next: u64,
    n: u64,
    gate: Arc<Gate>,
}

impl SourceLogic<u64> for Counting {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        if self.next == self.n {
            return Poll::Ready(Ok(Step::Done));
        }
        *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
        let limit = self.gate.limit.load(Ordering::Acquire).min(self.n);
        if self.next >= limit {
            return Poll::Pending;
        }
        let end = limit.min(self.next + scx.batch_size() as u64);
        out.extend(self.next..end);
        self.next = end;
        self.gate.emitted.store(end, Ordering::Release);
        Poll::Ready(Ok(Step::More))
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.next)?))
    }
    fn restore(&mut self, s: &Snapshot) -> Result<(), StageError> {
        self.next = s.decode()?;
        self.gate.emitted.store(self.next, Ordering::Release);
        Ok(())
    }
}

pub fn counting(name: &str, n: u64, gate: &Arc<Gate>) -> Source<u64, ()> {
    let gate = Arc::clone(gate);
    Source::from_logic(name, move |_| {
        Ok((
            Counting {
                next: 0,
                n,
                gate: Arc::clone(&gate),
            },
            (),
        ))
    })
}

/// What a transactional sink committed, by checkpoint id (`u64::MAX`: the end of the stream);
/// committing the same id twice is idempotent, as an external store's would be.
pub struct Store<T = u64> {
    pub committed: Mutex<BTreeMap<u64, Vec<T>>>,
    pub seen: AtomicUsize,
}

impl<T> Default for Store<T> {
    fn default() -> Self {
        Self {
            committed: Mutex::new(BTreeMap::new()),
            seen: AtomicUsize::new(0),
        }
    }
}

impl<T: Clone> Store<T> {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    /// Everything committed, in commit order.
    pub fn output(&self) -> Vec<T> {
        self.committed
            .lock()
            .unwrap()
            .values()
            .flatten()
            .cloned()
            .collect()
    }
    /// Everything committed, sorted (keyed output has no order across keys and subtasks).
    pub fn sorted(&self) -> Vec<T>
    where
        T: Ord,
    {
        let mut v = self.output();
        v.sort();
        v
    }
    pub fn ids(&self) -> Vec<u64> {
        self.committed.lock().unwrap().keys().copied().collect()
    }
}

/// A two-phase sink: rows before a barrier are staged under its id (pre-commit, part of the
/// snapshot), committed once the checkpoint completes or, after a crash, when restored.
pub struct TwoPhase<T = u64> {
    store: Arc<Store<T>>,
    checkpoints: Option<Arc<Checkpoints>>,
    open: Vec<T>,
    staged: BTreeMap<u64, Vec<T>>,
}

impl<T> TwoPhase<T> {
    /// A two-phase sink into `store`, committing on `checkpoints`' notices.
    pub fn new(store: &Arc<Store<T>>, checkpoints: Option<Arc<Checkpoints>>) -> Self {
        Self {
            store: Arc::clone(store),
            checkpoints,
            open: Vec::new(),
            staged: BTreeMap::new(),
        }
    }
    fn commit_through(&mut self, id: u64) {
        let mut c = self.store.committed.lock().unwrap();
        while let Some(e) = self.staged.first_entry() {
            if *e.key() > id {
                break;
            }
            let (k, rows) = e.remove_entry();
            c.insert(k, rows);
        }
    }
    fn notified(&mut self) {
        if let Some(id) = self.checkpoints.as_ref().and_then(|c| c.latest_completed()) {
            self.commit_through(id);
        }
    }
}

impl<T> SinkLogic<T> for TwoPhase<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    fn on_batch(&mut self, input: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.notified();
        self.store.seen.fetch_add(input.len(), Ordering::AcqRel);
        self.open.append(input);
        Ok(())
    }
    fn on_control(&mut self, control: Control, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if let Control::Barrier { id } = control {
            self.staged.insert(id, std::mem::take(&mut self.open));
        }
        self.notified();
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.commit_through(u64::MAX);
        let rest = std::mem::take(&mut self.open);
        self.store.committed.lock().unwrap().insert(u64::MAX, rest);
        Ok(())
    }
    fn on_error(&mut self, _error: &StageError) {}
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.staged)?))
    }
    fn restore(&mut self, s: &Snapshot) -> Result<(), StageError> {
        // Everything staged in a restored checkpoint belongs to a complete checkpoint.
        self.staged = s.decode()?;
        self.commit_through(u64::MAX);
        Ok(())
    }
}

pub fn two_phase<T>(store: &Arc<Store<T>>) -> Sink<T, ()>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    let store = Arc::clone(store);
    Sink::from_logic("two_phase", move |info| {
        Ok((
            TwoPhase::new(&store, info.services.get::<Checkpoints>()),
            (),
        ))
    })
}

pub fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-ck-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub fn mat(dir: &Path) -> (Materializer, Arc<VirtualClock>) {
    mat_in(Some(dir))
}

/// A materializer on the virtual clock with batches of 8, checkpointing every second into
/// `dir` when given.
pub fn mat_in(dir: Option<&Path>) -> (Materializer, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new());
    let m = Materializer::new()
        .with_clock(clock.clone())
        .with_batch_size(8);
    let m = match dir {
        Some(d) => m.with_checkpoints(CheckpointConfig::new(SECOND, d)),
        None => m,
    };
    (m, clock)
}

/// Asserts `got == want`, reporting the sizes and the first difference (not both lists).
#[track_caller]
pub fn same<T: PartialEq + std::fmt::Debug>(got: &[T], want: &[T]) {
    if got != want {
        let at = got.iter().zip(want).position(|(a, b)| a != b);
        let first = at.map(|i| (&got[i], &want[i]));
        panic!(
            "{} rows, {} expected; first difference at {at:?}: {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Waits (real time, generous bound) until `cond` holds.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

pub async fn checkpoint(h: &RunHandle, clock: &VirtualClock, id: u64) {
    clock.advance(SECOND);
    let ck = h.checkpoints().expect("the run checkpoints");
    tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(id))
        .await
        .unwrap_or_else(|_| panic!("checkpoint {id} did not complete"));
}
