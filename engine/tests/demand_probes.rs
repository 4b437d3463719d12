//! The demand-exact probes and the demand-driven channels they sit on.

use futures::FutureExt;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::Materializer;
use weir_engine::testkit::{ProbeEvent, TestSink, TestSource, VirtualClock};
use weir_graph::{AsyncFn, Event, Flow, Keep, Module, async_node, router_for};

#[tokio::test]
async fn the_probe_sink_pulls_nothing_until_requested() {
    let g = TestSource::probe::<i64>().to_mat(TestSink::probe::<i64>(), Keep::both);
    let ((src, mut sink), h) = Materializer::new().materialize(&g).unwrap();
    src.offer_all((0..10).collect());
    sink.expect_no_element(Duration::from_millis(20)).await;
    assert_eq!(src.delivered(), 0);
    sink.request(3);
    assert_eq!(sink.expect_next_n(3).await, vec![0, 1, 2]);
    src.expect_delivered(3).await;
    sink.expect_no_element(Duration::from_millis(20)).await;
    assert_eq!(src.delivered(), 3);
    src.complete();
    let (rest, end) = sink.collect_all().await;
    assert_eq!(rest, (3..10).collect::<Vec<_>>());
    assert_eq!(end, ProbeEvent::Complete);
    assert_eq!(src.delivered(), 10);
    h.wait().await.unwrap();
}

#[tokio::test]
async fn completion_and_failure_reach_the_probe_without_demand() {
    let g = TestSource::probe::<i64>().to_mat(TestSink::probe::<i64>(), Keep::both);
    let ((src, mut sink), h) = Materializer::new().materialize(&g).unwrap();
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();

    let ((src, mut sink), h) = Materializer::new().materialize(&g).unwrap();
    src.fail(weir_graph::StageError::user("nope"));
    let seen = sink.expect_error().await;
    assert!(seen.contains("nope"), "{seen}");
    let e = h
        .wait()
        .await
        .expect_err("the failure the probe saw fails the run");
    assert_eq!((e.message(), e.stage()), ("nope", Some("test-source#0")));
    assert_eq!(e.to_string(), seen);
}

#[tokio::test]
async fn expect_no_element_advancing_moves_virtual_time_without_sleeping() {
    let clock = VirtualClock::new();
    let delayed = Flow::<i64, i64, ()>::from_async("after-1s", |_| {
        Ok((
            AsyncFn(|mut io: weir_graph::AsyncIo| {
                async move {
                    let mut input = io.input::<i64>(0)?;
                    let mut out = io.output::<i64>(0)?;
                    while let Event::Batch(b) = input.recv().await {
                        let at = io.clock.now() + Duration::from_secs(1);
                        io.clock.sleep_until(at).await;
                        if out.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    });
    let g = TestSource::probe::<i64>()
        .via(delayed)
        .to_mat(TestSink::probe::<i64>(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, mut sink), h) = m.materialize(&g).unwrap();
    sink.request(1);
    src.offer(5);
    sink.expect_no_element_advancing(&clock, Duration::from_millis(999))
        .await;
    clock.advance(Duration::from_millis(1));
    assert_eq!(sink.expect_next().await, 5);
    src.complete();
    sink.expect_complete().await;
    h.wait().await.unwrap();
}

#[test]
fn channels_after_a_demand_stage_and_into_a_probe_are_demand_driven() {
    let on_demand = async_node("decoupler", 1, vec![router_for::<i64>()], |_| {
        Ok((
            AsyncFn(|_io: weir_graph::AsyncIo| async { Ok(()) }.boxed()),
            (),
        ))
    })
    .with_demand_outputs();
    let decoupler: Flow<i64, i64, ()> = Flow::from_module(Arc::new(Module::single(on_demand)));
    let g = TestSource::probe::<i64>()
        .via(decoupler)
        .to_mat(TestSink::probe::<i64>(), Keep::left);
    let p = Materializer::new().with_batch_size(16).plan(&g).unwrap();
    let edges: Vec<(bool, usize)> = p
        .edges
        .iter()
        .map(|e| (e.on_demand, e.buffer_rows))
        .collect();
    // Source -> decoupler: an ordinary channel of 8 batches; decoupler -> probe: demand-driven,
    // each request at most one batch of the probe.
    assert_eq!(edges, vec![(false, 128), (true, 16)]);
    assert!(p.to_mermaid().contains("-.->|forward, demand|"));
}
