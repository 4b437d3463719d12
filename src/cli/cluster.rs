//! `weir local-cluster`: runs a job program as a local cluster of node processes.

use super::exit::Exit;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use weir_cluster::job::{LocalCluster, NodeSettings};

/// Flags of `weir local-cluster`.
#[derive(Debug, clap::Args)]
pub(super) struct LocalClusterArgs {
    /// Node processes.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=64))]
    nodes: u16,
    /// The directory the nodes share (certificates, commit log, attempt record, logs);
    /// default: a fresh temporary directory.
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Attempts after the first before the job gives up.
    #[arg(long, default_value_t = 1000)]
    max_restarts: u32,
    /// The job program and its arguments (after `--`).
    #[arg(required = true, last = true)]
    program: Vec<String>,
}

/// Runs the program once per node until every node of one attempt exited 0, restarting all
/// of them when one dies; prints each node's output of that attempt, in node order.
pub(super) fn local_cluster(a: &LocalClusterArgs) -> Exit {
    let dir = a.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-local-cluster-{}", std::process::id()))
    });
    let logs = dir.join("logs");
    if let Err(e) = std::fs::create_dir_all(&logs) {
        eprintln!("weir local-cluster: {}: {e}", logs.display());
        return Exit::Usage;
    }
    let n = usize::from(a.nodes);
    let mut lc = LocalCluster::new(n, &dir);
    lc.max_restarts = a.max_restarts;
    eprintln!(
        "weir local-cluster: {n} nodes of `{}`, shared directory {}",
        a.program.join(" "),
        dir.display()
    );
    let log_path =
        |s: &NodeSettings, what: &str| logs.join(format!("e{:04}-node-{}.{what}", s.epoch, s.node));
    let outcome = lc.run(|s| {
        let out = std::fs::File::create(log_path(s, "stdout"))?;
        let err = std::fs::File::create(log_path(s, "stderr"))?;
        Command::new(&a.program[0])
            .args(&a.program[1..])
            .envs(s.env())
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
    });
    match outcome {
        Ok(o) => {
            for node in 0..n {
                let s = NodeSettings {
                    node,
                    nodes: n,
                    cluster_dir: dir.clone(),
                    epoch: o.epoch,
                };
                print!(
                    "{}",
                    std::fs::read_to_string(log_path(&s, "stdout")).unwrap_or_default()
                );
            }
            eprintln!(
                "weir local-cluster: every node finished in attempt {} ({} restarts)",
                o.epoch, o.restarts
            );
            Exit::Ok
        }
        Err(e) => {
            eprintln!("weir local-cluster: {e}");
            Exit::Failed
        }
    }
}
