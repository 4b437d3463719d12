//! Cluster metrics and adaptive routing: every node learns every node's smoothed load through
//! the replicated map, a group router over refs on three nodes splits messages exactly by the
//! nodes' capacities, a node getting busy loses weight as its average moves, a node that stops
//! publishing goes stale (its routees weigh the mean of the others), and each node's own load
//! is on `/metrics`.

mod common;

use common::eventually;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_cluster::load::{ClusterMetrics, LoadConfig, RawLoad};
use weir_cluster::remote::{ActorNode, RemoteConfig};
use weir_cluster::transport::{MemoryNetwork, Transport};
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{
    Actor, ActorRef, ActorRegistry, Ctx, Props, RouteeWeights, Routing, group_router,
};
use weir_operators::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

/// A fast configuration: a sample every 20 ms, gossip every 10 ms.
fn config(nodes: &[String], me: usize, half_life: Duration, stale: Duration) -> LoadConfig {
    let mut cfg = LoadConfig::new(nodes.to_vec(), me);
    cfg.interval = Duration::from_millis(20);
    cfg.half_life = half_life;
    cfg.stale_after = stale;
    cfg.gossip = Duration::from_millis(10);
    cfg
}

/// A sampler reporting only a CPU share, read from `cpu` (thousandths) at each sample.
fn cpu_of(cpu: &Arc<AtomicU32>) -> impl FnMut() -> RawLoad + Send + 'static {
    let cpu = Arc::clone(cpu);
    move || RawLoad {
        cpu: Some(f64::from(cpu.load(Ordering::SeqCst)) / 1000.0),
        load_per_core: None,
        mem_available: None,
        cores: 2,
    }
}

fn names(prefix: &str) -> Vec<String> {
    (1..=3).map(|i| format!("{prefix}{i}")).collect()
}

fn map(pairs: &[(&str, u32)]) -> BTreeMap<String, u32> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Records every number it gets.
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Job(u64);

