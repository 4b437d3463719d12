//! Async family on the engine with a virtual clock: user futures sleep on the test's clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{
    ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource, VirtualClock,
};
use weir_graph::{Clock, DeadLetterSink, Flow, Keep, StageError, Supervision};
use weir_operators::async_ops::{self, AsyncOps};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn settle() {
    for _ in 0..100 {
        tokio::task::yield_now().await;
    }
}

async fn advance(clock: &VirtualClock, d: Duration) {
    settle().await;
    clock.advance(d);
    settle().await;
}

fn start<O: Send + std::fmt::Debug + 'static>(
    flow: Flow<u64, O>,
    clock: &VirtualClock,
) -> (SourceProbe<u64>, SinkProbe<O>, RunHandle) {
    let g = TestSource::probe::<u64>()
        .via(flow)
        .to_mat(TestSink::probe::<O>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    (src, sink, handle)
}

/// `x` doubled after `(100 - 10x)` ms of virtual time: later elements finish first.
fn slow_double(
    clock: &VirtualClock,
) -> impl FnMut(u64) -> futures::future::BoxFuture<'static, Result<u64, StageError>>
+ Clone
+ Send
+ Sync
+ 'static {
    let clock = clock.clone();
    move |x: u64| {
        let sleep = clock.sleep(ms(100 - 10 * x));
        Box::pin(async move {
            sleep.await;
            Ok(x * 2)
        })
    }
}

#[tokio::test]
async fn map_async_keeps_input_order() {
    let clock = VirtualClock::new();
    let (src, mut sink, handle) = start(async_ops::map_async(4, slow_double(&clock)), &clock);
    sink.request(10);
    src.send_all(vec![1, 2, 3, 4]);
    advance(&clock, ms(60)).await;
    assert!(sink.try_next_event().is_none(), "element 1 is not done yet");
    advance(&clock, ms(30)).await;
    assert_eq!(sink.expect_next_n(4).await, vec![2, 4, 6, 8]);
    src.complete();
    sink.expect_complete().await;
    handle.wait().await.expect("completes");
}

#[tokio::test]
async fn map_async_unordered_emits_in_completion_order() {
    let clock = VirtualClock::new();
    let (src, mut sink, _h) = start(
        async_ops::map_async_unordered(4, slow_double(&clock)),
        &clock,
    );
    sink.request(10);
    src.send_all(vec![1, 2, 3, 4]);
    let mut got = Vec::new();
    advance(&clock, ms(50)).await;
    assert!(sink.try_next_event().is_none());
    for _ in 0..4 {
        advance(&clock, ms(10)).await;
        while let Some(ProbeEvent::Next(x)) = sink.try_next_event() {
            got.push(x);
        }
    }
    assert_eq!(got, vec![8, 6, 4, 2]);
    src.complete();
    sink.expect_complete().await;
}

#[tokio::test]
async fn map_async_bounds_the_futures_in_flight() {
    let clock = VirtualClock::new();
    let started = Arc::new(AtomicUsize::new(0));
    let (s2, c2) = (Arc::clone(&started), clock.clone());
    let f = move |x: u64| {
        s2.fetch_add(1, Ordering::SeqCst);
        let sleep = c2.sleep(ms(100));
        async move {
            sleep.await;
            Ok::<_, StageError>(x)
        }
    };
    let (src, mut sink, _h) = start(
        Flow::<u64, u64>::from_module(async_ops::map_async(3, f).module().clone()),
        &clock,
    );
    sink.request(100);
    src.send_all((0..10).collect());
    settle().await;
    assert_eq!(started.load(Ordering::SeqCst), 3);
    advance(&clock, ms(100)).await;
    assert_eq!(sink.expect_next_n(3).await, vec![0, 1, 2]);
    assert_eq!(started.load(Ordering::SeqCst), 6);
    advance(&clock, ms(100)).await;
    advance(&clock, ms(100)).await;
    advance(&clock, ms(100)).await;
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got, (3..10).collect::<Vec<_>>());
    assert_eq!(end, ProbeEvent::Complete);
}

fn fail_on_two(x: u64) -> futures::future::Ready<Result<u64, StageError>> {
    futures::future::ready(if x == 2 {
        Err(StageError::user("two is bad"))
    } else {
        Ok(x * 10)
    })
}

#[tokio::test]
async fn map_async_failure_stops_the_stream_by_default() {
    let clock = VirtualClock::new();
    let (src, mut sink, _h) = start(async_ops::map_async(1, fail_on_two), &clock);
    sink.request(10);
    src.send(1);
    assert_eq!(sink.expect_next().await, 10);
    src.send(2);
    assert!(sink.expect_error().await.contains("two is bad"));
}

#[tokio::test]
async fn map_async_resume_drops_failed_elements_to_dead_letters() {
    let clock = VirtualClock::new();
    let (dl, letters) = DeadLetterSink::collector();
    let flow = async_ops::map_async_unordered(2, fail_on_two)
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    let (src, mut sink, _h) = start(flow, &clock);
    src.send_all(vec![1, 2, 3]);
    src.complete();
    let (mut got, end) = sink.collect_all().await;
    got.sort_unstable();
    assert_eq!(got, vec![10, 30]);
    assert_eq!(end, ProbeEvent::Complete);
    let letters = letters.lock().map(|l| l.len()).unwrap_or(0);
    assert_eq!(letters, 1);
}

#[tokio::test]
async fn map_async_stops_when_downstream_cancels() {
    let clock = VirtualClock::new();
    let calls = Arc::new(Mutex::new(0u32));
    let c2 = Arc::clone(&calls);
    let flow = async_ops::map_async(2, move |x: u64| {
        if let Ok(mut c) = c2.lock() {
            *c += 1;
        }
        futures::future::ready(Ok::<_, StageError>(x))
    });
    let (src, mut sink, handle) = start(flow, &clock);
    sink.request(1);
    src.send(1);
    assert_eq!(sink.expect_next().await, 1);
    sink.cancel();
    src.expect_cancellation().await;
    handle.wait().await.ok();
}

#[tokio::test]
async fn map_async_through_the_extension_trait() {
    let clock = VirtualClock::new();
    let g = TestSource::probe::<u64>()
        .map_async(2, |x: u64| async move { Ok::<_, StageError>(x + 1) })
        .map_async_unordered(1, |x: u64| async move { Ok::<_, StageError>(x * 2) })
        .to_mat(TestSink::probe::<u64>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, mut sink), _h) = m.materialize(&g).expect("materializes");
    src.send_all(vec![1, 2, 3]);
    src.complete();
    let (got, end) = sink.collect_all().await;
    assert_eq!(got, vec![4, 6, 8]);
    assert_eq!(end, ProbeEvent::Complete);
}
