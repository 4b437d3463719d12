//! `weir-bench`: runs the benchmark workloads and prints one JSON object per line.
//!
//! `cargo run --release -p weir-bench -- <w1|w2|chain|all> [--n N] [--parallelism P]`; the W3
//! job, its crash harness and throughput have subcommands of their own (`w3-gen`, `w3-job`,
//! `crash`, `w3`: see `w3/`), the event-sourced account job and its crash harness have
//! `entities-job` and `crash-entities` (see `entities/`), `state-keys --keys N --backend
//! rocksdb|memory` measures keyed state on a backend, and `actors [--n N] [--actors K]` measures
//! the actor layer (see `actors.rs`), `metrics-cost` compares W1 and W2 with operating
//! metrics on and off (see `metrics_cost.rs`), and `fuzz-frames --execs N --seed S` fuzzes the
//! cluster frame decoder (see `fuzz_frames.rs`). Every command is one clap subcommand: an unknown
//! command or flag is an error with a suggestion (exit code 2).
//!
//! Every workload also runs a hand-written Rust loop doing the same work in the same process
//! (`variant: "baseline_loop"`), so results can be compared as ratios on a noisy machine.

mod actors;
mod w2_cluster;
mod w2_keyed;

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hint::black_box;
use std::time::Instant;
use weir::prelude::*;

mod child;
mod ckpt_backpressure;
mod cluster_bp;
mod columnar_files;
mod entities;
mod fuzz_frames;
mod metrics_cost;
mod persistence;
mod regions;
mod remote_actors;
mod remote_exchange;
mod state_keys;
mod topics;
mod w3;

/// Command line of `weir-bench` (its commands and flags are part of the product: keep them
/// stable). `weir-bench [FLAGS]` alone runs every workload, as `weir-bench all` does.
#[derive(clap::Parser)]
#[command(
    name = "weir-bench",
    about = "weir benchmark workloads printing JSON lines",
    after_help = "Examples:\n  weir-bench w1 --n 2e8\n  weir-bench w2 --parallelism 1,2,4\n  weir-bench crash --kills 20\n  weir-bench state-keys --keys 1e7 --backend rocksdb\n\nExit codes: 0 ok, 1 a workload failed, 2 usage error (unknown command or flag)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<BenchCommand>,
    #[command(flatten)]
    args: Args,
}

/// The commands of `weir-bench`.
#[derive(clap::Subcommand)]
enum BenchCommand {
    /// map/filter/sum over a range (fused and through a boundary).
    W1(Args),
    /// Word count over a Zipf corpus.
    W2(Args),
    /// Compose and materialize a 10,000-stage chain.
    Chain(Args),
    /// End-to-end latency at a steady rate.
    Latency(Args),
    /// Actor stages, tell and ask loops, an established actor crate, memory per idle actor.
    Actors(Args),
    /// Every workload above.
    All(Args),
    #[command(flatten)]
    W3(w3::W3Command),
    #[command(flatten)]
    Entities(entities::EntitiesCommand),
    /// Checkpoints under sustained backpressure (RELIABILITY S7).
    CkptBackpressure(ckpt_backpressure::Args),
    /// W1 and W2 with metrics (observer and scraping) on vs off, interleaved.
    MetricsCost(metrics_cost::Args),
    /// Event-sourced entities on the RocksDB journal: persisted events per second and recovery time.
    Persistence(persistence::Args),
    /// Shard regions: entities made and messages per second.
    Regions(regions::Args),
    /// W2 as one job over a local cluster of node processes, checked against one process.
    W2Job(w2_cluster::Args),
    /// One node of `w2-job` (started by it).
    W2Node(w2_cluster::NodeArgs),
    /// Backpressure across nodes: a slow sink on one node of a local cluster, every node's memory.
    ClusterBackpressure(cluster_bp::Args),
    /// One node of `cluster-backpressure` (started by it).
    ClusterBackpressureNode(cluster_bp::NodeArgs),
    /// A remote edge over QUIC with TLS against plain TCP: throughput and one-hop latency.
    RemoteExchange(remote_exchange::Args),
    /// A topic's throughput to its subscribers: in one process, and across two nodes (memory, QUIC).
    Topics(topics::Args),
    /// Tells and asks to an actor: in one process, and across two nodes (memory, QUIC).
    RemoteActors(remote_actors::Args),
    /// Counting per key through keyed state.
    StateKeys(state_keys::Args),
    /// Parquet and Arrow IPC files written and read, against direct crate loops.
    ColumnarFiles(columnar_files::Args),
    /// Random and mutated inputs to the cluster frame decoder: crashes, refusals, allocations.
    FuzzFrames(fuzz_frames::Args),
}