impl Actor for Recorder {
    type Msg = Job;
    type Out = ();
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, msg: Job) -> Result<(), StageError> {
        self.seen.lock().unwrap().push(msg.0);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_router_over_three_nodes_splits_messages_by_their_capacities() {
    let net = MemoryNetwork::new(4);
    let names = names("a");
    let transports: Vec<Arc<dyn Transport>> = names
        .iter()
        .map(|n| net.node(n) as Arc<dyn Transport>)
        .collect();
    // Busy, idle, half busy.
    let cpus: Vec<Arc<AtomicU32>> = [900, 100, 500]
        .into_iter()
        .map(|c| Arc::new(AtomicU32::new(c)))
        .collect();
    let metrics: Vec<ClusterMetrics> = (0..3)
        .map(|i| {
            ClusterMetrics::start(
                config(&names, i, Duration::from_millis(40), Duration::from_secs(5)),
                Arc::clone(&transports[i]),
                cpu_of(&cpus[i]),
            )
        })
        .collect();
    let want = map(&[("a1", 10), ("a2", 90), ("a3", 50)]);
    eventually("every node knows every node's weight", || {
        metrics.iter().all(|m| m.weights() == want)
    })
    .await;
    let loads = metrics[0].loads();
    assert_eq!(loads["a2"].cpu_permille, Some(100));
    assert_eq!(loads["a2"].cores, 2);
    assert!(loads["a2"].samples > 0);

    // A recorder on every node; node a1 routes to its own and, through remote refs, to the
    // other two.
    let mut seen = Vec::new();
    let mut runs = Vec::new();
    let mut actor_nodes = Vec::new();
    let mut refs: Vec<ActorRef<Job>> = Vec::new();
    let mut keep = Vec::new();
    for (i, me) in names.iter().enumerate() {
        let registry = Arc::new(ActorRegistry::new());
        let m = Materializer::new().with_service(Arc::clone(&registry));
        let mut cfg = RemoteConfig::new(me, names.clone());
        cfg.reconnect = Duration::from_millis(10);
        let node = ActorNode::start(Arc::clone(&transports[i]), registry, cfg).unwrap();
        let s = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&s);
        let g = Source::actor(
            Props::new(move || Recorder {
                seen: Arc::clone(&s2),
            })
            .register_as("/svc/work"),
        )
        .to_mat(Sink::ignore(), Keep::left);
        let (local, h) = m.materialize(&g).unwrap();
        node.expose::<Job>("/svc/work").unwrap();
        if i == 0 {
            refs.push(local.clone());
        }
        // The actor lives while a ref to it is held (the registry holds none).
        keep.push(local);
        seen.push(s);
        runs.push(h);
        actor_nodes.push(node);
    }
    for peer in &names[1..] {
        refs.push(
            actor_nodes[0]
                .remote(peer, "/svc/work")
                .tells::<Job>()
                .unwrap(),
        );
    }
    let weights = metrics[0].weights_for(names.clone());
    assert_eq!(weights.weights(3), vec![10, 90, 50]);
    let done = Source::from_iter((0..300u64).map(Job))
        .run_with(group_router(
            refs,
            Routing::weighted(weights as Arc<dyn RouteeWeights>),
        ))
        .unwrap();
    tokio::time::timeout(WAIT, done).await.unwrap().unwrap();
    eventually("every message arrived", || {
        seen.iter().map(|s| s.lock().unwrap().len()).sum::<usize>() == 300
    })
    .await;
    let counts: Vec<usize> = seen.iter().map(|s| s.lock().unwrap().len()).collect();
    // Two whole cycles of 10 + 90 + 50.
    assert_eq!(counts, vec![20, 180, 100]);
    let mut all: Vec<u64> = seen
        .iter()
        .flat_map(|s| s.lock().unwrap().clone())
        .collect();
    all.sort_unstable();
    assert_eq!(all, (0..300).collect::<Vec<u64>>());
    // Each node's share arrived in the order it was sent.
    for s in &seen {
        let v = s.lock().unwrap().clone();
        assert!(v.windows(2).all(|w| w[0] < w[1]), "{v:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_node_loses_weight_as_its_average_moves_and_a_stopped_one_goes_stale() {
    let net = MemoryNetwork::new(4);
    let names = names("b");
    let cpus: Vec<Arc<AtomicU32>> = (0..3).map(|_| Arc::new(AtomicU32::new(200))).collect();
    let mut metrics: Vec<ClusterMetrics> = (0..3)
        .map(|i| {
            ClusterMetrics::start(
                config(
                    &names,
                    i,
                    Duration::from_millis(60),
                    Duration::from_millis(300),
                ),
                net.node(&names[i]),
                cpu_of(&cpus[i]),
            )
        })
        .collect();
    eventually("equal weights", || {
        metrics[0].weights() == map(&[("b1", 80), ("b2", 80), ("b3", 80)])
    })
    .await;
    let weights = metrics[0].weights_for(names.clone());
    let before = weights.generation();
    assert_eq!(weights.weights(3), vec![80, 80, 80]);

    // b2 gets busy: its average climbs, so its weight falls step by step to the floor of 1.
    cpus[1].store(1000, Ordering::SeqCst);
    let seen_b2 = Arc::new(Mutex::new(Vec::new()));
    eventually("b2 saturated", || {
        let w = metrics[0].weights().get("b2").copied().unwrap_or(0);
        seen_b2.lock().unwrap().push(w);
        w == 1
    })
    .await;
    let steps = seen_b2.lock().unwrap().clone();
    assert!(steps.windows(2).all(|w| w[1] <= w[0]), "{steps:?}");
    assert!(
        steps.iter().any(|w| *w > 1 && *w < 80),
        "intermediate weights {steps:?}"
    );
    assert!(weights.generation() > before);
    assert_eq!(weights.weights(3), vec![80, 1, 80]);

    // b3 stops publishing: it drops out of the view, and a routee on it weighs the mean.
    drop(metrics.pop());
    eventually("b3 stale", || !metrics[0].loads().contains_key("b3")).await;
    assert_eq!(metrics[0].weights(), map(&[("b1", 80), ("b2", 1)]));
    assert_eq!(weights.weights(3), vec![80, 1, 40]);
    // And a routee list longer than the node list weighs the same mean for the extra ones.
    assert_eq!(weights.weights(4), vec![80, 1, 40, 40]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_node_publishes_its_own_load_on_metrics_until_it_stops() {
    let net = MemoryNetwork::new(4);
    let names = names("c");
    let cpu = Arc::new(AtomicU32::new(250));
    let m = ClusterMetrics::start(
        config(&names[..1], 0, Duration::ZERO, Duration::from_secs(5)),
        net.node(&names[0]),
        cpu_of(&cpu),
    );
    let value = |name: &str| -> Option<f64> {
        let text = weir_ops::prom::render(&[]);
        let head = format!("{name}{{node=\"c1\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&head))
            .map(|v| v.trim().parse::<f64>().expect("a number"))
    };
    eventually("the load on /metrics", || {
        value("weir_node_cpu_permille") == Some(250.0)
    })
    .await;
    assert_eq!(value("weir_node_capacity_percent"), Some(75.0));
    assert_eq!(value("weir_cluster_metrics_nodes"), Some(1.0));
    assert_eq!(value("weir_node_load_per_core_permille"), None);
    drop(m);
    assert_eq!(value("weir_node_cpu_permille"), None);
}
