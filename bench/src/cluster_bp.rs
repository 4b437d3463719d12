//! `weir-bench cluster-backpressure`: backpressure across nodes. A local cluster of `--nodes`
//! processes (this binary's `cluster-backpressure-node`, started through
//! [`LocalCluster`]) runs one job: on every node an unbounded source of 100-byte rows for
//! `--seconds`, an exchange by key to every node, and a sink; node 0's sink is slow (it
//! takes `--slow-rate` rows per second), the others' are not. Every second the harness reads
//! each node's resident memory (`VmRSS`); backpressure holds when node 0's slowness stops every
//! source (they can only run ahead by the edges' windows) and no node's memory grows. One
//! JSON line: rows each node received, and per node the resident memory at a quarter of the
//! run (after start-up), at its end and its maximum after that quarter, in KiB.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use weir::prelude::*;
use weir_cluster::exchange::exchange;
use weir_cluster::job::{JobNode, LocalCluster, NodeSettings};

/// Flags of `cluster-backpressure`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Node processes.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(2..=64))]
    pub nodes: u16,
    /// How long the sources run.
    #[arg(long, default_value_t = 120)]
    pub seconds: u64,
    /// Rows per second node 0's sink takes.
    #[arg(long, default_value_t = 2000, value_parser = crate::parse_count)]
    pub slow_rate: u64,
    /// The shared directory (default: a fresh temporary one, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

/// Flags of `cluster-backpressure-node` (started by `cluster-backpressure`, its place in the
/// job from the environment).
#[derive(Debug, Clone, clap::Args)]
pub struct NodeArgs {
    /// How long the source runs.
    #[arg(long)]
    pub seconds: u64,
    /// Rows per second node 0's sink takes.
    #[arg(long, value_parser = crate::parse_count)]
    pub slow_rate: u64,
}

/// A node's resident memory in KiB.
fn rss_kb(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// `cluster-backpressure-node`: runs one node; prints the rows its sink took.
pub fn node_main(a: &NodeArgs) -> i32 {
    let run = async {
        let s = NodeSettings::from_env()
            .map_err(|e| e.to_string())?
            .ok_or("WEIR_NODES is not set: start it through cluster-backpressure")?;
        let node = JobNode::start(&s).await.map_err(|e| e.to_string())?;
        let nodes = node.nodes().clone();
        let owners = nodes.clone();
        let flow = exchange(&nodes, 1, move |r: &(u64, Vec<u8>)| {
            owners.owner(&(r.0 % 1024))
        })
        .map_err(|e| e.to_string())?;
        let until = Instant::now() + Duration::from_secs(a.seconds);
        let src = Source::from_iter((0u64..).map(|i| (i, vec![b'x'; 100])))
            .take_while(move |_| Instant::now() < until)
            .via(flow);
        let src = if s.node == 0 {
            let r = usize::try_from(a.slow_rate).unwrap_or(usize::MAX).max(1);
            src.throttle(r, Duration::from_secs(1), (r / 100).max(1))
        } else {
            src
        };
        let rows = src
            .run_with(Sink::fold(0u64, |n, _| n + 1))
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        node.finish().await.map_err(|e| e.to_string())?;
        Ok::<u64, String>(rows)
    };
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cluster-backpressure-node: {e}");
            return 1;
        }
    };
    match rt.block_on(run) {
        Ok(rows) => {
            println!("{rows}");
            0
        }
        Err(e) => {
            eprintln!("cluster-backpressure-node: {e}");
            1
        }
    }
}

/// `cluster-backpressure`: runs the job, samples memory, prints the JSON line.
pub fn main(a: &Args) -> i32 {
    match run(a) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("cluster-backpressure: {e}");
            1
        }
    }
}

fn run(a: &Args) -> Result<String, String> {
    let n = usize::from(a.nodes);
    let (dir, temporary) = crate::work_dir(a.dir.as_deref(), "cluster-bp");
    let _ = std::fs::remove_dir_all(&dir);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let lc = LocalCluster::new(n, &dir);
    let done = Arc::new(AtomicBool::new(false));
    let job = {
        let (done, logs, a) = (Arc::clone(&done), logs.clone(), a.clone());
        std::thread::spawn(move || {
            let r = lc.run(|s| {
                let out = std::fs::File::create(logs.join(format!("node-{}.stdout", s.node)))?;
                let err = std::fs::File::create(logs.join(format!("node-{}.stderr", s.node)))?;
                std::process::Command::new(&exe)
                    .arg("cluster-backpressure-node")
                    .args(["--seconds", &a.seconds.to_string()])
                    .args(["--slow-rate", &a.slow_rate.to_string()])
                    .envs(s.env())
                    .stdout(out)
                    .stderr(err)
                    .spawn()
            });
            done.store(true, Ordering::Release);
            r
        })
    };
    // Sample every node's memory once a second while the job runs.
    let mut samples: Vec<Vec<u64>> = vec![Vec::new(); n];
    let t0 = Instant::now();
    while !done.load(Ordering::Acquire) {
        if let Some((_, pids)) = LocalCluster::pids(&dir) {
            for (i, pid) in pids.iter().enumerate().take(n) {
                if let Some(kb) = rss_kb(*pid) {
                    samples[i].push(kb);
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let outcome = job
        .join()
        .map_err(|_| "the supervisor thread panicked".to_owned())?
        .map_err(|e| e.to_string())?;
    let rows: Vec<String> = (0..n)
        .map(|i| {
            std::fs::read_to_string(logs.join(format!("node-{i}.stdout")))
                .unwrap_or_default()
                .trim()
                .to_owned()
        })
        .collect();
    let at_quarter: Vec<u64> = samples
        .iter()
        .map(|s| s.get(s.len() / 4).copied().unwrap_or(0))
        .collect();
    let last: Vec<u64> = samples
        .iter()
        .map(|s| s.last().copied().unwrap_or(0))
        .collect();
    let max_after: Vec<u64> = samples
        .iter()
        .map(|s| s.iter().skip(s.len() / 4).copied().max().unwrap_or(0))
        .collect();
    let growth = (0..n)
        .map(|i| max_after[i].saturating_sub(at_quarter[i]))
        .max()
        .unwrap_or(0);
    let list = |v: &[u64]| v.iter().map(u64::to_string).collect::<Vec<_>>().join(",");
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(format!(
        "{{\"workload\":\"cluster_backpressure\",\"nodes\":{n},\"seconds\":{:.3},\"slow_rate\":{},\"attempts\":{},\"rows\":[{}],\"samples\":{},\"rss_kb_at_quarter\":[{}],\"rss_kb_last\":[{}],\"rss_kb_max_after_quarter\":[{}],\"rss_growth_kb_max\":{growth}}}",
        t0.elapsed().as_secs_f64(),
        a.slow_rate,
        outcome.epoch,
        rows.join(","),
        samples.iter().map(Vec::len).min().unwrap_or(0),
        list(&at_quarter),
        list(&last),
        list(&max_after),
    ))
}
