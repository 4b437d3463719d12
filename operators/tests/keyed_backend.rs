//! Keyed aggregates whose state lives in the run's state backend (`key_by(..).in_backend()`),
//! on the in-memory and the RocksDB backend: the exact output of the in-memory aggregates,
//! with a write-back cache smaller than the keys, through a checkpoint and a restore into a
//! new run (a new backend, or RocksDB reopened on the same directory), rescaled 2 -> 1 and
//! 2 -> 3; a run without a state service fails naming the stage.

mod ck;

use ck::{Gate, Store, checkpoint, counting, dir, two_phase, until};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::{RunnableGraph, SinkFuture, Source};
use weir_operators::prelude::*;
use weir_state::{InMemoryBackend, StateBackend, StateService};
use weir_state_rocksdb::RocksDbBackend;

/// Where a run keeps its state.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Memory,
    Rocks,
    /// RocksDB in a fresh directory for every run (the restore has only the checkpoint).
    RocksFresh,
}

/// A backend of `kind`; RocksDB lives in `dir` (opened again on the same directory by a
/// later run).
fn backend(kind: Kind, dir: &Path) -> Arc<dyn StateBackend> {
    match kind {
        Kind::Memory => Arc::new(InMemoryBackend::new()),
        Kind::Rocks => Arc::new(RocksDbBackend::open(dir).expect("open RocksDB")),
        Kind::RocksFresh => {
            let fresh = dir.join(format!("{}", FRESH.fetch_add(1, Ordering::Relaxed)));
            Arc::new(RocksDbBackend::open(fresh).expect("open RocksDB"))
        }
    }
}

/// Numbers the fresh RocksDB directories.
static FRESH: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

fn with_state(
    m: Materializer,
    b: Arc<dyn StateBackend>,
    clock: &Arc<VirtualClock>,
) -> Materializer {
    m.with_service(Arc::new(StateService::new(b, clock.clone())))
}

fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("weir-keyed-backend-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Runs `graph` to the end on a fresh backend of `kind`, its output sorted.
async fn run_sorted<T: Ord + Send + 'static>(
    kind: Kind,
    name: &str,
    graph: impl FnOnce() -> RunnableGraph<SinkFuture<Vec<T>>>,
) -> Vec<T> {
    let d = temp(name);
    let clock = Arc::new(VirtualClock::new());
    let b = backend(kind, &d);
    let m = with_state(
        Materializer::new().with_clock(clock.clone()),
        b.clone(),
        &clock,
    );
    let mut out = graph().run_on(&m).expect("materialize").await.expect("run");
    drop(m);
    until("the run to release its backend", || {
        Arc::strong_count(&b) == 1
    })
    .await;
    drop(b);
    let _ = std::fs::remove_dir_all(&d);
    out.sort();
    out
}

