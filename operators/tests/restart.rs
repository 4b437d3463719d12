//! Restart wrappers on the virtual clock: incarnations, backoff delays, max restarts.

use futures::stream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ProbeEvent, SinkProbe, TestSink, TestSource, VirtualClock};
use weir_graph::{Clock, Flow, Keep, RunnableGraph, Sink, Source, StageError};
use weir_operators::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn settings(min: u64, max: u64) -> RestartSettings {
    RestartSettings::new(ms(min), ms(max), 0.0).unwrap()
}

/// Starts `g` on a fresh virtual clock.
fn start<M: Send + 'static>(g: &RunnableGraph<M>) -> (M, VirtualClock, RunHandle) {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let (mat, h) = m.materialize(g).expect("materializes");
    (mat, clock, h)
}

/// The factory `make`, counting its calls (the incarnations) in `starts`.
fn counted<B>(
    starts: &Arc<AtomicUsize>,
    make: impl Fn() -> B + Send + Sync + 'static,
) -> impl Fn() -> B + Send + Sync + 'static {
    let starts = Arc::clone(starts);
    move || {
        starts.fetch_add(1, Ordering::SeqCst);
        make()
    }
}

/// Source `[1, 2, 3]` counting its incarnations.
fn counting_source(starts: &Arc<AtomicUsize>) -> impl Fn() -> Source<u32> + Send + Sync + 'static {
    counted(starts, || Source::from_iter(vec![1, 2, 3]))
}

/// A sink appending what it gets to `seen`.
fn recorder(seen: &Arc<Mutex<Vec<u32>>>) -> Sink<u32, weir_graph::SinkFuture<()>> {
    let v = Arc::clone(seen);
    Sink::for_each(move |x| v.lock().unwrap().push(x))
}

/// Starts a probe source through `flow` into a probe sink, on a fresh virtual clock.
fn start_flow(
    flow: Flow<u32, u32, ()>,
) -> (
    (weir_engine::testkit::SourceProbe<u32>, SinkProbe<u32>),
    VirtualClock,
    RunHandle,
) {
    start(
        &TestSource::probe::<u32>()
            .via(flow)
            .to_mat(TestSink::probe(), Keep::both),
    )
}

/// Takes every element already delivered to the probe, with no waiting.
fn drain<T: Send + std::fmt::Debug + 'static>(p: &mut SinkProbe<T>) -> Vec<ProbeEvent<T>> {
    std::iter::from_fn(|| p.try_next_event()).collect()
}

#[tokio::test]
async fn restart_source_restarts_after_completion_with_growing_delays() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = settings(100, 1000).with_max_restarts(2, ms(10_000));
    let g = RestartSource::with_backoff(s, counting_source(&starts))
        .to_mat(TestSink::probe(), Keep::right);
    let (mut probe, clock, h) = start(&g);
    probe.request(100);
    settle().await;
    assert_eq!(probe.expect_next_n(3).await, vec![1, 2, 3]);
    assert_eq!(
        clock.next_deadline(),
        Some(ms(100)),
        "first backoff: min_backoff"
    );
    assert!(drain(&mut probe).is_empty(), "nothing during the backoff");
    clock.advance(ms(100));
    settle().await;
    assert_eq!(probe.expect_next_n(3).await, vec![1, 2, 3]);
    assert_eq!(
        clock.next_deadline(),
        Some(ms(300)),
        "second backoff doubles: 200 ms"
    );
    clock.advance(ms(199));
    settle().await;
    assert!(drain(&mut probe).is_empty());
    clock.advance(ms(1));
    settle().await;
    // Two restarts used: the third incarnation's completion completes the wrapper.
    assert_eq!(probe.expect_next_n(3).await, vec![1, 2, 3]);
    probe.expect_complete().await;
    assert_eq!(starts.load(Ordering::SeqCst), 3);
    h.wait().await.unwrap();
}

#[tokio::test]
async fn restart_source_on_failures_fails_after_max_restarts() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = settings(50, 50).with_max_restarts(1, ms(10_000));
    let g = RestartSource::on_failures_with_backoff(
        s,
        counted(&starts, || {
            Source::from_try_stream(|| {
                stream::iter(vec![Ok(1u32), Ok(2), Err(StageError::user("source broke"))])
            })
        }),
    )
    .to_mat(TestSink::probe(), Keep::right);
    let (mut probe, clock, h) = start(&g);
    probe.request(100);
    settle().await;
    assert_eq!(probe.expect_next_n(2).await, vec![1, 2]);
    clock.advance(ms(50));
    settle().await;
    assert_eq!(probe.expect_next_n(2).await, vec![1, 2]);
    let seen = probe.expect_error().await;
    assert!(seen.contains("source broke"), "{seen}");
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    // The failure the probe sink saw is the run's outcome too.
    let e = h.wait().await.expect_err("the run fails");
    assert_eq!((e.message(), e.to_string()), ("source broke", seen));
}

