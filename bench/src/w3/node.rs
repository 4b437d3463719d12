//! `weir-bench w3-node`: one node of W3 run as a job over a local cluster of processes (what
//! `w3-job --nodes N` starts, one per node). Every node builds the same graph: its part of
//! the input (`--input`, every N-th line of the events) through timestamps and watermarks,
//! an [`exchange`] that sends each event to the node owning its key (over QUIC with mutual
//! TLS), 1 s tumbling sums per key and the transactional file sink into its own output
//! directory. Barriers cross the exchange in band, so each checkpoint is one cut across the
//! nodes; it completes, and the sinks commit, only once every node wrote it (the
//! [`CommitLog`] in the cluster directory). Started again, a node restores the newest
//! checkpoint every node completed and discards its newer ones.
//!
//! The node joins the others through [`JobNode`] (the cluster directory's layout is in
//! [`weir_cluster::job`]).

use super::events::Event;
use super::job::{Output, decode, encode, sums, timestamps};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use weir::engine::CheckpointConfig;
use weir::operators::file::{CsvOptions, FileSink, FileSource, Files};
use weir::operators::time::Timestamped;
use weir::prelude::*;
use weir_cluster::exchange::{JobNodes, exchange};
use weir_cluster::job::{JobNode, NodeSettings, node_name};

/// The settings of one node.
#[derive(Debug, Clone)]
pub struct NodeArgs {
    /// This node's part of the events (or the job's folder of splits).
    pub input: PathBuf,
    /// `input` is the job's folder of splits: the node reads its share of them.
    pub shared_input: bool,
    /// This node's part files.
    pub output: PathBuf,
    /// This node's checkpoints.
    pub state_dir: PathBuf,
    /// This node's place in the job (index, node count, cluster directory, attempt).
    pub settings: NodeSettings,
    /// Time between checkpoints.
    pub checkpoint_interval_ms: u64,
    /// Events per second this node's source is throttled to.
    pub rate: Option<u64>,
    /// The cluster savepoint the job starts from when it has no checkpoint yet.
    pub from_savepoint: Option<PathBuf>,
}

/// This node's graph: its events through the exchange into the windows and its part files.
fn graph(
    args: &NodeArgs,
    nodes: &JobNodes,
) -> Result<RunnableGraph<SinkFuture<Vec<PathBuf>>>, String> {
    let files = FileSource::new(Files::path(&args.input));
    let files = if args.shared_input {
        files.share(args.settings.node, args.settings.nodes)
    } else {
        files
    };
    let src = files.csv(CsvOptions::default(), decode).uid("w3-source");
    let src = match args.rate {
        Some(r) => src
            .throttle(
                usize::try_from(r).unwrap_or(usize::MAX),
                Duration::from_secs(1),
                usize::try_from(r / 100).unwrap_or(usize::MAX).max(1),
            )
            .uid("w3-throttle"),
        None => src,
    };
    let owners = nodes.clone();
    let by_key = exchange(nodes, 1, move |e: &Timestamped<Event>| {
        owners.owner(&e.value.key)
    })
    .map_err(|e| e.to_string())?;
    let out: Source<Output, _> = sums(timestamps(src).via(by_key));
    Ok(out.to_mat(
        FileSink::new(&args.output).lines(encode).uid("w3-sink"),
        Keep::right,
    ))
}

/// What a node prints on stderr when its restore point came from the job's store.
pub const COPIED: &str = "copied from the job's store";

async fn run(args: &NodeArgs) -> Result<String, String> {
    let t0 = Instant::now();
    let job = JobNode::start(&args.settings)
        .await
        .map_err(|e| e.to_string())?;
    let nodes = job.nodes().clone();
    let me = node_name(args.settings.node);
    let mut m = Materializer::new().with_name(format!("w3-{me}"));
    if let Some(r) = args.rate {
        m = m.with_batch_size(usize::try_from(r / 100).unwrap_or(1024).clamp(1, 1024));
    }
    if args.checkpoint_interval_ms > 0 {
        let mut cfg = CheckpointConfig::new(
            Duration::from_millis(args.checkpoint_interval_ms),
            &args.state_dir,
        );
        if let Some(sp) = &args.from_savepoint {
            cfg = cfg.restore_from(sp);
        }
        m = m.with_checkpoints(job.checkpoints(cfg).await.map_err(|e| e.to_string())?);
        if let Some(t) = job.copied_from_store() {
            eprintln!(
                "w3-node: restore point {} {COPIED}: {} files, {} bytes",
                job.restore_id(),
                t.files,
                t.bytes
            );
        }
    }
    std::fs::create_dir_all(&args.output).map_err(|e| format!("{}: {e}", args.output.display()))?;
    let g = graph(args, &nodes)?;
    let started = Instant::now();
    let (committed, h) = m.materialize(&g).map_err(|e| e.to_string())?;
    let start_ms = started.elapsed().as_secs_f64() * 1e3;
    let ck = h.checkpoints();
    if let Some(id) = ck.as_ref().and_then(|c| c.restored()) {
        eprintln!("w3-node: restored checkpoint {id} in {start_ms:.3} ms");
    }
    let result = committed.await;
    let waited = h.wait().await;
    let parts = result.map_err(|e| e.to_string())?;
    waited.map_err(|e| e.to_string())?;
    // Every node's edges to this one ended before its run did; wait for the others' runs too
    // before the endpoint closes, so no node loses an acknowledgement in flight.
    job.finish().await.map_err(|e| e.to_string())?;
    let events: u64 = h
        .metrics()
        .iter()
        .filter(|s| s.path.starts_with("file_csv"))
        .map(|s| s.elements_out)
        .sum();
    let opt = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    Ok(format!(
        "{{\"workload\":\"w3_node\",\"node\":{},\"epoch\":{},\"events\":{events},\"seconds\":{:.6},\"last_checkpoint\":{},\"restored_from\":{},\"start_ms\":{start_ms:.3},\"committed_parts\":{}}}",
        args.settings.node,
        args.settings.epoch,
        t0.elapsed().as_secs_f64(),
        opt(ck.as_ref().and_then(|c| c.latest_completed())),
        opt(ck.as_ref().and_then(|c| c.restored())),
        parts.len()
    ))
}

/// `w3-node`: runs one node to the job's end, prints its JSON line; 1 with the error.
pub fn main(args: &NodeArgs) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w3-node: runtime: {e}");
            return 1;
        }
    };
    match rt.block_on(run(args)) {
        Ok(line) => {
            println!("{line}");
            0
        }
        Err(e) => {
            eprintln!("w3-node {} failed: {e}", args.settings.node);
            1
        }
    }
}
