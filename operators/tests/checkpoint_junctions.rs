//! Exact checkpoints through junctions: a junction blocks each input that delivered a barrier
//! until all did, so a checkpoint cut through a zip or a broadcast diamond restores to exactly
//! the output of a run without failure; a zip that holds rows of one side when the other side's
//! barrier arrives cannot align without stalling and declines the checkpoint (it fails, the next
//! one completes); an input that ended counts as aligned; checkpoints keep completing under
//! backpressure, each with its duration recorded.

mod ck;

use ck::*;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{GraphBuilder, RunnableGraph, Sink, SinkLogic, StageCx, StageError};
use weir_operators::fan::{Broadcast, Merge, ZipWith};
use weir_operators::simple;
use weir_operators::time::{Timestamped, WatermarkStrategy, assign_timestamps};

const N: u64 = 100;

fn zip_job(a: &Arc<Gate>, b: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(counting("a", N, a));
    let (sb, _) = g.add_source(counting("b", N, b));
    let z = g.add(ZipWith::new(|x: u64, y: u64| x * 1000 + y));
    let (si, _) = g.add_sink(two_phase(store));
    g.connect(sa, z.left).unwrap();
    g.connect(sb, z.right).unwrap();
    g.connect(z.outlet, si).unwrap();
    g.build().unwrap()
}

fn zipped(n: u64) -> Vec<u64> {
    (0..n).map(|i| i * 1001).collect()
}

async fn cancel(h: RunHandle) {
    h.cancel();
    assert!(h.wait().await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_a_zip_restores_exactly() {
    let d = dir("zip");
    let store = Arc::new(Store::default());
    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&zip_job(&a, &b, &store)).unwrap();
    a.open(30);
    b.open(30);
    until("30 pairs", || store.seen.load(Ordering::Acquire) == 30).await;
    checkpoint(&h, &clock, 1).await;
    // Left runs ahead behind the barrier: those rows are not in checkpoint 1.
    a.open(60);
    b.open(45);
    until("45 pairs", || store.seen.load(Ordering::Acquire) == 45).await;
    cancel(h).await;
    assert_eq!(store.output(), zipped(30));

    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&zip_job(&a, &b, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    a.open(N);
    b.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), zipped(N));
    assert_eq!(store.ids(), vec![1, u64::MAX]);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_holding_one_side_declines_the_checkpoint_and_the_next_one_is_exact() {
    let d = dir("zip-decline");
    let store = Arc::new(Store::default());
    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&zip_job(&a, &b, &store)).unwrap();
    let ck = h.checkpoints().unwrap();
    // The zip holds 10 rows of the left side when the right side's barrier arrives.
    a.open(30);
    b.open(20);
    until("20 pairs", || store.seen.load(Ordering::Acquire) == 20).await;
    clock.advance(SECOND);
    until("checkpoint 1 declined", || ck.failed() == vec![1]).await;
    assert_eq!(ck.latest_completed(), None);
    // Balanced again: checkpoint 2 completes and covers the pairs before it.
    b.open(30);
    until("30 pairs", || store.seen.load(Ordering::Acquire) == 30).await;
    checkpoint(&h, &clock, 2).await;
    assert_eq!(ck.failed(), vec![1]);
    a.open(50);
    b.open(40);
    until("40 pairs", || store.seen.load(Ordering::Acquire) == 40).await;
    cancel(h).await;
    assert_eq!(store.output(), zipped(30));

    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&zip_job(&a, &b, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(2));
    a.open(N);
    b.open(N);
    h.wait().await.unwrap();
    assert_eq!(store.output(), zipped(N));
    let _ = std::fs::remove_dir_all(&d);
}