/// The flags of the w1, w2, chain, latency and actors workloads.
#[derive(Clone, Default, clap::Args)]
struct Args {
    /// Elements (w1), words (w2), messages (actors) or the latency rate per second; accepts `2e8`.
    #[arg(long, value_parser = parse_count)]
    n: Option<u64>,
    /// Parallelism of the w1 variants (default 1) and the w2 variants (default 1,2), comma-separated.
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(usize))]
    parallelism: Vec<usize>,
    /// Rows per batch (default: the engine's).
    #[arg(long)]
    batch: Option<usize>,
    /// Idle actors the `actors` workload spawns in one stage; accepts `1e5`.
    #[arg(long, value_parser = parse_count)]
    actors: Option<u64>,
    /// Only these variants of the `actors` workload (default: all), comma-separated.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
}

impl Args {
    /// These flags, with the ones not given taken from `outer` (flags before the workload).
    fn or(self, outer: Args) -> Args {
        Args {
            n: self.n.or(outer.n),
            parallelism: if self.parallelism.is_empty() {
                outer.parallelism
            } else {
                self.parallelism
            },
            batch: self.batch.or(outer.batch),
            actors: self.actors.or(outer.actors),
            only: if self.only.is_empty() {
                outer.only
            } else {
                self.only
            },
        }
    }
}

/// The workloads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Workload {
    W1,
    W2,
    Chain,
    Latency,
    Actors,
    All,
}

/// The work directory of a harness: `given`, or a fresh one under the system's temporary
/// directory named `weir-NAME-PID`; whether it is that temporary one (removed afterwards).
fn work_dir(given: Option<&std::path::Path>, name: &str) -> (std::path::PathBuf, bool) {
    match given {
        Some(d) => (d.to_path_buf(), false),
        None => (
            std::env::temp_dir().join(format!("weir-{name}-{}", std::process::id())),
            true,
        ),
    }
}

/// A count written as an integer or in scientific notation (`2e8`).
fn parse_count(s: &str) -> Result<u64, String> {
    let v: f64 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= u64::MAX as f64 {
        Ok(v as u64)
    } else {
        Err(format!("{s:?} is not a whole, non-negative count"))
    }
}

/// Resets the kernel's peak-RSS counter so each variant reports its own peak.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|k| k.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn emit(
    workload: &str,
    variant: &str,
    n: u64,
    parallelism: usize,
    secs: f64,
    checksum: &str,
    extra: &str,
) {
    println!(
        "{{\"workload\":\"{workload}\",\"variant\":\"{variant}\",\"n\":{n},\"parallelism\":{parallelism},\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"peak_rss_mb\":{:.1},\"checksum\":\"{checksum}\"{extra}}}",
        n as f64 / secs,
        peak_rss_mb()
    );
}

fn materializer(batch: Option<usize>) -> Materializer {
    let m = Materializer::new();
    match batch {
        Some(b) => m.with_batch_size(b),
        None => m,
    }
}

/// Runs `g` on `m` to its end with the peak RSS reset first; the seconds it took and the
/// sink's result.
fn run_timed<T, F>(
    rt: &weir::engine::Runtime,
    m: &Materializer,
    g: &RunnableGraph<F>,
) -> (f64, Result<T, StageError>)
where
    F: std::future::Future<Output = Result<T, StageError>> + Send + 'static,
{
    reset_peak_rss();
    let t = Instant::now();
    let got = rt.block_on(async {
        let (f, h) = m
            .materialize(g)
            .map_err(|e| StageError::internal(e.to_string()))?;
        let v = f.await?;
        h.wait().await?;
        Ok::<_, StageError>(v)
    });
    (t.elapsed().as_secs_f64(), got)
}

/// W1 with `.parallelism(p)` on the source, `map` and `filter` (the fold sink runs once);
/// `fused_serial_source` keeps the source at 1.
fn w1(rt: &weir::engine::Runtime, n: u64, pars: &[usize], batch: Option<usize>) {
    reset_peak_rss();
    let t = Instant::now();
    let sum: u64 = (0..black_box(n))
        .map(|x| x * 2)
        .filter(|x| x % 3 == 0)
        .sum();
    emit(
        "w1",
        "baseline_loop",
        n,
        1,
        t.elapsed().as_secs_f64(),
        &sum.to_string(),
        "",
    );
    for variant in ["fused", "boundary", "fused_serial_source"] {
        for &p in pars {
            // The source at 1 and the flows at `p`: a channel from the source into the chains.
            let serial = variant == "fused_serial_source";
            if serial && p == 1 {
                continue;
            }
            let m = materializer(batch);
            let doubled = Source::range(0u64, n)
                .parallelism(if serial { 1 } else { p })
                .map(|x| x * 2)
                .parallelism(p);
            let doubled = if variant == "boundary" {
                doubled.async_boundary()
            } else {
                doubled
            };
            let g = doubled
                .filter(|x| x % 3 == 0)
                .parallelism(p)
                .to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
            let (secs, got) = run_timed(rt, &m, &g);
            match got {
                Ok(s) => {
                    assert_eq!(s, sum, "w1 {variant} checksum");
                    emit("w1", variant, n, p, secs, &s.to_string(), "");
                }
                Err(e) => eprintln!("w1 {variant} parallelism {p} failed: {e}"),
            }
        }
    }
}

