//! Checkpoints end to end: barriers injected on the run's (virtual) clock snapshot every stage,
//! a checkpoint is written once all acknowledged, and a run started on the same directory
//! resumes from the latest complete one, its output continuing exactly (nothing lost or
//! doubled); a corrupt checkpoint falls back to the previous one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weir_engine::checkpoint::store;
use weir_engine::prelude::*;
use weir_engine::{CheckpointConfig, Checkpoints, EngineError};
use weir_graph::{
    Control, GraphBuilder, RunnableGraph, Sink, SinkLogic, Snapshot, Source, SourceLogic, StageCx,
    StageError, StateCodec, Step,
};
use weir_operators::fan::Merge;
use weir_operators::prelude::*;
use weir_operators::simple;

const SECOND: Duration = Duration::from_secs(1);

/// How far the test lets a [`Counting`] source go (it emits `0..limit`, then waits).
#[derive(Default)]
struct Gate {
    limit: AtomicU64,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self, to: u64) {
        self.limit.store(to, Ordering::Release);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

/// Emits `0..n` as far as its gate allows; its snapshot is its position (replayable).
struct Counting {
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
        Poll::Ready(Ok(Step::More))
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(Some(Snapshot::encode(&self.next)?))
    }
    fn restore(&mut self, s: &Snapshot) -> Result<(), StageError> {
        self.next = s.decode()?;
        Ok(())
    }
}

fn counting(name: &str, n: u64, gate: &Arc<Gate>) -> Source<u64, ()> {
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
#[derive(Default)]
struct Store {
    committed: Mutex<BTreeMap<u64, Vec<u64>>>,
    seen: AtomicUsize,
}

impl Store {
    fn output(&self) -> Vec<u64> {
        self.committed
            .lock()
            .unwrap()
            .values()
            .flatten()
            .copied()
            .collect()
    }
    fn ids(&self) -> Vec<u64> {
        self.committed.lock().unwrap().keys().copied().collect()
    }
}

/// A two-phase sink: rows before a barrier are staged under its id (pre-commit, part of the
/// snapshot), committed once the checkpoint completes or, after a crash, when restored.
struct TwoPhase {
    store: Arc<Store>,
    checkpoints: Option<Arc<Checkpoints>>,
    open: Vec<u64>,
    staged: BTreeMap<u64, Vec<u64>>,
}

impl TwoPhase {
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

impl SinkLogic<u64> for TwoPhase {
    fn on_batch(&mut self, input: &mut Vec<u64>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
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

fn two_phase(store: &Arc<Store>) -> Sink<u64, ()> {
    let store = Arc::clone(store);
    Sink::from_logic("two_phase", move |info| {
        Ok((
            TwoPhase {
                store: Arc::clone(&store),
                checkpoints: info.services.get::<Checkpoints>(),
                open: Vec::new(),
                staged: BTreeMap::new(),
            },
            (),
        ))
    })
}

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-ck-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn mat(dir: &Path) -> (Materializer, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::new());
    let m = Materializer::new()
        .with_clock(clock.clone())
        .with_batch_size(8)
        .with_checkpoints(CheckpointConfig::new(SECOND, dir));
    (m, clock)
}

/// Waits (real time, generous bound) until `cond` holds.
async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn checkpoint(h: &RunHandle, clock: &VirtualClock, id: u64) {
    clock.advance(SECOND);
    let ck = h.checkpoints().expect("the run checkpoints");
    tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(id))
        .await
        .unwrap_or_else(|_| panic!("checkpoint {id} did not complete"));
}

const N: u64 = 100;

fn scan_job(gate: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(simple::scan_with_codec(
            0u64,
            |a, x: u64| a + x,
            StateCodec::serde(),
        ))
        .to(two_phase(store))
}

fn running_sums(n: u64) -> Vec<u64> {
    std::iter::once(0)
        .chain((0..n).scan(0, |a, x| {
            *a += x;
            Some(*a)
        }))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cancelled_after_a_checkpoint_resumes_exactly_from_it() {
    let d = dir("resume");
    let store = Arc::new(Store::default());

    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&scan_job(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), None);
    gate.open(40);
    until("40 sums", || store.seen.load(Ordering::Acquire) == 41).await;
    checkpoint(&h, &clock, 1).await;
    gate.open(70);
    until("70 sums", || store.seen.load(Ordering::Acquire) == 71).await;
    h.cancel();
    assert!(h.wait().await.is_err());
    // Rows after the completion notice committed what checkpoint 1 covers, and nothing more.
    assert_eq!(store.output(), running_sums(40));
    assert_eq!(store.ids(), vec![1]);
    assert!(d.join("chk-00000000000000000001").join("MANIFEST").exists());

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&scan_job(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), running_sums(N));
    assert_eq!(store.ids(), vec![1, u64::MAX]);
    let _ = std::fs::remove_dir_all(&d);
}

fn fold_job(gate: &Arc<Gate>, store: &Arc<Store>, parallel: bool) -> RunnableGraph<()> {
    let src = counting("numbers", N, gate);
    let src = if parallel {
        src.via(simple::map(|x: u64| x).parallelism(2))
    } else {
        src
    };
    src.via(simple::fold_with_codec(
        0u64,
        |a, x: u64| a + x,
        StateCodec::serde(),
    ))
    .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barriers_align_over_two_parallel_subtasks() {
    let d = dir("parallel");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&fold_job(&gate, &store, true)).unwrap();
    gate.open(40);
    clock.advance(SECOND);
    // Rows keep coming behind the barrier on both subtasks while it aligns at the fold.
    gate.open(70);
    let ck = h.checkpoints().unwrap();
    tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(1))
        .await
        .unwrap();
    h.cancel();
    assert!(h.wait().await.is_err());
    assert_eq!(store.output(), Vec::<u64>::new());
    let written = store::read(&d.join("chk-00000000000000000001")).unwrap();
    // Source, fold and sink hold state; the two map subtasks acknowledged without any.
    assert_eq!(written.states.len(), 3);

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&fold_job(&gate, &store, true)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), vec![N * (N - 1) / 2]);
    let _ = std::fs::remove_dir_all(&d);
}

