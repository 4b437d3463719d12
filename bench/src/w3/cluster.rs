//! `weir-bench w3-job --nodes N`: W3 as one job over a local cluster of N node processes
//! (`w3-node`, this binary), started as children. The input is split into N parts (every
//! N-th line, into `INPUT.nodes-N/` beside it, so that a new cluster started from a savepoint
//! resumes the same part files), certificates for the nodes are made once, and each attempt
//! (epoch) starts
//! every node; when any node dies (a SIGKILL, a failure) the others are stopped and a new
//! attempt starts them all again, each restoring the newest checkpoint every node completed
//! (Flink's restart-all failover), until every node of one attempt finished. The committed
//! output is the union of the nodes' output directories (`OUTPUT/node-I`).
//!
//! Layout under `--state-dir`: `cluster/` (the nodes' shared directory, see
//! [`super::node`]; also `logs/` with each node's output per
//! attempt, and `pids`, the current attempt's `EPOCH NODE PID` lines), `node-I/` (node I's
//! checkpoints, emptied before a restart when the node died and `--fresh-disk` is given).

use std::io::{BufRead, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;
use weir_cluster::job::{LocalCluster, NodeSettings};

/// The settings of a cluster run.
#[derive(Debug, Clone)]
pub struct ClusterArgs {
    /// The events file.
    pub input: PathBuf,
    /// The root of the nodes' output directories.
    pub output: PathBuf,
    /// The root of the cluster directory and the nodes' checkpoints.
    pub state_dir: PathBuf,
    /// Time between checkpoints.
    pub checkpoint_interval_ms: u64,
    /// Events per second over all nodes.
    pub rate: Option<u64>,
    /// Node processes.
    pub nodes: usize,
    /// Attempts after the first before the job gives up.
    pub max_restarts: u32,
    /// A node that died restarts with its state directory emptied (a new machine's disk).
    pub fresh_disk: bool,
    /// The cluster savepoint the job starts from when it has no checkpoint yet.
    pub from_savepoint: Option<PathBuf>,
    /// Splits the input into this many files of consecutive lines, shared by the nodes.
    pub splits: Option<usize>,
}

/// The nodes' output directories under `output`.
pub fn output_dirs(output: &Path, nodes: usize) -> Vec<PathBuf> {
    (0..nodes)
        .map(|i| output.join(format!("node-{i}")))
        .collect()
}

/// The cluster directory under `state_dir`.
pub fn cluster_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("cluster")
}

/// The current attempt's node processes, as `w3-job --nodes` records them.
pub fn read_pids(state_dir: &Path) -> Option<(u64, Vec<u32>)> {
    LocalCluster::pids(&cluster_dir(state_dir))
}

/// The folder of `input`'s parts for `nodes` nodes: beside the input, so every run of the job
/// over it (a restart, a new cluster from a savepoint, whose sources resume by path) reads the
/// same part files.
fn parts_dir(input: &Path, nodes: usize) -> PathBuf {
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".nodes-{nodes}"));
    input.with_file_name(name)
}

/// Splits `input` into `nodes` parts, line `i` into part `i % nodes` (once per version of the
/// input: the split records the input's length and modification time).
fn split_input(input: &Path, parts: &Path, nodes: usize) -> Result<Vec<PathBuf>, String> {
    let paths: Vec<PathBuf> = (0..nodes)
        .map(|i| parts.join(format!("input-{i}.csv")))
        .collect();
    let version = input_version(input)?;
    let done = parts.join("SPLIT");
    if std::fs::read_to_string(&done).is_ok_and(|v| v == version) {
        return Ok(paths);
    }
    std::fs::create_dir_all(parts).map_err(io(parts))?;
    let mut outs = paths
        .iter()
        .map(|p| std::fs::File::create(p).map(BufWriter::new).map_err(io(p)))
        .collect::<Result<Vec<_>, _>>()?;
    let f = std::fs::File::open(input).map_err(io(input))?;
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.map_err(io(input))?;
        writeln!(outs[i % nodes], "{line}").map_err(io(&paths[i % nodes]))?;
    }
    for (o, p) in outs.iter_mut().zip(&paths) {
        o.flush().map_err(io(p))?;
        o.get_ref().sync_all().map_err(io(p))?;
    }
    std::fs::write(&done, version).map_err(io(&done))?;
    Ok(paths)
}

