//! One node's part of the cluster metrics: its sampling loop, its replica of every node's load
//! and the routing weights read from it.

use super::{Ewma, NodeLoad, Sampler, to_permille};
use crate::crdt::{Consistency, LWWMap, NetConfig, ReplicaId, ReplicatorHandle, ReplicatorNode};
use crate::frame::EdgeId;
use crate::metrics::{Published, gauge};
use crate::transport::Transport;
use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use weir_operators::actor::RouteeWeights;

/// The first edge of the load replication streams by default (node `i` sends on `base + i`).
pub const DEFAULT_LOAD_EDGE_BASE: EdgeId = (1 << 62) + (1 << 48);

/// The key of the replicated map of node loads.
pub const LOAD_KEY: &str = "weir-node-load";

/// The replicated state: each node's load under its name.
type Loads = LWWMap<String, NodeLoad>;

/// Settings of a [`ClusterMetrics`] node.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Every node's name, by index (the transport's peer names).
    pub nodes: Vec<String>,
    /// This node's index.
    pub me: usize,
    /// How often the node samples its load and publishes it.
    pub interval: Duration,
    /// The half-life of a sample's weight in the moving averages.
    pub half_life: Duration,
    /// A node whose load has not changed for this long (it stopped publishing: down, or cut
    /// off) no longer counts; its routees weigh what an unknown node does.
    pub stale_after: Duration,
    /// The gossip interval of the replicated map.
    pub gossip: Duration,
    /// Node `i` sends its replication messages on edge `edge_base + i`.
    pub edge_base: EdgeId,
}

impl LoadConfig {
    /// Node `me` of `nodes`: a sample every second, a 12 s half-life, stale after 10 s, gossip
    /// every 200 ms, edges from [`DEFAULT_LOAD_EDGE_BASE`].
    pub fn new(nodes: Vec<String>, me: usize) -> Self {
        Self {
            nodes,
            me,
            interval: Duration::from_secs(1),
            half_life: Duration::from_secs(12),
            stale_after: Duration::from_secs(10),
            gossip: Duration::from_millis(200),
            edge_base: DEFAULT_LOAD_EDGE_BASE,
        }
    }

    /// This node's name (empty when `me` is out of range).
    fn me_name(&self) -> String {
        self.nodes.get(self.me).cloned().unwrap_or_default()
    }
}

/// What the sampling loop shares with readers: the fresh loads and the weights from them.
#[derive(Debug, Default)]
struct Shared {
    view: RwLock<View>,
    generation: AtomicU64,
}

#[derive(Debug, Default, Clone, PartialEq)]
struct View {
    loads: BTreeMap<String, NodeLoad>,
    weights: BTreeMap<String, u32>,
}

impl Shared {
    fn read(&self) -> View {
        self.view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One node's cluster metrics: samples its load every interval into moving averages,
/// publishes them to every node through a replicated map over `transport`, and keeps the
/// loads of every node that still publishes. Stops when dropped.
pub struct ClusterMetrics {
    shared: Arc<Shared>,
    replica: ReplicatorNode<Loads>,
    task: JoinHandle<()>,
    _metrics: Published,
}

impl std::fmt::Debug for ClusterMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterMetrics")
            .field("loads", &self.shared.read().loads)
            .finish()
    }
}

impl Drop for ClusterMetrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The node's moving averages of its signals.
struct Averages {
    cpu: Ewma,
    load: Ewma,
    mem: Ewma,
    samples: u64,
}

impl Averages {
    fn new(cfg: &LoadConfig) -> Self {
        let e = Ewma::new(cfg.half_life, cfg.interval);
        Self {
            cpu: e,
            load: e,
            mem: e,
            samples: 0,
        }
    }

    fn add(&mut self, s: &super::RawLoad) -> NodeLoad {
        self.samples += 1;
        NodeLoad {
            cpu_permille: s
                .cpu
                .map(|x| to_permille(self.cpu.add(x)))
                .or_else(|| self.cpu.value().map(to_permille)),
            load_per_core_permille: s
                .load_per_core
                .map(|x| to_permille(self.load.add(x)))
                .or_else(|| self.load.value().map(to_permille)),
            mem_available_permille: s
                .mem_available
                .map(|x| to_permille(self.mem.add(x)))
                .or_else(|| self.mem.value().map(to_permille)),
            cores: s.cores,
            samples: self.samples,
        }
    }
}

