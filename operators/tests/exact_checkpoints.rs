//! Exactly-once checkpoints through the stages that hold rows or keyed state across a barrier:
//! a run cancelled after a checkpoint and started again on the same directory commits exactly
//! the output of a run without failure. Joins (window and interval, also rescaled 2 -> 1 and
//! 2 -> 3) and processing-time windows snapshot their state by key group; `buffer`,
//! `conflate`, `grouped_within`, `delay` and `flat_map_merge` hold a barrier behind the rows
//! that arrived before it, so a stateful stage after them never checkpoints without those rows.
//! The keyed process stage (state and timers) resumes and rescales 2 -> 1 and 2 -> 3 as well.

mod ck;

use ck::{SECOND, Store, dir, mat_in as mat, same, two_phase};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::Clock as _;
use weir_graph::{
    RunnableGraph, Snapshot, Source, SourceLogic, StageCx, StageError, StateCodec, Step,
};
use weir_operators::join::JoinOutput;
use weir_operators::prelude::*;
use weir_operators::process::{ProcessContext, Timer, process_fn};
use weir_operators::simple;
use weir_operators::source::OverflowStrategy;
use weir_operators::time::{Timestamped, WatermarkStrategy};
use weir_operators::window::{WindowOutput, Windows};

const N: u64 = 400;

/// How far the test lets the [`Counting`] sources go, and how far each went.
#[derive(Default)]
struct Gate {
    limit: AtomicU64,
    pos: [AtomicU64; 2],
    wakers: Mutex<Vec<Waker>>,
}

impl Gate {
    fn open(&self, to: u64) {
        self.limit.store(to, Ordering::Release);
        for w in self.wakers.lock().unwrap().drain(..) {
            w.wake();
        }
    }
    fn at(&self, to: u64, sources: usize) -> bool {
        self.pos[..sources]
            .iter()
            .all(|p| p.load(Ordering::Acquire) == to)
    }
}

/// Emits `0..N` as far as its gate allows; its snapshot is its position (replayable).
struct Counting {
    next: u64,
    side: usize,
    gate: Arc<Gate>,
}

impl SourceLogic<u64> for Counting {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        if self.next == N {
            return Poll::Ready(Ok(Step::Done));
        }
        self.gate.wakers.lock().unwrap().push(cx.waker().clone());
        let limit = self.gate.limit.load(Ordering::Acquire).min(N);
        if self.next >= limit {
            return Poll::Pending;
        }
        let end = limit.min(self.next + scx.batch_size() as u64);
        out.extend(self.next..end);
        self.next = end;
        self.gate.pos[self.side].store(end, Ordering::Release);
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

fn counting(name: &'static str, side: usize, gate: &Arc<Gate>) -> Source<u64, ()> {
    let gate = Arc::clone(gate);
    Source::from_logic(name, move |_| {
        Ok((
            Counting {
                next: 0,
                side,
                gate: Arc::clone(&gate),
            },
            (),
        ))
    })
}

/// Waits (real time, generous bound) until `cond` holds, moving the virtual clock by `step`
/// (settled) each time it does not.
async fn until(what: &str, clock: &VirtualClock, step: Duration, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        if !step.is_zero() {
            clock.run_for(step).await;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    panic!("timed out waiting for {what}");
}

/// Runs the run of `h` to its end, moving the clock by `step` while it runs.
async fn run_out(h: &RunHandle, clock: &VirtualClock, step: Duration) {
    until("the end of the run", clock, step, || h.is_finished()).await;
    h.wait().await.unwrap();
}

/// A job over a gate and a store.
type Job<T> = Box<dyn Fn(&Arc<Gate>, &Arc<Store<T>>) -> RunnableGraph<()>>;

/// How a job is driven: its number of sources and the clock step while it waits (zero: the
/// clock moves only for checkpoints).
#[derive(Clone, Copy)]
struct Drive {
    sources: usize,
    step: Duration,
}

/// The output of `job` run to the end without checkpoints.
async fn unfailed<T: Clone + Ord>(job: &Job<T>, drive: Drive) -> Vec<T> {
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(None);
    let ((), h) = m.materialize(&job(&gate, &store)).unwrap();
    gate.open(N);
    run_out(&h, &clock, drive.step).await;
    store.sorted()
}

/// Runs `first` until a checkpoint after 150 events completed and the sources went on to 290,
/// cancels it, then runs `second` on the same directory to the end; returns what was committed
/// and the ids committed before the crash.
async fn crash_and_resume<T: Clone + Ord>(
    name: &str,
    drive: Drive,
    first: &Job<T>,
    second: &Job<T>,
) -> (Vec<T>, Vec<u64>) {
    let d = dir(name);
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&first(&gate, &store)).unwrap();
    gate.open(150);
    until("150 events", &clock, drive.step, || {
        gate.at(150, drive.sources)
    })
    .await;
    let ck = h.checkpoints().expect("the run checkpoints");
    clock.run_for(SECOND).await;
    until("a checkpoint", &clock, drive.step, || {
        ck.latest_completed().is_some()
    })
    .await;
    gate.open(290);
    until("290 events", &clock, drive.step, || {
        gate.at(290, drive.sources)
    })
    .await;
    h.cancel();
    assert!(h.wait().await.is_err());
    let after_crash = store.ids();

    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&second(&gate, &store)).unwrap();
    assert!(h.checkpoints().unwrap().restored().is_some());
    gate.open(N);
    run_out(&h, &clock, drive.step).await;
    let _ = std::fs::remove_dir_all(&d);
    (store.sorted(), after_crash)
}

