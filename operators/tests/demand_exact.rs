//! A consumer asks a demand-driven upstream for exactly what it can use (`head`: one, `take(n)`:
//! what is left of `n`); ends need no demand (`Source::queue` completed or failed while nobody
//! asks); `Source::lazy` builds its inner source on the first demand; a probe sink that saw a
//! failure fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ProbeEvent, SinkProbe, TestSink, TestSource};
use weir_graph::{ErrorKind, GraphBuilder, Keep, Sink, SinkFuture, Source, StageError};
use weir_operators::fan::Balance;
use weir_operators::lifecycle::LifecycleSources;
use weir_operators::prelude::{SimpleOps, SinkCtors, SourceCtors};
use weir_operators::source::{OverflowStrategy, QueueOfferResult};
use weir_operators::time;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// Elements the stages whose path starts with `name` took in / gave out.
fn counts(h: &RunHandle, name: &str) -> (u64, u64) {
    h.metrics()
        .iter()
        .filter(|m| m.path.starts_with(name))
        .fold((0, 0), |(i, o), m| (i + m.elements_in, o + m.elements_out))
}

/// Waits until the stage named `name` received `n` elements (yields, bounded in real time).
async fn received(h: &RunHandle, name: &str, n: u64) {
    within(async {
        while counts(h, name).0 < n {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

type HeadAndCollect = (SinkFuture<i32>, SinkFuture<Vec<i32>>);

fn balance_into_head_and_collect(n: i32) -> (HeadAndCollect, RunHandle) {
    let mut b = GraphBuilder::new();
    let (src, _) = b.add_source(Source::from_iter(0..n));
    let bal = b.add(Balance::<i32>::new(2));
    let (head, kh) = b.add_sink(Sink::<i32>::head());
    let (all, kc) = b.add_sink(Sink::<i32>::collect());
    b.connect(src, bal.inlet).unwrap();
    b.connect(bal.outlets[0], head).unwrap();
    b.connect(bal.outlets[1], all).unwrap();
    let g = b
        .build_mat(move |m| (m.take(kh).unwrap(), m.take(kc).unwrap()))
        .unwrap();
    Materializer::new().materialize(&g).expect("materializes")
}

#[tokio::test]
async fn balance_into_head_and_collect_loses_nothing() {
    for n in [1, 10, 5000] {
        let ((head, all), h) = balance_into_head_and_collect(n);
        let got = within(all).await.expect("collect completes");
        within(h.wait()).await.expect("run completes");
        if n == 1 {
            // The one element went to one of the two; the other side saw none.
            match within(head).await {
                Ok(x) => assert_eq!((x, got), (0, vec![])),
                Err(e) => {
                    assert_eq!(e.message(), "stream completed without elements");
                    assert_eq!(got, vec![0]);
                }
            }
            continue;
        }
        let x = within(head).await.expect("head got an element");
        // `head` asked for one and took one: every other element reached `collect`, in order.
        let rest: Vec<i32> = (0..n).filter(|&y| y != x).collect();
        assert_eq!(got, rest, "head took {x}");
        assert_eq!(counts(&h, "head").0, 1);
    }
}

#[tokio::test]
async fn take_after_a_buffer_asks_for_exactly_what_it_still_needs() {
    let g = TestSource::probe::<i32>()
        .via(time::buffer::<i32>(100, OverflowStrategy::DropHead))
        .take(3)
        .to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((src, mut sink), h) = Materializer::new().materialize(&g).expect("materializes");
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    sink.request(10);
    let (got, end) = within(sink.collect_all()).await;
    assert_eq!(got, vec![900, 901, 902]);
    assert_eq!(end, ProbeEvent::Complete);
    // The probe asked for 10, but `take(3)` granted 3: the buffer emitted no more.
    assert_eq!(counts(&h, "buffer").1, 3);
    within(src.expect_cancellation()).await;
    within(h.wait()).await.expect("run completes");
}

#[tokio::test]
async fn take_asks_again_for_the_rest_after_a_short_batch() {
    let g = TestSource::probe::<i32>()
        .via(time::buffer::<i32>(100, OverflowStrategy::Backpressure))
        .take(5)
        .to_mat(Sink::collect(), Keep::both);
    let ((src, out), h) = Materializer::new().materialize(&g).expect("materializes");
    src.offer_all(vec![1, 2]);
    received(&h, "take", 2).await;
    src.offer_all((3..20).collect());
    assert_eq!(within(out).await.expect("completes"), vec![1, 2, 3, 4, 5]);
    assert_eq!(counts(&h, "buffer").1, 5);
    within(h.wait()).await.expect("run completes");
}

fn queue_to_probe() -> (
    weir_operators::source::SourceQueue<i32>,
    SinkProbe<i32>,
    RunHandle,
) {
    let g = Source::<i32>::queue(2, OverflowStrategy::DropHead)
        .to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((q, sink), h) = Materializer::new().materialize(&g).expect("materializes");
    (q, sink, h)
}

#[tokio::test]
async fn an_empty_queue_completes_at_once_without_demand() {
    let (q, mut sink, h) = queue_to_probe();
    q.complete();
    within(sink.expect_complete()).await;
    within(h.wait()).await.expect("run completes");
    assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::QueueClosed);
}

#[tokio::test]
async fn a_queue_completed_with_elements_waits_for_demand_for_them() {
    let (q, mut sink, h) = queue_to_probe();
    assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::Enqueued);
    q.complete();
    sink.expect_no_element(Duration::from_millis(20)).await;
    sink.request(1);
    let (got, end) = within(sink.collect_all()).await;
    assert_eq!((got, end), (vec![1], ProbeEvent::Complete));
    within(h.wait()).await.expect("run completes");
}

#[tokio::test]
async fn a_failed_queue_fails_at_once_without_demand_and_fails_the_run() {
    let (q, mut sink, h) = queue_to_probe();
    assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::Enqueued);
    q.fail(StageError::user("producer gave up"));
    let e = within(sink.expect_error()).await;
    assert!(e.contains("producer gave up"), "{e}");
    let e = within(h.wait())
        .await
        .expect_err("the probe's failure fails the run");
    assert_eq!(e.message(), "producer gave up");
    assert_eq!(e.stage(), Some("queue#0"));
}

#[tokio::test]
async fn a_probe_sink_that_saw_a_failure_fails_the_run() {
    let g = TestSource::probe::<i32>().to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((src, mut sink), h) = Materializer::new().materialize(&g).expect("materializes");
    sink.request(5);
    src.offer_all(vec![1, 2]);
    assert_eq!(within(sink.expect_next_n(2)).await, vec![1, 2]);
    src.fail(StageError::user("bad input"));
    let e = within(sink.expect_error()).await;
    assert!(e.contains("bad input"), "{e}");
    let e = within(h.wait()).await.expect_err("the run fails");
    assert_eq!(e.message(), "bad input");
}

fn counted_lazy(calls: &Arc<AtomicUsize>) -> Source<i32, SinkFuture<()>> {
    let c = Arc::clone(calls);
    Source::<i32>::lazy(move || {
        c.fetch_add(1, Ordering::SeqCst);
        Source::from_iter(vec![1, 2, 3])
    })
}

#[tokio::test]
async fn lazy_source_is_built_on_the_first_demand() {
    let calls = Arc::new(AtomicUsize::new(0));
    let g = counted_lazy(&calls).to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((inner, mut sink), h) = Materializer::new().materialize(&g).expect("materializes");
    sink.expect_no_element(Duration::from_millis(20)).await;
    assert_eq!(calls.load(Ordering::SeqCst), 0, "nobody asked yet");
    sink.request(10);
    let (got, end) = within(sink.collect_all()).await;
    assert_eq!((got, end), (vec![1, 2, 3], ProbeEvent::Complete));
    within(inner).await.expect("inner materialized");
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    within(h.wait()).await.expect("run completes");
}

#[tokio::test]
async fn lazy_source_never_calls_its_factory_when_downstream_cancels_before_asking() {
    let calls = Arc::new(AtomicUsize::new(0));
    let g = counted_lazy(&calls).to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((inner, mut sink), h) = Materializer::new().materialize(&g).expect("materializes");
    sink.expect_no_element(Duration::from_millis(20)).await;
    sink.cancel();
    let e = within(inner).await.expect_err("never materialized");
    assert_eq!(e.kind(), ErrorKind::Cancelled);
    assert_eq!(
        e.message(),
        "lazy source never materialized: downstream cancelled first"
    );
    within(h.wait()).await.expect("run completes");
    assert_eq!(calls.load(Ordering::SeqCst), 0);

    // `take(0)` wants nothing from the start: the factory is never called either.
    let calls = Arc::new(AtomicUsize::new(0));
    let (inner, out) = counted_lazy(&calls)
        .take(0)
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .expect("starts");
    assert_eq!(within(out).await.expect("completes"), Vec::<i32>::new());
    assert_eq!(
        within(inner).await.expect_err("never materialized").kind(),
        ErrorKind::Cancelled
    );
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}
