//! Membership over foca on the simulated network and on UDP, and split-brain resolution under
//! simulated partitions.

use std::time::Duration;
use weir_cluster::membership::{
    MembershipConfig, MembershipEvent, NodeIdentity, Seeds, SimMember, UdpMembership,
};
use weir_cluster::sim::{Faults, NodeId, SimNet};
use weir_cluster::split_brain::{Decision, SplitBrainResolver, Strategy};

const SEC: Duration = Duration::from_secs(1);

fn cluster(
    seed: u64,
    n: u32,
    faults: Faults,
    sbr: Option<(Strategy, Duration)>,
) -> SimNet<SimMember> {
    let cfg = MembershipConfig::fast(n);
    let mut net = SimNet::new(seed, faults);
    for i in 0..n {
        let mut m = SimMember::new(
            NodeId(i),
            format!("node-{i}"),
            1_000 + u64::from(i),
            &[NodeId(0)],
            &cfg,
            seed ^ u64::from(i),
        );
        if let Some((strategy, stable)) = sbr {
            m = m.with_split_brain(SplitBrainResolver::new(strategy, stable));
        }
        net.add_node(m);
    }
    net
}

fn names(ids: &[u32]) -> Vec<String> {
    ids.iter().map(|i| format!("node-{i}")).collect()
}

fn up(net: &SimNet<SimMember>, id: u32) -> Vec<String> {
    let view = net.node(NodeId(id)).membership().view();
    view.up.iter().map(|m| m.name.clone()).collect()
}

fn down(net: &SimNet<SimMember>, id: u32) -> Vec<String> {
    let view = net.node(NodeId(id)).membership().view();
    view.down.iter().map(|m| m.name.clone()).collect()
}

fn decisions(net: &SimNet<SimMember>, id: u32) -> Vec<Decision> {
    net.node(NodeId(id))
        .events()
        .iter()
        .filter_map(|(_, e)| match e {
            MembershipEvent::SplitBrain(d) => Some(d.clone()),
            _ => None,
        })
        .collect()
}

fn downed_names(d: &Decision) -> Vec<String> {
    match d {
        Decision::Keep { downed } => downed.iter().map(|m| m.name.clone()).collect(),
        other => panic!("expected a keep, got {other:?}"),
    }
}

#[test]
fn every_node_joins_through_the_seed_and_sees_all_members_oldest_first() {
    let mut net = cluster(1, 5, Faults::NONE, None);
    net.run_for(5 * SEC);
    for i in 0..5 {
        assert_eq!(up(&net, i), names(&[0, 1, 2, 3, 4]), "node {i}");
        assert_eq!(down(&net, i), Vec::<String>::new());
    }
    let view = net.node(NodeId(3)).membership().view();
    assert_eq!(view.me.name, "node-3");
    assert_eq!(view.me.started_ms, 1_003);
    assert_eq!(view.oldest().map(|m| m.name.as_str()), Some("node-0"));
}

#[test]
fn a_crashed_member_is_declared_down_by_every_other() {
    let mut net = cluster(2, 4, Faults::NONE, None);
    net.run_for(3 * SEC);
    net.crash(NodeId(2));
    net.run_for(5 * SEC);
    for i in [0, 1, 3] {
        assert_eq!(up(&net, i), names(&[0, 1, 3]), "node {i}");
        assert_eq!(down(&net, i), names(&[2]), "node {i}");
        let downs: Vec<&NodeIdentity> = net
            .node(NodeId(i))
            .events()
            .iter()
            .filter_map(|(_, e)| match e {
                MembershipEvent::Down(m) => Some(m),
                _ => None,
            })
            .collect();
        assert_eq!(downs.len(), 1, "node {i}: {downs:?}");
        assert_eq!(downs[0].name, "node-2");
    }
}