fn model<A: Clone>(
    keys: impl Iterator<Item = (u64, u64)>,
    zero: A,
    f: impl Fn(A, u64) -> A,
) -> Vec<(u64, A)> {
    let mut m: BTreeMap<u64, A> = BTreeMap::new();
    for (k, x) in keys {
        let a = m.remove(&k).unwrap_or_else(|| zero.clone());
        m.insert(k, f(a, x));
    }
    m.into_iter().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fold_reduce_and_count_in_the_backend_emit_exactly_every_key() {
    let xs = || (0..1000u64).map(|x| (x % 37, x));
    for kind in [Kind::Memory, Kind::Rocks] {
        let fold = run_sorted(kind, "fold", || {
            Source::from_iter(0..1000u64)
                .key_by(|x: &u64| x % 37)
                .in_backend()
                .fold((0u64, 0u64), |(s, n), x| (s + x, n + 1))
                .parallelism(2)
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        assert_eq!(
            fold,
            model(xs(), (0, 0), |(s, n), x| (s + x, n + 1)),
            "{kind:?}"
        );

        let reduce = run_sorted(kind, "reduce", || {
            Source::from_iter(0..1000u64)
                .key_by(|x: &u64| x % 37)
                .in_backend()
                .reduce(|a, b| a.max(b))
                .parallelism(2)
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        let want: Vec<(u64, u64)> = (0..37).map(|k| (k, 999 - (999 - k) % 37)).collect();
        assert_eq!(reduce, want, "{kind:?}");

        let count = run_sorted(kind, "count", || {
            Source::from_iter(0..1000u64)
                .key_by(|x: &u64| x % 37)
                .in_backend()
                .count()
                .parallelism(3)
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        assert_eq!(count, model(xs(), 0u64, |n, _| n + 1), "{kind:?}");

        let words = run_sorted(kind, "owned", || {
            Source::from_iter(0..1000u64)
                .map(|x: u64| format!("w{}", x % 11))
                .key_by_owned(|w: String| (w, 1u64))
                .in_backend()
                .fold(0u64, |n, one| n + one)
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        let mut want: Vec<(String, u64)> = (0..11u64)
            .map(|k| {
                (
                    format!("w{k}"),
                    (0..1000).filter(|x| x % 11 == k).count() as u64,
                )
            })
            .collect();
        want.sort();
        assert_eq!(words, want, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_smaller_than_the_keys_writes_back_and_loses_no_count() {
    // 5000 distinct keys, each three times, through a cache of 16 keys.
    let xs = || (0..15_000u64).map(|x| ((x * 7919) % 5000, x));
    for kind in [Kind::Memory, Kind::Rocks] {
        let count = run_sorted(kind, "evict-count", || {
            Source::from_iter(0..15_000u64)
                .map(|x: u64| (x * 7919) % 5000)
                .key_by(|k: &u64| *k)
                .in_backend_cached::<16>()
                .count()
                .parallelism(2)
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        assert_eq!(count, model(xs(), 0u64, |n, _| n + 1), "{kind:?}");
        assert_eq!(count.len(), 5000);
        let fold = run_sorted(kind, "evict-fold", || {
            Source::from_iter(0..15_000u64)
                .key_by(|x: &u64| (x * 7919) % 5000)
                .in_backend_cached::<16>()
                .fold(Vec::new(), |mut v: Vec<u64>, x| {
                    v.push(x);
                    v
                })
                .to_mat(Sink::collect(), Keep::right)
        })
        .await;
        let want = model(xs(), Vec::new(), |mut v, x| {
            v.push(x);
            v
        });
        assert_eq!(fold, want, "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completion_emits_a_large_state_in_chunks_through_a_boundary_and_loses_no_key() {
    // 200,000 keys leave in several chunks of whole key groups (65,536 keys at most each),
    // each sent past the boundary before the next is read from the backend.
    let n = 200_000u64;
    let received = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = Arc::clone(&received);
    let count = run_sorted(Kind::Memory, "chunks", || {
        Source::from_iter(0..n)
            .key_by(|k: &u64| *k)
            .in_backend()
            .count()
            .async_boundary()
            .to_mat(
                Sink::fold(Vec::new(), move |mut v: Vec<(u64, u64)>, x| {
                    v.push(x);
                    seen.fetch_add(1, Ordering::Relaxed);
                    v
                }),
                Keep::right,
            )
    })
    .await;
    assert_eq!(count, (0..n).map(|k| (k, 1)).collect::<Vec<_>>());
    assert_eq!(received.load(Ordering::Relaxed), n as usize);
}

#[tokio::test]
async fn a_run_without_a_state_service_fails_naming_the_stage() {
    let g = Source::from_iter(0..10u64)
        .key_by(|x: &u64| x % 2)
        .in_backend()
        .count()
        .named("tally")
        .to_mat(Sink::collect(), Keep::right);
    let Err(e) = g.run_on(&Materializer::new()) else {
        panic!("a run without a StateService was materialized");
    };
    assert_eq!(
        e.to_string(),
        "stage 'tally#2' failed: it keeps its keyed state in the run's state backend \
         (in_backend()), but the run has no StateService: register one with \
         Materializer::with_service"
    );
}

const N: u64 = 400;

/// Per key (`x % 10`) sum and count through the backend, at `parallelism`, as one number per
/// key (`key * 1e9 + sum * 1e3 + count`) for the two-phase sink.
fn fold_job(parallelism: usize) -> impl Fn(&Arc<Gate>, &Arc<Store>) -> RunnableGraph<()> {
    move |gate, store| {
        counting("events", N, gate)
            .key_by(|x: &u64| x % 10)
            .in_backend_cached::<4>()
            .fold((0u64, 0u64), |(s, n), x| (s + x, n + 1))
            .parallelism(parallelism)
            .map(|(k, (s, n))| k * 1_000_000_000 + s * 1000 + n)
            .to(two_phase(store))
    }
}

/// Counts of `x % 13` as owned strings through the backend, one number per key
/// (`key * 1000 + count`).
fn count_job(parallelism: usize) -> impl Fn(&Arc<Gate>, &Arc<Store>) -> RunnableGraph<()> {
    move |gate, store| {
        counting("events", N, gate)
            .map(|x: u64| format!("{}", x % 13))
            .key_by_owned(|w: String| (w, ()))
            .in_backend()
            .count()
            .parallelism(parallelism)
            .map(|(w, n): (String, u64)| w.parse::<u64>().unwrap_or(u64::MAX) * 1000 + n)
            .to(two_phase(store))
    }
}

fn model_folds() -> Vec<u64> {
    let m = model((0..N).map(|x| (x % 10, x)), (0u64, 0u64), |(s, n), x| {
        (s + x, n + 1)
    });
    m.into_iter()
        .map(|(k, (s, n))| k * 1_000_000_000 + s * 1000 + n)
        .collect()
}

fn model_counts() -> Vec<u64> {
    let m = model((0..N).map(|x| (x % 13, x)), 0u64, |n, _| n + 1);
    m.into_iter().map(|(k, n)| k * 1000 + n).collect()
}

/// Runs `first` until checkpoint 1 (after 150 events) completed and the source went on to
/// 290, cancels it, then runs `second` in a new run (a new backend: RocksDB opened again on
/// the same directory) restored from the same checkpoint directory; returns the committed
/// output, sorted.
async fn crash_and_resume(
    kind: Kind,
    name: &str,
    first: impl Fn(&Arc<Gate>, &Arc<Store>) -> RunnableGraph<()>,
    second: impl Fn(&Arc<Gate>, &Arc<Store>) -> RunnableGraph<()>,
) -> Vec<u64> {
    let d = dir(&format!("backend-{name}-{kind:?}"));
    let state_dir = temp(&format!("{name}-{kind:?}"));
    let store = Arc::new(Store::default());
    {
        let gate = Arc::new(Gate::default());
        let (m, clock) = ck::mat(&d);
        let first_backend = backend(kind, &state_dir);
        let m = with_state(m, first_backend.clone(), &clock);
        let ((), h) = m.materialize(&first(&gate, &store)).expect("materialize");
        gate.open(150);
        until("150 events", || gate.emitted.load(Ordering::Acquire) == 150).await;
        checkpoint(&h, &clock, 1).await;
        gate.open(290);
        until("290 events", || gate.emitted.load(Ordering::Acquire) == 290).await;
        h.cancel();
        assert!(h.wait().await.is_err());
        drop((m, h));
        // The cancelled run's stages let go of the backend (RocksDB: its directory lock).
        until("the first run to release its backend", || {
            Arc::strong_count(&first_backend) == 1
        })
        .await;
    }
    let gate = Arc::new(Gate::default());
    let (m, clock) = ck::mat(&d);
    let second_backend = backend(kind, &state_dir);
    let m = with_state(m, second_backend.clone(), &clock);
    let ((), h) = m.materialize(&second(&gate, &store)).expect("materialize");
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.expect("the resumed run");
    drop((m, h));
    until("the resumed run to release its backend", || {
        Arc::strong_count(&second_backend) == 1
    })
    .await;
    drop(second_backend);
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&state_dir);
    let mut out = store.output();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_backend_aggregates_resume_from_a_checkpoint_in_a_new_run() {
    for kind in [Kind::Memory, Kind::Rocks, Kind::RocksFresh] {
        let got = crash_and_resume(kind, "fold", fold_job(2), fold_job(2)).await;
        assert_eq!(got, model_folds(), "{kind:?}");
        let got = crash_and_resume(kind, "count", count_job(1), count_job(1)).await;
        assert_eq!(got, model_counts(), "{kind:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_backend_aggregates_rescale_from_two_subtasks_to_one_and_to_three() {
    for kind in [Kind::Memory, Kind::Rocks] {
        for to in [1, 3] {
            let got =
                crash_and_resume(kind, &format!("fold-2-{to}"), fold_job(2), fold_job(to)).await;
            assert_eq!(got, model_folds(), "{kind:?} 2 -> {to}");
            let got =
                crash_and_resume(kind, &format!("count-2-{to}"), count_job(2), count_job(to)).await;
            assert_eq!(got, model_counts(), "{kind:?} 2 -> {to}");
        }
    }
}