/// `numbers` fans out to `2x` and `2x + 1` and merges back: every number appears once per
/// branch.
fn diamond_job(gate: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    let mut g = GraphBuilder::new();
    let (s, _) = g.add_source(counting("numbers", N, gate));
    let fan = g.add(Broadcast::<u64>::new(2));
    let (ai, ao, _) = g.add_flow(simple::map(|x: u64| 2 * x));
    let (bi, bo, _) = g.add_flow(simple::map(|x: u64| 2 * x + 1));
    let merge = g.add(Merge::<u64>::new(2));
    let (si, _) = g.add_sink(two_phase(store));
    g.connect(s, fan.inlet).unwrap();
    g.connect(fan.outlets[0], ai).unwrap();
    g.connect(fan.outlets[1], bi).unwrap();
    g.connect(ao, merge.inlets[0]).unwrap();
    g.connect(bo, merge.inlets[1]).unwrap();
    g.connect(merge.outlet, si).unwrap();
    g.build().unwrap()
}

fn sorted(mut v: Vec<u64>) -> Vec<u64> {
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_a_broadcast_diamond_restores_exactly() {
    let d = dir("diamond");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&diamond_job(&gate, &store)).unwrap();
    gate.open(40);
    checkpoint(&h, &clock, 1).await;
    gate.open(70);
    until("140 rows", || store.seen.load(Ordering::Acquire) == 140).await;
    cancel(h).await;
    let first = store.output();
    // What checkpoint 1 committed is what the source emitted before it, on both branches.
    let k = first.len() as u64 / 2;
    assert_eq!(sorted(first), (0..2 * k).collect::<Vec<_>>());

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&diamond_job(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    assert_eq!(sorted(store.output()), (0..2 * N).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&d);
}

fn merge_job(a: &Arc<Gate>, b: &Arc<Gate>, b_len: u64, store: &Arc<Store>) -> RunnableGraph<()> {
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(counting("a", N, a).via(simple::map(|x: u64| 2 * x)));
    let (sb, _) = g.add_source(counting("b", b_len, b).via(simple::map(|x: u64| 2 * x + 1)));
    let m = g.add(Merge::<u64>::new(2));
    let (si, _) = g.add_sink(two_phase(store));
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    g.build().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_that_ended_counts_as_aligned() {
    let d = dir("ended");
    let store = Arc::new(Store::default());
    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&merge_job(&a, &b, 10, &store)).unwrap();
    b.open(10);
    a.open(20);
    until("30 rows", || store.seen.load(Ordering::Acquire) == 30).await;
    checkpoint(&h, &clock, 1).await;
    a.open(50);
    until("60 rows", || store.seen.load(Ordering::Acquire) == 60).await;
    cancel(h).await;
    let evens: Vec<u64> = (0..20).map(|x| 2 * x).collect();
    let odds: Vec<u64> = (0..10).map(|x| 2 * x + 1).collect();
    assert_eq!(
        sorted(store.output()),
        sorted([evens, odds.clone()].concat())
    );

    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&merge_job(&a, &b, 10, &store)).unwrap();
    a.open(N);
    b.open(10);
    h.wait().await.unwrap();
    let evens: Vec<u64> = (0..N).map(|x| 2 * x).collect();
    assert_eq!(sorted(store.output()), sorted([evens, odds].concat()));
    let _ = std::fs::remove_dir_all(&d);
}

/// A sink taking 1 ms per batch (real time), staging like [`TwoPhase`].
struct Slow(TwoPhase);

