//! Time family on the engine with a virtual clock: no test sleeps.

use futures::FutureExt;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{
    ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource, VirtualClock,
};
use weir_graph::{AsyncFn, ErrorKind, Event, Flow, Keep, Sink, StageError};
use weir_operators::source::OverflowStrategy;
use weir_operators::time::{self, TimeOps};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

/// Probe source -> `flow` -> probe sink on a virtual clock; `rows` bounds every channel.
fn start<I: Send + std::fmt::Debug + 'static, O: Send + std::fmt::Debug + 'static>(
    flow: Flow<I, O>,
    rows: usize,
) -> (SourceProbe<I>, SinkProbe<O>, VirtualClock, RunHandle) {
    let clock = VirtualClock::new();
    let g = TestSource::probe::<I>()
        .via(flow)
        .to_mat(TestSink::probe::<O>(), Keep::both);
    let m = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_buffer_rows(rows);
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    (src, sink, clock, handle)
}

async fn advance(clock: &VirtualClock, d: Duration) {
    settle().await;
    clock.advance(d);
    settle().await;
}

#[tokio::test]
async fn throttle_shapes_to_the_rate_after_the_burst() {
    let (src, mut sink, clock, handle) = start(time::throttle::<u32>(2, ms(1000), 2), 64);
    sink.request(100);
    src.send_all((1..=5).collect());
    settle().await;
    assert_eq!(
        sink.expect_next_n(2).await,
        vec![1, 2],
        "burst passes at once"
    );
    assert!(sink.try_next_event().is_none());
    advance(&clock, ms(499)).await;
    assert!(sink.try_next_event().is_none(), "no token before 500ms");
    advance(&clock, ms(1)).await;
    assert_eq!(sink.expect_next().await, 3);
    assert!(sink.try_next_event().is_none());
    advance(&clock, ms(1000)).await;
    assert_eq!(sink.expect_next_n(2).await, vec![4, 5]);
    src.complete();
    sink.expect_complete().await;
    handle.wait().await.expect("completes");
}

#[tokio::test]
async fn throttle_rejects_a_zero_rate() {
    use weir_operators::sink::SinkCtors;
    use weir_operators::source::SourceCtors;
    let g = weir_graph::Source::<u32>::empty()
        .via(time::throttle::<u32>(0, ms(1000), 1))
        .to_sink_mat(Sink::<u32, _>::ignore());
    let e = g.run().err().map(|e| e.to_string());
    assert_eq!(
        e.as_deref(),
        Some(
            "invalid graph: invalid parameter of stage 'throttle#1': throttle: elements must be \
             at least 1, got 0"
        )
    );
}

#[tokio::test]
async fn delay_shifts_each_element_and_keeps_order() {
    let (src, mut sink, clock, _h) = start(time::delay::<u32>(ms(1000)), 64);
    sink.request(10);
    src.send(1);
    advance(&clock, ms(400)).await;
    src.send(2);
    advance(&clock, ms(599)).await;
    assert!(sink.try_next_event().is_none());
    advance(&clock, ms(1)).await;
    assert_eq!(sink.expect_next().await, 1);
    advance(&clock, ms(399)).await;
    assert!(sink.try_next_event().is_none());
    src.complete();
    advance(&clock, ms(1)).await;
    assert_eq!(sink.expect_next().await, 2);
    sink.expect_complete().await;
}

#[tokio::test]
async fn delay_is_bounded() {
    let (src, sink, _clock, _h) = start(time::delay_with_capacity::<u32>(ms(1000), 4), 1);
    sink.request(100);
    for i in 0..20 {
        src.send(i);
    }
    settle().await;
    assert!(src.delivered() < 20, "delivered {}", src.delivered());
}

