//! `weir-bench topics`: a topic's throughput from one publisher to `--subscribers`
//! subscribers, in one process (`local`), across two topic nodes over the in-memory transport
//! (`memory`) and over QUIC with mutual TLS on loopback (`quic_tls`), in the same run; then the
//! ratio of each remote variant to `local`. Every subscriber's sum is checked.
//!
//! `cargo run --release -p weir-bench -- topics --n 1e6 --subscribers 2`

use std::sync::Arc;
use std::time::Instant;
use weir::prelude::*;
use weir_cluster::topic::{TopicConfig, TopicNode};
use weir_cluster::transport::{MemoryNetwork, Transport};
use weir_operators::hub::{Topic, Topics};

/// Flags of `weir-bench topics`.
#[derive(clap::Args)]
pub struct Args {
    /// Elements published; accepts `1e6`.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::parse_count)]
    n: u64,
    /// Subscribers (on the second node for the remote variants).
    #[arg(long, default_value_t = 2)]
    subscribers: usize,
    /// Rows each topic ring buffers.
    #[arg(long, default_value_t = 1024)]
    buffer: usize,
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// Publishes `0..n` on `publish` to subscribers of `subscribe` that are attached first: the
/// seconds it took, every subscriber's sum checked.
async fn run(
    publish: Topic<u64>,
    subscribe: Topic<u64>,
    n: u64,
    subscribers: usize,
    remote: usize,
) -> Result<f64, String> {
    let subs: Vec<_> = (0..subscribers)
        .map(|_| {
            subscribe
                .source()
                .take(n as usize)
                .run_with(Sink::fold(0u64, |a, x: u64| a.wrapping_add(x)))
                .map_err(s)
        })
        .collect::<Result<_, _>>()?;
    let wait = async {
        subscribe.wait_for_readers(subscribers, 0).await;
        publish.wait_for_readers(0, remote).await;
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), wait)
        .await
        .map_err(|_| "subscribers did not attach".to_owned())?;
    let t = Instant::now();
    Source::range(0, n)
        .run_with(publish.sink())
        .map_err(s)?
        .await
        .map_err(s)?;
    let want = (0..n).fold(0u64, u64::wrapping_add);
    for sub in subs {
        let got = sub.await.map_err(s)?;
        if got != want {
            return Err(format!("a subscriber summed {got}, expected {want}"));
        }
    }
    Ok(t.elapsed().as_secs_f64())
}

fn config(me: &str, buffer: usize) -> TopicConfig {
    let mut cfg = TopicConfig::new(me, vec!["a".into(), "b".into()]);
    cfg.buffer = buffer;
    cfg
}

fn pair(
    ta: Arc<dyn Transport>,
    tb: Arc<dyn Transport>,
    buffer: usize,
) -> Result<(TopicNode, TopicNode), String> {
    Ok((
        TopicNode::start(ta, config("a", buffer)).map_err(s)?,
        TopicNode::start(tb, config("b", buffer)).map_err(s)?,
    ))
}

/// Runs `weir-bench topics`; returns the exit code.
pub fn main(args: Args) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("topics: runtime: {e}");
            return 1;
        }
    };
    let go = || -> Result<(), String> {
        let mut local_rate = 0.0;
        for variant in ["local", "memory", "quic_tls"] {
            let secs = rt.block_on(async {
                match variant {
                    "local" => {
                        let t = Topics::with_buffer(args.buffer)
                            .map_err(s)?
                            .topic("t")
                            .map_err(s)?;
                        run(t.clone(), t, args.n, args.subscribers, 0).await
                    }
                    remote => {
                        let (a, b) = if remote == "memory" {
                            let net = MemoryNetwork::new(64);
                            pair(net.node("a"), net.node("b"), args.buffer)?
                        } else {
                            let (a, b) = crate::remote_exchange::quic_pair()?;
                            pair(a, b, args.buffer)?
                        };
                        let (pa, pb) = (a.topic("t").map_err(s)?, b.topic("t").map_err(s)?);
                        run(pa, pb, args.n, args.subscribers, 1).await
                    }
                }
            })?;
            let rate = args.n as f64 / secs;
            if variant == "local" {
                local_rate = rate;
            }
            println!(
                "{{\"workload\":\"topics\",\"variant\":\"{variant}\",\"n\":{},\"subscribers\":{},\"buffer\":{},\"seconds\":{secs:.6},\"rows_per_s\":{rate:.4e},\"vs_local\":{:.3}}}",
                args.n,
                args.subscribers,
                args.buffer,
                rate / local_rate
            );
        }
        Ok(())
    };
    match go() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("topics: {e}");
            1
        }
    }
}
