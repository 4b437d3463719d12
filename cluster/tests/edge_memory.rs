//! Remote edges between two graphs of one process over the in-memory transport: exact output,
//! completion, failure and cancellation across the edge, a slow consumer with bounded rows in
//! flight, an element over the frame limit, an unknown peer, and watermarks in band.

mod common;

use common::*;
use std::sync::Arc;
use weir_cluster::edge::{EdgeConfig, remote_sink};
use weir_cluster::transport::{MemoryNetwork, Transport};
use weir_engine::prelude::*;
use weir_graph::{Keep, Source};
use weir_operators::prelude::*;

fn pair() -> (Arc<dyn Transport>, Arc<dyn Transport>) {
    let net = MemoryNetwork::new(4);
    (net.node("a"), net.node("b"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_arrive_exactly_in_order_and_both_sides_complete() {
    let (a, b) = pair();
    exact_output(a, b, 1, EdgeConfig::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tight_window_splits_batches_by_rows_and_bytes() {
    let (a, b) = pair();
    exact_output(
        a.clone(),
        b.clone(),
        1,
        EdgeConfig {
            window_rows: 7,
            window_bytes: 1 << 20,
        },
    )
    .await;
    exact_output(
        a,
        b,
        2,
        EdgeConfig {
            window_rows: 1 << 20,
            window_bytes: 300,
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_failure_crosses_the_edge() {
    let (a, b) = pair();
    upstream_failure(a, b, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downstream_cancel_cancels_the_remote_upstream() {
    let (a, b) = pair();
    downstream_cancel(a, b, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_stops_the_producer_with_the_window_in_flight() {
    let (a, b) = pair();
    slow_consumer(a, b, 5).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_element_over_the_frame_limit_fails_both_sides_naming_it() {
    let (a, b) = pair();
    oversized_element(a, b, 6).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_peer_fails_the_sender() {
    let (a, _b) = pair();
    let send = Source::from_iter(vec![1u8])
        .to_mat(remote_sink(a, "nowhere", 1), Keep::right)
        .run()
        .unwrap();
    let err = within(send.done).await.unwrap_err().to_string();
    assert!(err.contains("unknown peer node 'nowhere'"), "{err}");
}