#[test]
fn membership_converges_over_a_lossy_duplicating_jittery_network() {
    let faults = Faults {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(8),
        loss: 0.05,
        duplicate: 0.05,
        reorder: 0.05,
        reorder_delay: Duration::from_millis(30),
    };
    let mut net = cluster(3, 5, faults, None);
    net.run_for(10 * SEC);
    for i in 0..5 {
        assert_eq!(up(&net, i), names(&[0, 1, 2, 3, 4]), "node {i}");
    }
}

#[test]
fn one_seed_gives_the_same_membership_history() {
    let run = |seed| {
        let faults = Faults {
            jitter: Duration::from_millis(5),
            loss: 0.05,
            ..Faults::NONE
        };
        let mut net = cluster(seed, 4, faults, None);
        net.run_for(3 * SEC);
        net.partition(&[&[NodeId(3)]]);
        net.run_for(3 * SEC);
        net.heal();
        net.run_for(3 * SEC);
        let events: Vec<Vec<(Duration, MembershipEvent)>> =
            net.ids().map(|id| net.node(id).events().to_vec()).collect();
        (events, net.trace().to_vec())
    };
    let (events, trace) = run(9);
    assert!(events.iter().all(|e| e.len() >= 3), "{events:?}");
    assert_eq!((events, trace), run(9));
}

/// Partitions a 5-node cluster into `left` and the rest and checks who survives.
fn partitioned(strategy: Strategy, n: u32, left: &[u32]) -> SimNet<SimMember> {
    let mut net = cluster(4, n, Faults::NONE, Some((strategy, 2 * SEC)));
    net.run_for(3 * SEC);
    for i in 0..n {
        assert_eq!(
            up(&net, i).len(),
            n as usize,
            "node {i} joined before the cut"
        );
    }
    let side: Vec<NodeId> = left.iter().map(|i| NodeId(*i)).collect();
    net.partition(&[&side]);
    net.run_for(10 * SEC);
    net
}

fn assert_keeps(net: &SimNet<SimMember>, side: &[u32], lost: &[u32]) {
    for &i in side {
        let d = decisions(net, i);
        assert_eq!(d.len(), 1, "node {i}: {d:?}");
        assert_eq!(downed_names(&d[0]), names(lost), "node {i}");
        assert!(!net.node(NodeId(i)).membership().has_left());
        assert_eq!(up(net, i), names(side), "node {i}");
        assert_eq!(
            down(net, i),
            Vec::<String>::new(),
            "node {i} forgot the downed"
        );
    }
}

fn assert_downs_itself(net: &SimNet<SimMember>, side: &[u32]) {
    for &i in side {
        assert_eq!(decisions(net, i), vec![Decision::DownSelf], "node {i}");
        assert!(net.node(NodeId(i)).membership().has_left(), "node {i}");
    }
}

#[test]
fn keep_majority_keeps_the_larger_side_only() {
    let net = partitioned(Strategy::KeepMajority, 5, &[3, 4]);
    assert_keeps(&net, &[0, 1, 2], &[3, 4]);
    assert_downs_itself(&net, &[3, 4]);
}

#[test]
fn keep_majority_breaks_an_even_split_by_the_oldest_member() {
    let net = partitioned(Strategy::KeepMajority, 4, &[2, 3]);
    assert_keeps(&net, &[0, 1], &[2, 3]);
    assert_downs_itself(&net, &[2, 3]);
}

#[test]
fn keep_oldest_keeps_the_oldest_members_side_even_in_minority() {
    let net = partitioned(Strategy::KeepOldest, 5, &[0, 1]);
    assert_keeps(&net, &[0, 1], &[2, 3, 4]);
    assert_downs_itself(&net, &[2, 3, 4]);
}

#[test]
fn static_quorum_downs_both_sides_when_neither_has_it() {
    let net = partitioned(Strategy::StaticQuorum(3), 4, &[2, 3]);
    assert_downs_itself(&net, &[0, 1, 2, 3]);
    let net = partitioned(Strategy::StaticQuorum(3), 4, &[3]);
    assert_keeps(&net, &[0, 1, 2], &[3]);
    assert_downs_itself(&net, &[3]);
}