fn merge_job(a: &Arc<Gate>, b: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(counting("a", N, a));
    let (sb, _) = g.add_source(counting("b", N, b));
    let m = g.add(Merge::<u64>::new(2));
    let (si, _) = g.add_sink(
        simple::fold_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde()).to(two_phase(store)),
    );
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    g.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_through_a_merge_snapshots_both_sources() {
    let d = dir("merge");
    let store = Arc::new(Store::default());
    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&merge_job(&a, &b, &store)).unwrap();
    a.open(30);
    b.open(50);
    checkpoint(&h, &clock, 1).await;
    a.open(60);
    h.cancel();
    assert!(h.wait().await.is_err());

    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&merge_job(&a, &b, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    a.open(N);
    b.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), vec![N * (N - 1)]);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_latest_manifest_falls_back_to_the_previous_checkpoint() {
    let d = dir("fallback");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, &d).retain(2));
    let ((), h) = m.materialize(&fold_job(&gate, &store, false)).unwrap();
    for (id, to) in [(1, 20), (2, 40), (3, 60)] {
        gate.open(to);
        checkpoint(&h, &clock, id).await;
    }
    h.cancel();
    assert!(h.wait().await.is_err());
    // Retention keeps the newest two.
    let mut kept: Vec<_> = std::fs::read_dir(&d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        ["chk-00000000000000000002", "chk-00000000000000000003"]
    );
    let manifest = d.join("chk-00000000000000000003").join("MANIFEST");
    let mut text = std::fs::read(&manifest).unwrap();
    text[20] ^= 1;
    std::fs::write(&manifest, text).unwrap();

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&fold_job(&gate, &store, false)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(2));
    gate.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), vec![N * (N - 1) / 2]);

    // With the older one corrupt too, the run refuses to start empty and names the file.
    let older = d.join("chk-00000000000000000002").join("MANIFEST");
    std::fs::write(&older, b"weir-checkpoint 1\n").unwrap();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    match m.materialize(&fold_job(&gate, &store, false)) {
        Err(EngineError::Checkpoint(e)) => {
            assert!(e.to_string().contains("chk-00000000000000000003"), "{e}")
        }
        other => panic!("expected a checkpoint error, got {:?}", other.map(|_| ())),
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_that_cannot_snapshot_fails_the_run_naming_it() {
    let d = dir("nocodec");
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let (total, h) = m
        .materialize(
            &counting("numbers", N, &gate)
                .via(simple::fold(0u64, |a, x: u64| a + x))
                .to_mat(Sink::collect(), |(), f| f),
        )
        .unwrap();
    gate.open(10);
    clock.advance(SECOND);
    let e = h.wait().await.unwrap_err();
    assert!(e.to_string().contains("cannot snapshot"), "{e}");
    assert!(e.to_string().contains("fold"), "{e}");
    assert!(total.await.is_err());
    assert!(!d.join("chk-00000000000000000001").join("MANIFEST").exists());
    let _ = std::fs::remove_dir_all(&d);
}
