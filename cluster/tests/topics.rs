//! Topics across nodes ([`TopicNode`]): every subscriber on every node gets each publisher's
//! elements once and in order, a slow subscriber on one node holds the publishers on another
//! within bounded buffers, nodes that publish and subscribe to each other with tiny buffers do
//! not deadlock, unsubscribing and a stopped node release the publishers, a subscription with
//! another element type is refused, and two nodes exchange a topic over QUIC with mutual TLS.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_cluster::tls::{NodeIdentity, make_ca, make_node_cert};
use weir_cluster::topic::{TopicConfig, TopicNode};
use weir_cluster::transport::{MemoryNetwork, QuicConfig, QuicTransport, Transport};
use weir_engine::prelude::*;
use weir_engine::testkit::{SinkProbe, TestSink};
use weir_graph::{Keep, Sink, Source};
use weir_operators::hub::Topic;
use weir_operators::prelude::*;

const WAIT: Duration = Duration::from_secs(30);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// Waits until `f` holds.
async fn eventually(what: &str, f: impl Fn() -> bool) {
    let wait = async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(WAIT, wait).await.is_err() {
        panic!("timed out waiting for {what}");
    }
}

fn names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("n{i}")).collect()
}

fn config(me: &str, n: usize, buffer: usize) -> TopicConfig {
    let mut cfg = TopicConfig::new(me, names(n));
    cfg.buffer = buffer;
    cfg.chunk_rows = 3;
    cfg.reconnect = Duration::from_millis(20);
    cfg
}

fn memory_nodes(n: usize, buffer: usize) -> (Arc<MemoryNetwork>, Vec<TopicNode>) {
    let net = MemoryNetwork::new(4);
    let nodes = names(n)
        .iter()
        .map(|me| TopicNode::start(net.node(me), config(me, n, buffer)).unwrap())
        .collect();
    (net, nodes)
}

/// Each publisher's elements, in the order a subscriber got them.
fn by_publisher(got: &[(u32, u32)]) -> BTreeMap<u32, Vec<u32>> {
    let mut m: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for (p, i) in got {
        m.entry(*p).or_default().push(*i);
    }
    m
}