#[tokio::test]
async fn restart_source_on_failures_completes_with_its_source() {
    let starts = Arc::new(AtomicUsize::new(0));
    let g = RestartSource::on_failures_with_backoff(settings(10, 10), counting_source(&starts))
        .to_mat(Sink::collect(), Keep::right);
    let (out, clock, _h) = start(&g);
    assert_eq!(out.await.unwrap(), vec![1, 2, 3]);
    assert_eq!(starts.load(Ordering::SeqCst), 1);
    assert_eq!(clock.pending_timers(), 0, "no restart was scheduled");
}

#[tokio::test]
async fn restart_source_stops_restarting_when_downstream_cancels() {
    let starts = Arc::new(AtomicUsize::new(0));
    let g = RestartSource::with_backoff(settings(10, 10), counting_source(&starts))
        .take(5)
        .to_mat(Sink::collect(), Keep::right);
    let (out, clock, h) = start(&g);
    settle().await;
    clock.advance(ms(10));
    settle().await;
    assert_eq!(out.await.unwrap(), vec![1, 2, 3, 1, 2]);
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    clock.advance(ms(1000));
    settle().await;
    assert_eq!(
        starts.load(Ordering::SeqCst),
        2,
        "no incarnation after cancellation"
    );
}

#[tokio::test]
async fn restart_flow_restarts_the_flow_and_keeps_upstream_waiting_during_backoff() {
    let starts = Arc::new(AtomicUsize::new(0));
    let s = settings(100, 1000);
    let flow = RestartFlow::with_backoff(
        s,
        counted(&starts, || {
            Flow::<u32, u32, ()>::identity().map(|x| x * 10).take(2)
        }),
    );
    let ((src, mut probe), clock, h) = start_flow(flow);
    probe.request(100);
    src.send_all(vec![1, 2]);
    settle().await;
    assert_eq!(probe.expect_next_n(2).await, vec![10, 20]);
    // The first incarnation took 2 and completed: the next starts after 100 ms.
    src.send(3);
    settle().await;
    assert!(
        drain(&mut probe).is_empty(),
        "3 waits upstream during the backoff"
    );
    clock.advance(ms(100));
    settle().await;
    assert_eq!(probe.expect_next().await, 30);
    src.send(4);
    settle().await;
    assert_eq!(probe.expect_next().await, 40);
    assert_eq!(
        clock.next_deadline(),
        Some(ms(300)),
        "second backoff: 200 ms after the second incarnation ended"
    );
    clock.advance(ms(200));
    settle().await;
    src.send(5);
    settle().await;
    assert_eq!(probe.expect_next().await, 50);
    src.complete();
    probe.expect_complete().await;
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn restart_flow_on_failures_fails_after_max_restarts() {
    let s = settings(10, 10).with_max_restarts(1, ms(10_000));
    let flow = RestartFlow::on_failures_with_backoff(s, || {
        Flow::<u32, u32, ()>::identity().try_map(|x: &u32| {
            if *x == 3 {
                Err(std::io::Error::other("three"))
            } else {
                Ok(*x)
            }
        })
    });
    let ((src, mut probe), clock, h) = start_flow(flow);
    probe.request(100);
    src.send_all(vec![1, 2]);
    settle().await;
    assert_eq!(probe.expect_next_n(2).await, vec![1, 2]);
    src.send(3);
    settle().await;
    clock.advance(ms(10));
    src.send(4);
    settle().await;
    assert_eq!(probe.expect_next().await, 4);
    src.send(3);
    let seen = probe.expect_error().await;
    assert!(seen.contains("three"), "{seen}");
    let e = h.wait().await.expect_err("the run fails");
    assert_eq!(e.to_string(), seen);
}

#[tokio::test]
async fn restart_flow_passes_upstream_completion_through() {
    let flow = RestartFlow::with_backoff(settings(10, 10), || {
        Flow::<u32, u32, ()>::identity().map(|x| x + 1)
    });
    let out = Source::from_iter(0..5u32)
        .via(flow)
        .to_mat(Sink::collect(), Keep::right);
    let (out, clock, h) = start(&out);
    assert_eq!(out.await.unwrap(), vec![1, 2, 3, 4, 5]);
    h.wait().await.unwrap();
    assert_eq!(clock.pending_timers(), 0);
}

#[tokio::test]
async fn restart_sink_restarts_a_sink_that_finished() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let starts = Arc::new(AtomicUsize::new(0));
    let v = Arc::clone(&seen);
    let sink = RestartSink::with_backoff(
        settings(100, 1000).with_max_restarts(1, ms(10_000)),
        counted(&starts, move || {
            Flow::<u32, u32, ()>::identity().take(2).to(recorder(&v))
        }),
    );
    let g = TestSource::probe::<u32>().to_mat(sink, Keep::left);
    let (src, clock, h) = start(&g);
    src.send_all(vec![1, 2]);
    settle().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2]);
    src.send(3);
    settle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 2],
        "3 waits during the backoff"
    );
    assert_eq!(clock.next_deadline(), Some(ms(100)));
    clock.advance(ms(100));
    settle().await;
    src.send(4);
    settle().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 2, 3, 4]);
    // The single restart is used: the second incarnation finishing cancels upstream.
    src.expect_cancellation().await;
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
    assert_eq!(clock.now(), ms(100));
}

