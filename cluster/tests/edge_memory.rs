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

/// A sink that records every batch and control message it reads, then its end.
struct Recorder {
    tx: tokio::sync::mpsc::UnboundedSender<String>,
}

impl weir_graph::AsyncLogic for Recorder {
    fn run(
        self: Box<Self>,
        mut io: weir_graph::AsyncIo,
    ) -> futures::future::BoxFuture<'static, Result<(), weir_graph::StageError>> {
        use futures::FutureExt;
        use weir_graph::{Event, Signal};
        async move {
            let mut input = io.input::<u64>(0)?;
            loop {
                let line = match input.recv_signal().await {
                    Signal::Event(Event::Batch(b)) => format!("batch {b:?}"),
                    Signal::Event(Event::End) => {
                        let _ = self.tx.send("end".into());
                        return Ok(());
                    }
                    Signal::Event(Event::Error(e)) => return Err(e),
                    Signal::Control(c) => format!("control {c:?}"),
                };
                let _ = self.tx.send(line);
            }
        }
        .boxed()
    }
    fn handles_control(&self) -> bool {
        true
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_and_markers_cross_the_edge_in_order_with_the_data() {
    use futures::FutureExt;
    use weir_graph::{AsyncFn, AsyncIo, Control, Sink};
    let (a, b) = pair();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let recorder =
        Sink::<u64, ()>::from_async("recorder", move |_| Ok((Recorder { tx: tx.clone() }, ())));
    let _recv = weir_cluster::edge::remote_source::<u64>(b, 12)
        .to_mat(recorder, Keep::left)
        .run()
        .unwrap();
    let src = Source::<u64, ()>::from_async("scripted", |_| {
        Ok((
            AsyncFn(|mut io: AsyncIo| {
                async move {
                    let mut out = io.output::<u64>(0)?;
                    let _ = out.send(vec![1, 2]).await;
                    out.control(Control::Watermark { ms: 5 });
                    let _ = out.send(vec![3]).await;
                    out.control(Control::marker(9));
                    out.control(Control::Idle);
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    });
    let send = src
        .to_mat(remote_sink(a, "b", 12), Keep::right)
        .run()
        .unwrap();
    within(send.done).await.unwrap();
    let mut got = Vec::new();
    while got.last().map(String::as_str) != Some("end") {
        got.push(within(rx.recv()).await.unwrap());
    }
    assert_eq!(
        got,
        [
            "batch [1, 2]",
            "control Watermark { ms: 5 }",
            "batch [3]",
            "control Marker { id: 9 }",
            "control Idle",
            "end"
        ]
    );
}