#[tokio::test]
async fn grouped_within_emits_full_groups_and_on_timeout() {
    let (src, mut sink, clock, _h) = start(time::grouped_within::<u32>(3, ms(1000)), 64);
    sink.request(10);
    src.send_all(vec![1, 2, 3, 4]);
    settle().await;
    assert_eq!(sink.expect_next().await, vec![1, 2, 3]);
    advance(&clock, ms(999)).await;
    assert!(sink.try_next_event().is_none());
    advance(&clock, ms(1)).await;
    assert_eq!(sink.expect_next().await, vec![4]);
    advance(&clock, ms(5000)).await;
    assert!(sink.try_next_event().is_none(), "no empty groups");
    src.send(5);
    settle().await;
    src.send(6);
    src.complete();
    settle().await;
    assert_eq!(sink.expect_next().await, vec![5, 6]);
    sink.expect_complete().await;
}

#[tokio::test]
async fn grouped_within_via_the_extension_trait() {
    let flow = time::buffer::<u32>(8, OverflowStrategy::Backpressure).grouped_within(2, ms(10));
    let (src, mut sink, _clock, _h) = start(flow, 64);
    src.send_all(vec![1, 2, 3]);
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got.concat(), vec![1, 2, 3]);
    assert!(got.iter().all(|g| g.len() <= 2));
    assert_eq!(end, ProbeEvent::Complete);
}

/// Sends `xs` one at a time, letting the graph settle after each.
async fn trickle(src: &SourceProbe<u64>, xs: impl IntoIterator<Item = u64>) {
    for x in xs {
        src.send(x);
        settle().await;
    }
}

#[tokio::test]
async fn conflate_aggregates_while_downstream_is_backpressured() {
    let (src, mut sink, _clock, _h) = start(time::conflate::<u64, _>(|a, b| a + b), 1);
    trickle(&src, 1..=10).await;
    assert_eq!(src.delivered(), 10, "conflate never backpressures");
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got.iter().sum::<u64>(), 55);
    assert!(got.len() < 10, "{got:?}");
    assert_eq!(end, ProbeEvent::Complete);
}

#[tokio::test]
async fn conflate_passes_through_when_downstream_is_fast() {
    let (src, mut sink, _clock, _h) = start(
        time::conflate_with_seed::<u64, Vec<u64>, _, _>(
            |x| vec![x],
            |mut v, x| {
                v.push(x);
                v
            },
        ),
        64,
    );
    sink.request(100);
    for x in 1..=3 {
        src.send(x);
        assert_eq!(sink.expect_next().await, vec![x]);
    }
    src.complete();
    sink.expect_complete().await;
}

#[tokio::test]
async fn batch_caps_aggregates_and_backpressures() {
    let seed = |x: u64| vec![x];
    let agg = |mut v: Vec<u64>, x: u64| {
        v.push(x);
        v
    };
    let (src, mut sink, _clock, _h) = start(time::batch(3, seed, agg), 1);
    trickle(&src, 1..=20).await;
    assert!(
        src.delivered() < 20,
        "batch backpressures when full: {}",
        src.delivered()
    );
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got.concat(), (1..=20).collect::<Vec<_>>());
    assert!(got.iter().all(|b| b.len() <= 3), "{got:?}");
    assert!(got.iter().any(|b| b.len() > 1), "{got:?}");
    assert_eq!(end, ProbeEvent::Complete);
}

