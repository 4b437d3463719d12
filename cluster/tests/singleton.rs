//! Cluster singletons ([`ClusterSingleton`]): one instance on the oldest member, reached from
//! every node through its proxy ref with every message once and in order per sender; the seat
//! moves when the host is downed (the old host stops its instance first when it downs itself),
//! stays while the host is only unreachable, an instance that ends is started again, and a
//! graceful leave over UDP membership with a split-brain resolver moves it to the next oldest;
//! with a lease, two nodes that both see themselves as the host never both run an instance.

mod common;

use common::eventually;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weir_cluster::membership::{MembershipConfig, MembershipView, NodeIdentity, UdpMembership};
use weir_cluster::remote::{ActorNode, RemoteConfig};
use weir_cluster::singleton::{ClusterSingleton, SingletonSettings, singleton_host};
use weir_cluster::split_brain::{SplitBrainResolver, Strategy};
use weir_cluster::transport::MemoryNetwork;
use weir_engine::prelude::*;
use weir_graph::StageError;
use weir_operators::actor::{Actor, ActorRef, ActorRegistry, Ctx, Props};

const WAIT: Duration = Duration::from_secs(30);
const PATH: &str = "/singleton/tally";

/// What the singleton takes.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Cmd {
    /// Records `x` from node `from`.
    Add(String, u64),
    /// Answered with the tally.
    Get,
    /// Stops the instance (its run ends).
    Quit,
}

/// What the singleton answers: where it runs and what it saw, per sending node in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    node: String,
    seen: BTreeMap<String, Vec<u64>>,
}

struct Counter {
    tally: Tally,
}

impl Actor for Counter {
    type Msg = Cmd;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Cmd) -> Result<(), StageError> {
        match msg {
            Cmd::Add(from, x) => self.tally.seen.entry(from).or_default().push(x),
            Cmd::Get => {
                ctx.reply(self.tally.clone());
            }
            Cmd::Quit => ctx.stop(),
        }
        Ok(())
    }
}

fn identity(name: &str, started_ms: u64) -> NodeIdentity {
    let addr: SocketAddr = format!("127.0.0.1:{}", 7000 + started_ms).parse().unwrap();
    NodeIdentity::new(name, addr, started_ms)
}

/// Node `me`'s view: `up` live (oldest first by start time), `down` lost and not yet downed.
fn view(me: &NodeIdentity, up: &[&NodeIdentity], down: &[&NodeIdentity]) -> MembershipView {
    MembershipView {
        me: me.clone(),
        up: up.iter().map(|m| (*m).clone()).collect(),
        down: down.iter().map(|m| (*m).clone()).collect(),
    }
}

struct Node {
    name: String,
    registry: Arc<ActorRegistry>,
    views: watch::Sender<MembershipView>,
    singleton: ClusterSingleton<Cmd>,
    _actors: Arc<ActorNode>,
}

fn start(
    net: &Arc<MemoryNetwork>,
    me: &str,
    names: &[String],
    v: MembershipView,
) -> (
    Arc<ActorNode>,
    ClusterSingleton<Cmd>,
    watch::Sender<MembershipView>,
    Arc<ActorRegistry>,
) {
    start_with(net, me, names, v, None)
}

fn start_with(
    net: &Arc<MemoryNetwork>,
    me: &str,
    names: &[String],
    v: MembershipView,
    lease: Option<Arc<dyn weir_cluster::lease::Lease>>,
) -> (
    Arc<ActorNode>,
    ClusterSingleton<Cmd>,
    watch::Sender<MembershipView>,
    Arc<ActorRegistry>,
) {
    let registry = Arc::new(ActorRegistry::new());
    let m = Materializer::new().with_service(Arc::clone(&registry));
    let mut cfg = RemoteConfig::new(me, names.to_vec());
    cfg.reconnect = Duration::from_millis(10);
    let actors = Arc::new(ActorNode::start(net.node(me), Arc::clone(&registry), cfg).unwrap());
    let (tx, rx) = watch::channel(v);
    let name = me.to_owned();
    let settings = SingletonSettings {
        retry: Duration::from_millis(20),
        ..SingletonSettings::new(PATH)
    };
    let mut builder = ClusterSingleton::builder(PATH).settings(settings);
    if let Some(l) = lease {
        builder = builder.lease(l);
    }
    let singleton = builder
        .asks::<Cmd, Tally>()
        .start(Arc::clone(&actors), m, rx, move || {
            let node = name.clone();
            Props::new(move || Counter {
                tally: Tally {
                    node: node.clone(),
                    seen: BTreeMap::new(),
                },
            })
        })
        .unwrap();
    (actors, singleton, tx, registry)
}

