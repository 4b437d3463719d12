//! The exchange between the nodes of one job, three nodes in one process over the in-memory
//! transport: every element reaches its owner exactly once, in each sender's order; with
//! checkpoints and the commit log, barriers cross the exchange and every node completes the
//! same checkpoints.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::commit::{CommitLog, RestorePoint, restore_point};
use weir_cluster::edge::EdgeConfig;
use weir_cluster::epoch::{Epoch, Fence, FencedStorage, MemoryEpochStore};
use weir_cluster::exchange::{JobNodes, exchange};
use weir_cluster::object_store::ObjectStore;
use weir_cluster::object_store::memory::InMemory;
use weir_cluster::object_store::path::Path as ObjPath;
use weir_cluster::transport::{MemoryNetwork, Transport};
use weir_engine::CheckpointConfig;
use weir_engine::prelude::*;
use weir_graph::{Keep, Sink, Source};
use weir_operators::prelude::*;

const NODES: usize = 3;

fn job_nodes(net: &Arc<MemoryNetwork>) -> Vec<JobNodes> {
    let names: Vec<String> = (0..NODES).map(|i| format!("n{i}")).collect();
    let transports: Vec<Arc<dyn Transport>> = names
        .iter()
        .map(|n| net.node(n) as Arc<dyn Transport>)
        .collect();
    (0..NODES)
        .map(|i| JobNodes {
            transport: Arc::clone(&transports[i]),
            node: i,
            names: names.clone(),
            config: EdgeConfig {
                window_rows: 64,
                window_bytes: 1 << 16,
            },
        })
        .collect()
}

/// One job's shared commit log (in memory, attempt 1) and its nodes' checkpoint folders.
struct Committed {
    store: Arc<dyn ObjectStore>,
    job: ObjPath,
    fence: Fence,
    root: std::path::PathBuf,
}