fn checksum(mut counts: Vec<(&str, u64)>) -> String {
    counts.sort_unstable();
    let mut h = Sha256::new();
    for (w, c) in counts {
        h.update(w.as_bytes());
        h.update(b"\t");
        h.update(c.to_string().as_bytes());
        h.update(b"\n");
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn w2(rt: &weir::engine::Runtime, words: u64, pars: &[usize], batch: Option<usize>) {
    let lines = (words / 10) as usize;
    let corpus: &'static [String] =
        Box::leak(weir::demo::zipf_corpus(lines, 10, 10_000, 42).into_boxed_slice());
    let n = (lines * 10) as u64;
    reset_peak_rss();
    let t = Instant::now();
    let mut counts: HashMap<&str, u64, ahash::RandomState> = HashMap::default();
    for line in corpus {
        for w in line.split(' ') {
            match counts.get_mut(w) {
                Some(c) => *c += 1,
                None => {
                    counts.insert(w, 1);
                }
            }
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let expected = checksum(counts.into_iter().collect());
    emit("w2", "baseline_loop", n, 1, secs, &expected, "");
    for &p in pars {
        let m = materializer(batch);
        let g = Source::range(0usize, corpus.len())
            .flat_map(move |i: usize| corpus[i].split(' '))
            .parallelism(p)
            .key_by(|w: &&'static str| *w)
            .count()
            .parallelism(p)
            .to_mat(Sink::collect(), Keep::right);
        let (secs, got) = run_timed(rt, &m, &g);
        match got {
            Ok(v) => {
                let c = checksum(v);
                if c != expected {
                    eprintln!("w2 parallelism {p}: checksum mismatch");
                }
                emit("w2", "weir", n, p, secs, &c, "");
            }
            Err(e) => eprintln!("w2 parallelism {p} failed: {e}"),
        }
    }
    w2_keyed::fold(rt, corpus, pars, batch, &expected);
    w2_keyed::run(rt, corpus, pars, batch, &expected);
    w2_keyed::hashes(corpus);
}

fn chain(rt: &weir::engine::Runtime, stages: u64) {
    reset_peak_rss();
    let t = Instant::now();
    let mut s = Source::range(0u64, 1000);
    for _ in 0..stages {
        s = s.map(|x| x + 1);
    }
    let g = s.to_mat(Sink::fold(0u64, |a, x| a + x), Keep::right);
    let compose = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let r = rt.block_on(async {
        let (f, h) = g.start().map_err(|e| StageError::internal(e.to_string()))?;
        let materialize = t.elapsed().as_secs_f64();
        let v = f.await?;
        h.wait().await?;
        Ok::<_, StageError>((materialize, v))
    });
    let total = t.elapsed().as_secs_f64();
    match r {
        Ok((materialize, v)) => emit(
            "chain",
            "compose_materialize",
            stages,
            1,
            compose + materialize,
            &v.to_string(),
            &format!(
                ",\"compose_ms\":{:.3},\"materialize_ms\":{:.3},\"run_ms\":{:.3}",
                compose * 1e3,
                materialize * 1e3,
                (total - materialize) * 1e3
            ),
        ),
        Err(e) => eprintln!("chain failed: {e}"),
    }
}

/// End-to-end latency through one async boundary at a steady rate: every millisecond a source
/// emits `rate / 1000` timestamped elements; the sink records each element's age.
fn latency(rt: &weir::engine::Runtime, rate: u64, seconds: u64) {
    use futures::FutureExt;
    use weir::graph::{AsyncFn, AsyncIo};
    let per_tick = (rate / 1000).max(1);
    let ticks = seconds * 1000;
    let src = weir::graph::Source::<Instant, ()>::from_async("timed", move |_| {
        Ok((
            AsyncFn(move |mut io: AsyncIo| {
                async move {
                    let mut out = io.output::<Instant>(0)?;
                    let mut tick = tokio::time::interval(std::time::Duration::from_millis(1));
                    for _ in 0..ticks {
                        tick.tick().await;
                        let batch: Vec<Instant> = (0..per_tick).map(|_| Instant::now()).collect();
                        if out.send(batch).await.is_err() {
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
    let g = src
        .map(|t: Instant| t)
        .async_boundary()
        .map(|t: Instant| t.elapsed().as_nanos() as u64)
        .to_mat(Sink::collect(), Keep::right);
    reset_peak_rss();
    let t = Instant::now();
    let got = rt.block_on(async {
        let (f, h) = g.start().map_err(|e| StageError::internal(e.to_string()))?;
        let v = f.await?;
        h.wait().await?;
        Ok::<_, StageError>(v)
    });
    let secs = t.elapsed().as_secs_f64();
    match got {
        Ok(mut v) => {
            v.sort_unstable();
            let q = |p: f64| {
                v.get(((v.len() as f64 - 1.0) * p) as usize)
                    .copied()
                    .unwrap_or(0) as f64
                    / 1e3
            };
            emit(
                "latency",
                "one_boundary",
                v.len() as u64,
                1,
                secs,
                &v.len().to_string(),
                &format!(
                    ",\"rate_per_s\":{rate},\"p50_us\":{:.1},\"p99_us\":{:.1},\"max_us\":{:.1}",
                    q(0.5),
                    q(0.99),
                    q(1.0)
                ),
            );
        }
        Err(e) => eprintln!("latency failed: {e}"),
    }
}

fn main() {
    let cli = <Cli as clap::Parser>::parse();
    let (w, args) = match cli.command {
        None => (Workload::All, cli.args),
        Some(BenchCommand::W1(a)) => (Workload::W1, a.or(cli.args)),
        Some(BenchCommand::W2(a)) => (Workload::W2, a.or(cli.args)),
        Some(BenchCommand::Chain(a)) => (Workload::Chain, a.or(cli.args)),
        Some(BenchCommand::Latency(a)) => (Workload::Latency, a.or(cli.args)),
        Some(BenchCommand::Actors(a)) => (Workload::Actors, a.or(cli.args)),
        Some(BenchCommand::All(a)) => (Workload::All, a.or(cli.args)),
        Some(BenchCommand::W3(c)) => std::process::exit(w3::run(c)),
        Some(BenchCommand::Entities(c)) => std::process::exit(entities::run(c)),
        Some(BenchCommand::CkptBackpressure(a)) => std::process::exit(ckpt_backpressure::main(a)),
        Some(BenchCommand::MetricsCost(a)) => std::process::exit(metrics_cost::main(a)),
        Some(BenchCommand::Persistence(a)) => std::process::exit(persistence::main(a)),
        Some(BenchCommand::Regions(a)) => std::process::exit(regions::main(a)),
        Some(BenchCommand::W2Job(a)) => std::process::exit(w2_cluster::main(&a)),
        Some(BenchCommand::W2Node(a)) => std::process::exit(w2_cluster::node_main(&a)),
        Some(BenchCommand::ClusterBackpressure(a)) => std::process::exit(cluster_bp::main(&a)),
        Some(BenchCommand::ClusterBackpressureNode(a)) => {
            std::process::exit(cluster_bp::node_main(&a))
        }
        Some(BenchCommand::RemoteExchange(a)) => std::process::exit(remote_exchange::main(a)),
        Some(BenchCommand::Topics(a)) => std::process::exit(topics::main(a)),
        Some(BenchCommand::RemoteActors(a)) => std::process::exit(remote_actors::main(a)),
        Some(BenchCommand::StateKeys(a)) => std::process::exit(state_keys::main(a)),
        Some(BenchCommand::ColumnarFiles(a)) => std::process::exit(columnar_files::main(a)),
        Some(BenchCommand::FuzzFrames(a)) => std::process::exit(fuzz_frames::main(a)),
    };
    run_workloads(w, &args);
}

/// Runs the in-process workloads `w` with `args`.
fn run_workloads(w: Workload, args: &Args) {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("runtime: {e}");
            std::process::exit(1);
        }
    };
    if matches!(w, Workload::W1 | Workload::All) {
        let pars = if args.parallelism.is_empty() {
            vec![1]
        } else {
            args.parallelism.clone()
        };
        w1(&rt, args.n.unwrap_or(200_000_000), &pars, args.batch);
    }
    if matches!(w, Workload::W2 | Workload::All) {
        let pars = if args.parallelism.is_empty() {
            vec![1, 2]
        } else {
            args.parallelism.clone()
        };
        w2(&rt, args.n.unwrap_or(5_000_000), &pars, args.batch);
    }
    if matches!(w, Workload::Chain | Workload::All) {
        chain(&rt, 10_000);
    }
    if matches!(w, Workload::Latency | Workload::All) {
        latency(&rt, args.n.unwrap_or(100_000), 2);
    }
    if matches!(w, Workload::Actors | Workload::All) {
        let actors = usize::try_from(args.actors.unwrap_or(100_000)).unwrap_or(usize::MAX);
        actors::run(args.n.unwrap_or(10_000_000), actors, args.batch, &args.only);
    }
}
