//! Scenarios of two graphs joined by a remote edge, run over any pair of transports, and the
//! waits the cluster tests share.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_cluster::edge::{EdgeConfig, remote_sink, remote_source, remote_source_with};
use weir_cluster::transport::Transport;
use weir_engine::prelude::*;
use weir_engine::testkit::{TestSink, TestSource};
use weir_graph::{Keep, Sink, Source, StageError};
use weir_operators::prelude::*;

/// Awaits `f` for at most 30 s.
pub async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .expect("timed out")
}

/// Waits (at most 30 s) until `f` holds, polling every 5 ms; panics naming `what` otherwise.
pub async fn eventually(what: &str, f: impl Fn() -> bool) {
    let wait = async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}");
    }
}

/// The rows every scenario sends: (index, text).
pub fn rows(n: u64) -> Vec<(u64, String)> {
    (0..n).map(|i| (i, format!("row-{i}"))).collect()
}

/// 10 000 rows over the edge arrive exactly, in order; both sides complete.
pub async fn exact_output(
    a: Arc<dyn Transport>,
    b: Arc<dyn Transport>,
    edge: u64,
    cfg: EdgeConfig,
) {
    let recv = remote_source_with::<(u64, String)>(b, edge, cfg)
        .to_mat(Sink::collect(), Keep::both)
        .run()
        .unwrap();
    let send = Source::from_iter(rows(10_000))
        .to_mat(remote_sink(a, "b", edge), Keep::right)
        .run()
        .unwrap();
    let (handle, got) = recv;
    let got = within(got).await.unwrap();
    within(send.done).await.unwrap();
    assert_eq!(got, rows(10_000));
    assert_eq!(handle.stats.rows(), 10_000);
    assert_eq!(send.stats.rows(), 10_000);
    assert_eq!(send.stats.frames(), handle.stats.frames());
    assert_eq!(send.stats.bytes(), handle.stats.bytes());
    // Frames never exceed the receiver's window.
    assert!(handle.stats.frames() >= 10_000u64.div_ceil(cfg.window_rows));
}

/// An upstream failure after 3 rows: the 3 rows arrive, then the receiver fails with the
/// sender's error, and the sender's completion fails with it.
pub async fn upstream_failure(a: Arc<dyn Transport>, b: Arc<dyn Transport>, edge: u64) {
    let mut probe = remote_source::<u64>(b, edge)
        .to_mat(TestSink::probe(), Keep::right)
        .run()
        .unwrap();
    let (src, send) = TestSource::probe::<u64>()
        .to_mat(remote_sink(a, "b", edge), Keep::both)
        .run()
        .unwrap();
    probe.request(100);
    src.offer_all(vec![10, 11, 12]);
    assert_eq!(within(probe.expect_next_n(3)).await, vec![10, 11, 12]);
    src.fail(StageError::user("boom at 13"));
    let err = within(probe.expect_error()).await;
    assert!(
        err.contains("upstream on node") && err.contains("boom at 13"),
        "{err}"
    );
    assert!(err.contains("remote_source"), "names the stage: {err}");
    let done = within(send.done).await.unwrap_err();
    assert!(done.to_string().contains("boom at 13"), "{done}");
}

