//! Replicators driven over the cluster transport ([`ReplicatorNode`]): three nodes on the
//! memory transport converge by gossiped deltas, a write sends its delta and not the state,
//! the consistency levels complete or time out as documented while a node is down and again
//! after it restarts, a garbage payload on a replication stream is refused, and three nodes
//! converge over QUIC with mutual TLS on loopback.

use std::sync::Arc;
use std::time::Duration;
use weir_cluster::crdt::{
    Consistency, Crdt, NetConfig, ORSet, PNCounter, ReadStatus, ReplicaId, Replicator,
    ReplicatorHandle, ReplicatorNode, WriteStatus, to_bytes,
};
use weir_cluster::frame::Body;
use weir_cluster::tls::{NodeIdentity, make_ca, make_node_cert};
use weir_cluster::transport::{MemoryNetwork, QuicConfig, QuicTransport, Transport};

const NAMES: [&str; 3] = ["n1", "n2", "n3"];

/// Replica `i` (1-based) and its node name.
fn ids() -> Vec<(ReplicaId, String)> {
    (1..=3u64)
        .map(|i| (ReplicaId(i), NAMES[i as usize - 1].to_owned()))
        .collect()
}

fn start<D: Crdt + Sync>(i: u64, t: Arc<dyn Transport>, tick: Duration) -> ReplicatorNode<D> {
    let handle = ReplicatorHandle::new(Replicator::new(ReplicaId(i), []));
    let mut cfg = NetConfig::new(ids());
    cfg.tick = tick;
    ReplicatorNode::start(handle, t, cfg)
}

fn memory_nodes<D: Crdt + Sync>(tick: Duration) -> (Arc<MemoryNetwork>, Vec<ReplicatorNode<D>>) {
    let net = MemoryNetwork::new(16);
    let nodes = (1..=3)
        .map(|i| start(i, net.node(NAMES[i as usize - 1]), tick))
        .collect();
    (net, nodes)
}

/// Waits until `f` holds (30 s at most).
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let wait = async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), wait)
        .await
        .is_err()
    {
        panic!("timed out waiting for {what}");
    }
}

fn value(n: &ReplicatorNode<PNCounter>, key: &str) -> Option<i128> {
    n.get(key).map(|c| c.value())
}

