//! `throttle` under checkpoints: it asks upstream only for what its tokens pay for, so a barrier
//! behind a large backlog reaches downstream within one token period (on the virtual clock),
//! and the output stays exact and in order.

mod ck;

use ck::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_graph::RunnableGraph;
use weir_operators::time;

const N: u64 = 100;
const TOKEN: Duration = Duration::from_millis(100);

/// `0..N` through a throttle of one element per 100 ms (burst 1) into a two-phase sink.
fn throttled_job(gate: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(time::throttle(1, TOKEN, 1))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_behind_a_backlog_passes_within_one_token_period() {
    let d = dir("throttle-barrier");
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&throttled_job(&gate, &store)).unwrap();
    // The whole backlog is there from the start; the first barrier is injected at 1 s.
    gate.open(N);
    clock.run_for(SECOND).await;
    // One token period later the clock stops: the barrier must have passed by now.
    clock.run_for(TOKEN).await;
    let ck = h.checkpoints().unwrap();
    tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(1))
        .await
        .expect("the barrier passed the throttle within one token period");
    // Tokens at 0, 100, ..., 1100 ms paid for rows 0..=11 by now, and the source was asked for
    // one row at a time: no backlog built up in front of the throttle.
    let seen = store.seen.load(Ordering::Acquire);
    assert!(seen <= 12, "the sink received {seen} rows by 1100 ms");
    let emitted = gate.emitted.load(Ordering::Acquire);
    assert!(
        emitted <= seen as u64 + 1,
        "the source emitted {emitted} rows, {seen} passed the throttle"
    );

    // The rest at the throttle's rate: exact and in order across the later checkpoints.
    clock.run_for(TOKEN * N as u32).await;
    tokio::time::timeout(Duration::from_secs(20), h.wait())
        .await
        .expect("the run ends")
        .expect("the run completes");
    same(&store.output(), &(0..N).collect::<Vec<_>>());
    // Rows 0..=10 were paid for by 1000 ms, when barrier 1 was injected; the row the throttle
    // held then (row 11, paid at 1100) may come before it: nothing else does.
    let before: Vec<u64> = store.committed.lock().unwrap()[&1].clone();
    assert!(
        before == (0..11).collect::<Vec<_>>() || before == (0..12).collect::<Vec<_>>(),
        "rows before barrier 1: {before:?}"
    );
    let ids = store.ids();
    assert_eq!(ids.first(), Some(&1));
    assert_eq!(ids.last(), Some(&u64::MAX));
    let _ = std::fs::remove_dir_all(&d);
}