#[test]
fn a_flapping_partition_within_the_stable_after_delay_decides_nothing() {
    let mut net = cluster(5, 5, Faults::NONE, Some((Strategy::KeepMajority, 4 * SEC)));
    net.run_for(3 * SEC);
    for _ in 0..5 {
        net.partition(&[&[NodeId(3), NodeId(4)]]);
        net.run_for(SEC + SEC / 2);
        net.heal();
        net.run_for(SEC + SEC / 2);
    }
    for i in 0..5 {
        assert_eq!(decisions(&net, i), Vec::<Decision>::new(), "node {i}");
        assert!(!net.node(NodeId(i)).membership().has_left(), "node {i}");
    }
    // The flapping did reach the failure detector: members went down and came back.
    let downs = net
        .node(NodeId(0))
        .events()
        .iter()
        .filter(|(_, e)| matches!(e, MembershipEvent::Down(_)))
        .count();
    assert!(downs >= 2, "node 0 saw {downs} downs");
    net.run_for(5 * SEC);
    for i in 0..5 {
        assert_eq!(
            up(&net, i),
            names(&[0, 1, 2, 3, 4]),
            "node {i} after healing"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_udp_nodes_on_loopback_join_and_see_a_graceful_leave() {
    let cfg = MembershipConfig::fast(3);
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = UdpMembership::start("a", any, vec![], cfg.clone(), None)
        .await
        .unwrap();
    let seed = vec![a.me().addr];
    let b = UdpMembership::start("b", any, seed.clone(), cfg.clone(), None)
        .await
        .unwrap();
    let c = UdpMembership::start("c", any, seed, cfg, None)
        .await
        .unwrap();
    let names_of = |v: &weir_cluster::membership::MembershipView| {
        let mut n: Vec<String> = v.up.iter().map(|m| m.name.clone()).collect();
        n.sort();
        n
    };
    for node in [&a, &b, &c] {
        let mut rx = node.subscribe();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|v| v.up.len() == 3))
            .await
            .expect("joined within 20 s")
            .unwrap();
        assert_eq!(names_of(&node.view()), ["a", "b", "c"]);
    }
    c.leave().await.unwrap();
    for node in [&a, &b] {
        let mut rx = node.subscribe();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|v| v.up.len() == 2))
            .await
            .expect("saw the leave within 20 s")
            .unwrap();
        assert_eq!(names_of(&node.view()), ["a", "b"]);
        assert_eq!(
            node.view()
                .down
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["c"]
        );
    }
    a.leave().await.unwrap();
    b.leave().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_nodes_find_each_other_through_a_dns_name() {
    let cfg = MembershipConfig::fast(3);
    let any: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = UdpMembership::start("a", any, vec![], cfg.clone(), None)
        .await
        .unwrap();
    // The seed is a name, as a headless service's is; it resolves to `a`'s address.
    let seeds = Seeds::Dns(format!("localhost:{}", a.me().addr.port()));
    let b = UdpMembership::start("b", any, seeds.clone(), cfg.clone(), None)
        .await
        .unwrap();
    let c = UdpMembership::start("c", any, seeds, cfg, None)
        .await
        .unwrap();
    for node in [&a, &b, &c] {
        let mut rx = node.subscribe();
        tokio::time::timeout(Duration::from_secs(20), rx.wait_for(|v| v.up.len() == 3))
            .await
            .expect("joined within 20 s")
            .unwrap();
        let mut names: Vec<String> = node.view().up.iter().map(|m| m.name.clone()).collect();
        names.sort();
        assert_eq!(names, ["a", "b", "c"]);
    }
    for node in [a, b, c] {
        node.leave().await.unwrap();
    }
}

