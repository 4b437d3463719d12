//! The cluster services' counters on `/metrics`: remote actors, topics and singletons publish
//! their counters under their node's label while they run, with the values their `stats()`
//! report, and their series go away when they stop.

mod common;

use common::eventually;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use weir_cluster::membership::{MembershipView, NodeIdentity};
use weir_cluster::remote::{ActorNode, RemoteConfig};
use weir_cluster::singleton::ClusterSingleton;
use weir_cluster::topic::{TopicConfig, TopicNode};
use weir_cluster::transport::MemoryNetwork;
use weir_engine::prelude::*;
use weir_graph::StageError;
use weir_operators::actor::{Actor, ActorRegistry, Ctx, Props};

/// The value of the series `name{labels}` in the current exposition, when it is there.
fn value(name: &str, labels: &str) -> Option<f64> {
    let text = weir_ops::prom::render(&[]);
    let head = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&head))
        .map(|v| v.trim().parse::<f64>().expect("a number"))
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Ping(u64);

#[derive(Default)]
struct Sum(u64);

impl Actor for Sum {
    type Msg = Ping;
    type Out = ();
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Ping) -> Result<(), StageError> {
        self.0 += msg.0;
        ctx.reply(self.0);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_publish_their_counters_while_they_run() {
    let net = MemoryNetwork::new(4);
    let names = vec!["metrics-a".to_owned(), "metrics-b".to_owned()];
    let node = |me: &str| {
        let registry = Arc::new(ActorRegistry::new());
        let m = Materializer::new().with_service(Arc::clone(&registry));
        let mut cfg = RemoteConfig::new(me, names.clone());
        cfg.reconnect = Duration::from_millis(10);
        let actors = Arc::new(ActorNode::start(net.node(me), registry, cfg).unwrap());
        (actors, m)
    };
    let (a, ma) = node("metrics-a");
    let (b, mb) = node("metrics-b");
    // A singleton on `metrics-a` (the older), asked from `metrics-b` 25 times.
    let ids: Vec<NodeIdentity> = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let addr: SocketAddr = format!("127.0.0.1:{}", 7100 + i).parse().unwrap();
            NodeIdentity::new(n.as_str(), addr, i as u64 + 1)
        })
        .collect();
    let view = |me: usize| MembershipView {
        me: ids[me].clone(),
        up: ids.clone(),
        down: Vec::new(),
    };
    let (_va, ra) = watch::channel(view(0));
    let (_vb, rb) = watch::channel(view(1));
    let start = |n: &Arc<ActorNode>, m: Materializer, v| {
        ClusterSingleton::builder("/metrics/sum")
            .asks::<Ping, u64>()
            .start(Arc::clone(n), m, v, Props::<Sum>::default_of)
            .unwrap()
    };
    let sa = start(&a, ma, ra);
    let sb = start(&b, mb, rb);
    let r = sb.actor_ref();
    for i in 1..=25 {
        let total: u64 = r.ask(Ping(i), Duration::from_secs(10)).await.unwrap();
        assert_eq!(total, i * (i + 1) / 2);
    }
    let (la, lb) = (r#"node="metrics-a""#, r#"node="metrics-b""#);
    eventually("the replies to be counted", || {
        b.stats().replies_received() == 25
    })
    .await;
    assert_eq!(
        value("weir_remote_actor_messages_sent_total", lb),
        Some(25.0)
    );
    assert_eq!(
        value("weir_remote_actor_messages_sent_total", la),
        Some(0.0)
    );
    assert_eq!(
        value("weir_remote_actor_messages_delivered_total", la),
        Some(25.0)
    );
    assert_eq!(
        value("weir_remote_actor_replies_sent_total", la),
        Some(25.0)
    );
    assert_eq!(
        value("weir_remote_actor_replies_received_total", lb),
        Some(25.0)
    );
    assert_eq!(
        value("weir_remote_actor_links_opened_total", lb),
        Some(b.stats().links_opened() as f64)
    );
    let (sla, slb) = (
        r#"node="metrics-a",path="/metrics/sum""#,
        r#"node="metrics-b",path="/metrics/sum""#,
    );
    assert_eq!(value("weir_singleton_hosting", sla), Some(1.0));
    assert_eq!(value("weir_singleton_hosting", slb), Some(0.0));
    assert_eq!(value("weir_singleton_starts_total", sla), Some(1.0));
    assert_eq!(value("weir_singleton_forwarded_total", slb), Some(25.0));
    assert_eq!(value("weir_singleton_moves_total", slb), Some(1.0));

    // Topics: two nodes linked to each other.
    let tnames = vec!["metrics-t1".to_owned(), "metrics-t2".to_owned()];
    let topic_node = |me: &str| {
        let mut cfg = TopicConfig::new(me, tnames.clone());
        cfg.reconnect = Duration::from_millis(10);
        TopicNode::start(net.node(me), cfg).unwrap()
    };
    let (t1, t2) = (topic_node("metrics-t1"), topic_node("metrics-t2"));
    eventually("the topic links", || {
        t1.stats().links_opened() >= 1 && t2.stats().links_opened() >= 1
    })
    .await;
    let lt1 = r#"node="metrics-t1""#;
    assert_eq!(
        value("weir_topic_links_opened_total", lt1),
        Some(t1.stats().links_opened() as f64)
    );
    assert_eq!(value("weir_topic_strangers_total", lt1), Some(0.0));

    // Stopped services leave `/metrics`.
    drop(t1);
    assert_eq!(value("weir_topic_links_opened_total", lt1), None);
    sa.stop().await;
    sb.stop().await;
    assert_eq!(value("weir_singleton_hosting", sla), None);
    drop(a);
    assert_eq!(value("weir_remote_actor_messages_sent_total", la), None);
    assert!(value("weir_remote_actor_messages_sent_total", lb).is_some());
    drop(t2);
}
