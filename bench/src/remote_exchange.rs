//! `weir-bench remote-exchange`: a remote edge between two graphs of this process, over QUIC
//! with mutual TLS (loopback) and over plain TCP with the same frames, in the same run.
//! Variants (one JSON line each): `quic_tls` and `tcp_plain` send `--n` rows of a `u64` and
//! `--payload` bytes (rows/s, MB/s of frame payload); `quic_vs_tcp` is their throughput ratio;
//! `latency_quic_tls` and `latency_tcp_plain` send `--rate` rows/s for `--seconds` seconds in
//! 1 ms ticks and report the one-hop latency percentiles (from a row's creation to its arrival
//! on the receiving graph).
//!
//! `cargo run --release -p weir-bench -- remote-exchange --n 2e6 --payload 64 --rate 1e5`

use futures::FutureExt;
use std::sync::Arc;
use std::time::Instant;
use weir::graph::{AsyncFn, AsyncIo};
use weir::prelude::*;
use weir_cluster::edge::{remote_sink, remote_source};
use weir_cluster::tls::{NodeIdentity, make_ca, make_node_cert};
use weir_cluster::transport::{QuicConfig, QuicTransport, TcpTransport, Transport};

/// Flags of `weir-bench remote-exchange`.
#[derive(clap::Args)]
pub struct Args {
    /// Rows of the throughput variants; accepts `2e6`.
    #[arg(long, default_value_t = 2_000_000, value_parser = crate::parse_count)]
    n: u64,
    /// Payload bytes per row.
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Rows per second of the latency variants; accepts `1e5`.
    #[arg(long, default_value_t = 100_000, value_parser = crate::parse_count)]
    rate: u64,
    /// Seconds the latency variants run.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
}

/// Two transports, `a` and `b`, each knowing the other.
pub(crate) type Pair = (Arc<dyn Transport>, Arc<dyn Transport>);

/// Nodes `a` and `b` over QUIC with mutual TLS on loopback (certificates from a new CA).
pub(crate) fn quic_pair() -> Result<Pair, String> {
    let ca = make_ca("bench cluster").map_err(|e| e.to_string())?;
    let bind = |name: &str| -> Result<Arc<QuicTransport>, String> {
        let cert = make_node_cert(&ca, name, &[]).map_err(|e| e.to_string())?;
        let id = NodeIdentity::from_parts(&ca, &cert);
        let addr = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
        QuicTransport::bind(QuicConfig::new(id, addr)).map_err(|e| e.to_string())
    };
    let (a, b) = (bind("a")?, bind("b")?);
    a.add_peer("b", b.local_addr().map_err(|e| e.to_string())?);
    b.add_peer("a", a.local_addr().map_err(|e| e.to_string())?);
    Ok((a, b))
}

async fn tcp_pair() -> Result<Pair, String> {
    let any = "127.0.0.1:0".parse().map_err(|e| format!("{e}"))?;
    let a = TcpTransport::bind(any).await.map_err(|e| e.to_string())?;
    let b = TcpTransport::bind(any).await.map_err(|e| e.to_string())?;
    a.add_peer("b", b.local_addr());
    Ok((a, b))
}

/// Sends `n` rows over edge 1: seconds, payload bytes sent, checksum received.
async fn throughput(pair: Pair, n: u64, payload: usize) -> Result<(f64, u64, u64), String> {
    let (a, b) = pair;
    let recv = remote_source::<(u64, Vec<u8>)>(b, 1).to_mat(
        Sink::fold(0u64, |acc, (i, p): (u64, Vec<u8>)| {
            acc.wrapping_add(i) ^ p.len() as u64
        }),
        Keep::right,
    );
    let body = vec![7u8; payload];
    let send = Source::range(0, n)
        .map(move |i: u64| (i, body.clone()))
        .to_mat(remote_sink(a, "b", 1), Keep::right);
    let t = Instant::now();
    let (sum, rh) = Materializer::new()
        .materialize(&recv)
        .map_err(|e| e.to_string())?;
    let (sent, sh) = Materializer::new()
        .materialize(&send)
        .map_err(|e| e.to_string())?;
    sent.done.await.map_err(|e| e.to_string())?;
    let sum = sum.await.map_err(|e| e.to_string())?;
    let secs = t.elapsed().as_secs_f64();
    sh.wait().await.map_err(|e| e.to_string())?;
    rh.wait().await.map_err(|e| e.to_string())?;
    Ok((secs, sent.stats.bytes(), sum))
}

