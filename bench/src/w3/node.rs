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
//! The cluster directory holds `certs/` (the cluster CA and node certificates), `commit/`
//! (the commit log, an object store folder), `fence/` (the attempt record: a node of an
//! older attempt cannot record) and `addrs/eEPOCH/` (where each node of an attempt serves,
//! and which finished).

use super::events::Event;
use super::job::{Output, decode, encode, sums, timestamps};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir::engine::CheckpointConfig;
use weir::operators::file::{CsvOptions, FileSink, FileSource, Files};
use weir::operators::time::Timestamped;
use weir::prelude::*;
use weir_cluster::commit::{CommitLog, local_store, restore_point};
use weir_cluster::edge::EdgeConfig;
use weir_cluster::epoch::{Epoch, FencedStorage, FileEpochStore};
use weir_cluster::exchange::{JobNodes, exchange};
use weir_cluster::object_store::ObjectStore;
use weir_cluster::object_store::path::Path as ObjPath;
use weir_cluster::tls::NodeIdentity;
use weir_cluster::transport::{QuicConfig, QuicTransport, Transport};

/// The settings of one node.
#[derive(Debug, Clone)]
pub struct NodeArgs {
    /// This node's part of the events.
    pub input: PathBuf,
    /// This node's part files.
    pub output: PathBuf,
    /// This node's checkpoints.
    pub state_dir: PathBuf,
    /// The cluster directory (certificates, commit log, attempt record, addresses).
    pub cluster_dir: PathBuf,
    /// This node's index.
    pub node: usize,
    /// How many nodes run the job.
    pub nodes: usize,
    /// The attempt.
    pub epoch: u64,
    /// Time between checkpoints.
    pub checkpoint_interval_ms: u64,
    /// Events per second this node's source is throttled to.
    pub rate: Option<u64>,
}

/// Node `i`'s name (its certificate's and the transport's).
pub fn node_name(i: usize) -> String {
    format!("node-{i}")
}

/// The folder where the nodes of attempt `epoch` say where they serve.
pub fn addrs_dir(cluster: &Path, epoch: u64) -> PathBuf {
    cluster.join("addrs").join(format!("e{epoch:010}"))
}

/// The job's name in the commit log.
pub fn job_path() -> ObjPath {
    ObjPath::from("w3")
}

/// The commit log's store: `commit/` in the cluster directory.
pub fn commit_store(cluster: &Path) -> Result<Arc<dyn ObjectStore>, String> {
    local_store(&cluster.join("commit")).map_err(|e| e.to_string())
}

/// Writes `text` to `path` atomically.
fn publish(path: &Path, text: &str) -> Result<(), String> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Waits until every node of the attempt wrote `name-nNODE` in `dir`; their contents.
async fn rendezvous(
    dir: &Path,
    name: &str,
    nodes: usize,
    limit: Duration,
) -> Result<Vec<String>, String> {
    let until = Instant::now() + limit;
    loop {
        let got: Vec<Option<String>> = (0..nodes)
            .map(|n| std::fs::read_to_string(dir.join(format!("{name}-n{n}"))).ok())
            .collect();
        if got.iter().all(Option::is_some) {
            return Ok(got.into_iter().flatten().collect());
        }
        if Instant::now() > until {
            let missing: Vec<usize> = (0..nodes).filter(|n| got[*n].is_none()).collect();
            return Err(format!(
                "nodes {missing:?} did not report {name} within {limit:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// This node's graph: its events through the exchange into the windows and its part files.
fn graph(
    args: &NodeArgs,
    nodes: &JobNodes,
) -> Result<RunnableGraph<SinkFuture<Vec<PathBuf>>>, String> {
    let src = FileSource::new(Files::path(&args.input))
        .csv(CsvOptions::default(), decode)
        .uid("w3-source");
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

async fn run(args: &NodeArgs) -> Result<String, String> {
    let t0 = Instant::now();
    let fences = FencedStorage::new(Arc::new(
        FileEpochStore::in_dir(args.cluster_dir.join("fence")).map_err(|e| e.to_string())?,
    ));
    // `w3-job --nodes` started the attempt; a node of an older one is refused here.
    let fence = fences.fence(Epoch(args.epoch));
    fence.check("node start").map_err(|e| e.to_string())?;
    let me = node_name(args.node);
    let identity =
        NodeIdentity::load(&args.cluster_dir.join("certs"), &me).map_err(|e| e.to_string())?;
    let mut cfg = QuicConfig::new(identity, ([127, 0, 0, 1], 0).into());
    cfg.epoch = args.epoch;
    let quic = QuicTransport::bind(cfg).map_err(|e| e.to_string())?;
    let addrs = addrs_dir(&args.cluster_dir, args.epoch);
    std::fs::create_dir_all(&addrs).map_err(|e| format!("{}: {e}", addrs.display()))?;
    let addr = quic.local_addr().map_err(|e| e.to_string())?;
    publish(
        &addrs.join(format!("addr-n{}", args.node)),
        &addr.to_string(),
    )?;
    let peers = rendezvous(&addrs, "addr", args.nodes, Duration::from_secs(60)).await?;
    for (i, a) in peers.iter().enumerate() {
        let a = a
            .trim()
            .parse()
            .map_err(|e| format!("node {i}'s address {a:?}: {e}"))?;
        quic.add_peer(&node_name(i), a);
    }
    let store = commit_store(&args.cluster_dir)?;
    let from = restore_point(&store, &job_path(), args.nodes)
        .await
        .map_err(|e| e.to_string())?;
    let restore = from.for_node(args.node);
    let nodes = JobNodes {
        transport: Arc::clone(&quic) as Arc<dyn Transport>,
        node: args.node,
        names: (0..args.nodes).map(node_name).collect(),
        config: EdgeConfig::default(),
    };
    let mut m = Materializer::new().with_name(format!("w3-{me}"));
    if let Some(r) = args.rate {
        m = m.with_batch_size(usize::try_from(r / 100).unwrap_or(1024).clamp(1, 1024));
    }
    if args.checkpoint_interval_ms > 0 {
        let log = CommitLog::new(store, &job_path(), args.node, args.nodes, fence);
        m = m.with_checkpoints(
            CheckpointConfig::new(
                Duration::from_millis(args.checkpoint_interval_ms),
                &args.state_dir,
            )
            .with_commit(Arc::new(log))
            .discard_after(restore),
        );
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
    publish(&addrs.join(format!("done-n{}", args.node)), "")?;
    rendezvous(&addrs, "done", args.nodes, Duration::from_secs(30)).await?;
    quic.close();
    let events: u64 = h
        .metrics()
        .iter()
        .filter(|s| s.path.starts_with("file_csv"))
        .map(|s| s.elements_out)
        .sum();
    let opt = |v: Option<u64>| v.map_or_else(|| "null".to_owned(), |v| v.to_string());
    Ok(format!(
        "{{\"workload\":\"w3_node\",\"node\":{},\"epoch\":{},\"events\":{events},\"seconds\":{:.6},\"last_checkpoint\":{},\"restored_from\":{},\"start_ms\":{start_ms:.3},\"committed_parts\":{}}}",
        args.node,
        args.epoch,
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
            eprintln!("w3-node {} failed: {e}", args.node);
            1
        }
    }
}
