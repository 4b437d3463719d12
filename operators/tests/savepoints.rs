//! Savepoints: taken from a running handle into a directory of their own (never pruned), a
//! run restores one with `restore_from` and continues exactly; in a changed graph stages are
//! matched by stable id, new ones start empty and are reported, and state whose stage is gone
//! is an error unless `allow_unmatched`.

mod ck;

use ck::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_engine::checkpoint::{CheckpointError, store};
use weir_engine::prelude::*;
use weir_engine::{CheckpointConfig, EngineError};
use weir_graph::{RunnableGraph, StageId, StateCodec};
use weir_operators::simple;

const N: u64 = 100;

/// `numbers` (uid `numbers`) → an optional `double` map (uid `double`) → running sums (uid
/// `sums`, omitted when `sums` is false) → the two-phase sink (uid `out`).
fn job(gate: &Arc<Gate>, store: &Arc<Store>, double: bool, sums: bool) -> RunnableGraph<()> {
    let mut src = counting("numbers", N, gate).uid("numbers");
    if double {
        src = src.via(simple::map(|x: u64| 2 * x).uid("double"));
    }
    if sums {
        src = src
            .via(simple::scan_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde()).uid("sums"));
    }
    src.to(two_phase(store).uid("out"))
}

fn running_sums(xs: impl Iterator<Item = u64>) -> Vec<u64> {
    std::iter::once(0)
        .chain(xs.scan(0, |a, x| {
            *a += x;
            Some(*a)
        }))
        .collect()
}

/// Runs `job` to a savepoint after 40 numbers and cancels it; returns the savepoint's path.
async fn savepoint_after_40(name: &str, store: &Arc<Store>) -> std::path::PathBuf {
    let d = dir(name);
    let sp = dir(&format!("{name}-sp"));
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, &d).retain(1));
    let ((), h) = m.materialize(&job(&gate, store, false, true)).unwrap();
    gate.open(40);
    until("40 sums", || store.seen.load(Ordering::Acquire) == 41).await;
    let path = tokio::time::timeout(Duration::from_secs(20), h.savepoint(&sp))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(path, sp);
    // Later checkpoints and retention never remove it.
    for id in 2..=4 {
        checkpoint(&h, &clock, id).await;
    }
    h.cancel();
    assert!(h.wait().await.is_err());
    assert!(sp.join("MANIFEST").exists());
    assert_eq!(store::read(&sp).unwrap().id, 1);
    let _ = std::fs::remove_dir_all(&d);
    sp
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_restored_from_a_savepoint_continues_exactly() {
    let store = Arc::new(Store::default());
    let sp = savepoint_after_40("sp-same", &store).await;
    let gate = Arc::new(Gate::default());
    let d = dir("sp-same-2");
    let (m, _clock) = mat(&d);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, &d).restore_from(&sp));
    let ((), h) = m.materialize(&job(&gate, &store, false, true)).unwrap();
    let ck = h.checkpoints().unwrap();
    assert_eq!(ck.restored(), Some(1));
    assert_eq!(ck.started_empty(), vec![]);
    gate.open(N);
    h.wait().await.unwrap();
    // The savepoint's sink state committed what it staged; the rest follows once.
    assert_eq!(store.output(), running_sums(0..N));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&sp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stage_added_to_the_graph_starts_empty_and_is_reported() {
    let store = Arc::new(Store::default());
    let sp = savepoint_after_40("sp-added", &store).await;
    let gate = Arc::new(Gate::default());
    let d = dir("sp-added-2");
    let (m, _clock) = mat(&d);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, &d).restore_from(&sp));
    let ((), h) = m.materialize(&job(&gate, &store, true, true)).unwrap();
    let ck = h.checkpoints().unwrap();
    assert_eq!(ck.started_empty(), vec![(StageId::of_uid("double"), 0)]);
    gate.open(N);
    h.wait().await.unwrap();
    // The sums kept their state (40 numbers summed) and go on over doubled numbers.
    let before = running_sums(0..40);
    let base = *before.last().unwrap();
    let after = (40..N).scan(base, |a, x| {
        *a += 2 * x;
        Some(*a)
    });
    assert_eq!(
        store.output(),
        before.into_iter().chain(after).collect::<Vec<_>>()
    );
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&sp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_of_a_removed_stage_is_an_error_unless_allowed() {
    let store = Arc::new(Store::default());
    let sp = savepoint_after_40("sp-removed", &store).await;
    let d = dir("sp-removed-2");
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let m = m.with_checkpoints(CheckpointConfig::new(SECOND, &d).restore_from(&sp));
    match m.materialize(&job(&gate, &store, false, false)) {
        Err(EngineError::Checkpoint(CheckpointError::Unmatched { path, stages })) => {
            assert_eq!(path, sp);
            assert_eq!(stages, format!("{}#0", StageId::of_uid("sums")));
        }
        other => panic!(
            "expected an unmatched-state error, got {:?}",
            other.map(|_| ())
        ),
    }
    let (m, _clock) = mat(&d);
    let m = m.with_checkpoints(
        CheckpointConfig::new(SECOND, &d)
            .restore_from(&sp)
            .allow_unmatched(),
    );
    let ((), h) = m.materialize(&job(&gate, &store, false, false)).unwrap();
    assert_eq!(h.checkpoints().unwrap().started_empty(), vec![]);
    gate.open(N);
    h.wait().await.unwrap();
    // Without the sums the numbers themselves follow the 40 restored sums.
    let expect: Vec<u64> = running_sums(0..40).into_iter().chain(40..N).collect();
    assert_eq!(store.output(), expect);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&sp);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_of_a_run_without_checkpoints_is_an_error() {
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let ((), h) = Materializer::new()
        .materialize(&job(&gate, &store, false, true))
        .unwrap();
    let e = h.savepoint(dir("sp-none")).await.unwrap_err();
    assert!(matches!(e, CheckpointError::Savepoint { .. }), "{e}");
    h.cancel();
    let _ = h.wait().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_savepoint_of_a_run_that_ended_is_an_error() {
    let d = dir("sp-ended");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&job(&gate, &store, false, true)).unwrap();
    gate.open(N);
    h.wait().await.unwrap();
    let e = tokio::time::timeout(Duration::from_secs(20), h.savepoint(dir("sp-ended-sp")))
        .await
        .unwrap()
        .unwrap_err();
    assert!(e.to_string().contains("the run ended"), "{e}");
    let _ = std::fs::remove_dir_all(&d);
}