impl SinkLogic<u64> for Slow {
    fn on_batch(&mut self, input: &mut Vec<u64>, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        std::thread::sleep(Duration::from_millis(1));
        self.0.on_batch(input, scx)
    }
    fn on_control(
        &mut self,
        control: weir_graph::Control,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.0.on_control(control, scx)
    }
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.0.on_finish(scx)
    }
    fn on_error(&mut self, error: &StageError) {
        self.0.on_error(error)
    }
    fn snapshot(&self) -> Result<Option<weir_graph::Snapshot>, StageError> {
        self.0.snapshot()
    }
    fn restore(&mut self, s: &weir_graph::Snapshot) -> Result<(), StageError> {
        self.0.restore(s)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_keep_completing_under_backpressure() {
    let d = dir("backpressure");
    let store = Arc::new(Store::default());
    let (a, b) = (Arc::new(Gate::default()), Arc::new(Gate::default()));
    let interval = Duration::from_millis(100);
    let st = Arc::clone(&store);
    let slow = Sink::from_logic("slow", move |info| {
        Ok((
            Slow(TwoPhase::new(
                &st,
                info.services.get::<weir_engine::Checkpoints>(),
            )),
            (),
        ))
    });
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(counting("a", 1_000_000, &a).via(simple::map(|x: u64| 2 * x)));
    let (sb, _) = g.add_source(counting("b", 1_000_000, &b).via(simple::map(|x: u64| 2 * x + 1)));
    let m = g.add(Merge::<u64>::new(2));
    let (si, _) = g.add_sink(slow);
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    let job = g.build().unwrap();
    // Real time: the sources are always ahead of the sink, every channel is full.
    let m = Materializer::new()
        .with_batch_size(8)
        .with_checkpoints(CheckpointConfig::new(interval, &d));
    let ((), h) = m.materialize(&job).unwrap();
    a.open(1_000_000);
    b.open(1_000_000);
    let ck = h.checkpoints().unwrap();
    tokio::time::timeout(Duration::from_secs(60), ck.wait_completed(5))
        .await
        .expect("five checkpoints complete under backpressure");
    cancel(h).await;
    let durations = ck.durations();
    eprintln!("checkpoint durations under backpressure: {durations:?}");
    assert!(durations.len() >= 5, "{durations:?}");
    // None declined (a merge waiting for credit is not stalled), none subsumed.
    assert_eq!(ck.failed(), Vec::<u64>::new());
    let ids: Vec<u64> = durations.iter().map(|d| d.0).collect();
    assert_eq!(ids, (1..=ids.len() as u64).collect::<Vec<_>>());
    // Generous: alignment is bounded by the bytes in flight, far below this.
    assert!(
        durations.iter().all(|(_, d)| *d < Duration::from_secs(10)),
        "{durations:?}"
    );
    // What the completed checkpoints committed is a prefix of each source, nothing twice.
    let out = store.output();
    let evens: Vec<u64> = out.iter().copied().filter(|x| x % 2 == 0).collect();
    let odds: Vec<u64> = out.iter().copied().filter(|x| x % 2 == 1).collect();
    assert_eq!(
        evens,
        (0..evens.len() as u64).map(|x| 2 * x).collect::<Vec<_>>()
    );
    assert_eq!(
        odds,
        (0..odds.len() as u64)
            .map(|x| 2 * x + 1)
            .collect::<Vec<_>>()
    );
    assert!(!evens.is_empty() && !odds.is_empty());
    let _ = std::fs::remove_dir_all(&d);
}

fn event_time_job(gate: &Arc<Gate>, store: &Arc<Store>) -> RunnableGraph<()> {
    counting("numbers", N, gate)
        .via(assign_timestamps(
            |x: &u64| *x as i64,
            WatermarkStrategy::monotonous(),
        ))
        .via(simple::map(|t: Timestamped<u64>| {
            t.value * 10 + (t.ts as u64 % 10)
        }))
        .via(simple::scan_with_codec(
            0u64,
            |a, x: u64| a + x,
            weir_graph::StateCodec::serde(),
        ))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_asynchronous_stage_that_handles_control_acknowledges_the_barrier_it_forwards() {
    let d = dir("event-time");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(&d);
    let ((), h) = m.materialize(&event_time_job(&gate, &store)).unwrap();
    gate.open(40);
    until("40 sums", || store.seen.load(Ordering::Acquire) == 41).await;
    checkpoint(&h, &clock, 1).await;
    // The checkpoint holds the source, the scan and the sink; the timestamp stage and the
    // map acknowledged without state.
    let written =
        weir_engine::checkpoint::store::read(&d.join("chk-00000000000000000001")).unwrap();
    assert_eq!((written.states.len(), written.stages.len()), (3, 5));
    gate.open(70);
    until("70 sums", || store.seen.load(Ordering::Acquire) == 71).await;
    cancel(h).await;

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m.materialize(&event_time_job(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    let expect: Vec<u64> = std::iter::once(0)
        .chain((0..N).scan(0, |a, x| {
            *a += x * 10 + x % 10;
            Some(*a)
        }))
        .collect();
    assert_eq!(store.output(), expect);
    let _ = std::fs::remove_dir_all(&d);
}

/// Lets the calls for elements `>= from` finish once opened.
#[derive(Default)]
struct Release {
    open: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
}

fn map_async_job(
    release: &Arc<Release>,
    gate: &Arc<Gate>,
    store: &Arc<Store>,
) -> RunnableGraph<()> {
    let release = Arc::clone(release);
    counting("numbers", N, gate)
        .via(weir_operators::async_ops::map_async(8, move |x: u64| {
            let release = Arc::clone(&release);
            async move {
                while x >= 20 && !release.open.load(Ordering::Acquire) {
                    let notified = release.notify.notified();
                    if release.open.load(Ordering::Acquire) {
                        break;
                    }
                    notified.await;
                }
                Ok::<u64, StageError>(x)
            }
        }))
        .via(simple::scan_with_codec(
            0u64,
            |a, x: u64| a + x,
            weir_graph::StateCodec::serde(),
        ))
        .to(two_phase(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_barrier_waits_behind_the_calls_in_flight_of_map_async() {
    let d = dir("map-async");
    let store = Arc::new(Store::default());
    let gate = Arc::new(Gate::default());
    let release = Arc::new(Release::default());
    let (m, clock) = mat(&d);
    let ((), h) = m
        .materialize(&map_async_job(&release, &gate, &store))
        .unwrap();
    // 20..24 are in flight when the barrier comes: it leaves after their results.
    gate.open(24);
    until("20 sums", || store.seen.load(Ordering::Acquire) == 21).await;
    until("24 emitted", || gate.emitted.load(Ordering::Acquire) == 24).await;
    clock.advance(SECOND);
    release.open.store(true, Ordering::Release);
    release.notify.notify_waiters();
    let ck = h.checkpoints().unwrap();
    tokio::time::timeout(Duration::from_secs(20), ck.wait_completed(1))
        .await
        .unwrap();
    gate.open(50);
    until("50 sums", || store.seen.load(Ordering::Acquire) == 51).await;
    cancel(h).await;

    let gate = Arc::new(Gate::default());
    let (m, _clock) = mat(&d);
    let ((), h) = m
        .materialize(&map_async_job(&release, &gate, &store))
        .unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    gate.open(N);
    h.wait().await.unwrap();
    let expect: Vec<u64> = std::iter::once(0)
        .chain((0..N).scan(0, |a, x| {
            *a += x;
            Some(*a)
        }))
        .collect();
    assert_eq!(store.output(), expect);
    let _ = std::fs::remove_dir_all(&d);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merge_under_full_load_never_declines_a_checkpoint() {
    // Three sources as fast as they go into one merge, a barrier every 2 ms: ports deliver
    // barriers one after another within a poll of the merge, and a port released by a later
    // one is read again, never taken for a stall.
    use weir_operators::prelude::*;
    let d = dir("merge-load");
    let mut g = GraphBuilder::new();
    let m = g.add(Merge::<u64>::new(3));
    for (i, inlet) in m.inlets.iter().enumerate() {
        let from = i as u64 * 1_000_000;
        let (s, _) = g.add_source(weir_graph::Source::from_iter(from..from + 200_000));
        g.connect(s, *inlet).unwrap();
    }
    let (si, out) = g.add_sink(weir_graph::Sink::collect());
    g.connect(m.outlet, si).unwrap();
    let graph = g.build_mat(move |v| v.take(out)).unwrap();
    let mat = Materializer::new()
        .with_batch_size(16)
        .with_checkpoints(CheckpointConfig::new(Duration::from_millis(2), &d));
    let (got, h) = mat.materialize(&graph).unwrap();
    let mut got = got.expect("the sink's value").await.unwrap();
    h.wait().await.unwrap();
    got.sort_unstable();
    let want: Vec<u64> = (0..3u64)
        .flat_map(|i| i * 1_000_000..i * 1_000_000 + 200_000)
        .collect();
    assert_eq!(got, want);
    let ck = h.checkpoints().unwrap();
    assert_eq!(ck.failed(), Vec::<u64>::new());
    assert!(
        ck.latest_completed().is_some_and(|id| id >= 3),
        "{:?}",
        ck.latest_completed()
    );
}