#[tokio::test]
async fn restart_sink_passes_upstream_completion_through() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let v = Arc::clone(&seen);
    let sink = RestartSink::with_backoff(settings(10, 10), move || recorder(&v));
    let (_, _clock, h) = start(&Source::from_iter(0..4u32).to_mat(sink, Keep::right));
    h.wait().await.unwrap();
    assert_eq!(*seen.lock().unwrap(), vec![0, 1, 2, 3]);
}

#[tokio::test]
async fn restart_sink_restarts_a_failed_sink_without_failing_the_run() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let starts = Arc::new(AtomicUsize::new(0));
    let v = Arc::clone(&seen);
    let sink = RestartSink::with_backoff(
        settings(100, 1000),
        counted(&starts, move || fails_on_two().to(recorder(&v))),
    );
    let g = TestSource::probe::<u32>().to_mat(sink, Keep::left);
    let (src, clock, h) = start(&g);
    src.send_all(vec![1, 2]);
    settle().await;
    assert_eq!(*seen.lock().unwrap(), vec![1]);
    assert_eq!(clock.next_deadline(), Some(ms(100)), "restart scheduled");
    clock.advance(ms(100));
    settle().await;
    src.send(3);
    settle().await;
    assert_eq!(*seen.lock().unwrap(), vec![1, 3]);
    src.complete();
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

/// Starts `g` on a fresh virtual clock with channels of one row (the wrapper under test sets a
/// wider input), so a restart wrapper takes a whole batch from upstream, hands its incarnation
/// one row at a time and keeps the rest.
fn start_narrow<M: Send + 'static>(g: &RunnableGraph<M>) -> (M, VirtualClock, RunHandle) {
    let clock = VirtualClock::new();
    let m = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_buffer_rows(1);
    let (mat, h) = m.materialize(g).expect("materializes");
    (mat, clock, h)
}

/// A flow failing on 2 and passing every other element.
fn fails_on_two() -> Flow<u32, u32, ()> {
    Flow::<u32, u32, ()>::identity().try_map(|x: &u32| {
        if *x == 2 {
            Err(std::io::Error::other("two"))
        } else {
            Ok(*x)
        }
    })
}

#[tokio::test]
async fn restart_sink_hands_rows_not_yet_given_to_a_failed_incarnation_to_the_next() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let starts = Arc::new(AtomicUsize::new(0));
    let v = Arc::clone(&seen);
    let sink = RestartSink::with_backoff(
        settings(100, 1000),
        counted(&starts, move || fails_on_two().to(recorder(&v))),
    )
    .buffer_rows(6);
    let g = TestSource::probe::<u32>().to_mat(sink, Keep::left);
    let (src, clock, h) = start_narrow(&g);
    // One batch of six: the wrapper takes it whole and feeds the incarnation row by row.
    src.send_all(vec![1, 2, 3, 4, 5, 6]);
    settle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1],
        "the incarnation failed on 2"
    );
    assert_eq!(clock.next_deadline(), Some(ms(100)), "restart scheduled");
    clock.advance(ms(100));
    settle().await;
    assert_eq!(
        *seen.lock().unwrap(),
        vec![1, 3, 4, 5, 6],
        "the rows of the batch not handed to the failed incarnation go to the next"
    );
    src.complete();
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn restart_flow_hands_rows_not_yet_given_to_a_failed_incarnation_to_the_next() {
    let starts = Arc::new(AtomicUsize::new(0));
    let flow =
        RestartFlow::on_failures_with_backoff(settings(100, 1000), counted(&starts, fails_on_two))
            .buffer_rows(6);
    let ((src, mut probe), clock, h) = start_narrow(
        &TestSource::probe::<u32>()
            .via(flow)
            .to_mat(TestSink::probe(), Keep::both),
    );
    probe.request(100);
    src.send_all(vec![1, 2, 3, 4, 5, 6]);
    settle().await;
    assert_eq!(drain(&mut probe), vec![ProbeEvent::Next(1)], "failed on 2");
    clock.advance(ms(100));
    settle().await;
    assert_eq!(probe.expect_next_n(4).await, vec![3, 4, 5, 6]);
    src.complete();
    probe.expect_complete().await;
    h.wait().await.unwrap();
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}