fn probe<T: Clone + Send + std::fmt::Debug + 'static>(
    t: &Topic<T>,
    m: &Materializer,
) -> SinkProbe<T> {
    t.source()
        .to_mat(TestSink::probe(), Keep::right)
        .run_on(m)
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_subscriber_on_every_node_gets_each_publishers_elements_once_in_order() {
    let (_net, nodes) = memory_nodes(3, 8);
    let topics: Vec<Topic<(u32, u32)>> = nodes.iter().map(|n| n.topic("prices").unwrap()).collect();
    // Subscribers on n1 and n3; publishers on n1 and n2.
    let subs: Vec<_> = [0, 2]
        .iter()
        .map(|&i| {
            topics[i]
                .source()
                .take(1000)
                .run_with(Sink::collect())
                .unwrap()
        })
        .collect();
    // n1's publications go to its own subscriber and to n3; n2's to n1 and n3.
    within(topics[0].wait_for_readers(1, 1)).await;
    within(topics[1].wait_for_readers(0, 2)).await;
    let pubs: Vec<_> = [0u32, 1]
        .iter()
        .map(|&p| {
            Source::from_iter((0..500u32).map(move |i| (p, i)))
                .run_with(topics[p as usize].sink())
                .unwrap()
        })
        .collect();
    for p in pubs {
        within(p).await.unwrap();
    }
    let want: BTreeMap<u32, Vec<u32>> = [(0, (0..500).collect()), (1, (0..500).collect())].into();
    for s in subs {
        let got = within(s).await.unwrap();
        assert_eq!(got.len(), 1000);
        assert_eq!(by_publisher(&got), want);
    }
    assert_eq!(topics[1].stats().unheard, 0);
    assert_eq!(
        nodes[1].stats().sent(),
        1000,
        "n2 sent its 500 to n1 and n3"
    );
    assert_eq!(
        nodes[2].stats().received(),
        1000,
        "n3 got 500 from n1 and n2"
    );
    assert_eq!(nodes[0].stats().received(), 500, "n1 got n2's 500");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_on_another_node_holds_the_publisher_within_bounded_buffers() {
    let buffer = 4;
    let (_net, nodes) = memory_nodes(2, buffer);
    let (a, b): (Topic<u64>, Topic<u64>) =
        (nodes[0].topic("t").unwrap(), nodes[1].topic("t").unwrap());
    let tight = Materializer::new().with_batch_size(1).with_buffer_rows(1);
    let mut slow = probe(&b, &tight);
    within(a.wait_for_readers(0, 1)).await;
    let p = Source::from_iter(0..10_000u64)
        .run_with_on(a.sink(), &tight)
        .unwrap();
    // Nothing is read on n2: n1's publisher stops once the credit and rings are full.
    eventually("the publisher to stall", || {
        let s = a.stats().published;
        s > 0 && s == a.stats().published
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let held = a.stats().published;
    // n1's ring, the first credit window (n2's inbound ring), one chunk in flight, and the
    // rows buffered between stages of the subscriber on n2.
    assert!(
        held <= (buffer * 2 + 3 + 4) as u64,
        "the publisher ran ahead of a subscriber that reads nothing: {held}"
    );
    assert!(b.stats().buffered <= buffer);
    assert!(a.stats().buffered <= buffer);
    // Reading releases the publisher; every element arrives once, in order.
    slow.request(10_000);
    let mut got = Vec::new();
    while got.len() < 10_000 {
        got.push(within(slow.expect_next()).await);
    }
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
    within(p).await.unwrap();
    assert!(nodes[1].stats().granted() >= 10_000 - buffer as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_publishing_and_subscribing_to_each_other_with_tiny_buffers_do_not_deadlock() {
    let (_net, nodes) = memory_nodes(2, 1);
    let topics: Vec<Topic<(u32, u32)>> = nodes.iter().map(|n| n.topic("t").unwrap()).collect();
    let m = Materializer::new().with_batch_size(2).with_buffer_rows(1);
    let subs: Vec<_> = topics
        .iter()
        .map(|t| {
            t.source()
                .take(4000)
                .run_with_on(Sink::collect(), &m)
                .unwrap()
        })
        .collect();
    for t in &topics {
        within(t.wait_for_readers(1, 1)).await;
    }
    let pubs: Vec<_> = topics
        .iter()
        .enumerate()
        .map(|(p, t)| {
            let p = p as u32;
            Source::from_iter((0..2000u32).map(move |i| (p, i)))
                .run_with_on(t.sink(), &m)
                .unwrap()
        })
        .collect();
    for p in pubs {
        within(p).await.unwrap();
    }
    let want: BTreeMap<u32, Vec<u32>> = [(0, (0..2000).collect()), (1, (0..2000).collect())].into();
    for s in subs {
        assert_eq!(by_publisher(&within(s).await.unwrap()), want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribing_and_a_stopped_node_release_the_publishers() {
    let (_net, mut nodes) = memory_nodes(3, 2);
    let topics: Vec<Topic<u32>> = nodes.iter().map(|n| n.topic("t").unwrap()).collect();
    let tight = Materializer::new().with_batch_size(1).with_buffer_rows(1);
    // Two subscribers that read nothing: on n2 and on n3.
    let on_n2 = probe(&topics[1], &tight);
    let _on_n3 = probe(&topics[2], &tight);
    within(topics[0].wait_for_readers(0, 2)).await;
    let p = Source::from_iter(0..1000u32)
        .run_with_on(topics[0].sink(), &tight)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(topics[0].stats().published < 1000);
    // n2's subscriber leaves: n2 unsubscribes at n1, but n3 still holds the publisher.
    on_n2.cancel();
    eventually("n2 to unsubscribe", || {
        topics[0].stats().remote_readers == 1
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(topics[0].stats().published < 1000);
    // n3 stops: its stream breaks, n1 detaches its reader, and the publisher runs to the end
    // (nobody reads what comes next).
    nodes.pop();
    eventually("n3's reader to leave", || {
        topics[0].stats().remote_readers == 0
    })
    .await;
    within(p).await.unwrap();
    let s = topics[0].stats();
    assert_eq!(s.published + s.unheard, 1000);
    assert!(s.unheard > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_with_another_element_type_is_refused() {
    let (_net, nodes) = memory_nodes(2, 4);
    let a: Topic<u32> = nodes[0].topic("t").unwrap();
    let b: Topic<String> = nodes[1].topic("t").unwrap();
    let sub = probe(&b, &Materializer::new());
    sub.request(10);
    eventually("the refusal", || {
        nodes[0].stats().refused() == 1 && nodes[1].stats().refused() == 1
    })
    .await;
    assert_eq!(a.stats().remote_readers, 0);
    Source::from_iter(0..10u32)
        .run_with(a.sink())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(a.stats().unheard, 10);
    assert_eq!(nodes[1].stats().received(), 0);
    // The same name with another type on one node is refused too.
    assert!(nodes[0].topic::<String>("t").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_attaches_later_gets_what_is_published_from_then_on() {
    let (_net, nodes) = memory_nodes(2, 16);
    let (a, b): (Topic<u32>, Topic<u32>) =
        (nodes[0].topic("t").unwrap(), nodes[1].topic("t").unwrap());
    Source::from_iter(0..5u32)
        .run_with(a.sink())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(a.stats().unheard, 5);
    let got = b.source().take(5).run_with(Sink::collect()).unwrap();
    within(a.wait_for_readers(0, 1)).await;
    Source::from_iter(5..10u32)
        .run_with(a.sink())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(within(got).await.unwrap(), vec![5, 6, 7, 8, 9]);
    // The subscriber completed: n2 unsubscribes.
    eventually("n2 to unsubscribe", || a.stats().remote_readers == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_a_peer_is_refused() {
    let net = MemoryNetwork::new(4);
    let n1 = TopicNode::start(net.node("n1"), config("n1", 2, 4)).unwrap();
    let mut cfg = config("n9", 0, 4);
    cfg.peers = vec!["n1".into(), "n9".into()];
    let n9 = TopicNode::start(net.node("n9"), cfg).unwrap();
    let a: Topic<u32> = n1.topic("t").unwrap();
    let b: Topic<u32> = n9.topic("t").unwrap();
    let _sub = probe(&b, &Materializer::new());
    eventually("n1 to refuse n9", || n1.stats().strangers() >= 1).await;
    assert_eq!(a.stats().remote_readers, 0);
    assert_eq!(n1.stats().served(), 0);
}

fn quic_node(ca: &weir_cluster::tls::ClusterCa, name: &str) -> Arc<QuicTransport> {
    let cert = make_node_cert(ca, name, &[]).unwrap();
    let id = NodeIdentity::from_parts(ca, &cert);
    QuicTransport::bind(QuicConfig::new(id, "127.0.0.1:0".parse().unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_a_topic_over_quic_with_mutual_tls() {
    let ca = make_ca("topics").unwrap();
    let ns = names(2);
    let ts: Vec<Arc<QuicTransport>> = ns.iter().map(|n| quic_node(&ca, n)).collect();
    for a in &ts {
        for (b, name) in ts.iter().zip(&ns) {
            a.add_peer(name, b.local_addr().unwrap());
        }
    }
    let nodes: Vec<TopicNode> = ts
        .iter()
        .zip(&ns)
        .map(|(t, me)| {
            let t: Arc<dyn Transport> = Arc::clone(t) as Arc<dyn Transport>;
            TopicNode::start(t, config(me, 2, 64)).unwrap()
        })
        .collect();
    let (a, b): (Topic<String>, Topic<String>) =
        (nodes[0].topic("t").unwrap(), nodes[1].topic("t").unwrap());
    let got = b.source().take(2000).run_with(Sink::collect()).unwrap();
    within(a.wait_for_readers(0, 1)).await;
    let want: Vec<String> = (0..2000).map(|i| format!("row {i}")).collect();
    Source::from_iter(want.clone())
        .run_with(a.sink())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(within(got).await.unwrap(), want);
}
