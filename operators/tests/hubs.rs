//! Hubs between running graphs: producers attaching to a `MergeHub`, consumers attaching to and
//! leaving a `BroadcastHub` or a `PartitionHub` while they run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ProbeEvent, SinkProbe, TestSink, TestSource};
use weir_graph::{Keep, Sink, Source, StageError};
use weir_operators::hub::{BroadcastHub, MergeHub, PartitionHub};
use weir_operators::prelude::*;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// A source of `0..n` that counts the elements pulled from it.
fn counted(n: u32, pulled: &Arc<AtomicUsize>) -> Source<u32> {
    let pulled = Arc::clone(pulled);
    Source::from_iter(0..n).map(move |x| {
        pulled.fetch_add(1, Ordering::SeqCst);
        x
    })
}

/// Small batches and channels, so what is held in flight is small and countable.
fn tight() -> Materializer {
    Materializer::new().with_batch_size(1).with_buffer_rows(1)
}

/// A new consumer of `hub`, run on `m`, with a probe at its end.
fn attach<T: Send + std::fmt::Debug + 'static>(hub: &Source<T>, m: &Materializer) -> SinkProbe<T> {
    hub.clone()
        .to_mat(TestSink::probe(), Keep::right)
        .run_on(m)
        .unwrap()
}

/// A `PartitionHub` routing `x` to consumer `x % n`.
fn modulo_hub(start_after: usize, buffer: usize) -> Sink<u32, Source<u32>> {
    PartitionHub::sink(|n, x: &u32| i64::from(*x) % n as i64, start_after, buffer).unwrap()
}

#[tokio::test]
async fn merge_hub_merges_several_producers_attached_at_run_time() {
    let hub = MergeHub::source::<u32>(16).unwrap();
    let (sink, out) = hub
        .take(9)
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .unwrap();
    let mut producers = Vec::new();
    for p in 0..3u32 {
        let done = Source::from_iter((0..3).map(move |i| p * 10 + i))
            .to_mat(sink.clone(), Keep::right)
            .start()
            .unwrap()
            .1;
        producers.push(done);
    }
    let mut got = within(out).await.unwrap();
    for p in producers {
        within(p.wait()).await.unwrap();
    }
    // Each producer's elements arrive in its order; together they are exactly what was sent.
    for p in 0..3 {
        let mine: Vec<u32> = got.iter().copied().filter(|x| x / 10 == p).collect();
        assert_eq!(mine, vec![p * 10, p * 10 + 1, p * 10 + 2]);
    }
    got.sort_unstable();
    assert_eq!(got, vec![0, 1, 2, 10, 11, 12, 20, 21, 22]);
}

#[tokio::test]
async fn merge_hub_cancels_its_producers_when_downstream_cancels() {
    let hub = MergeHub::source::<u32>(4).unwrap();
    let (sink, mut probe) = hub.to_mat(TestSink::probe(), Keep::both).run().unwrap();
    let (early, h1) = TestSource::probe::<u32>()
        .to_mat(sink.clone(), Keep::left)
        .start()
        .unwrap();
    early.send_all(vec![1, 2]);
    probe.request(2);
    assert_eq!(within(probe.expect_next_n(2)).await, vec![1, 2]);
    probe.cancel();
    within(early.expect_cancellation()).await;
    within(h1.wait()).await.unwrap();
    // A producer attached after the hub stopped is cancelled at once.
    let (late, h2) = TestSource::probe::<u32>()
        .to_mat(sink, Keep::left)
        .start()
        .unwrap();
    within(late.expect_cancellation()).await;
    within(h2.wait()).await.unwrap();
}

#[tokio::test]
async fn merge_hub_holds_a_producer_while_downstream_does_not_pull() {
    let hub = MergeHub::source::<u32>(4).unwrap();
    let (sink, mut probe) = hub
        .to_mat(TestSink::probe(), Keep::both)
        .run_on(&tight())
        .unwrap();
    let pulled = Arc::new(AtomicUsize::new(0));
    counted(100, &pulled)
        .to_mat(sink, Keep::right)
        .run_on(&tight())
        .unwrap();
    settle().await;
    let held = pulled.load(Ordering::SeqCst);
    // 4 in the hub, one batch in the hub source's output channel and in the probe, a few
    // single-row batches in flight in the producer's run.
    assert!(held <= 12, "producer ran ahead: {held} pulled");
    probe.request(100);
    assert_eq!(
        within(probe.expect_next_n(100)).await,
        (0..100).collect::<Vec<_>>()
    );
    assert_eq!(pulled.load(Ordering::SeqCst), 100);
}

