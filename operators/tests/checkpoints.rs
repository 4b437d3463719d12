//! Checkpoints end to end: barriers injected on the run's (virtual) clock snapshot every stage,
//! a checkpoint is written once all acknowledged, and a run started on the same directory
//! resumes from the latest complete one, its output continuing exactly (nothing lost or
//! doubled); a corrupt checkpoint falls back to the previous one.

mod ck;

use ck::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_engine::checkpoint::store;
use weir_engine::{CheckpointConfig, EngineError};
use weir_graph::{GraphBuilder, RunnableGraph, Sink, StateCodec};
use weir_operators::fan::Merge;
use weir_operators::prelude::*;
use weir_operators::simple;

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