#[tokio::test]
async fn expand_extrapolates_only_when_input_is_idle() {
    let (src, mut sink, _clock, _h) = start(time::expand::<u32, u32, _, _>(std::iter::repeat), 1);
    src.send(1);
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![1, 1, 1]);
    src.send(2);
    settle().await;
    sink.request(10);
    let mut seen = Vec::new();
    while seen.last() != Some(&2) {
        seen.push(sink.expect_next().await);
        assert!(
            seen.len() <= 5,
            "the new element arrives promptly: {seen:?}"
        );
    }
    src.complete();
    sink.request(u64::MAX / 2);
    loop {
        match sink.next_event().await {
            ProbeEvent::Next(x) => assert_eq!(x, 2),
            ProbeEvent::Complete => break,
            ProbeEvent::Error(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn expand_with_finite_iterators() {
    let (src, mut sink, _clock, _h) = start(time::expand::<u32, u32, _, _>(|x| 0..x), 64);
    src.send(3);
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got.first(), Some(&0));
    assert!(got.iter().all(|x| *x < 3));
    assert_eq!(end, ProbeEvent::Complete);
}

async fn run_buffer(strategy: OverflowStrategy) -> (Vec<u64>, ProbeEvent<u64>, u64) {
    let (src, mut sink, _clock, _h) = start(time::buffer::<u64>(2, strategy), 1);
    trickle(&src, 1..=10).await;
    let delivered = src.delivered();
    src.complete();
    let (got, end) = sink.collect_all().await;
    (got, end, delivered)
}

#[tokio::test]
async fn buffer_backpressure_keeps_everything() {
    let (got, end, delivered) = run_buffer(OverflowStrategy::Backpressure).await;
    assert!(delivered < 10, "backpressured: {delivered}");
    assert_eq!(got, (1..=10).collect::<Vec<_>>());
    assert_eq!(end, ProbeEvent::Complete);
}

#[tokio::test]
async fn buffer_drop_head_keeps_the_newest() {
    let (got, end, delivered) = run_buffer(OverflowStrategy::DropHead).await;
    assert_eq!(delivered, 10);
    assert!(got.len() < 10, "{got:?}");
    assert_eq!(&got[got.len() - 2..], &[9, 10]);
    assert!(got.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(end, ProbeEvent::Complete);
}

#[tokio::test]
async fn buffer_drop_tail_and_drop_new() {
    let (got, _, _) = run_buffer(OverflowStrategy::DropTail).await;
    assert!(got.len() < 10 && got.last() == Some(&10), "{got:?}");
    let (got, _, _) = run_buffer(OverflowStrategy::DropNew).await;
    assert!(got.len() < 10 && !got.contains(&10), "{got:?}");
    let (got, _, _) = run_buffer(OverflowStrategy::DropBuffer).await;
    assert!(got.len() < 10 && got.last() == Some(&10), "{got:?}");
}

#[tokio::test]
async fn buffer_fail_fails_on_overflow() {
    let (got, end, _) = run_buffer(OverflowStrategy::Fail).await;
    assert!(got.len() < 10);
    assert!(
        matches!(end, ProbeEvent::Error(ref e) if e.contains("overflow")),
        "{end:?}"
    );
}

#[tokio::test]
async fn idle_timeout_fails_after_a_quiet_period() {
    let (src, mut sink, clock, handle) = start(time::idle_timeout::<u32>(ms(1000)), 64);
    sink.request(10);
    advance(&clock, ms(900)).await;
    src.send(1);
    advance(&clock, ms(900)).await;
    src.send(2);
    advance(&clock, ms(999)).await;
    assert_eq!(sink.expect_next_n(2).await, vec![1, 2]);
    assert!(sink.try_next_event().is_none());
    advance(&clock, ms(1)).await;
    assert!(sink.expect_error().await.contains("idle_timeout"));
    handle
        .wait()
        .await
        .expect("the probe sink absorbs the failure");
}

#[tokio::test]
async fn completion_timeout_fails_a_stream_that_runs_too_long() {
    let (src, mut sink, clock, handle) = start(time::completion_timeout::<u32>(ms(1000)), 64);
    sink.request(10);
    for _ in 0..3 {
        src.send(7);
        advance(&clock, ms(300)).await;
    }
    assert_eq!(sink.expect_next_n(3).await, vec![7, 7, 7]);
    advance(&clock, ms(100)).await;
    assert!(sink.expect_error().await.contains("completion_timeout"));
    handle
        .wait()
        .await
        .expect("the probe sink absorbs the failure");
}

#[tokio::test]
async fn completion_timeout_lets_a_quick_stream_complete() {
    let (src, mut sink, clock, handle) = start(time::completion_timeout::<u32>(ms(1000)), 64);
    sink.request(10);
    src.send(1);
    src.complete();
    advance(&clock, ms(10)).await;
    assert_eq!(sink.expect_next().await, 1);
    sink.expect_complete().await;
    handle.wait().await.expect("completes");
}

#[tokio::test]
async fn initial_timeout_only_guards_the_first_element() {
    let (src, mut sink, clock, handle) = start(time::initial_timeout::<u32>(ms(1000)), 64);
    sink.request(10);
    advance(&clock, ms(999)).await;
    src.send(1);
    advance(&clock, ms(10_000)).await;
    src.send(2);
    src.complete();
    assert_eq!(sink.expect_next_n(2).await, vec![1, 2]);
    sink.expect_complete().await;
    handle.wait().await.expect("completes");

    let (_src, mut sink, clock, _handle) = start(time::initial_timeout::<u32>(ms(1000)), 64);
    sink.request(10);
    advance(&clock, ms(1000)).await;
    assert!(sink.expect_error().await.contains("initial_timeout"));
}

#[tokio::test]
async fn operators_chain_through_the_extension_trait_on_sources() {
    let clock = VirtualClock::new();
    let g = TestSource::probe::<u32>()
        .throttle(100, ms(1000), 10)
        .delay(ms(50))
        .idle_timeout(ms(10_000))
        .to_mat(TestSink::probe::<u32>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, mut sink), _h) = m.materialize(&g).expect("materializes");
    sink.request(10);
    src.send_all(vec![1, 2, 3]);
    src.complete();
    advance(&clock, ms(50)).await;
    assert_eq!(sink.expect_next_n(3).await, vec![1, 2, 3]);
    sink.expect_complete().await;
}

/// A sink that takes everything and keeps the stream's error, if any.
fn error_sink<T: Send + 'static>() -> Sink<T, Arc<Mutex<Option<StageError>>>> {
    Sink::from_async("error-sink", |_| {
        let slot = Arc::new(Mutex::new(None));
        let s2 = Arc::clone(&slot);
        let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
            async move {
                let mut input = io.input::<T>(0)?;
                loop {
                    match input.recv().await {
                        Event::Batch(_) => {}
                        Event::End => return Ok(()),
                        Event::Error(e) => {
                            if let Ok(mut s) = s2.lock() {
                                *s = Some(e);
                            }
                            return Ok(());
                        }
                    }
                }
            }
            .boxed()
        });
        Ok((logic, slot))
    })
}