/// Event time of event `x`: 10 ms apart, up to 40 ms out of order (never late with a bound of
/// 100 ms).
fn ts(x: u64) -> i64 {
    (x * 10 + (x * 37) % 41) as i64
}

fn timed(name: &'static str, side: usize, gate: &Arc<Gate>) -> Source<Timestamped<u64>, ()> {
    counting(name, side, gate)
        .assign_timestamps(
            move |x: &u64| ts(*x) + side as i64 * 7,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        )
        .map_materialized_value(|_| ())
}

/// A joined pair `(left, right, ts)`, or a late element `(x, u64::MAX, side)`.
type Pair = (u64, u64, i64);

fn pair(o: JoinOutput<u64, (u64, u64), u64, u64>) -> Pair {
    match o {
        JoinOutput::Joined(t) => (t.value.0, t.value.1, t.ts),
        JoinOutput::LateLeft { element, .. } => (element.value, u64::MAX, 0),
        JoinOutput::LateRight { element, .. } => (element.value, u64::MAX, 1),
    }
}

const JOIN: Drive = Drive {
    sources: 2,
    step: Duration::ZERO,
};

/// Lefts and rights keyed by `x % 7`, joined in 100 ms tumbling windows, the join at
/// `parallelism`.
fn window_join_job(parallelism: usize) -> Job<Pair> {
    Box::new(move |gate, store| {
        timed("lefts", 0, gate)
            .join_by(
                timed("rights", 1, gate),
                |e: &Timestamped<u64>| e.value % 7,
                |e: &Timestamped<u64>| e.value % 7,
            )
            .checkpointed()
            .window(Windows::tumbling(Duration::from_millis(100)), |l, r| {
                (*l, *r)
            })
            .parallelism(parallelism)
            .map(pair)
            .to(two_phase(store))
    })
}

fn model_window_join() -> Vec<Pair> {
    let window = |t: i64| t - t.rem_euclid(100);
    let mut v = Vec::new();
    for l in 0..N {
        for r in 0..N {
            let (lt, rt) = (ts(l), ts(r) + 7);
            if l % 7 == r % 7 && window(lt) == window(rt) {
                v.push((l, r, window(lt) + 99));
            }
        }
    }
    v.sort();
    v
}

/// Lefts and rights keyed by `x % 7`, joined when `l.ts - 20 <= r.ts <= l.ts + 30`.
fn interval_join_job(parallelism: usize) -> Job<Pair> {
    Box::new(move |gate, store| {
        timed("lefts", 0, gate)
            .join_by(
                timed("rights", 1, gate),
                |e: &Timestamped<u64>| e.value % 7,
                |e: &Timestamped<u64>| e.value % 7,
            )
            .checkpointed()
            .interval(-20, 30, |l, r| (*l, *r))
            .parallelism(parallelism)
            .map(pair)
            .to(two_phase(store))
    })
}