impl ClusterMetrics {
    /// Starts node `cfg.me`'s metrics over `transport` (inside a tokio runtime), reading its
    /// load from `sampler`; its own load is published on `/metrics` (label `node`).
    pub fn start(cfg: LoadConfig, transport: Arc<dyn Transport>, sampler: impl Sampler) -> Self {
        let me = ReplicaId(cfg.me as u64);
        let peers: Vec<(ReplicaId, String)> = cfg
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| (ReplicaId(i as u64), n.clone()))
            .collect();
        let handle = ReplicatorHandle::new(crate::crdt::Replicator::new(
            me,
            peers.iter().map(|(id, _)| *id),
        ));
        let net = NetConfig {
            peers,
            edge_base: cfg.edge_base,
            tick: cfg.gossip,
            queue: 256,
        };
        let replica = ReplicatorNode::start(handle.clone(), transport, net);
        let shared = Arc::new(Shared::default());
        let metrics = {
            let shared = Arc::clone(&shared);
            let name = cfg.me_name();
            Published::new(vec![("node", cfg.me_name())], move || {
                let v = shared.read();
                let own = v.loads.get(&name).copied().unwrap_or_default();
                let mut s = vec![gauge(
                    "weir_cluster_metrics_nodes",
                    "Nodes whose load this node currently knows",
                    v.loads.len() as u64,
                )];
                let signals = [
                    (
                        "weir_node_cpu_permille",
                        "This node's machine CPU busy share (moving average, thousandths)",
                        own.cpu_permille,
                    ),
                    (
                        "weir_node_load_per_core_permille",
                        "This node's one-minute load average per core (moving average, thousandths)",
                        own.load_per_core_permille,
                    ),
                    (
                        "weir_node_mem_available_permille",
                        "This node's available memory share (moving average, thousandths)",
                        own.mem_available_permille,
                    ),
                ];
                for (name, help, v) in signals {
                    if let Some(v) = v {
                        s.push(gauge(name, help, u64::from(v)));
                    }
                }
                if let Some(w) = own.weight() {
                    s.push(gauge(
                        "weir_node_capacity_percent",
                        "This node's routing weight: what is left of it, in percent",
                        u64::from(w),
                    ));
                }
                s
            })
        };
        let task = tokio::spawn(sample_loop(cfg, handle, Arc::clone(&shared), sampler));
        Self {
            shared,
            replica,
            task,
            _metrics: metrics,
        }
    }

    /// The load of every node that still publishes, by name (this node's included once it
    /// sampled).
    pub fn loads(&self) -> BTreeMap<String, NodeLoad> {
        self.shared.read().loads
    }

    /// The routing weight of every node that still publishes and reports a capacity.
    pub fn weights(&self) -> BTreeMap<String, u32> {
        self.shared.read().weights
    }

    /// Changes whenever [`ClusterMetrics::weights`] changed.
    pub fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    /// Weights of routees living on `nodes` (routee `i` on node `nodes[i]`), for
    /// `Routing::weighted`: each routee weighs its node's capacity; one on a node whose load
    /// is not known (not yet heard of, or stale) weighs the mean of the known ones.
    pub fn weights_for(&self, nodes: Vec<String>) -> Arc<AdaptiveWeights> {
        Arc::new(AdaptiveWeights {
            shared: Arc::clone(&self.shared),
            nodes,
        })
    }

    /// The replication counters of the node's map.
    pub fn stats(&self) -> &crate::crdt::NetStats {
        self.replica.stats()
    }
}

/// Samples, publishes and refreshes the view every interval.
async fn sample_loop(
    cfg: LoadConfig,
    handle: ReplicatorHandle<Loads>,
    shared: Arc<Shared>,
    mut sampler: impl Sampler,
) {
    let me = cfg.me_name();
    let mut avg = Averages::new(&cfg);
    // When each node's published load last changed, on this node's clock (no clock is
    // compared across machines).
    let mut changed: HashMap<String, (NodeLoad, Instant)> = HashMap::new();
    let mut every = tokio::time::interval(cfg.interval.max(Duration::from_millis(1)));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let load = avg.add(&sampler.sample());
        let key = me.clone();
        if let Err(e) = handle.update(LOAD_KEY, Consistency::Local, 0, |m: &mut Loads, w| {
            Ok(m.put(w, key, load))
        }) {
            tracing::warn!(error = %e, "cannot publish this node's load");
        }
        let now = Instant::now();
        let all: Vec<(String, NodeLoad)> = handle.with(LOAD_KEY, |m| {
            m.map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
                .unwrap_or_default()
        });
        let mut view = View::default();
        for (node, l) in all {
            let seen = changed.entry(node.clone()).or_insert((l, now));
            if seen.0 != l {
                *seen = (l, now);
            }
            if node == me || now.duration_since(seen.1) < cfg.stale_after {
                if let Some(w) = l.weight() {
                    view.weights.insert(node.clone(), w);
                }
                view.loads.insert(node, l);
            }
        }
        let mut cur = shared.view.write().unwrap_or_else(PoisonError::into_inner);
        let reweighed = cur.weights != view.weights;
        *cur = view;
        drop(cur);
        if reweighed {
            shared.generation.fetch_add(1, Ordering::AcqRel);
        }
    }
}

/// Routee weights from the cluster metrics: routee `i` weighs the capacity of the node it
/// lives on (see [`ClusterMetrics::weights_for`]).
#[derive(Debug)]
pub struct AdaptiveWeights {
    shared: Arc<Shared>,
    nodes: Vec<String>,
}

impl AdaptiveWeights {
    /// The nodes the routees live on, by routee.
    pub fn nodes(&self) -> &[String] {
        &self.nodes
    }
}

impl RouteeWeights for AdaptiveWeights {
    fn generation(&self) -> u64 {
        self.shared.generation.load(Ordering::Acquire)
    }

    fn weights(&self, routees: usize) -> Vec<u32> {
        let w = self
            .shared
            .view
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .weights
            .clone();
        let known: Vec<u32> = self
            .nodes
            .iter()
            .take(routees)
            .filter_map(|n| w.get(n).copied())
            .collect();
        let unknown = if known.is_empty() {
            100
        } else {
            let sum: u64 = known.iter().map(|x| u64::from(*x)).sum();
            u32::try_from(sum / known.len() as u64)
                .unwrap_or(100)
                .max(1)
        };
        (0..routees)
            .map(|i| {
                self.nodes
                    .get(i)
                    .and_then(|n| w.get(n).copied())
                    .unwrap_or(unknown)
            })
            .collect()
    }
}