/// The folder of `input`'s `splits` files of consecutive lines, beside it.
fn splits_dir(input: &Path, splits: usize) -> PathBuf {
    let mut name = input.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".splits-{splits}"));
    input.with_file_name(name)
}

/// Splits `input` into `splits` files of consecutive lines (`input-JJJJ.csv`, so path order is
/// split order; once per version of the input): each node reads its files one after another,
/// so its event time only moves forward.
fn split_consecutive(input: &Path, dir: &Path, splits: usize) -> Result<(), String> {
    let version = input_version(input)?;
    let done = dir.join(".SPLIT");
    if std::fs::read_to_string(&done).is_ok_and(|v| v == version) {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let lines = std::io::BufReader::new(std::fs::File::open(input).map_err(io(input))?)
        .lines()
        .count();
    let f = std::fs::File::open(input).map_err(io(input))?;
    let mut lines_in = std::io::BufReader::new(f).lines();
    for j in 0..splits {
        let p = dir.join(format!("input-{j:04}.csv"));
        let mut out = BufWriter::new(std::fs::File::create(&p).map_err(io(&p))?);
        let n = (j + 1) * lines / splits - j * lines / splits;
        for line in lines_in.by_ref().take(n) {
            writeln!(out, "{}", line.map_err(io(input))?).map_err(io(&p))?;
        }
        out.flush().map_err(io(&p))?;
        out.get_ref().sync_all().map_err(io(&p))?;
    }
    std::fs::write(&done, version).map_err(io(&done))
}

/// An IO error on `p` as the message the harness reports.
fn io(p: &Path) -> impl Fn(std::io::Error) -> String + use<> {
    let p = p.display().to_string();
    move |e| format!("{p}: {e}")
}

/// The input's length and modification time (a split is made once per version).
fn input_version(input: &Path) -> Result<String, String> {
    let meta = std::fs::metadata(input).map_err(io(input))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{} {mtime}\n", meta.len()))
}

/// What the last attempt's nodes reported.
#[derive(Debug, Default)]
struct Totals {
    events: u64,
    committed_parts: u64,
    restored_from: Option<u64>,
    last_checkpoint: Option<u64>,
    /// The slowest node's run (start to end, after the input was split and processes began).
    node_seconds: f64,
}

fn json_u64(line: &str, field: &str) -> Option<u64> {
    let at = line.find(&format!("\"{field}\":"))? + field.len() + 3;
    let rest = &line[at..];
    let end = rest.find([',', '}']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// How many node starts (of any attempt) copied their restore point from the job's store.
fn restores_from_store(logs: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(logs) else {
        return 0;
    };
    rd.flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".stderr"))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .map(|t| {
            t.lines()
                .filter(|l| l.contains(super::node::COPIED))
                .count()
        })
        .sum()
}

/// Runs the job to its end; the JSON line.
fn run(args: &ClusterArgs) -> Result<String, String> {
    let t0 = Instant::now();
    if !args.input.is_file() {
        return Err(format!("--input {}: no such file", args.input.display()));
    }
    let n = args.nodes;
    let cluster = cluster_dir(&args.state_dir);
    let logs = cluster.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("{}: {e}", logs.display()))?;
    // Each node's `--input`: its part, or the shared folder of splits.
    let (parts, shared) = match args.splits {
        Some(s) => {
            let dir = splits_dir(&args.input, s);
            split_consecutive(&args.input, &dir, s)?;
            (vec![dir; n], true)
        }
        None => (
            split_input(&args.input, &parts_dir(&args.input, n), n)?,
            false,
        ),
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this binary: {e}"))?;
    let mut lc = LocalCluster::new(n, &cluster);
    lc.max_restarts = args.max_restarts;
    let mut replaced = 0u32;
    let replace = |dead: usize| -> std::io::Result<()> {
        if !args.fresh_disk {
            return Ok(());
        }
        let dir = args.state_dir.join(format!("node-{dead}"));
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        replaced += 1;
        eprintln!("w3-job: node {dead} restarts on an empty disk");
        Ok(())
    };
    let outcome = lc
        .run_replacing(
            |s: &NodeSettings| {
                let i = s.node;
                let log = |what: &str| -> std::io::Result<Stdio> {
                    let p = logs.join(format!("e{:04}-node-{i}.{what}", s.epoch));
                    std::fs::File::create(&p).map(Stdio::from)
                };
                let mut cmd = Command::new(&exe);
                cmd.arg("w3-node").arg("--input").arg(&parts[i]);
                if shared {
                    cmd.arg("--shared-input");
                }
                cmd.arg("--output")
                    .arg(&output_dirs(&args.output, n)[i])
                    .arg("--state-dir")
                    .arg(args.state_dir.join(format!("node-{i}")))
                    .arg("--cluster-dir")
                    .arg(&s.cluster_dir)
                    .args(["--node", &i.to_string(), "--nodes", &n.to_string()])
                    .args(["--epoch", &s.epoch.to_string()])
                    .args([
                        "--checkpoint-interval-ms",
                        &args.checkpoint_interval_ms.to_string(),
                    ]);
                if let Some(r) = args.rate {
                    cmd.args(["--rate", &(r / n as u64).max(1).to_string()]);
                }
                if let Some(sp) = &args.from_savepoint {
                    cmd.arg("--from-savepoint").arg(sp);
                }
                cmd.stdin(Stdio::null())
                    .stdout(log("stdout")?)
                    .stderr(log("stderr")?)
                    .spawn()
            },
            replace,
        )
        .map_err(|e| e.to_string())?;
    let epoch = outcome.epoch;
    let mut t = Totals::default();
    for i in 0..n {
        let p = logs.join(format!("e{epoch:04}-node-{i}.stdout"));
        let line = std::fs::read_to_string(&p).unwrap_or_default();
        t.events += json_u64(&line, "events").unwrap_or(0);
        t.committed_parts += json_u64(&line, "committed_parts").unwrap_or(0);
        let secs = line
            .find("\"seconds\":")
            .and_then(|at| {
                let rest = &line[at + 10..];
                rest[..rest.find([',', '}']).unwrap_or(rest.len())]
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(0.0);
        t.node_seconds = t.node_seconds.max(secs);
        if i == 0 {
            t.restored_from = json_u64(&line, "restored_from");
            t.last_checkpoint = json_u64(&line, "last_checkpoint");
        }
    }
    let from_store = restores_from_store(&logs);
    let secs = t0.elapsed().as_secs_f64();
    let opt = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    Ok(format!(
        "{{\"workload\":\"w3_job\",\"nodes\":{n},\"events\":{},\"seconds\":{secs:.6},\"events_per_s\":{:.4e},\"node_seconds\":{:.6},\"attempts\":{},\"restarts\":{},\"last_checkpoint\":{},\"restored_from\":{},\"committed_parts\":{},\"fresh_disks\":{replaced},\"restores_from_store\":{from_store}}}",
        t.events,
        t.events as f64 / secs,
        t.node_seconds,
        epoch,
        outcome.restarts,
        opt(t.last_checkpoint),
        opt(t.restored_from),
        t.committed_parts
    ))
}

/// `w3-job --nodes N`: runs the job on a local cluster, prints its JSON line; 1 on failure.
pub fn main(args: &ClusterArgs) -> i32 {
    match run(args) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("w3-job failed: {e}");
            1
        }
    }
}