/// Sends `rate` rows/s for `seconds` over edge 2: sorted latencies in ns.
async fn latency(pair: Pair, rate: u64, seconds: u64) -> Result<Vec<u64>, String> {
    let (a, b) = pair;
    let base = Instant::now();
    let per_tick = (rate / 1000).max(1);
    let ticks = seconds * 1000;
    let src = Source::<u64, ()>::from_async("timed", move |_| {
        Ok((
            AsyncFn(move |mut io: AsyncIo| {
                async move {
                    let mut out = io.output::<u64>(0)?;
                    let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
                    for _ in 0..ticks {
                        tick.tick().await;
                        let now = base.elapsed().as_nanos() as u64;
                        if out.send(vec![now; per_tick as usize]).await.is_err() {
                            break;
                        }
                    }
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    });
    let recv = remote_source::<u64>(b, 2)
        .map(move |t: u64| (base.elapsed().as_nanos() as u64).saturating_sub(t))
        .to_mat(Sink::collect(), Keep::right);
    let send = src.to_mat(remote_sink(a, "b", 2), Keep::right);
    let (got, rh) = Materializer::new()
        .materialize(&recv)
        .map_err(|e| e.to_string())?;
    let (sent, sh) = Materializer::new()
        .materialize(&send)
        .map_err(|e| e.to_string())?;
    sent.done.await.map_err(|e| e.to_string())?;
    let mut v = got.await.map_err(|e| e.to_string())?;
    sh.wait().await.map_err(|e| e.to_string())?;
    rh.wait().await.map_err(|e| e.to_string())?;
    v.sort_unstable();
    Ok(v)
}

/// Runs `weir-bench remote-exchange`; returns the exit code.
pub fn main(args: Args) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remote-exchange: runtime: {e}");
            return 1;
        }
    };
    let run = || -> Result<(), String> {
        let expect = (0..args.n).fold(0u64, |acc, i| acc.wrapping_add(i) ^ args.payload as u64);
        let mut rates = Vec::new();
        for variant in ["quic_tls", "tcp_plain"] {
            let (secs, bytes, sum) = rt.block_on(async {
                let pair = if variant == "quic_tls" {
                    quic_pair()?
                } else {
                    tcp_pair().await?
                };
                throughput(pair, args.n, args.payload).await
            })?;
            if sum != expect {
                return Err(format!("{variant}: checksum {sum}, expected {expect}"));
            }
            let rows = args.n as f64 / secs;
            rates.push(rows);
            println!(
                "{{\"workload\":\"remote_exchange\",\"variant\":\"{variant}\",\"n\":{},\"payload_bytes\":{},\"seconds\":{secs:.6},\"rows_per_s\":{rows:.4e},\"mb_per_s\":{:.1},\"checksum\":{sum}}}",
                args.n,
                args.payload,
                bytes as f64 / secs / 1e6
            );
        }
        println!(
            "{{\"workload\":\"remote_exchange\",\"variant\":\"quic_vs_tcp\",\"ratio\":{:.3}}}",
            rates[0] / rates[1]
        );
        for variant in ["latency_quic_tls", "latency_tcp_plain"] {
            let v = rt.block_on(async {
                let pair = if variant == "latency_quic_tls" {
                    quic_pair()?
                } else {
                    tcp_pair().await?
                };
                latency(pair, args.rate, args.seconds).await
            })?;
            let q = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p) as usize)
                    .copied()
                    .unwrap_or(0) as f64
                    / 1e3
            };
            println!(
                "{{\"workload\":\"remote_exchange\",\"variant\":\"{variant}\",\"n\":{},\"rate_per_s\":{},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}}}",
                v.len(),
                args.rate,
                q(0.5),
                q(0.99),
                q(1.0)
            );
        }
        Ok(())
    };
    match run() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("remote-exchange: {e}");
            1
        }
    }
}
