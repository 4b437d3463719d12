//! `weir local-cluster`: runs a job program as a local cluster of node processes; `weir
//! status --cluster DIR` and `weir cancel --cluster DIR` operate it.

use super::exit::Exit;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use weir_cluster::job::{JobError, LocalCluster, NodeSettings};

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
                let s = NodeSettings::local(node, n, &dir, o.epoch);
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
        Err(e @ JobError::Cancelled { .. }) => {
            eprintln!("weir local-cluster: {e}");
            Exit::Cancelled
        }
        Err(e) => {
            eprintln!("weir local-cluster: {e}");
            Exit::Failed
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, Exit> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("weir: cannot start a runtime: {e}");
            Exit::Failed
        })
}

/// `weir status --cluster DIR`: the supervisor's state, the nodes and the checkpoints.
pub(super) fn status(dir: &std::path::Path, json: bool) -> Exit {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let s = match rt.block_on(weir_cluster::control::status(dir)) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("weir status: {}: {e}", dir.display());
            return Exit::NotFound;
        }
    };
    if json {
        match serde_json::to_string_pretty(&s) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("weir status: {e}");
                return Exit::Failed;
            }
        }
        return Exit::Ok;
    }
    let opt = |v: Option<u64>| v.map_or_else(|| "-".to_owned(), |v| v.to_string());
    println!(
        "cluster {}: {} in attempt {} ({} restarts){}, latest complete checkpoint {}{}",
        dir.display(),
        s.state,
        s.epoch,
        s.restarts,
        if s.cancel_requested {
            ", cancel requested"
        } else {
            ""
        },
        opt(s.latest_complete),
        if s.output_complete {
            " (output complete)"
        } else {
            ""
        }
    );
    println!(
        "{:<6} {:>8} {:>6} {:<22} {:>5} {:>12}",
        "NODE", "PID", "ALIVE", "ADDR", "DONE", "STORED"
    );
    for n in &s.nodes {
        println!(
            "{:<6} {:>8} {:>6} {:<22} {:>5} {:>12}",
            n.node,
            n.pid,
            n.alive,
            n.addr.as_deref().unwrap_or("-"),
            n.done,
            opt(n.stored_checkpoints.last().copied())
        );
    }
    Exit::Ok
}

/// `weir cancel --cluster DIR`: asks the supervisor to stop every node and waits (up to
/// 30 s) until it did.
pub(super) fn cancel(dir: &std::path::Path, json: bool) -> Exit {
    let stopped = weir_cluster::control::request_cancel(dir).and_then(|()| {
        weir_cluster::control::wait_stopped(dir, std::time::Duration::from_secs(30))
    });
    match stopped {
        Ok(state) => {
            if json {
                println!("{{\"state\":\"{state}\"}}");
            } else {
                println!("cluster {}: {state}", dir.display());
            }
            if state == "running" {
                eprintln!("weir cancel: the supervisor did not stop the job within 30 s");
                return Exit::Failed;
            }
            Exit::Ok
        }
        Err(e @ JobError::Io { .. }) => {
            eprintln!("weir cancel: {e}");
            Exit::NotFound
        }
        Err(e) => {
            eprintln!("weir cancel: {e}");
            Exit::Failed
        }
    }
}

/// `weir savepoint --cluster DIR TARGET`: the newest checkpoint every node completed, copied
/// into `TARGET`.
pub(super) fn savepoint(dir: &std::path::Path, target: &std::path::Path, json: bool) -> Exit {
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => return e,
    };
    let target = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    match rt.block_on(weir_cluster::control::savepoint(dir, &target)) {
        Ok(s) => {
            if json {
                match serde_json::to_string(&s) {
                    Ok(t) => println!("{t}"),
                    Err(e) => {
                        eprintln!("weir savepoint: {e}");
                        return Exit::Failed;
                    }
                }
            } else {
                println!(
                    "savepoint of cluster {} (checkpoint {} of {} nodes, {} bytes) written to {}",
                    dir.display(),
                    s.checkpoint,
                    s.nodes,
                    s.bytes,
                    s.path
                );
            }
            Exit::Ok
        }
        Err(e) => {
            eprintln!("weir savepoint: {e}");
            Exit::Failed
        }
    }
}
