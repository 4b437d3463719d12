//! Rate-decoupling operators decide on the consumer's real demand: between them and a
//! demand-exact probe sink, no more than the probe requested is ever in flight.

use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{SinkProbe, SourceProbe, TestSink, TestSource};
use weir_graph::{Flow, GraphBuilder, Keep, Source};
use weir_operators::fan::{Balance, MergePreferred};
use weir_operators::prelude::{SimpleOps, SinkCtors, SourceCtors, TimeOps};
use weir_operators::source::{OverflowStrategy, QueueOfferResult};
use weir_operators::time;

/// Probe source -> `flow` -> probe sink.
fn start<I: Send + std::fmt::Debug + 'static, O: Send + std::fmt::Debug + 'static>(
    flow: Flow<I, O>,
) -> (SourceProbe<I>, SinkProbe<O>, RunHandle) {
    let g = TestSource::probe::<I>()
        .via(flow)
        .to_mat(TestSink::probe::<O>(), Keep::both);
    let ((src, sink), handle) = Materializer::new().materialize(&g).expect("materializes");
    (src, sink, handle)
}

/// Waits until the stage named `name` received `n` elements (no sleeping: yields to the
/// stages, bounded by a generous real-time limit).
async fn received(h: &RunHandle, name: &str, n: u64) {
    let wait = async {
        loop {
            let got: u64 = h
                .metrics()
                .iter()
                .filter(|m| m.path.starts_with(name))
                .map(|m| m.elements_in)
                .sum();
            if got >= n {
                return;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), wait)
        .await
        .unwrap_or_else(|_| panic!("{name} never received {n} elements"));
}

/// Lets every task that can make progress run.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// 1000 elements into `buffer(100, strategy)` before the probe requests anything.
async fn buffered_1000(
    strategy: OverflowStrategy,
) -> (SourceProbe<i32>, SinkProbe<i32>, RunHandle) {
    let (src, sink, h) = start(time::buffer::<i32>(100, strategy));
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    (src, sink, h)
}

#[tokio::test]
async fn buffer_drop_head_delivers_the_newest_100_to_a_late_consumer() {
    let (src, mut sink, h) = buffered_1000(OverflowStrategy::DropHead).await;
    sink.request(10);
    assert_eq!(sink.expect_next_n(10).await, (900..910).collect::<Vec<_>>());
    src.complete();
    let (rest, end) = sink.collect_all().await;
    assert_eq!(rest, (910..1000).collect::<Vec<_>>());
    assert_eq!(end, weir_engine::testkit::ProbeEvent::Complete);
    h.wait().await.unwrap();
}

#[tokio::test]
async fn buffer_drop_tail_replaces_the_youngest() {
    let (src, mut sink, h) = buffered_1000(OverflowStrategy::DropTail).await;
    sink.request(5);
    assert_eq!(sink.expect_next_n(5).await, vec![0, 1, 2, 3, 4]);
    src.complete();
    let (rest, _) = sink.collect_all().await;
    let mut want: Vec<i32> = (5..99).collect();
    want.push(999);
    assert_eq!(rest, want);
    h.wait().await.unwrap();
}

#[tokio::test]
async fn buffer_drop_new_keeps_the_first_100() {
    let (src, mut sink, h) = buffered_1000(OverflowStrategy::DropNew).await;
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![0, 1, 2]);
    src.complete();
    let (rest, _) = sink.collect_all().await;
    assert_eq!(rest, (3..100).collect::<Vec<_>>());
    h.wait().await.unwrap();
}

#[tokio::test]
async fn buffer_fail_fails_on_the_101st_unrequested_element() {
    let (src, mut sink, h) = start(time::buffer::<i32>(100, OverflowStrategy::Fail));
    sink.request(5);
    src.offer_all((0..5).collect());
    assert_eq!(sink.expect_next_n(5).await, vec![0, 1, 2, 3, 4]);
    // Nothing requested now: 100 fit, the 101st overflows.
    src.offer_all((5..105).collect());
    received(&h, "buffer", 105).await;
    sink.expect_no_element(Duration::from_millis(20)).await;
    src.offer(105);
    let e = sink.expect_error().await;
    assert!(e.contains("buffer overflow: capacity 100 exceeded"), "{e}");
    assert!(e.contains("buffer#1"), "{e}");
    src.expect_cancellation().await;
    let e = h
        .wait()
        .await
        .expect_err("the failure the probe saw fails the run");
    assert_eq!(e.message(), "buffer overflow: capacity 100 exceeded");
    assert_eq!(e.stage(), Some("buffer#1"));
}