/// The receiver's downstream takes 5 rows and cancels: the sender's upstream is cancelled
/// and the sender completes without error.
pub async fn downstream_cancel(a: Arc<dyn Transport>, b: Arc<dyn Transport>, edge: u64) {
    let got = remote_source::<u64>(b, edge)
        .take(5)
        .to_mat(Sink::collect(), Keep::right)
        .run()
        .unwrap();
    let (src, send) = TestSource::probe::<u64>()
        .to_mat(remote_sink(a, "b", edge), Keep::both)
        .run()
        .unwrap();
    src.offer_all((0..20).collect());
    assert_eq!(within(got).await.unwrap(), vec![0, 1, 2, 3, 4]);
    // The producer keeps producing until the sender hears of the cancellation.
    let more = async {
        let mut i = 20;
        while !src.is_cancelled() {
            src.offer(i);
            i += 1;
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    within(more).await;
    within(src.expect_cancellation()).await;
    within(send.done).await.unwrap();
}

/// A consumer that takes nothing: the sender stops once the window is in flight; rows in
/// flight never exceed the window; then everything arrives exactly.
pub async fn slow_consumer(a: Arc<dyn Transport>, b: Arc<dyn Transport>, edge: u64) {
    const N: u64 = 20_000;
    const WINDOW: u64 = 64;
    let cfg = EdgeConfig {
        window_rows: WINDOW,
        window_bytes: 1 << 20,
    };
    // Small engine buffers on both sides, so what the producer can run ahead is the edge's
    // window plus those buffers.
    const BUFFER: usize = 100;
    let (recv, mut probe) = remote_source_with::<u64>(b, edge, cfg)
        .to_mat(TestSink::probe().buffer_rows(BUFFER), Keep::both)
        .run()
        .unwrap();
    let (src, send) = TestSource::probe::<u64>()
        .to_mat(remote_sink(a, "b", edge).buffer_rows(BUFFER), Keep::both)
        .run()
        .unwrap();
    src.offer_all((0..N).collect());
    // Wait until the producer stops (its delivered count stays put for 300 ms with rows in
    // flight), checking the in-flight bound all along.
    let start = Instant::now();
    let (mut last, mut since) = (u64::MAX, Instant::now());
    let mut max_in_flight = 0;
    loop {
        let sent = send.stats.rows();
        let received = recv.stats.rows();
        max_in_flight = max_in_flight.max(sent - received);
        assert!(
            sent - received <= WINDOW,
            "{sent} sent, {received} received"
        );
        let d = src.delivered();
        if d != last || sent == received {
            (last, since) = (d, Instant::now());
        } else if since.elapsed() > Duration::from_millis(300) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "producer never stopped"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let stalled = src.delivered();
    // The edge's window, the two channels, and a batch each side may hold while it waits.
    let bound = WINDOW + 2 * BUFFER as u64 + 2 * 1024;
    assert!(
        stalled <= bound,
        "producer ran ahead: {stalled} of {N} taken (bound {bound})"
    );
    let in_flight = send.stats.rows() - recv.stats.rows();
    assert!(
        in_flight > 0 && in_flight <= WINDOW,
        "{in_flight} rows in flight"
    );
    probe.request(N);
    src.complete();
    let got = within(probe.expect_next_n(N as usize)).await;
    assert_eq!(got, (0..N).collect::<Vec<_>>());
    within(probe.expect_complete()).await;
    within(send.done).await.unwrap();
    assert!(max_in_flight <= WINDOW);
}

/// An element larger than the receiver's window bytes fails the sender, naming the element,
/// and the receiver fails with that error; the rows before it arrive.
pub async fn oversized_element(a: Arc<dyn Transport>, b: Arc<dyn Transport>, edge: u64) {
    let cfg = EdgeConfig {
        window_rows: 100,
        window_bytes: 256,
    };
    let mut probe = remote_source_with::<String>(b, edge, cfg)
        .to_mat(TestSink::probe(), Keep::right)
        .run()
        .unwrap();
    let (src, send) = TestSource::probe::<String>()
        .to_mat(remote_sink(a, "b", edge), Keep::both)
        .run()
        .unwrap();
    probe.request(10);
    src.offer_all(vec!["a".into(), "b".into()]);
    assert_eq!(
        within(probe.expect_next_n(2)).await,
        vec!["a".to_string(), "b".into()]
    );
    src.offer_all(vec!["c".into(), "x".repeat(1000)]);
    let err = within(send.done).await.unwrap_err().to_string();
    assert!(
        err.contains("element 3 exceeds max_frame_bytes 256") && err.contains("remote_sink"),
        "{err}"
    );
    assert_eq!(within(probe.expect_next()).await, "c");
    let got = within(probe.expect_error()).await;
    assert!(got.contains("element 3 exceeds max_frame_bytes"), "{got}");
}