/// Three nodes `n1` (oldest) .. `n3`, each seeing all three up.
fn three() -> (Vec<NodeIdentity>, Vec<Node>) {
    let net = MemoryNetwork::new(4);
    let ids: Vec<NodeIdentity> = (1..=3).map(|i| identity(&format!("n{i}"), i)).collect();
    let names: Vec<String> = ids.iter().map(|m| m.name.clone()).collect();
    let all: Vec<&NodeIdentity> = ids.iter().collect();
    let nodes = ids
        .iter()
        .map(|me| {
            let (actors, singleton, views, registry) =
                start(&net, &me.name, &names, view(me, &all, &[]));
            Node {
                name: me.name.clone(),
                registry,
                views,
                singleton,
                _actors: actors,
            }
        })
        .collect();
    (ids, nodes)
}

async fn get(r: &ActorRef<Cmd>) -> Tally {
    r.ask::<Tally>(Cmd::Get, Duration::from_secs(10))
        .await
        .unwrap()
}

fn seen(pairs: &[(&str, std::ops::Range<u64>)]) -> BTreeMap<String, Vec<u64>> {
    pairs
        .iter()
        .map(|(n, r)| ((*n).to_owned(), r.clone().collect()))
        .collect()
}

#[test]
fn the_host_is_the_oldest_member_until_this_node_left() {
    let ids: Vec<NodeIdentity> = (1..=3).map(|i| identity(&format!("n{i}"), i)).collect();
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    assert_eq!(
        singleton_host(&view(c, &[a, b, c], &[])).as_deref(),
        Some("n1")
    );
    // Lost but not downed: it keeps the seat.
    assert_eq!(
        singleton_host(&view(c, &[b, c], &[a])).as_deref(),
        Some("n1")
    );
    // Downed (forgotten): the next oldest.
    assert_eq!(
        singleton_host(&view(c, &[b, c], &[])).as_deref(),
        Some("n2")
    );
    // This node left or downed itself: no host here.
    assert_eq!(singleton_host(&view(a, &[b, c], &[])), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_the_oldest_takes_every_nodes_messages_once_in_order() {
    let (_ids, nodes) = three();
    for n in &nodes {
        let r = n.singleton.actor_ref();
        for x in 0..200 {
            r.tell(Cmd::Add(n.name.clone(), x)).await.unwrap();
        }
    }
    let want = seen(&[("n1", 0..200), ("n2", 0..200), ("n3", 0..200)]);
    let r3 = nodes[2].singleton.actor_ref();
    let deadline = tokio::time::Instant::now() + WAIT;
    let tally = loop {
        let t = get(&r3).await;
        if t.seen == want || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        tally,
        Tally {
            node: "n1".into(),
            seen: want
        }
    );
    let starts: Vec<u64> = nodes.iter().map(|n| n.singleton.stats().starts()).collect();
    assert_eq!(starts, vec![1, 0, 0]);
    let hosting: Vec<bool> = nodes
        .iter()
        .map(|n| n.singleton.stats().hosting())
        .collect();
    assert_eq!(hosting, vec![true, false, false]);
    for n in &nodes {
        assert_eq!(n.singleton.host().as_deref(), Some("n1"));
        assert_eq!(n.singleton.stats().undelivered(), 0);
    }
    // Every node's asks reach the same instance.
    for n in &nodes {
        assert_eq!(get(&n.singleton.actor_ref()).await.node, "n1");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seat_stays_while_the_host_is_unreachable_and_moves_once_it_is_downed() {
    let (ids, nodes) = three();
    let (a, b, c) = (&ids[0], &ids[1], &ids[2]);
    let r3 = nodes[2].singleton.actor_ref();
    assert_eq!(get(&r3).await.node, "n1");

    // n1 is unreachable from n2 and n3, not downed: nobody else starts one.
    nodes[1].views.send_replace(view(b, &[b, c], &[a]));
    nodes[2].views.send_replace(view(c, &[b, c], &[a]));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(nodes[1].singleton.stats().starts(), 0);
    assert_eq!(nodes[2].singleton.host().as_deref(), Some("n1"));
    assert_eq!(get(&r3).await.node, "n1");

    // n1 downs itself (it stops its instance); n2 and n3 down n1: n2 takes the seat.
    nodes[0].views.send_replace(view(a, &[b, c], &[]));
    eventually("n1 to stop its instance", || {
        nodes[0].singleton.stats().stops() == 1 && !nodes[0].singleton.stats().hosting()
    })
    .await;
    nodes[1].views.send_replace(view(b, &[b, c], &[]));
    nodes[2].views.send_replace(view(c, &[b, c], &[]));
    eventually("n2 to host", || nodes[1].singleton.stats().hosting()).await;
    for n in &nodes[1..] {
        let r = n.singleton.actor_ref();
        for x in 1000..1100 {
            r.tell(Cmd::Add(n.name.clone(), x)).await.unwrap();
        }
    }
    let want = seen(&[("n2", 1000..1100), ("n3", 1000..1100)]);
    let deadline = tokio::time::Instant::now() + WAIT;
    let tally = loop {
        let t = get(&r3).await;
        if t.seen == want || tokio::time::Instant::now() > deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(
        tally,
        Tally {
            node: "n2".into(),
            seen: want
        }
    );
    let starts: Vec<u64> = nodes.iter().map(|n| n.singleton.stats().starts()).collect();
    assert_eq!(starts, vec![1, 1, 0]);
    assert_eq!(nodes[0].singleton.host(), None);
    assert_eq!(nodes[2].singleton.host().as_deref(), Some("n2"));
    assert!(nodes[2].singleton.stats().moves() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_ends_is_started_again_on_its_host() {
    let (_ids, nodes) = three();
    let r2 = nodes[1].singleton.actor_ref();
    r2.tell(Cmd::Add("n2".into(), 1)).await.unwrap();
    assert_eq!(get(&r2).await.seen, seen(&[("n2", 1..2)]));
    r2.tell(Cmd::Quit).await.unwrap();
    eventually("the instance to start again", || {
        nodes[0].singleton.stats().starts() == 2
    })
    .await;
    assert_eq!(nodes[0].singleton.stats().failures(), 1);
    // A fresh instance: what the old one saw is gone (its state was in memory only).
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match r2.ask::<Tally>(Cmd::Get, Duration::from_millis(500)).await {
            Ok(t) => {
                assert_eq!(
                    t,
                    Tally {
                        node: "n1".into(),
                        seen: BTreeMap::new()
                    }
                );
                break;
            }
            // Asks that reached the stopped instance on the way get no answer.
            Err(e) => assert!(tokio::time::Instant::now() < deadline, "{e}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_the_host_s_singleton_ends_its_instance_and_closes_its_proxy() {
    let (_ids, mut nodes) = three();
    assert_eq!(get(&nodes[0].singleton.actor_ref()).await.node, "n1");
    let n1 = nodes.remove(0);
    assert!(n1.registry.lookup::<Cmd>(PATH).unwrap().is_some());
    let r = n1.singleton.actor_ref();
    n1.singleton.stop().await;
    // The instance's run ended (its registry entry is gone) and the proxy takes nothing more.
    assert!(n1.registry.lookup::<Cmd>(PATH).unwrap().is_none());
    assert!(r.tell(Cmd::Get).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_leave_over_udp_membership_moves_the_singleton_to_the_next_oldest() {
    let net = MemoryNetwork::new(4);
    let names: Vec<String> = ["a", "b", "c"].iter().map(|s| (*s).to_owned()).collect();
    let cfg = MembershipConfig::fast(3);
    let resolver = || {
        Some(SplitBrainResolver::new(
            Strategy::KeepMajority,
            Duration::from_millis(300),
        ))
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = UdpMembership::start("a", any, vec![], cfg.clone(), resolver())
        .await
        .unwrap();
    // Later start times, so `a` is the oldest.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = UdpMembership::start("b", any, vec![a.me().addr], cfg.clone(), resolver())
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = UdpMembership::start("c", any, vec![a.me().addr], cfg, resolver())
        .await
        .unwrap();
    for m in [&a, &b, &c] {
        let mut rx = m.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|v| v.up.len() == 3))
            .await
            .expect("three members")
            .unwrap();
    }
    let mut singletons = Vec::new();
    for (m, name) in [&a, &b, &c].into_iter().zip(&names) {
        let registry = Arc::new(ActorRegistry::new());
        let mat = Materializer::new().with_service(Arc::clone(&registry));
        let mut rc = RemoteConfig::new(name, names.clone());
        rc.reconnect = Duration::from_millis(10);
        let actors = Arc::new(ActorNode::start(net.node(name), registry, rc).unwrap());
        let node = name.clone();
        let s = ClusterSingleton::builder(PATH)
            .asks::<Cmd, Tally>()
            .start(Arc::clone(&actors), mat, m.subscribe(), move || {
                let node = node.clone();
                Props::new(move || Counter {
                    tally: Tally {
                        node: node.clone(),
                        seen: BTreeMap::new(),
                    },
                })
            })
            .unwrap();
        singletons.push((actors, s));
    }
    let rc_ref = singletons[2].1.actor_ref();
    assert_eq!(get(&rc_ref).await.node, "a");
    a.leave().await.unwrap();
    // `a`'s membership ended: its instance stops; `b` and `c` down `a` and `b` hosts.
    eventually("a to stop its instance", || {
        singletons[0].1.stats().stops() == 1
    })
    .await;
    eventually("b to host", || singletons[1].1.stats().hosting()).await;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match rc_ref
            .ask::<Tally>(Cmd::Get, Duration::from_millis(500))
            .await
        {
            Ok(t) if t.node == "b" => break,
            other => assert!(
                tokio::time::Instant::now() < deadline,
                "still not answered by b: {other:?}"
            ),
        }
    }
    assert_eq!(singletons[2].1.host().as_deref(), Some("b"));
    let starts: Vec<u64> = singletons.iter().map(|(_, s)| s.stats().starts()).collect();
    assert_eq!(starts, vec![1, 1, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_a_lease_two_nodes_that_both_see_themselves_as_host_never_both_run_it() {
    use weir_cluster::lease::StoreLease;
    use weir_cluster::object_store::memory::InMemory;
    let ids: Vec<NodeIdentity> = (1..=2).map(|i| identity(&format!("n{i}"), i)).collect();
    let names: Vec<String> = ids.iter().map(|m| m.name.clone()).collect();
    let (a, b) = (&ids[0], &ids[1]);
    // n1 sees both (itself the oldest); n2 has lost n1 from its view: both are "the host".
    let split = |lease: bool| {
        let net = MemoryNetwork::new(4);
        let store: Arc<dyn weir_cluster::object_store::ObjectStore> = Arc::new(InMemory::new());
        let ttl = Duration::from_millis(300);
        let l = |n: &str| {
            lease.then(|| {
                Arc::new(StoreLease::new(Arc::clone(&store), "tally", n, ttl))
                    as Arc<dyn weir_cluster::lease::Lease>
            })
        };
        let n1 = start_with(&net, "n1", &names, view(a, &[a, b], &[]), l("n1"));
        let n2 = start_with(&net, "n2", &names, view(b, &[b], &[]), l("n2"));
        (n1, n2)
    };
    // Without a lease both run an instance (the race a lease closes).
    {
        let (n1, n2) = split(false);
        eventually("both hosting", || {
            n1.1.stats().hosting() && n2.1.stats().hosting()
        })
        .await;
    }
    let (n1, n2) = split(true);
    eventually("one hosting", || {
        n1.1.stats().hosting() || n2.1.stats().hosting()
    })
    .await;
    let (first, second) = if n1.1.stats().hosting() {
        (&n1, &n2)
    } else {
        (&n2, &n1)
    };
    // For three ttls the holder keeps renewing and the other keeps waiting.
    let until = std::time::Instant::now() + Duration::from_millis(900);
    while std::time::Instant::now() < until {
        assert!(first.1.stats().hosting());
        assert!(!second.1.stats().hosting());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(second.1.stats().lease_waits() > 0);
    assert_eq!(second.1.stats().starts(), 0);
    // The holder's seat moves away (it left): it stops its instance and releases the lease,
    // and the other takes over.
    let first_id = if std::ptr::eq(first, &n1) { a } else { b };
    let other_id = if std::ptr::eq(first, &n1) { b } else { a };
    first.2.send(view(first_id, &[other_id], &[])).unwrap();
    eventually("the other hosting", || {
        second.1.stats().hosting() && !first.1.stats().hosting()
    })
    .await;
    assert_eq!(first.1.stats().stops(), 1);
    assert_eq!(first.1.stats().lease_lost(), 0);
    assert_eq!(second.1.stats().starts(), 1);
    // The instance answers from its new host.
    let t = get(&second.1.actor_ref()).await;
    assert_eq!(t.node, if std::ptr::eq(first, &n1) { "n2" } else { "n1" });
}