#[tokio::test]
async fn a_failing_producer_fails_its_own_stream_only() {
    let hub = MergeHub::source::<u32>(16).unwrap();
    let (sink, out) = hub
        .take(2)
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .unwrap();
    let (_, bad) = Source::<u32>::failed(StageError::user("producer broke"))
        .to_mat(sink.clone(), Keep::right)
        .start()
        .unwrap();
    let e = within(bad.wait()).await.unwrap_err();
    assert_eq!(e.message(), "producer broke");
    Source::from_iter(vec![7, 8])
        .to_mat(sink, Keep::right)
        .run()
        .unwrap();
    assert_eq!(within(out).await.unwrap(), vec![7, 8]);
}

#[tokio::test]
async fn broadcast_hub_consumers_see_elements_from_where_they_attach() {
    let ((src, hub), producer) = TestSource::probe::<u32>()
        .to_mat(BroadcastHub::sink(8).unwrap(), Keep::both)
        .start()
        .unwrap();
    // Before any consumer, elements wait in the buffer.
    src.send_all(vec![1, 2]);
    settle().await;
    let mut a = attach(&hub, &Materializer::new());
    a.request(100);
    assert_eq!(within(a.expect_next_n(2)).await, vec![1, 2]);
    src.send(3);
    assert_eq!(within(a.expect_next()).await, 3);
    settle().await;
    // `a` read everything: `b` starts with the next element.
    let mut b = attach(&hub, &Materializer::new());
    b.request(100);
    settle().await;
    src.send_all(vec![4, 5]);
    assert_eq!(within(a.expect_next_n(2)).await, vec![4, 5]);
    assert_eq!(within(b.expect_next_n(2)).await, vec![4, 5]);
    b.cancel();
    settle().await;
    src.send(6);
    assert_eq!(within(a.expect_next()).await, 6);
    src.complete();
    within(a.expect_complete()).await;
    within(producer.wait()).await.unwrap();
    assert!(
        b.try_next_event().is_none(),
        "a cancelled consumer gets nothing more"
    );
    // Consumers attached after completion complete at once.
    let mut c = attach(&hub, &Materializer::new());
    c.request(1);
    within(c.expect_complete()).await;
}

#[tokio::test]
async fn broadcast_hub_slowest_consumer_holds_the_producer() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let hub = counted(100, &pulled)
        .to_mat(BroadcastHub::sink(4).unwrap(), Keep::right)
        .run_on(&tight())
        .unwrap();
    settle().await;
    // Nobody attached: the buffer fills and the producer waits.
    let before = pulled.load(Ordering::SeqCst);
    assert!(
        before <= 8,
        "producer ran ahead without consumers: {before}"
    );
    let fast = hub.clone().run_with_on(Sink::collect(), &tight()).unwrap();
    let mut slow = attach(&hub, &tight());
    settle().await;
    // The slow consumer asked for nothing: at most its buffer share is past the hub.
    let held = pulled.load(Ordering::SeqCst);
    assert!(
        held <= 14,
        "slow consumer did not hold the producer: {held} pulled"
    );
    let (all, end) = within(slow.collect_all()).await;
    assert_eq!(all, (0..100).collect::<Vec<_>>());
    assert_eq!(end, ProbeEvent::Complete);
    assert_eq!(within(fast).await.unwrap(), (0..100).collect::<Vec<_>>());
}

#[tokio::test]
async fn broadcast_hub_failure_reaches_every_consumer() {
    let ((src, hub), producer) = TestSource::probe::<u32>()
        .to_mat(BroadcastHub::sink(8).unwrap(), Keep::both)
        .start()
        .unwrap();
    let mut a = attach(&hub, &Materializer::new());
    a.request(10);
    src.send(1);
    assert_eq!(within(a.expect_next()).await, 1);
    src.fail(StageError::user("upstream broke"));
    assert!(within(a.expect_error()).await.contains("upstream broke"));
    let e = within(producer.wait()).await.unwrap_err();
    assert_eq!(e.message(), "upstream broke");
    let late = hub.run_with(Sink::collect()).unwrap();
    assert_eq!(within(late).await.unwrap_err().message(), "upstream broke");
}

#[tokio::test]
async fn partition_hub_routes_once_enough_consumers_attached() {
    let hub = Source::from_iter(0..10u32)
        .to_mat(modulo_hub(2, 16), Keep::right)
        .run()
        .unwrap();
    settle().await;
    let a = hub.clone().run_with(Sink::collect()).unwrap();
    settle().await;
    let b = hub.clone().run_with(Sink::collect()).unwrap();
    assert_eq!(within(a).await.unwrap(), vec![0, 2, 4, 6, 8]);
    assert_eq!(within(b).await.unwrap(), vec![1, 3, 5, 7, 9]);
    // Completion is remembered.
    let late = hub.run_with(Sink::collect()).unwrap();
    assert_eq!(within(late).await.unwrap(), Vec::<u32>::new());
}