#[tokio::test]
async fn timeouts_fail_with_the_timeout_kind() {
    for flow in [
        time::idle_timeout::<u32>(ms(100)),
        time::completion_timeout::<u32>(ms(100)),
        time::initial_timeout::<u32>(ms(100)),
    ] {
        let clock = VirtualClock::new();
        let g = TestSource::probe::<u32>()
            .via(flow)
            .to_mat(error_sink::<u32>(), Keep::both);
        let m = Materializer::new().with_clock(Arc::new(clock.clone()));
        let ((_src, slot), handle) = m.materialize(&g).expect("materializes");
        advance(&clock, ms(100)).await;
        handle.wait().await.expect("the sink absorbs the failure");
        let err = slot.lock().ok().and_then(|s| s.clone()).expect("an error");
        assert_eq!(err.kind(), ErrorKind::Timeout, "{err}");
    }
}

#[tokio::test]
async fn idle_stages_see_downstream_cancellation() {
    let flows: Vec<Flow<u32, u32>> = vec![
        time::throttle(1, ms(1000), 1),
        time::delay(ms(1000)),
        time::idle_timeout(ms(1000)),
        time::conflate(|a, b| a + b),
        time::buffer(4, OverflowStrategy::DropHead),
        time::expand(std::iter::once),
    ];
    for flow in flows {
        let (src, sink, _clock, _h) = start(flow, 64);
        settle().await;
        sink.cancel();
        src.expect_cancellation().await;
    }
    let (src, sink, _clock, _h) = start(time::grouped_within::<u32>(3, ms(1000)), 64);
    src.send(1);
    settle().await;
    sink.cancel();
    src.expect_cancellation().await;
}
