//! Keyed state through checkpoints: keyed aggregates and event-time windows of a run cancelled
//! after a checkpoint and started again on the same directory produce exactly the output of a
//! run without failure, also when the keyed stage restarts at another parallelism (2 -> 1,
//! 2 -> 3: every new subtask takes the key groups it owns from every old subtask's state); a
//! stateful stage whose state is not keyed refuses a changed parallelism, naming itself.

mod ck;

use ck::{Gate, SECOND, Store, checkpoint, dir, mat_in as mat, same, two_phase, until};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_engine::EngineError;
use weir_graph::{RunnableGraph, StateCodec};
use weir_operators::prelude::*;
use weir_operators::simple;
use weir_operators::time::{Timestamped, WatermarkStrategy};
use weir_operators::window::{Builtin, Num, WindowOutput, Windows};

const N: u64 = 400;

/// The output of `job` run to the end without checkpoints.
async fn unfailed<T: Clone + Ord>(
    job: impl Fn(&Arc<Gate>, &Arc<Store<T>>) -> RunnableGraph<()>,
) -> Vec<T> {
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(None);
    let ((), h) = m.materialize(&job(&gate, &store)).unwrap();
    gate.open(N);
    h.wait().await.unwrap();
    store.sorted()
}

/// Runs `first` until checkpoint 1 (after `at` events) completed and the source went on to
/// `to`, cancels it, then runs `second` on the same directory to the end; returns what was
/// committed and checks the second run restored checkpoint 1.
async fn crash_and_resume<T: Clone + Ord>(
    name: &str,
    first: impl Fn(&Arc<Gate>, &Arc<Store<T>>) -> RunnableGraph<()>,
    second: impl Fn(&Arc<Gate>, &Arc<Store<T>>) -> RunnableGraph<()>,
) -> (Vec<T>, Vec<u64>) {
    let d = dir(name);
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&first(&gate, &store)).unwrap();
    gate.open(150);
    until("150 events", || gate.emitted.load(Ordering::Acquire) == 150).await;
    checkpoint(&h, &clock, 1).await;
    gate.open(290);
    until("290 events", || gate.emitted.load(Ordering::Acquire) == 290).await;
    h.cancel();
    assert!(h.wait().await.is_err());
    let after_crash = store.ids();

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(Some(&d));
    let ((), h) = m.materialize(&second(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    // Every subtask got its state, also at another parallelism (by key group).
    assert_eq!(h.checkpoints().unwrap().started_empty(), vec![]);
    let _ = std::fs::remove_dir_all(&d);
    (store.sorted(), after_crash)
}

/// Event time of event `x`: 10 ms apart, up to 40 ms out of order (never late with a bound of
/// 100 ms, whatever the watermarks' cadence).
fn ts(x: u64) -> i64 {
    (x * 10 + (x * 37) % 41) as i64
}

type Row = (u64, i64, i64, i128);

fn num(n: Num) -> i128 {
    match n {
        Num::Int(i) => i,
        Num::Float(f) => f as i128,
    }
}

/// Sums per key (`x % 7`) in 100 ms tumbling event-time windows, the window stage at
/// `parallelism`; a late element would show as a row with window `(-1, -1)`.
fn window_job(parallelism: usize) -> impl Fn(&Arc<Gate>, &Arc<Store<Row>>) -> RunnableGraph<()> {
    move |gate, store| {
        ck::counting("events", N, gate)
            .assign_timestamps(
                |x: &u64| ts(*x),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
            )
            .map(|e: Timestamped<u64>| Timestamped::new(e.ts, Num::Int(e.value as i128)))
            .window_by(
                |e: &Timestamped<Num>| num(e.value) as u64 % 7,
                Windows::tumbling(Duration::from_millis(100)),
            )
            .checkpointed()
            .aggregate(Builtin::Sum)
            .parallelism(parallelism)
            .map(|o: WindowOutput<u64, Num, Num>| match o {
                WindowOutput::Fired { key, window, value } => {
                    (key, window.start, window.end, num(value))
                }
                WindowOutput::Late { key, element } => (key, -1, -1, num(element.value)),
            })
            .to(two_phase(store))
    }
}

/// The windows a plain loop computes: every `(key, start, end, sum)`, sorted.
fn model_windows() -> Vec<Row> {
    let mut m: BTreeMap<(u64, i64), i128> = BTreeMap::new();
    for x in 0..N {
        let start = ts(x) - ts(x).rem_euclid(100);
        *m.entry((x % 7, start)).or_default() += x as i128;
    }
    let mut v: Vec<Row> = m
        .into_iter()
        .map(|((k, s), sum)| (k, s, s + 100, sum))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_resume_from_a_checkpoint_with_exactly_the_unfailed_output() {
    let want = unfailed(window_job(1)).await;
    same(&want, &model_windows());
    let (got, ids) = crash_and_resume("windows", window_job(1), window_job(1)).await;
    // Checkpoint 1 committed windows before the crash; the rest came after the restore.
    assert_eq!(ids, vec![1]);
    same(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_rescale_from_two_subtasks_to_one_and_to_three() {
    let want = model_windows();
    same(&unfailed(window_job(2)).await, &want);
    let (got, _) = crash_and_resume("windows-2-1", window_job(2), window_job(1)).await;
    same(&got, &want);
    let (got, _) = crash_and_resume("windows-2-3", window_job(2), window_job(3)).await;
    same(&got, &want);
}

/// Per key (`x % 10`) sum and count of the events, the aggregates at `parallelism`.
fn fold_job(
    parallelism: usize,
) -> impl Fn(&Arc<Gate>, &Arc<Store<(u64, u64, u64)>>) -> RunnableGraph<()> {
    move |gate, store| {
        ck::counting("events", N, gate)
            .key_by(|x: &u64| x % 10)
            .checkpointed()
            .fold((0u64, 0u64), |(s, n), x| (s + x, n + 1))
            .parallelism(parallelism)
            .map(|(k, (s, n))| (k, s, n))
            .to(two_phase(store))
    }
}

fn model_folds() -> Vec<(u64, u64, u64)> {
    let mut m: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for x in 0..N {
        let e = m.entry(x % 10).or_default();
        e.0 += x;
        e.1 += 1;
    }
    m.into_iter().map(|(k, (s, n))| (k, s, n)).collect()
}

/// Word counts of `x % 13` rendered as an owned `String` key moved into the count.
fn count_job(
    parallelism: usize,
) -> impl Fn(&Arc<Gate>, &Arc<Store<(String, u64)>>) -> RunnableGraph<()> {
    move |gate, store| {
        ck::counting("events", N, gate)
            .map(|x: u64| format!("w{}", x % 13))
            .key_by_owned(|w: String| (w, ()))
            .checkpointed()
            .count()
            .parallelism(parallelism)
            .to(two_phase(store))
    }
}

fn model_counts() -> Vec<(String, u64)> {
    let mut m: BTreeMap<String, u64> = BTreeMap::new();
    for x in 0..N {
        *m.entry(format!("w{}", x % 13)).or_default() += 1;
    }
    m.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_aggregates_resume_and_rescale_with_exactly_the_unfailed_output() {
    same(&unfailed(fold_job(1)).await, &model_folds());
    let (got, ids) = crash_and_resume("fold", fold_job(1), fold_job(1)).await;
    // The aggregate emits at the end only: nothing was committed before the crash.
    assert_eq!(ids, Vec::<u64>::new());
    same(&got, &model_folds());
    let (got, _) = crash_and_resume("fold-2-1", fold_job(2), fold_job(1)).await;
    same(&got, &model_folds());
    let (got, _) = crash_and_resume("fold-2-3", fold_job(2), fold_job(3)).await;
    same(&got, &model_folds());

    same(&unfailed(count_job(2)).await, &model_counts());
    // The combiner before the hash edge flushes its partial counts at the barrier, so the
    // count's state is all in the keyed stage after it.
    let (got, _) = crash_and_resume("count", count_job(2), count_job(2)).await;
    same(&got, &model_counts());
    let (got, _) = crash_and_resume("count-2-3", count_job(2), count_job(3)).await;
    same(&got, &model_counts());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_kept_in_memory_only_refuses_a_checkpoint_naming_the_stage() {
    let d = dir("in-memory");
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let store = Store::new();
    let g = ck::counting("events", N, &gate)
        .key_by(|x: &u64| x % 10)
        .fold(0u64, |a, x| a + x)
        .to(two_phase(&store));
    let ((), h) = m.materialize(&g).unwrap();
    gate.open(10);
    until("10 events", || gate.emitted.load(Ordering::Acquire) == 10).await;
    clock.advance(SECOND);
    let e = h.wait().await.unwrap_err();
    assert!(e.to_string().contains("keyed fold"), "{e}");
    assert!(e.to_string().contains("cannot snapshot"), "{e}");
    assert!(e.to_string().contains(".checkpointed()"), "{e}");
    assert!(!d.join("chk-00000000000000000001").join("MANIFEST").exists());
    assert_eq!(store.sorted(), Vec::<(u64, u64)>::new());
    let _ = std::fs::remove_dir_all(&d);
}

fn plain_fold_job(
    parallelism: usize,
) -> impl Fn(&Arc<Gate>, &Arc<Store<u64>>) -> RunnableGraph<()> {
    move |gate, store| {
        ck::counting("events", N, gate)
            .via(
                simple::fold_with_codec(0u64, |a, x: u64| a + x, StateCodec::serde())
                    .parallelism(parallelism),
            )
            .to(two_phase(store))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_that_is_not_keyed_refuses_a_changed_parallelism_naming_the_stage() {
    let d = dir("not-keyed");
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&plain_fold_job(2)(&gate, &store)).unwrap();
    gate.open(100);
    until("100 events", || gate.emitted.load(Ordering::Acquire) == 100).await;
    checkpoint(&h, &clock, 1).await;
    h.cancel();
    assert!(h.wait().await.is_err());

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(Some(&d));
    match m.materialize(&plain_fold_job(1)(&gate, &store)) {
        Err(EngineError::Checkpoint(e)) => {
            let e = e.to_string();
            assert!(e.contains("fold#"), "{e}");
            assert!(e.contains("checkpoint 1"), "{e}");
            assert!(e.contains("not keyed"), "{e}");
            assert!(
                e.contains("restoring at parallelism 1 from a checkpoint taken at parallelism 2"),
                "{e}"
            );
        }
        other => panic!("expected a checkpoint error, got {:?}", other.map(|_| ())),
    }
    // At the checkpoint's parallelism it restores and completes: the two partial sums.
    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(Some(&d));
    let ((), h) = m.materialize(&plain_fold_job(2)(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    let got = store.sorted();
    assert_eq!(got.len(), 2);
    assert_eq!(got.iter().sum::<u64>(), N * (N - 1) / 2);
    let _ = std::fs::remove_dir_all(&d);
}