fn model_interval_join() -> Vec<Pair> {
    let mut v = Vec::new();
    for l in 0..N {
        for r in 0..N {
            let (lt, rt) = (ts(l), ts(r) + 7);
            if l % 7 == r % 7 && lt - 20 <= rt && rt <= lt + 30 {
                v.push((l, r, lt.max(rt)));
            }
        }
    }
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_join_resumes_and_rescales_with_exactly_the_unfailed_output() {
    let want = model_window_join();
    same(&unfailed(&window_join_job(1), JOIN).await, &want);
    let (got, ids) =
        crash_and_resume("wjoin", JOIN, &window_join_job(1), &window_join_job(1)).await;
    assert!(
        !ids.is_empty(),
        "windows fired and committed before the crash"
    );
    same(&got, &want);
    let (got, _) =
        crash_and_resume("wjoin-2-1", JOIN, &window_join_job(2), &window_join_job(1)).await;
    same(&got, &want);
    let (got, _) =
        crash_and_resume("wjoin-2-3", JOIN, &window_join_job(2), &window_join_job(3)).await;
    same(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interval_join_resumes_and_rescales_with_exactly_the_unfailed_output() {
    let want = model_interval_join();
    same(&unfailed(&interval_join_job(1), JOIN).await, &want);
    let (got, ids) =
        crash_and_resume("ijoin", JOIN, &interval_join_job(1), &interval_join_job(1)).await;
    assert!(!ids.is_empty(), "pairs were committed before the crash");
    same(&got, &want);
    let (got, _) = crash_and_resume(
        "ijoin-2-1",
        JOIN,
        &interval_join_job(2),
        &interval_join_job(1),
    )
    .await;
    same(&got, &want);
    let (got, _) = crash_and_resume(
        "ijoin-2-3",
        JOIN,
        &interval_join_job(2),
        &interval_join_job(3),
    )
    .await;
    same(&got, &want);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_join_kept_in_memory_only_refuses_a_checkpoint_with_the_common_message() {
    let d = dir("join-in-memory");
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let store = Store::new();
    let g = timed("lefts", 0, &gate)
        .interval_join(
            timed("rights", 1, &gate),
            |e: &Timestamped<u64>| e.value % 7,
            |e: &Timestamped<u64>| e.value % 7,
            0,
            10,
            |l: &u64, r: &u64| (*l, *r),
        )
        .map(pair)
        .to(two_phase(&store));
    let ((), h) = m.materialize(&g).unwrap();
    gate.open(10);
    until("10 events", &clock, Duration::ZERO, || gate.at(10, 2)).await;
    clock.advance(SECOND);
    let e = h.wait().await.unwrap_err().to_string();
    assert!(e.contains("interval_join"), "{e}");
    assert!(e.contains("keeps its state in memory only"), "{e}");
    assert!(e.contains(".checkpointed()"), "{e}");
    assert!(!d.join("chk-00000000000000000001").join("MANIFEST").exists());
    // Nothing was committed: the run failed before any checkpoint completed.
    assert_eq!(store.ids(), Vec::<u64>::new());
    let _ = std::fs::remove_dir_all(&d);
}

/// `(key, second end, sum)` of a keyed process function's timer.
type Fired = (u64, i64, u64);

/// Per key (`x % 7`), the sum of the values of each 100 ms of event time in state (a map by
/// end), emitted and dropped by an event-time timer at that end; the stage at `parallelism`.
fn process_job(parallelism: usize) -> Job<Fired> {
    Box::new(move |gate, store| {
        let f = process_fn(
            |e: &Timestamped<u64>, cx: &mut ProcessContext<'_, u64, BTreeMap<i64, u64>, Fired>| {
                let end = e.ts - e.ts.rem_euclid(100) + 100;
                let mut sums = cx.state().take().unwrap_or_default();
                *sums.entry(end).or_default() += e.value;
                cx.state().set(sums);
                cx.register_event_timer(end);
                Ok(())
            },
            |t: Timer, cx: &mut ProcessContext<'_, u64, BTreeMap<i64, u64>, Fired>| {
                let Timer::Event(end) = t else {
                    return Ok(());
                };
                let key = *cx.key();
                let mut sums = cx.state().take().unwrap_or_default();
                let sum = sums.remove(&end).unwrap_or_default();
                if !sums.is_empty() {
                    cx.state().set(sums);
                }
                cx.emit((key, end, sum));
                Ok(())
            },
        );
        counting("events", 0, gate)
            .assign_timestamps(
                |x: &u64| ts(*x),
                WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
            )
            .map_materialized_value(|_| ())
            .key_by(|e: &Timestamped<u64>| e.value % 7)
            .process_with_codec(f, StateCodec::serde())
            .parallelism(parallelism)
            .to(two_phase(store))
    })
}

fn model_process() -> Vec<Fired> {
    let mut m: BTreeMap<(u64, i64), u64> = BTreeMap::new();
    for x in 0..N {
        *m.entry((x % 7, ts(x) - ts(x).rem_euclid(100) + 100))
            .or_default() += x;
    }
    let mut v: Vec<Fired> = m.into_iter().map(|((k, e), s)| (k, e, s)).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_keyed_process_stage_resumes_and_rescales_with_exactly_the_unfailed_output() {
    let want = model_process();
    same(&unfailed(&process_job(1), ONE_SOURCE).await, &want);
    for (name, from, to) in [("kp", 2, 2), ("kp-2-1", 2, 1), ("kp-2-3", 2, 3)] {
        let (got, ids) =
            crash_and_resume(name, ONE_SOURCE, &process_job(from), &process_job(to)).await;
        // Timers fired and were committed before the crash; the restored run fires the rest.
        assert!(!ids.is_empty(), "{name}");
        same(&got, &want);
    }
}

/// `(key, window start, window end, sum)` of a processing-time window.
type Row = (u64, i64, i64, u64);

fn fired(o: WindowOutput<u64, u64, u64>) -> Row {
    match o {
        WindowOutput::Fired { key, window, value } => (key, window.start, window.end, value),
        WindowOutput::Late { key, element } => (key, -1, -1, element.value),
    }
}

/// Sums per key (`x % 7`) in 10 s processing-time tumbling windows, at `parallelism`.
fn processing_job(parallelism: usize) -> Job<Row> {
    Box::new(move |gate, store| {
        counting("events", 0, gate)
            .window_by_processing_time(|x: &u64| x % 7, Windows::tumbling(10 * SECOND))
            .checkpointed()
            .reduce(|a, b| a + b)
            .parallelism(parallelism)
            .map(fired)
            .to(two_phase(store))
    })
}

/// Sums per key of `xs` in the window `[start, start + 10 s)`.
fn sums(xs: std::ops::Range<u64>, start: i64) -> Vec<Row> {
    let mut m: BTreeMap<u64, u64> = BTreeMap::new();
    for x in xs {
        *m.entry(x % 7).or_default() += x;
    }
    m.into_iter()
        .map(|(k, s)| (k, start, start + 10_000, s))
        .collect()
}

const ONE_SOURCE: Drive = Drive {
    sources: 1,
    step: Duration::ZERO,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processing_time_windows_resume_and_rescale_with_exactly_the_unfailed_output() {
    // Every element arrives before the clock reaches 10 s: one window per key, fired at the end.
    let want = sums(0..N, 0);
    same(&unfailed(&processing_job(1), ONE_SOURCE).await, &want);
    for (name, from, to) in [("pw", 1, 1), ("pw-2-1", 2, 1), ("pw-2-3", 2, 3)] {
        let (got, ids) =
            crash_and_resume(name, ONE_SOURCE, &processing_job(from), &processing_job(to)).await;
        // The open windows were in the checkpoint, not in the output.
        assert_eq!(ids, Vec::<u64>::new(), "{name}");
        same(&got, &want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_processing_time_window_fires_when_the_new_run_s_clock_reaches_its_end() {
    let d = dir("pw-clock");
    let store = Store::new();
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&processing_job(1)(&gate, &store)).unwrap();
    gate.open(150);
    until("150 events", &clock, Duration::ZERO, || gate.at(150, 1)).await;
    let ck = h.checkpoints().unwrap();
    clock.run_for(SECOND).await;
    until("checkpoint 1", &clock, Duration::ZERO, || {
        ck.latest_completed() == Some(1)
    })
    .await;
    h.cancel();
    assert!(h.wait().await.is_err());

    // The new run's clock starts at zero: the restored windows fire at 10 s on it, before
    // any new element and before the end of the input.
    let gate = Arc::new(Gate::default());
    let (m, clock) = mat(Some(&d));
    let ((), h) = m.materialize(&processing_job(1)(&gate, &store)).unwrap();
    assert_eq!(h.checkpoints().unwrap().restored(), Some(1));
    clock.run_for(10 * SECOND).await;
    let restored = sums(0..150, 0);
    // What fired at 10 s is committed by the next checkpoint that completes.
    until("the restored windows committed", &clock, SECOND, || {
        store.sorted() == restored
    })
    .await;
    // The rest arrives now (the clock stands still until the end) and goes to a later window.
    let now = clock.now().as_millis() as i64;
    gate.open(N);
    run_out(&h, &clock, Duration::ZERO).await;
    let mut want = sums(0..150, 0);
    want.extend(sums(150..N, now - now % 10_000));
    want.sort();
    same(&store.sorted(), &want);
    let _ = std::fs::remove_dir_all(&d);
}

/// `(sum, count)` of everything that reached the fold.
type Total = (u64, u64);

/// `events -> stage -> fold (sum, count, checkpointed) -> sink`.
fn through(stage: impl Fn(Source<u64, ()>) -> Source<(u64, u64), ()> + 'static) -> Job<Total> {
    Box::new(move |gate, store| {
        stage(counting("events", 0, gate))
            .via(simple::fold_with_codec(
                (0u64, 0u64),
                |(s, n), (x, k): (u64, u64)| (s + x, n + k),
                StateCodec::serde(),
            ))
            .to(two_phase(store))
    })
}

/// The total every job below must commit: each event once.
fn total() -> Vec<Total> {
    vec![(N * (N - 1) / 2, N)]
}

/// Checks that `job` commits exactly [`total`] without failure and after a crash.
async fn exact(name: &str, job: fn() -> Job<Total>, step: Duration) {
    let drive = Drive { sources: 1, step };
    same(&unfailed(&job(), drive).await, &total());
    let (got, _) = crash_and_resume(name, drive, &job(), &job()).await;
    same(&got, &total());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_grouped_within_is_exact() {
    // The group would hold every element for an hour: the barrier closes it.
    exact(
        "grouped",
        || {
            through(|s| {
                s.grouped_within(1000, 3600 * SECOND)
                    .map(|g: Vec<u64>| (g.iter().sum(), g.len() as u64))
            })
        },
        Duration::ZERO,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_delay_is_exact() {
    // Elements wait 3 s: the barrier leaves after the ones before it.
    exact(
        "delay",
        || through(|s| s.delay(3 * SECOND).map(|x| (x, 1))),
        SECOND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_a_buffer_is_exact() {
    // The delay after the buffer takes one batch per second, so the buffer holds the rest.
    exact(
        "buffer",
        || {
            through(|s| {
                s.buffer(1000, OverflowStrategy::Backpressure)
                    .delay_with_capacity(SECOND, 1)
                    .map(|x| (x, 1))
            })
        },
        SECOND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_conflate_is_exact() {
    // The delay after it takes one aggregate per second; conflate folds the rest meanwhile.
    exact(
        "conflate",
        || {
            through(|s| {
                s.map(|x| (x, 1))
                    .conflate(|(a, n), (b, k)| (a + b, n + k))
                    .delay_with_capacity(SECOND, 1)
            })
        },
        SECOND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_flat_map_merge_is_exact() {
    // Each element's substream emits it after 2 s, four at a time.
    exact(
        "flat-map",
        || {
            through(|s| {
                s.flat_map_merge(4, |x: u64| {
                    Source::from_iter(vec![(x, 1u64)])
                        .delay(2 * SECOND)
                        .map_materialized_value(|_| ())
                })
            })
        },
        SECOND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_group_by_substreams_is_exact() {
    // Each key's substream holds its elements for 2 s: the barrier goes through all of them.
    exact(
        "group-by",
        || {
            through(|s| {
                s.group_by(10, |x: &u64| x % 3)
                    .merge_substreams_via(simple::map(|x: u64| (x, 1u64)).delay(2 * SECOND))
            })
        },
        SECOND,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_through_split_segments_is_exact() {
    // Segments of ten, each held for 2 s in its flow: the barrier goes through the open one.
    exact(
        "split",
        || {
            through(|s| {
                s.split_after(|x: &u64| x % 10 == 9)
                    .merge_substreams_via(simple::map(|x: u64| (x, 1u64)).delay(2 * SECOND))
            })
        },
        SECOND,
    )
    .await;
}
