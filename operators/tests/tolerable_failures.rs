//! `CheckpointConfig::tolerable_failed_checkpoints(n)`: a run fails once more than `n`
//! checkpoints in a row failed (here on a full checkpoint directory), a completed checkpoint
//! resets the count, and without it failed checkpoints never fail the run.

mod ck;

use ck::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{DiskFull, RunnableGraph};

const N: u64 = 100;

fn job(gate: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    counting("numbers", N, gate).to(two_phase(store))
}

async fn emit(gate: &Gate, to: u64) {
    gate.open(to);
    until("the rows emitted", || {
        gate.emitted.load(Ordering::Acquire) >= to
    })
    .await;
}

/// Triggers checkpoint `id` on a full disk and waits until it failed.
async fn fails(h: &RunHandle, clock: &weir_engine::VirtualClock, id: u64) {
    clock.advance(SECOND);
    let ck = h.checkpoints().unwrap();
    until("the checkpoint failed", || ck.failed().contains(&id)).await;
}

fn materializer(cfg: CheckpointConfig) -> (Materializer, Arc<weir_engine::VirtualClock>) {
    let (m, clock) = mat_in(None);
    (m.with_checkpoints(cfg), clock)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_failed_checkpoints_in_a_row_than_tolerated_fail_the_run() {
    let state = dir("tolerable-state");
    std::fs::create_dir_all(&state).unwrap();
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let cfg = CheckpointConfig::new(SECOND, &state).tolerable_failed_checkpoints(1);
    let (m, clock) = materializer(cfg);
    let ((), h) = m.materialize(&job(&gate, &store)).unwrap();
    emit(&gate, 10).await;
    checkpoint(&h, &clock, 1).await;

    // One failure is tolerated; checkpoint 3 completes and resets the count.
    let full = DiskFull::fill(&state);
    emit(&gate, 20).await;
    fails(&h, &clock, 2).await;
    full.free();
    emit(&gate, 30).await;
    checkpoint(&h, &clock, 3).await;

    // Then two in a row: the second fails the run.
    let full = DiskFull::fill(&state);
    emit(&gate, 40).await;
    fails(&h, &clock, 4).await;
    assert!(!h.is_finished(), "one failure in a row is tolerated");
    emit(&gate, 50).await;
    fails(&h, &clock, 5).await;
    let e = tokio::time::timeout(std::time::Duration::from_secs(20), h.wait())
        .await
        .expect("the run ends")
        .expect_err("the run fails");
    // The error names the first stage file of checkpoint 5 (`<stable id>-0.state`).
    let msg = e.to_string();
    let head = format!(
        "2 checkpoints failed in a row, more than tolerable_failed_checkpoints(1); the last, \
         5: checkpoint file {}/",
        state.join("chk-00000000000000000005").display()
    );
    let tail = "-0.state: No space left on device (os error 28)";
    let stage = msg
        .strip_prefix(&head)
        .and_then(|m| m.strip_suffix(tail))
        .unwrap_or_else(|| panic!("unexpected error: {msg}"));
    assert!(
        stage.len() == 16 && stage.chars().all(|c| c.is_ascii_hexdigit()),
        "{msg}"
    );
    drop(full);
    let ck = h.checkpoints().unwrap();
    assert_eq!(
        (ck.failed(), ck.latest_completed()),
        (vec![2, 4, 5], Some(3))
    );
    assert_eq!(store.output(), (0..30).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&state);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_failed_checkpoints_never_fail_the_run() {
    let state = dir("tolerable-default");
    std::fs::create_dir_all(&state).unwrap();
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = materializer(CheckpointConfig::new(SECOND, &state));
    let ((), h) = m.materialize(&job(&gate, &store)).unwrap();
    let full = DiskFull::fill(&state);
    for id in 1..=4 {
        emit(&gate, id * 10).await;
        fails(&h, &clock, id).await;
    }
    full.free();
    gate.open(N);
    h.wait().await.expect("the run completes");
    assert_eq!(h.checkpoints().unwrap().failed(), [1, 2, 3, 4]);
    assert_eq!(store.output(), (0..N).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&state);
}