#[tokio::test]
async fn partition_hub_drops_on_negative_and_fails_out_of_range() {
    let hub = Source::from_iter(vec![1u32, 2, 3, 4])
        .to_mat(
            PartitionHub::sink(|_, x: &u32| if x.is_multiple_of(2) { -1 } else { 0 }, 1, 16)
                .unwrap(),
            Keep::right,
        )
        .run()
        .unwrap();
    let only = hub.run_with(Sink::collect()).unwrap();
    assert_eq!(within(only).await.unwrap(), vec![1, 3]);

    let (hub, producer) = Source::from_iter(vec![0u32, 5])
        .to_mat(
            PartitionHub::sink(|_, x: &u32| i64::from(*x), 2, 16).unwrap(),
            Keep::right,
        )
        .start()
        .unwrap();
    let mut a = attach(&hub, &Materializer::new());
    let b = hub.run_with(Sink::collect()).unwrap();
    let e = within(producer.wait()).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "stage 'partition_hub#1' failed: partition index 5 out of range 0..2"
    );
    // `a` gets what was routed to it before the failure, then the failure.
    let (got, end) = within(a.collect_all()).await;
    assert_eq!(got, vec![0]);
    assert!(matches!(end, ProbeEvent::Error(e) if e.contains("out of range 0..2")));
    assert!(
        within(b)
            .await
            .unwrap_err()
            .to_string()
            .contains("out of range 0..2")
    );
}

#[tokio::test]
async fn partition_hub_reroutes_when_a_consumer_leaves() {
    let ((src, hub), producer) = TestSource::probe::<u32>()
        .to_mat(modulo_hub(2, 16), Keep::both)
        .start()
        .unwrap();
    let mut a = attach(&hub, &Materializer::new());
    let mut b = attach(&hub, &Materializer::new());
    a.request(100);
    b.request(100);
    src.send_all(vec![0, 1]);
    assert_eq!(within(a.expect_next()).await, 0);
    assert_eq!(within(b.expect_next()).await, 1);
    b.cancel();
    settle().await;
    // One consumer left: everything goes to it.
    src.send_all(vec![2, 3]);
    assert_eq!(within(a.expect_next_n(2)).await, vec![2, 3]);
    src.complete();
    within(a.expect_complete()).await;
    within(producer.wait()).await.unwrap();
}

#[tokio::test]
async fn zero_sizes_are_rejected_when_built() {
    let e = MergeHub::source::<u32>(0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid stage 'merge_hub': per_producer_buffer_size must be at least 1, got 0"
    );
    let e = BroadcastHub::sink::<u32>(0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid stage 'broadcast_hub': buffer_size must be at least 1, got 0"
    );
    let e = PartitionHub::sink(|_, _: &u32| 0, 1, 0).unwrap_err();
    assert_eq!(
        e.to_string(),
        "invalid stage 'partition_hub': buffer_size must be at least 1, got 0"
    );
}

#[tokio::test]
async fn partition_hub_holds_the_producer_until_consumers_attach_and_pull() {
    let pulled = Arc::new(AtomicUsize::new(0));
    let hub = counted(100, &pulled)
        .to_mat(modulo_hub(2, 4), Keep::right)
        .run_on(&tight())
        .unwrap();
    let mut a = attach(&hub, &tight());
    settle().await;
    // One consumer of the two needed: nothing is routed, the producer waits.
    let waiting = pulled.load(Ordering::SeqCst);
    assert!(waiting <= 4, "routing started too early: {waiting} pulled");
    assert!(a.try_next_event().is_none());
    let mut b = attach(&hub, &tight());
    settle().await;
    // Nobody pulls: 4 queued in the hub, a row in each consumer channel and probe, a few in
    // flight in the producer run.
    let held = pulled.load(Ordering::SeqCst);
    assert!(
        held <= 16,
        "consumers that do not pull did not hold the producer: {held}"
    );
    let (even, end_a) = {
        b.request(100);
        within(a.collect_all()).await
    };
    let (odd, end_b) = within(b.collect_all()).await;
    assert_eq!(even, (0..50).map(|i| 2 * i).collect::<Vec<_>>());
    assert_eq!(odd, (0..50).map(|i| 2 * i + 1).collect::<Vec<_>>());
    assert_eq!((end_a, end_b), (ProbeEvent::Complete, ProbeEvent::Complete));
    assert_eq!(pulled.load(Ordering::SeqCst), 100);
}