#[tokio::test]
async fn buffer_backpressure_stops_taking_input_when_full() {
    let (src, mut sink, h) = start(time::buffer::<i32>(10, OverflowStrategy::Backpressure));
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    // The probe source's chunk went into the buffer's input channel at once; the buffer keeps
    // what it received (one batch) and emits in order exactly what is requested.
    sink.request(4);
    assert_eq!(sink.expect_next_n(4).await, vec![0, 1, 2, 3]);
    sink.expect_no_element(Duration::from_millis(20)).await;
    src.complete();
    let (rest, _) = sink.collect_all().await;
    assert_eq!(rest, (4..1000).collect::<Vec<_>>());
    h.wait().await.unwrap();
}

#[tokio::test]
async fn conflate_in_front_of_a_silent_consumer_yields_one_aggregate() {
    let (src, mut sink, h) = start(time::conflate::<i64, _>(|a, b| a + b));
    for x in 1..=100 {
        src.offer(x);
    }
    received(&h, "conflate", 100).await;
    sink.request(1);
    assert_eq!(sink.expect_next().await, 5050);
    sink.request(1);
    sink.expect_no_element(Duration::from_millis(20)).await;
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn conflate_passes_elements_through_while_the_consumer_has_demand() {
    let (src, mut sink, h) = start(time::conflate::<i64, _>(|a, b| a + b));
    sink.request(3);
    settle().await;
    src.offer_all(vec![1, 2, 3, 4, 5]);
    assert_eq!(sink.expect_next_n(3).await, vec![1, 2, 3]);
    received(&h, "conflate", 5).await;
    sink.request(1);
    assert_eq!(sink.expect_next().await, 9);
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn batch_folds_at_most_max_and_backpressures_the_rest() {
    let flow = time::batch::<i32, Vec<i32>, _, _>(
        3,
        |x| vec![x],
        |mut v, x| {
            v.push(x);
            v
        },
    );
    let (src, mut sink, h) = start(flow);
    src.offer_all((0..10).collect());
    received(&h, "batch", 10).await;
    sink.request(2);
    assert_eq!(
        sink.expect_next_n(2).await,
        vec![vec![0, 1, 2], vec![3, 4, 5]]
    );
    src.complete();
    let (rest, _) = sink.collect_all().await;
    assert_eq!(rest, vec![vec![6, 7, 8], vec![9]]);
    h.wait().await.unwrap();
}

fn queue_to_probe(
    strategy: OverflowStrategy,
) -> (
    weir_operators::source::SourceQueue<i32>,
    SinkProbe<i32>,
    RunHandle,
) {
    let g = Source::<i32>::queue(2, strategy).to_mat(TestSink::probe::<i32>(), Keep::both);
    let ((q, sink), h) = Materializer::new().materialize(&g).expect("materializes");
    (q, sink, h)
}

#[tokio::test]
async fn queue_of_2_drop_head_keeps_exactly_the_2_newest() {
    let (q, mut sink, h) = queue_to_probe(OverflowStrategy::DropHead);
    settle().await;
    for x in 1..=5 {
        assert_eq!(q.offer(x).await.unwrap(), QueueOfferResult::Enqueued);
    }
    settle().await;
    assert_eq!(q.buffered(), 2);
    sink.request(5);
    assert_eq!(sink.expect_next_n(2).await, vec![4, 5]);
    q.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn queue_of_2_drop_new_keeps_the_first_2_and_hands_them_out_one_by_one() {
    let (q, mut sink, h) = queue_to_probe(OverflowStrategy::DropNew);
    settle().await;
    let mut results = Vec::new();
    for x in 1..=4 {
        results.push(q.offer(x).await.unwrap());
    }
    use QueueOfferResult::{Dropped, Enqueued};
    assert_eq!(results, vec![Enqueued, Enqueued, Dropped, Dropped]);
    sink.request(1);
    assert_eq!(sink.expect_next().await, 1);
    settle().await;
    assert_eq!(q.buffered(), 1);
    assert_eq!(q.offer(5).await.unwrap(), Enqueued);
    assert_eq!(q.offer(6).await.unwrap(), Dropped);
    q.complete();
    let (rest, end) = sink.collect_all().await;
    assert_eq!(rest, vec![2, 5]);
    assert_eq!(end, weir_engine::testkit::ProbeEvent::Complete);
    h.wait().await.unwrap();
}

type BalanceMat = (SourceProbe<i32>, SinkProbe<i32>, SinkProbe<i32>);

fn balance_of_two_probes(eager_cancel: bool) -> (BalanceMat, RunHandle) {
    let mut b = GraphBuilder::new();
    let (src, ks) = b.add_source(TestSource::probe::<i32>());
    let bal = b.add(Balance::<i32>::new(2).eager_cancel(eager_cancel));
    let (a, ka) = b.add_sink(TestSink::probe::<i32>());
    let (c, kc) = b.add_sink(TestSink::probe::<i32>());
    b.connect(src, bal.inlet).unwrap();
    b.connect(bal.outlets[0], a).unwrap();
    b.connect(bal.outlets[1], c).unwrap();
    let g = b
        .build_mat(move |m| {
            (
                m.take(ks).unwrap(),
                m.take(ka).unwrap(),
                m.take(kc).unwrap(),
            )
        })
        .unwrap();
    Materializer::new().materialize(&g).expect("materializes")
}

#[tokio::test]
async fn balance_hands_each_element_to_an_output_that_requested_it() {
    let ((src, mut fast, mut slow), h) = balance_of_two_probes(false);
    fast.request(3);
    src.offer_all((0..10).collect());
    assert_eq!(fast.expect_next_n(3).await, vec![0, 1, 2]);
    // The slow output asked for nothing: it got nothing, the rest waits in the balance.
    slow.expect_no_element(Duration::from_millis(20)).await;
    slow.request(4);
    assert_eq!(slow.expect_next_n(4).await, vec![3, 4, 5, 6]);
    fast.request(10);
    assert_eq!(fast.expect_next_n(3).await, vec![7, 8, 9]);
    src.complete();
    fast.expect_complete().await;
    slow.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn balance_goes_on_with_the_outputs_left_unless_eager_cancel() {
    let ((src, mut a, b), h) = balance_of_two_probes(false);
    b.cancel();
    a.request(10);
    src.offer_all((0..5).collect());
    assert_eq!(a.expect_next_n(5).await, (0..5).collect::<Vec<_>>());
    assert!(!src.is_cancelled());
    src.complete();
    a.expect_complete().await;
    h.wait().await.unwrap();

    let ((src, mut a, b), h) = balance_of_two_probes(true);
    a.request(10);
    src.offer_all(vec![0, 1]);
    assert_eq!(a.expect_next_n(2).await, vec![0, 1]);
    b.cancel();
    src.expect_cancellation().await;
    a.expect_complete().await;
    h.wait().await.unwrap();
}

type PreferredMat = (SourceProbe<i32>, SourceProbe<i32>, SinkProbe<i32>);

fn preferred_merge() -> (PreferredMat, RunHandle) {
    let mut b = GraphBuilder::new();
    let (p, kp) = b.add_source(TestSource::probe::<i32>());
    let (s, ks) = b.add_source(TestSource::probe::<i32>());
    let m = b.add(MergePreferred::<i32>::new(1));
    let (out, ko) = b.add_sink(TestSink::probe::<i32>());
    b.connect(p, m.preferred).unwrap();
    b.connect(s, m.inlets[0]).unwrap();
    b.connect(m.outlet, out).unwrap();
    let g = b
        .build_mat(move |mv| {
            (
                mv.take(kp).unwrap(),
                mv.take(ks).unwrap(),
                mv.take(ko).unwrap(),
            )
        })
        .unwrap();
    Materializer::new().materialize(&g).expect("materializes")
}

#[tokio::test]
async fn merge_preferred_takes_the_preferred_input_whenever_it_has_elements() {
    let ((pref, sec, mut sink), h) = preferred_merge();
    sec.offer_all(vec![100, 101, 102]);
    pref.offer_all(vec![1, 2]);
    received(&h, "merge_preferred", 5).await;
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![1, 2, 100]);
    // A preferred element arriving while secondary ones wait goes ahead of them.
    pref.offer(3);
    received(&h, "merge_preferred", 6).await;
    sink.request(2);
    assert_eq!(sink.expect_next_n(2).await, vec![3, 101]);
    pref.complete();
    sec.complete();
    let (rest, end) = sink.collect_all().await;
    assert_eq!(rest, vec![102]);
    assert_eq!(end, weir_engine::testkit::ProbeEvent::Complete);
    h.wait().await.unwrap();
}

fn counting_from(x: i32) -> impl Iterator<Item = i32> {
    (0..).map(move |k| x * 10 + k)
}

#[tokio::test]
async fn expand_extrapolates_only_what_is_requested() {
    let (src, mut sink, h) = start(time::expand::<i32, i32, _, _>(counting_from));
    src.offer(1);
    received(&h, "expand", 1).await;
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![10, 11, 12]);
    src.offer(2);
    received(&h, "expand", 2).await;
    sink.request(2);
    assert_eq!(sink.expect_next_n(2).await, vec![20, 21]);
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn expand_expands_every_element_once_and_completes_after_the_last() {
    let (src, mut sink, h) = start(time::expand::<i32, i32, _, _>(counting_from));
    src.offer_all(vec![1, 2, 3]);
    src.complete();
    received(&h, "expand", 3).await;
    settle().await;
    sink.request(10);
    assert_eq!(sink.expect_next_n(3).await, vec![10, 20, 30]);
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn expand_completes_with_nothing_requested_once_the_last_element_was_expanded() {
    let (src, mut sink, h) = start(time::expand::<i32, i32, _, _>(counting_from));
    sink.request(1);
    src.offer(4);
    assert_eq!(sink.expect_next().await, 40);
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn a_fused_map_after_a_buffer_passes_on_exactly_the_demand() {
    let flow = time::buffer::<i32>(100, OverflowStrategy::DropHead).map(|x| x * 2);
    let (src, mut sink, h) = start(flow);
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    sink.request(2);
    assert_eq!(sink.expect_next_n(2).await, vec![1800, 1802]);
    src.complete();
    let (rest, _) = sink.collect_all().await;
    assert_eq!(rest, (902..1000).map(|x| x * 2).collect::<Vec<_>>());
    h.wait().await.unwrap();
}

#[test]
fn rate_decoupling_edges_are_demand_driven_in_the_plan() {
    let g = TestSource::probe::<i32>()
        .via(time::buffer::<i32>(4, OverflowStrategy::DropHead))
        .via(Flow::identity().conflate(|a: i32, b| a + b))
        .to_mat(weir_graph::Sink::<i32, _>::ignore(), Keep::left);
    let p = Materializer::new().plan(&g).unwrap();
    let mermaid = p.to_mermaid();
    let edges: Vec<&str> = mermaid.lines().filter(|l| l.contains("-.->")).collect();
    assert_eq!(
        edges,
        vec![
            "    n0 -.->|forward| n1",
            "    n2 -.->|forward| n3",
            "    n1 -.->|forward, demand| n2",
            "    n3 -.->|forward, demand| n4",
        ]
    );
}

#[tokio::test]
async fn throttle_spends_no_token_on_elements_nobody_requested() {
    let clock = weir_engine::testkit::VirtualClock::new();
    let g = TestSource::probe::<i32>()
        .via(time::throttle::<i32>(1, Duration::from_secs(1), 1))
        .to_mat(TestSink::probe::<i32>(), Keep::both);
    let m = Materializer::new().with_clock(std::sync::Arc::new(clock.clone()));
    let ((src, mut sink), h) = m.materialize(&g).expect("materializes");
    src.offer_all((0..4).collect());
    // The throttle takes only what its bucket pays for (one token: one element); the rest waits
    // upstream.
    received(&h, "throttle", 1).await;
    // Ten seconds with no demand: the bucket stays at its burst of one token, nothing leaves.
    sink.expect_no_element_advancing(&clock, Duration::from_secs(10))
        .await;
    sink.request(4);
    assert_eq!(sink.expect_next().await, 0);
    sink.expect_no_element_advancing(&clock, Duration::from_millis(999))
        .await;
    clock.advance(Duration::from_millis(1));
    assert_eq!(sink.expect_next().await, 1);
    src.complete();
    for x in [2, 3] {
        clock.advance(Duration::from_secs(1));
        assert_eq!(sink.expect_next().await, x);
    }
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[tokio::test]
async fn a_fused_flat_map_after_a_buffer_takes_one_element_at_a_time_on_demand() {
    // As Akka's `mapConcat`: the next element leaves the buffer only once the expansion of the
    // one before was handed out, so the buffer keeps deciding on everything not yet requested.
    let flow = time::buffer::<i32>(100, OverflowStrategy::DropHead).flat_map(|x| [x, x]);
    let (src, mut sink, h) = start(flow);
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![900, 900, 901]);
    settle().await;
    // The buffer still holds 902..999; four more push 902 and 903 out of it.
    src.offer_all(vec![1000, 1001, 1002, 1003]);
    received(&h, "buffer", 1004).await;
    src.complete();
    let (rest, _) = sink.collect_all().await;
    let mut want = vec![901];
    want.extend((904..1004).flat_map(|x| [x, x]));
    assert_eq!(rest, want);
    h.wait().await.unwrap();
}

#[tokio::test]
async fn a_fused_flat_map_that_drops_elements_takes_until_the_demand_is_met() {
    let flow = time::buffer::<i32>(100, OverflowStrategy::DropHead)
        .flat_map(|x| (x % 2 == 0).then_some(x));
    let (src, mut sink, h) = start(flow);
    src.offer_all((0..1000).collect());
    received(&h, "buffer", 1000).await;
    sink.request(2);
    assert_eq!(sink.expect_next_n(2).await, vec![900, 902]);
    settle().await;
    // 900, 901 and 902 left the buffer; of 903..999 and four more, 903 is pushed out.
    src.offer_all(vec![1000, 1001, 1002, 1003]);
    received(&h, "buffer", 1004).await;
    src.complete();
    let (rest, _) = sink.collect_all().await;
    assert_eq!(rest, (904..1004).step_by(2).collect::<Vec<_>>());
    h.wait().await.unwrap();
}
