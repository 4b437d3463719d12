//! `weir-bench remote-actors`: tells through one ref to an actor, in one process (`local`: the
//! actor's own ref), across two actor nodes over the in-memory transport (`memory`) and over
//! QUIC with mutual TLS on loopback (`quic_tls`), in the same run; then the latency of
//! sequential asks (p50, p99) and the ratio of each remote variant's tell rate to `local`.
//! The actor counts what it gets: every variant is checked to deliver all `n` tells.
//!
//! `cargo run --release -p weir-bench -- remote-actors --n 1e6 --asks 2000 [--reliable]`

use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weir::prelude::*;
use weir_cluster::remote::{ActorNode, RemoteConfig};
use weir_cluster::transport::{MemoryNetwork, Transport};
use weir_operators::actor::{Actor, ActorRef, ActorRegistry, Ctx, Props};

/// Flags of `weir-bench remote-actors`.
#[derive(clap::Args)]
pub struct Args {
    /// Tells sent through one ref; accepts `1e6`.
    #[arg(long, default_value_t = 1_000_000, value_parser = crate::parse_count)]
    n: u64,
    /// Sequential asks timed after the tells.
    #[arg(long, default_value_t = 2000, value_parser = crate::parse_count)]
    asks: u64,
    /// Messages of one channel in flight.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Remote refs redeliver after a broken stream (keeping what is unacknowledged).
    #[arg(long)]
    reliable: bool,
}

fn s(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// What the counting actor takes.
#[derive(Debug, Serialize, Deserialize)]
enum Msg {
    /// Counted.
    Add(u64),
    /// Answered with the count so far.
    Count,
}

/// Counts the `Add`s it gets (into a shared counter the bench polls) and answers `Count`.
struct Counter {
    count: Arc<AtomicU64>,
    sum: u64,
}

impl Actor for Counter {
    type Msg = Msg;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Msg) -> Result<(), StageError> {
        match msg {
            Msg::Add(x) => {
                self.sum = self.sum.wrapping_add(x);
                self.count.fetch_add(1, Ordering::Relaxed);
            }
            Msg::Count => {
                ctx.reply(self.count.load(Ordering::Relaxed));
            }
        }
        Ok(())
    }
}

/// One variant's figures.
struct Figures {
    seconds: f64,
    ask_p50_us: f64,
    ask_p99_us: f64,
}

/// Tells `0..n` through `to`, waits until the actor counted them all, then times `asks`
/// sequential asks.
async fn run(to: ActorRef<Msg>, count: &AtomicU64, n: u64, asks: u64) -> Result<Figures, String> {
    let t = Instant::now();
    for i in 0..n {
        to.tell(Msg::Add(i)).await.map_err(s)?;
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while count.load(Ordering::Relaxed) < n {
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {n} tells counted",
                count.load(Ordering::Relaxed)
            ));
        }
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    let seconds = t.elapsed().as_secs_f64();
    let mut lat = Vec::with_capacity(asks as usize);
    for _ in 0..asks {
        let t = Instant::now();
        let got: u64 = to
            .ask(Msg::Count, Duration::from_secs(10))
            .await
            .map_err(s)?;
        lat.push(t.elapsed().as_secs_f64() * 1e6);
        if got != n {
            return Err(format!("the actor counted {got}, expected {n}"));
        }
    }
    lat.sort_by(f64::total_cmp);
    let at = |q: f64| {
        lat.get(((lat.len() as f64 * q) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    Ok(Figures {
        seconds,
        ask_p50_us: at(0.5),
        ask_p99_us: at(0.99),
    })
}

/// The two nodes of a remote variant and the counting actor's run on node `b`.
struct Pair {
    a: ActorNode,
    _b: ActorNode,
    _run: RunHandle,
    _actor: ActorRef<Msg>,
}

fn pair(
    ta: Arc<dyn Transport>,
    tb: Arc<dyn Transport>,
    args: &Args,
    count: &Arc<AtomicU64>,
) -> Result<Pair, String> {
    let config = |me: &str| {
        let mut cfg = RemoteConfig::new(me, vec!["a".into(), "b".into()]);
        cfg.window = args.window;
        cfg
    };
    let registry = Arc::new(ActorRegistry::new());
    let (actor, run) = counter(Some(&registry), count)?;
    let b = ActorNode::start(tb, Arc::clone(&registry), config("b")).map_err(s)?;
    b.expose_ask::<Msg, u64>("/bench/counter").map_err(s)?;
    let a = ActorNode::start(ta, Arc::new(ActorRegistry::new()), config("a")).map_err(s)?;
    Ok(Pair {
        a,
        _b: b,
        _run: run,
        _actor: actor,
    })
}

/// Runs a counting actor (registered at `/bench/counter` when a registry is given).
fn counter(
    registry: Option<&Arc<ActorRegistry>>,
    count: &Arc<AtomicU64>,
) -> Result<(ActorRef<Msg>, RunHandle), String> {
    let c = Arc::clone(count);
    let mut props = Props::new(move || Counter {
        count: Arc::clone(&c),
        sum: 0,
    });
    let mut m = Materializer::new();
    if let Some(r) = registry {
        props = props.register_as("/bench/counter");
        m = m.with_service(Arc::clone(r));
    }
    let g = Source::actor(props).to_mat(Sink::ignore(), Keep::left);
    m.materialize(&g).map_err(s)
}

/// Runs `weir-bench remote-actors`; returns the exit code.
pub fn main(args: Args) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("remote-actors: runtime: {e}");
            return 1;
        }
    };
    let go = || -> Result<(), String> {
        let mut local_rate = 0.0;
        for variant in ["local", "memory", "quic_tls"] {
            let count = Arc::new(AtomicU64::new(0));
            let f = rt.block_on(async {
                if variant == "local" {
                    let (to, _run) = counter(None, &count)?;
                    return run(to, &count, args.n, args.asks).await;
                }
                let p = if variant == "memory" {
                    let net = MemoryNetwork::new(64);
                    pair(net.node("a"), net.node("b"), &args, &count)?
                } else {
                    let (a, b) = crate::remote_exchange::quic_pair()?;
                    pair(a, b, &args, &count)?
                };
                let mut to = p.a.remote("b", "/bench/counter");
                if args.reliable {
                    to = to.reliable();
                }
                let to = to.asks::<Msg, u64>().map_err(s)?;
                run(to, &count, args.n, args.asks).await
            })?;
            let rate = args.n as f64 / f.seconds;
            if variant == "local" {
                local_rate = rate;
            }
            println!(
                "{{\"workload\":\"remote_actors\",\"variant\":\"{variant}\",\"n\":{},\"window\":{},\"reliable\":{},\"seconds\":{:.6},\"msgs_per_s\":{rate:.4e},\"vs_local\":{:.3},\"asks\":{},\"ask_p50_us\":{:.1},\"ask_p99_us\":{:.1}}}",
                args.n,
                args.window,
                args.reliable,
                f.seconds,
                rate / local_rate,
                args.asks,
                f.ask_p50_us,
                f.ask_p99_us
            );
        }
        Ok(())
    };
    match go() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("remote-actors: {e}");
            1
        }
    }
}
