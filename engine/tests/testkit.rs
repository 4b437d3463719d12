//! The testkit itself: probes, virtual time, and the conformance suite on engine-local stages.

mod common;
use common::*;
use futures::FutureExt;
use std::time::Duration;
use weir_engine::Materializer;
use weir_engine::testkit::{ProbeEvent, TestSink, TestSource, VirtualClock, check_flow};
use weir_graph::{AsyncFn, Event, Flow, Keep, StageError};

fn map_i64() -> Flow<i64, i64, ()> {
    struct M;
    impl weir_graph::FlowLogic<i64, i64> for M {
        fn on_batch(
            &mut self,
            input: &mut Vec<i64>,
            out: &mut Vec<i64>,
            _scx: &mut weir_graph::StageCx<'_>,
        ) -> Result<(), StageError> {
            out.extend(input.drain(..).map(|x| x + 1));
            Ok(())
        }
    }
    Flow::from_logic("inc", |_| Ok((M, ())))
}

#[tokio::test]
async fn probes_drive_a_stage_element_by_element() {
    let g = TestSource::probe::<i64>()
        .via(map_i64())
        .to_mat(TestSink::probe::<i64>(), Keep::both);
    let ((src, mut sink), handle) = Materializer::new().materialize(&g).unwrap();
    sink.request(2);
    src.send(1);
    src.send(2);
    assert_eq!(sink.expect_next().await, 2);
    assert_eq!(sink.expect_next().await, 3);
    src.send(3);
    src.complete();
    sink.request(1);
    assert_eq!(sink.expect_next().await, 4);
    sink.expect_complete().await;
    handle.wait().await.unwrap();
}

#[tokio::test]
async fn probe_sees_errors_and_cancellation() {
    let g = TestSource::probe::<i64>()
        .via(map_i64())
        .to_mat(TestSink::probe::<i64>(), Keep::both);
    let ((src, mut sink), _h) = Materializer::new().materialize(&g).unwrap();
    src.fail(StageError::user("nope"));
    sink.request(1);
    assert!(sink.expect_error().await.contains("nope"));
    let ((src, sink), _h) = Materializer::new().materialize(&g).unwrap();
    sink.cancel();
    src.expect_cancellation().await;
}

#[tokio::test]
async fn virtual_clock_fires_timers_only_when_advanced() {
    let clock = VirtualClock::new();
    let ticker = weir_graph::Source::<u64, ()>::from_async("ticker", |_| {
        Ok((
            AsyncFn(|mut io: weir_graph::AsyncIo| {
                async move {
                    let mut out = io.output::<u64>(0)?;
                    for i in 0..3u64 {
                        let deadline = io.clock.now() + Duration::from_secs(10);
                        io.clock.sleep_until(deadline).await;
                        if out.send(vec![i]).await.is_err() {
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
    let m = Materializer::new().with_clock(std::sync::Arc::new(clock.clone()));
    let ((), handle) = m
        .materialize(
            &ticker
                .to_mat(TestSink::probe::<u64>(), Keep::right)
                .map_materialized_value(|_p| ()),
        )
        .unwrap();
    drop(handle);
    let g = weir_graph::Source::<u64, ()>::from_async("ticker", |_| {
        Ok((
            AsyncFn(|mut io: weir_graph::AsyncIo| {
                async move {
                    let mut out = io.output::<u64>(0)?;
                    let deadline = io.clock.now() + Duration::from_secs(10);
                    io.clock.sleep_until(deadline).await;
                    let _ = out.send(vec![7]).await;
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    })
    .to_mat(TestSink::probe::<u64>(), Keep::right);
    let (mut sink, _h) = m.materialize(&g).unwrap();
    sink.request(10);
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(
        sink.try_next_event().is_none(),
        "nothing before time advances"
    );
    clock.advance(Duration::from_secs(9));
    for _ in 0..50 {
        tokio::task::yield_now().await;
    }
    assert!(sink.try_next_event().is_none());
    clock.advance(Duration::from_secs(1));
    assert_eq!(sink.next_event().await, ProbeEvent::Next(7));
    sink.expect_complete().await;
    let _ = Event::<u64>::End;
}

#[tokio::test]
async fn conformance_suite_passes_for_a_fused_stage() {
    let r = check_flow("inc", map_i64, 0).await;
    assert!(r.delivered_without_demand <= r.bound);
    let _ = range(0, 1);
}