const LONG: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_by_gossip_over_the_memory_transport() {
    let (_net, nodes) = memory_nodes::<PNCounter>(Duration::from_millis(10));
    // Each node counts its own: local writes are done at once and spread on later ticks.
    for (i, n) in nodes.iter().enumerate() {
        for _ in 0..100 {
            let s = n
                .update("hits", Consistency::Local, LONG, |c, w| {
                    c.add(w.replica, i as i64 + 1)
                })
                .await
                .unwrap();
            assert_eq!(s, WriteStatus::Done);
        }
    }
    eventually("convergence", || {
        nodes.iter().all(|n| value(n, "hits") == Some(600))
    })
    .await;
    for n in &nodes {
        assert_eq!(value(n, "hits"), Some(100 + 200 + 300));
        assert_eq!(n.stats().refused(), 0);
        assert_eq!(n.stats().opened(), 2, "one stream to each peer");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_sends_its_delta_not_the_state() {
    // No gossip within the test: only the writes' own messages travel.
    let (_net, nodes) = memory_nodes::<ORSet<String>>(Duration::from_secs(3600));
    // The first tick of each node sends one digest (to its first peer), which an empty
    // replica does not answer: wait for those three, then nothing else moves.
    eventually("the first ticks", || {
        nodes.iter().all(|n| n.stats().ticks() == 1)
            && nodes.iter().map(|n| n.stats().received()).sum::<u64>() == 3
    })
    .await;
    assert_eq!(nodes.iter().map(|n| n.stats().sent()).sum::<u64>(), 3);
    let many: Vec<String> = (0..500).map(|i| format!("element-{i:04}")).collect();
    let s = nodes[0]
        .update("set", Consistency::All, LONG, |s, w| {
            let mut d = ORSet::new();
            for x in &many {
                d.merge(&s.add(w.replica, x.clone()));
            }
            Ok(d)
        })
        .await
        .unwrap();
    assert_eq!(s, WriteStatus::Done);
    let full = to_bytes(&nodes[0].get("set").unwrap(), "set")
        .unwrap()
        .len();
    let (before, msgs) = (nodes[0].stats().sent_bytes(), nodes[0].stats().sent());
    let s = nodes[0]
        .update("set", Consistency::All, LONG, |s, w| {
            Ok(s.add(w.replica, "one more".to_owned()))
        })
        .await
        .unwrap();
    assert_eq!(s, WriteStatus::Done);
    let delta_bytes = nodes[0].stats().sent_bytes() - before;
    assert_eq!(
        nodes[0].stats().sent() - msgs,
        2,
        "one message to each peer"
    );
    // Two peers, one delta message each: a few dozen bytes against a state of kilobytes.
    assert!(full > 5000, "{full}");
    assert!(delta_bytes < 200, "sent {delta_bytes} bytes, state {full}");
    let want: Vec<String> = many
        .iter()
        .cloned()
        .chain(["one more".to_owned()])
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    for n in &nodes {
        let got: Vec<String> = n.get("set").unwrap().iter().cloned().collect();
        assert_eq!(got, want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistency_levels_with_a_node_down_and_after_it_restarts() {
    let tick = Duration::from_millis(10);
    let (net, mut nodes) = memory_nodes::<PNCounter>(tick);
    let down = nodes.pop().unwrap();
    down.stop();
    let (n1, n2) = (&nodes[0], &nodes[1]);
    let add = |k: i64| move |c: &mut PNCounter, w: weir_cluster::crdt::Writer| c.add(w.replica, k);

    // Local: done at once, whatever the peers.
    assert_eq!(
        n1.update("c", Consistency::Local, LONG, add(1))
            .await
            .unwrap(),
        WriteStatus::Done
    );
    // Majority (2 of 3): n2 acks.
    assert_eq!(
        n1.update("c", Consistency::Majority, LONG, add(2))
            .await
            .unwrap(),
        WriteStatus::Done
    );
    // All: n3 never acks; the write times out and stays merged locally.
    assert_eq!(
        n1.update("c", Consistency::All, Duration::from_millis(200), add(4))
            .await
            .unwrap(),
        WriteStatus::TimedOut { acks: 2, needed: 3 }
    );
    assert_eq!(value(n1, "c"), Some(7));
    // A majority read on n2 merges n1's state, the local write included.
    let ReadStatus::Done(Some(c)) = n2.read("c", Consistency::Majority, LONG).await.unwrap() else {
        panic!("majority read not done");
    };
    assert_eq!(c.value(), 7);
    assert_eq!(value(n2, "c"), Some(7), "read repair");
    assert_eq!(
        n2.read("c", Consistency::All, Duration::from_millis(200))
            .await
            .unwrap(),
        ReadStatus::TimedOut {
            replies: 2,
            needed: 3
        }
    );

    // n3 comes back empty: gossip brings it up to date, and All completes again.
    let n3: ReplicatorNode<PNCounter> = start(3, net.node("n3"), tick);
    eventually("n3 caught up", || value(&n3, "c") == Some(7)).await;
    assert_eq!(
        n1.update("c", Consistency::All, LONG, add(8))
            .await
            .unwrap(),
        WriteStatus::Done
    );
    assert_eq!(value(&n3, "c"), Some(15));
    let ReadStatus::Done(Some(c)) = n3.read("c", Consistency::All, LONG).await.unwrap() else {
        panic!("all read not done");
    };
    assert_eq!(c.value(), 15);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_garbage_payload_on_a_replication_stream_is_refused() {
    let net = MemoryNetwork::new(16);
    let n1: ReplicatorNode<PNCounter> = start(1, net.node("n1"), Duration::from_millis(10));
    // Something on n2 opens the stream replica 2 sends on and writes bytes that are no message.
    let mut ch = net
        .node("n2")
        .open("n1", NetConfig::new(vec![]).edge_base + 2)
        .await
        .unwrap();
    ch.tx
        .send(Body::Data {
            rows: 1,
            payload: vec![0xff; 9],
        })
        .await
        .unwrap();
    eventually("refusal", || n1.stats().refused() == 1).await;
    assert_eq!(n1.stats().received(), 0);
    assert_eq!(n1.get("c"), None);
}

fn quic_node(ca: &weir_cluster::tls::ClusterCa, name: &str) -> Arc<QuicTransport> {
    let cert = make_node_cert(ca, name, &[]).unwrap();
    let id = NodeIdentity::from_parts(ca, &cert);
    QuicTransport::bind(QuicConfig::new(id, "127.0.0.1:0".parse().unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_converge_over_quic_with_mutual_tls() {
    let ca = make_ca("replication").unwrap();
    let ts: Vec<Arc<QuicTransport>> = NAMES.iter().map(|n| quic_node(&ca, n)).collect();
    for a in &ts {
        for (b, name) in ts.iter().zip(NAMES) {
            a.add_peer(name, b.local_addr().unwrap());
        }
    }
    let nodes: Vec<ReplicatorNode<PNCounter>> = ts
        .iter()
        .enumerate()
        .map(|(i, t)| start(i as u64 + 1, t.clone(), Duration::from_millis(10)))
        .collect();
    for (i, n) in nodes.iter().enumerate() {
        let s = n
            .update("c", Consistency::Majority, LONG, |c, w| {
                c.add(w.replica, 10 * (i as i64 + 1))
            })
            .await
            .unwrap();
        assert_eq!(s, WriteStatus::Done);
        n.update("c", Consistency::Local, LONG, |c, w| c.add(w.replica, -1))
            .await
            .unwrap();
    }
    eventually("convergence over QUIC", || {
        nodes.iter().all(|n| value(n, "c") == Some(57))
    })
    .await;
    let ReadStatus::Done(Some(c)) = nodes[2].read("c", Consistency::All, LONG).await.unwrap()
    else {
        panic!("all read not done");
    };
    assert_eq!(c.value(), 10 + 20 + 30 - 3);
    for t in &ts {
        assert_eq!(t.stats().handshakes_refused(), 0);
        assert_eq!(t.stats().frames_refused(), 0);
    }
}
