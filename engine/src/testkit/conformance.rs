//! The stage conformance suite every flow operator passes: no unbounded buffering without demand,
//! exactly one terminal signal, completion / failure / cancellation propagate, stop hooks run once.

use super::probes::{ProbeEvent, TestSink, TestSource};
use crate::run::Materializer;
use std::fmt::Debug;
use weir_graph::{Flow, Keep, StageError};

/// What the suite measured for one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceReport {
    /// Elements the source could deliver while the sink requested nothing.
    pub delivered_without_demand: u64,
    /// The bound that was enforced.
    pub bound: u64,
}

async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

/// Runs the conformance checks on a flow made by `make` over `i64` inputs `0..n`.
/// `internal_bound` is the number of elements the stage may hold by design (0 for map-like stages).
/// Panics (it is test code) with a message naming the violated rule.
pub async fn check_flow<O, F>(name: &str, make: F, internal_bound: u64) -> ConformanceReport
where
    O: Send + Debug + 'static,
    F: Fn() -> Flow<i64, O, ()>,
{
    const BUF: usize = 16;
    const BATCH: usize = 4;
    let m = Materializer::new()
        .with_buffer_rows(BUF)
        .with_batch_size(BATCH);

    // 1. Completion propagates, exactly one terminal signal, stop hooks run once.
    let g = TestSource::probe::<i64>()
        .via(make())
        .to_mat(TestSink::probe::<O>(), Keep::both);
    let ((src, mut sink), handle) = m.materialize(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    src.send_all((0..20).collect());
    src.complete();
    let (_, end) = sink.collect_all().await;
    assert!(
        matches!(end, ProbeEvent::Complete | ProbeEvent::Error(_)),
        "{name}: no terminal signal after completion"
    );
    let _ = handle.wait().await;
    settle().await;
    assert!(
        sink.try_next_event().is_none(),
        "{name}: signal after the terminal one"
    );
    for s in handle.metrics() {
        assert_eq!(
            s.stopped, 1,
            "{name}: stop hook of {} ran {} times",
            s.path, s.stopped
        );
    }

    // 2. Failure propagates (or is recovered into completion by design).
    let ((src, mut sink), handle) = m.materialize(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    src.send_all((0..5).collect());
    src.fail(StageError::user("boom"));
    let (_, end) = sink.collect_all().await;
    match end {
        ProbeEvent::Error(msg) => {
            assert!(msg.contains("boom"), "{name}: error lost its cause: {msg}")
        }
        ProbeEvent::Complete => {}
        ProbeEvent::Next(_) => unreachable!(),
    }
    let _ = handle.wait().await;

    // 3. Cancellation propagates upstream.
    let ((src, sink), handle) = m.materialize(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    src.send(1);
    settle().await;
    sink.cancel();
    src.expect_cancellation().await;
    let _ = handle.wait().await;

    // 4. Without demand, buffering stays bounded.
    let ((src, sink), handle) = m.materialize(&g).unwrap_or_else(|e| panic!("{name}: {e}"));
    for chunk in 0..1000 {
        src.send_all((chunk * 10..chunk * 10 + 10).collect());
    }
    settle().await;
    let delivered = src.delivered();
    let bound = internal_bound + 3 * BUF as u64 + 4 * BATCH as u64 + 10;
    assert!(
        delivered <= bound,
        "{name}: {delivered} elements accepted without demand (bound {bound})"
    );
    sink.cancel();
    drop(handle);
    ConformanceReport {
        delivered_without_demand: delivered,
        bound,
    }
}