#[test]
fn a_garbage_datagram_is_refused_and_counted_without_disturbing_the_view() {
    let mut net = cluster(6, 3, Faults::NONE, None);
    net.run_for(3 * SEC);
    net.act(NodeId(0), |_, _, out| {
        out.send_datagram(NodeId(1), b"\xff\xff not a foca packet".to_vec());
    });
    net.run_for(SEC);
    assert_eq!(net.node(NodeId(1)).errors(), 1);
    assert_eq!(net.node(NodeId(0)).errors(), 0);
    assert_eq!(up(&net, 1), names(&[0, 1, 2]));
}

#[test]
fn keep_majority_holds_on_a_lossy_jittery_network() {
    let faults = Faults {
        latency: Duration::from_millis(2),
        jitter: Duration::from_millis(10),
        loss: 0.02,
        duplicate: 0.02,
        reorder: 0.02,
        reorder_delay: Duration::from_millis(20),
    };
    let mut net = cluster(8, 5, faults, Some((Strategy::KeepMajority, 2 * SEC)));
    net.run_for(4 * SEC);
    net.partition(&[&[NodeId(0), NodeId(4)]]);
    net.run_for(12 * SEC);
    assert_keeps(&net, &[1, 2, 3], &[0, 4]);
    assert_downs_itself(&net, &[0, 4]);
}

#[test]
fn after_a_partition_only_the_surviving_sides_coordinator_commits_and_the_old_one_is_fenced() {
    use std::sync::Arc;
    use weir_cluster::epoch::{Epoch, Fence, FenceError, FencedStorage, MemoryEpochStore};
    use weir_cluster::placement::CoordinatorRole;

    let storage = FencedStorage::new(Arc::new(MemoryEpochStore::new()));
    let mut net = cluster(10, 5, Faults::NONE, Some((Strategy::KeepMajority, 2 * SEC)));
    let mut roles: Vec<CoordinatorRole> = (0..5).map(|_| CoordinatorRole::new()).collect();
    let mut fences: Vec<Option<Fence>> = vec![None; 5];
    let mut log: Vec<(u32, Epoch)> = Vec::new();
    let mut stale: Option<Fence> = None;
    for step in 0..160 {
        if step == 30 {
            net.partition(&[&[NodeId(0), NodeId(1)]]);
        }
        net.run_for(SEC / 10);
        for i in 0..5u32 {
            let m = net.node(NodeId(i)).membership();
            if m.has_left() {
                if let Some(f) = fences[i as usize].take() {
                    stale = Some(f);
                }
                continue;
            }
            let view = m.view();
            if let Some(seat) = roles[i as usize].observe(&view.members()).cloned()
                && seat.node == view.me
            {
                fences[i as usize] = Some(storage.begin(seat.epoch).unwrap());
            }
            if let Some(f) = &fences[i as usize] {
                f.commit("manifest", || {
                    log.push((i, f.epoch()));
                    Ok::<_, String>(())
                })
                .unwrap();
            }
        }
    }
    // node-0 coordinated under epoch 1 until it downed itself; node-2 took over under epoch 2.
    let first_e2 = log
        .iter()
        .position(|(_, e)| *e == Epoch(2))
        .expect("failover");
    assert!(first_e2 > 30, "no failover during the stable-after delay");
    assert!(
        log[..first_e2].iter().all(|e| *e == (0, Epoch(1))),
        "{log:?}"
    );
    assert!(
        log[first_e2..].iter().all(|e| *e == (2, Epoch(2))),
        "{log:?}"
    );
    let stale = stale.expect("node-0 downed itself");
    assert_eq!(stale.epoch(), Epoch(1));
    let late = stale.commit("manifest", || Ok::<_, String>(()));
    assert!(matches!(
        late,
        Err(FenceError::Stale {
            attempt: Epoch(1),
            highest: Epoch(2),
            ..
        })
    ));
}