impl Committed {
    fn new(name: &str) -> Self {
        let fence = FencedStorage::new(Arc::new(MemoryEpochStore::new()))
            .begin(Epoch(1))
            .unwrap();
        let root = std::env::temp_dir().join(format!("weir-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        Self {
            store: Arc::new(InMemory::new()),
            job: ObjPath::from(name),
            fence,
            root,
        }
    }

    /// Node `node`'s materializer: batches of `batch`, a checkpoint every `interval`, each
    /// complete once every node wrote it.
    fn materializer(&self, node: usize, batch: usize, interval: Duration) -> Materializer {
        let log = CommitLog::new(
            Arc::clone(&self.store),
            &self.job,
            node,
            NODES,
            self.fence.clone(),
        );
        Materializer::new().with_batch_size(batch).with_checkpoints(
            CheckpointConfig::new(interval, self.root.join(format!("n{node}")))
                .with_commit(Arc::new(log)),
        )
    }
}

/// Node `i`'s input: (sender, sequence, key) for every third sequence number.
fn input(i: usize, n: u64) -> Vec<(usize, u64, u32)> {
    (0..n)
        .filter(|s| *s as usize % NODES == i)
        .map(|s| (i, s, (s * 7919 % 101) as u32))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_element_reaches_its_owner_exactly_once_in_each_senders_order() {
    let net = MemoryNetwork::new(8);
    let nodes = job_nodes(&net);
    let mut runs = Vec::new();
    for n in &nodes {
        let owners = n.clone();
        let flow = exchange(n, 7, move |e: &(usize, u64, u32)| owners.owner(&e.2)).unwrap();
        runs.push(
            Source::from_iter(input(n.node, 30_000))
                .via(flow)
                .to_mat(Sink::collect(), Keep::right)
                .run()
                .unwrap(),
        );
    }
    let mut got = Vec::new();
    for r in runs {
        got.push(
            tokio::time::timeout(Duration::from_secs(60), r)
                .await
                .unwrap()
                .unwrap(),
        );
    }
    let all: Vec<(usize, u64, u32)> = (0..NODES).flat_map(|i| input(i, 30_000)).collect();
    for (j, out) in got.iter().enumerate() {
        // Exactly the elements node j owns ...
        let mut want: Vec<_> = all
            .iter()
            .filter(|e| nodes[j].owner(&e.2) == j)
            .copied()
            .collect();
        let mut have = out.clone();
        want.sort();
        have.sort();
        assert_eq!(have, want, "node {j}");
        // ... each sender's in the order it sent them.
        let mut by_sender: BTreeMap<usize, Vec<u64>> = BTreeMap::new();
        for e in out {
            by_sender.entry(e.0).or_default().push(e.1);
        }
        for (s, seqs) in by_sender {
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "node {j} from {s}");
        }
    }
    // Every key has one owner, and the owners spread over the nodes.
    assert!(got.iter().all(|o| !o.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barriers_cross_the_exchange_and_every_node_completes_the_same_checkpoints() {
    let net = MemoryNetwork::new(8);
    let nodes = job_nodes(&net);
    let c = Committed::new("exchange-ck");
    let mut runs = Vec::new();
    for n in &nodes {
        let owners = n.clone();
        let flow = exchange(n, 8, move |e: &(usize, u64, u32)| owners.owner(&e.2)).unwrap();
        // Batches of 10 at the throttle's rate: a barrier waits behind one, not the input.
        let m = c.materializer(n.node, 10, Duration::from_millis(20));
        // About 1 s of input per node: several checkpoints while it flows.
        let g = Source::from_iter(input(n.node, 3_000))
            .throttle(10, Duration::from_millis(10), 10)
            .via(flow)
            .to_mat(Sink::collect(), Keep::right);
        runs.push(m.materialize(&g).unwrap());
    }
    let (mut completed, mut failed) = (Vec::new(), Vec::new());
    for (out, h) in runs {
        let out = tokio::time::timeout(Duration::from_secs(60), out)
            .await
            .unwrap()
            .unwrap();
        h.wait().await.unwrap();
        let ck = h.checkpoints().unwrap();
        failed.push(ck.failed());
        completed.push(
            ck.history()
                .iter()
                .filter(|r| r.status == weir_engine::checkpoint::CheckpointStatus::Completed)
                .map(|r| r.id)
                .collect::<Vec<_>>(),
        );
        assert!(!out.is_empty());
    }
    // The same checkpoints completed on every node (each only once all three wrote it); only
    // each node's last one (its final state, numbered by when its run ended) may differ.
    let cut = completed
        .iter()
        .filter_map(|c| c.iter().max().copied())
        .min()
        .unwrap();
    let before = |c: &Vec<u64>| {
        c.iter()
            .filter(|id| **id < cut)
            .copied()
            .collect::<Vec<_>>()
    };
    assert!(before(&completed[0]).len() >= 3, "{completed:?}");
    for c in &completed[1..] {
        assert_eq!(before(c), before(&completed[0]), "{completed:?}");
    }
    // A checkpoint a stage declined on one node failed on every node.
    for f in &failed[1..] {
        assert_eq!(before(f), before(&failed[0]), "{failed:?}");
    }
    // The newest checkpoint every node wrote is the restore point (the collecting sink does
    // not wait for a final checkpoint).
    let newest = *completed.iter().flat_map(|c| c.iter()).max().unwrap();
    assert_eq!(
        restore_point(&c.store, &c.job, NODES).await.unwrap(),
        RestorePoint::Checkpoint(newest)
    );
    let _ = std::fs::remove_dir_all(&c.root);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_junction_declines_a_checkpoint_under_full_load() {
    let net = MemoryNetwork::new(8);
    let nodes = job_nodes(&net);
    let c = Committed::new("exchange-load");
    let mut runs = Vec::new();
    for n in &nodes {
        let owners = n.clone();
        let flow = exchange(n, 9, move |e: &(usize, u64, u32)| owners.owner(&e.2)).unwrap();
        let m = c.materializer(n.node, 16, Duration::from_millis(5));
        // As fast as the nodes go, with a keyed stage after the exchange.
        let g = Source::from_iter(input(n.node, 600_000))
            .via(flow)
            .key_by(|e: &(usize, u64, u32)| e.2)
            .checkpointed()
            .count()
            .to_mat(Sink::collect(), Keep::right);
        runs.push(m.materialize(&g).unwrap());
    }
    let (mut failed, mut completed) = (Vec::new(), Vec::new());
    let mut total = 0;
    for (out, h) in runs {
        let out = tokio::time::timeout(Duration::from_secs(120), out)
            .await
            .unwrap()
            .unwrap();
        h.wait().await.unwrap();
        let ck = h.checkpoints().unwrap();
        failed.push(ck.failed());
        completed.push(ck.latest_completed());
        total += out.iter().map(|(_, c)| *c).sum::<u64>();
    }
    assert_eq!(total, 600_000);
    assert!(failed.iter().all(|f| f.is_empty()), "{failed:?}");
    assert!(
        completed.iter().all(|c| c.is_some_and(|id| id >= 3)),
        "{completed:?}"
    );
    let _ = std::fs::remove_dir_all(&c.root);
}

#[test]
fn the_stages_after_an_exchange_have_the_same_ids_on_every_node() {
    let net = MemoryNetwork::new(8);
    let nodes = job_nodes(&net);
    // Each node's graph: its source, the exchange, a map, a keyed count: only what feeds the
    // exchange's merge differs by node (this node's partition output, the others' edges).
    let after: Vec<Vec<(String, weir_graph::StageId)>> = nodes
        .iter()
        .map(|n| {
            let owners = n.clone();
            let g = Source::from_iter(input(n.node, 10))
                .via(exchange(n, 3, move |e: &(usize, u64, u32)| owners.owner(&e.2)).unwrap())
                .map(|e| e.2)
                .named("after")
                .to_mat(Sink::collect(), Keep::right);
            let m = g.module();
            m.nodes
                .iter()
                .zip(m.stage_ids())
                .filter(|(nd, _)| matches!(nd.display_name(), "after" | "collect" | "merge"))
                .map(|(nd, id)| (nd.display_name().to_owned(), id))
                .collect()
        })
        .collect();
    assert_eq!(after[0].len(), 3, "{:?}", after[0]);
    assert!(
        after[0]
            .iter()
            .any(|(name, id)| name == "merge"
                && *id == weir_graph::StageId::of_uid("weir-exchange-3")),
        "{:?}",
        after[0]
    );
    assert_eq!(after[1], after[0]);
    assert_eq!(after[2], after[0]);
}
