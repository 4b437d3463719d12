//! Refs to actors on other nodes ([`ActorNode`]): tells arrive once and in order, asks are
//! answered, an actor's `ctx.tell` to a remote ref gets the reply in its mailbox, a slow remote
//! actor holds back `tell` within bounded buffers, unexposed paths, other types and strangers
//! are refused, reliable refs deliver exactly once in order across broken links and at least
//! once across a restart of the receiving node, at-most-once refs lose only what they count as
//! lost, and two nodes talk over QUIC with mutual TLS.

use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_cluster::remote::{ActorNode, RemoteConfig};
use weir_cluster::tls::{NodeIdentity, make_ca, make_node_cert};
use weir_cluster::transport::{MemoryNetwork, QuicConfig, QuicTransport, Transport};
use weir_engine::prelude::*;
use weir_engine::testkit::TestSink;
use weir_graph::Keep;
use weir_operators::actor::{
    Actor, ActorRef, ActorRegistry, AskError, Ctx, DeadLetters, MailboxConfig, Props, TellError,
};
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

fn config(me: &str, peers: Vec<String>, window: usize) -> RemoteConfig {
    let mut cfg = RemoteConfig::new(me, peers);
    cfg.window = window;
    cfg.proxy_capacity = 8;
    cfg.chunk_rows = 3;
    cfg.reconnect = Duration::from_millis(10);
    cfg.resolve_timeout = Duration::from_secs(5);
    cfg
}

/// A node: its remote-actor service, its registry and a materializer using that registry.
struct Node {
    actors: ActorNode,
    registry: Arc<ActorRegistry>,
    m: Materializer,
}

fn node(net: &Arc<MemoryNetwork>, cfg: RemoteConfig) -> Node {
    let registry = Arc::new(ActorRegistry::new());
    let m = Materializer::new().with_service(Arc::clone(&registry));
    let actors = ActorNode::start(net.node(&cfg.me), Arc::clone(&registry), cfg).unwrap();
    Node {
        actors,
        registry,
        m,
    }
}

fn memory_nodes(n: usize, window: usize) -> (Arc<MemoryNetwork>, Vec<Node>) {
    let net = MemoryNetwork::new(4);
    let nodes = names(n)
        .iter()
        .map(|me| node(&net, config(me, names(n), window)))
        .collect();
    (net, nodes)
}

/// What a remote caller sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Req {
    /// Recorded.
    Put(u64),
    /// Recorded and answered with twice the value.
    Double(u64),
}

/// Records what it gets (into `seen`) and answers `Double`.
struct Recorder {
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Actor for Recorder {
    type Msg = Req;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Req) -> Result<(), StageError> {
        match msg {
            Req::Put(x) => self.seen.lock().unwrap().push(x),
            Req::Double(x) => {
                self.seen.lock().unwrap().push(x);
                ctx.reply(x * 2);
            }
        }
        Ok(())
    }
}

/// Runs a [`Recorder`] registered at `path` on `n`, exposed for `Req` asked with `u64`.
fn recorder(n: &Node, path: &str) -> (ActorRef<Req>, Arc<Mutex<Vec<u64>>>, RunHandle) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let g = Source::actor(
        Props::new(move || Recorder {
            seen: Arc::clone(&s),
        })
        .register_as(path),
    )
    .to_mat(Sink::ignore(), Keep::left);
    let (r, h) = n.m.materialize(&g).unwrap();
    n.actors.expose_ask::<Req, u64>(path).unwrap();
    (r, seen, h)
}

fn snapshot(seen: &Mutex<Vec<u64>>) -> Vec<u64> {
    seen.lock().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tells_arrive_once_in_order_per_ref_and_asks_are_answered_across_nodes() {
    let (_net, nodes) = memory_nodes(3, 4);
    let (_r, seen, _h) = recorder(&nodes[1], "/svc/rec");
    // Two refs from n1 and one from n3, telling concurrently.
    let refs: Vec<ActorRef<Req>> = vec![
        nodes[0].actors.remote("n2", "/svc/rec").tells().unwrap(),
        nodes[0].actors.remote("n2", "/svc/rec").tells().unwrap(),
        nodes[2].actors.remote("n2", "/svc/rec").tells().unwrap(),
    ];
    let mut tasks = Vec::new();
    for (k, r) in refs.into_iter().enumerate() {
        tasks.push(tokio::spawn(async move {
            for i in 0..500u64 {
                r.tell(Req::Put(k as u64 * 1000 + i)).await.unwrap();
            }
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    eventually("all 1500 tells delivered", || {
        seen.lock().unwrap().len() >= 1500
    })
    .await;
    let got = snapshot(&seen);
    assert_eq!(got.len(), 1500);
    for k in 0..3u64 {
        let mine: Vec<u64> = got.iter().copied().filter(|x| x / 1000 == k).collect();
        assert_eq!(mine, (0..500).map(|i| k * 1000 + i).collect::<Vec<_>>());
    }
    // Asks through a ref that asks: answered with the remote actor's reply.
    let asker = nodes[0]
        .actors
        .remote("n2", "/svc/rec")
        .asks::<Req, u64>()
        .unwrap();
    for x in [1u64, 21, 500] {
        let doubled: u64 = within(asker.ask(Req::Double(x), Duration::from_secs(10)))
            .await
            .unwrap();
        assert_eq!(doubled, x * 2);
    }
    // A message handled without a reply answers the ask with `NoReply` at once.
    assert_eq!(
        within(asker.ask::<u64>(Req::Put(7), Duration::from_secs(60))).await,
        Err(AskError::NoReply {
            actor: "weir://n2/svc/rec".into()
        })
    );
    // A ref that only tells answers an ask with `NoReply` without sending it for a reply.
    let teller = nodes[0].actors.remote("n2", "/svc/rec").tells().unwrap();
    assert_eq!(
        within(teller.ask::<u64>(Req::Double(3), Duration::from_secs(60))).await,
        Err(AskError::NoReply {
            actor: "weir://n2/svc/rec".into()
        })
    );
    let s1 = nodes[0].actors.stats();
    let s2 = nodes[1].actors.stats();
    eventually("the last tell delivered", || s2.delivered() == 1500 + 5).await;
    // Delivered counts the mailbox; the actor handles the last tell a moment later.
    eventually("the last tell handled", || {
        seen.lock().unwrap().len() >= 1505
    })
    .await;
    assert_eq!(snapshot(&seen).len(), 1505);
    assert_eq!(s1.replies_received(), 3);
    assert_eq!(s2.replies_sent(), 4);
    assert_eq!((s1.lost(), s2.duplicates(), s2.undelivered()), (0, 0, 0));
    // A ref to this node's own actor is the local ref.
    let local = nodes[1]
        .actors
        .remote("n2", "/svc/rec")
        .tells::<Req>()
        .unwrap();
    assert!(!local.path().starts_with("weir://"));
    assert!(
        nodes[0]
            .actors
            .remote("n9", "/svc/rec")
            .tells::<Req>()
            .is_err()
    );
    assert!(
        nodes[0]
            .actors
            .remote("n2", "svc/rec")
            .tells::<Req>()
            .is_err()
    );
}

/// Calls a remote ref with `ctx.tell` and records the answers it gets in its mailbox.
struct Caller {
    to: ActorRef<u64>,
    answers: Arc<Mutex<Vec<u64>>>,
}

#[derive(Debug, Serialize, Deserialize)]
enum CallerMsg {
    Call(u64),
    Answer(u64),
}

impl Actor for Caller {
    type Msg = CallerMsg;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: CallerMsg) -> Result<(), StageError> {
        match msg {
            CallerMsg::Call(x) => ctx
                .tell(&self.to, x)
                .map_err(|e| StageError::user(e.to_string()))?,
            CallerMsg::Answer(x) => self.answers.lock().unwrap().push(x),
        }
        Ok(())
    }
}

/// Answers `x` with `Answer(x * 10)`.
#[derive(Default)]
struct Tenfold;

impl Actor for Tenfold {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.reply(CallerMsg::Answer(x * 10));
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_actor_telling_a_remote_ref_gets_the_reply_in_its_mailbox() {
    let (_net, nodes) = memory_nodes(2, 4);
    let g = Source::actor(Props::<Tenfold>::default_of().register_as("/svc/tenfold"))
        .to_mat(Sink::ignore(), Keep::left);
    let (_t, _h) = nodes[1].m.materialize(&g).unwrap();
    nodes[1]
        .actors
        .expose_ask::<u64, CallerMsg>("/svc/tenfold")
        .unwrap();
    let to = nodes[0]
        .actors
        .remote("n2", "/svc/tenfold")
        .mailbox(MailboxConfig::bounded(64))
        .asks::<u64, CallerMsg>()
        .unwrap();
    let answers = Arc::new(Mutex::new(Vec::new()));
    let a = Arc::clone(&answers);
    let g = Source::actor(Props::new(move || Caller {
        to: to.clone(),
        answers: Arc::clone(&a),
    }))
    .to_mat(Sink::ignore(), Keep::left);
    let (caller, _h) = nodes[0].m.materialize(&g).unwrap();
    for x in 1..=20u64 {
        caller.tell(CallerMsg::Call(x)).await.unwrap();
    }
    eventually("20 answers", || answers.lock().unwrap().len() == 20).await;
    assert_eq!(
        snapshot(&answers),
        (1..=20).map(|x| x * 10).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_remote_actor_holds_back_tell_within_bounded_buffers() {
    let window = 4;
    let (_net, nodes) = memory_nodes(2, window);
    // The remote actor emits what it gets into a sink that takes nothing until asked.
    let mailbox = 4;
    let g = Source::actor(
        Props::new(|| Forward)
            .with_mailbox(MailboxConfig::bounded(mailbox))
            .register_as("/svc/slow"),
    )
    .to_mat(TestSink::probe(), Keep::both);
    // The actor lives while a ref to it is held (the registry holds none).
    let ((_slow, mut probe), _h) = nodes[1].m.materialize(&g).unwrap();
    nodes[1].actors.expose::<u64>("/svc/slow").unwrap();
    let r = nodes[0]
        .actors
        .remote("n2", "/svc/slow")
        .mailbox(MailboxConfig::bounded(8))
        .tells::<u64>()
        .unwrap();
    let told = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let t = Arc::clone(&told);
    let total = 10_000u64;
    let teller = tokio::spawn(async move {
        for i in 0..total {
            r.tell(i).await.unwrap();
            t.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // Wait until the teller is held back, then check it stays held.
    let count = || told.load(std::sync::atomic::Ordering::Relaxed);
    let mut last = u64::MAX;
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let now = count();
        if now == last {
            break;
        }
        last = now;
    }
    // Held: the proxy (8), the channel's window (4), the actor's mailbox (4) and the few
    // elements the actor's stage and the probe buffer.
    let held = count();
    assert!(held < 200, "tell not held back: {held} told");
    assert!(held >= (8 + window + mailbox) as u64, "only {held} told");
    let stats = nodes[1].actors.stats();
    assert!(stats.delivered() <= held);
    probe.request(total);
    let got = within(probe.expect_next_n(total as usize)).await;
    assert_eq!(got, (0..total).collect::<Vec<_>>());
    within(teller).await.unwrap();
}

/// Emits what it gets.
struct Forward;

impl Actor for Forward {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        ctx.emit(x);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexposed_paths_and_other_types_are_refused_and_their_refs_stop() {
    let net = MemoryNetwork::new(4);
    let dead = DeadLetters::new(16);
    let mut c1 = config("n1", names(2), 4);
    c1.dead_letters = Some(dead.service());
    let n1 = node(&net, c1);
    let mut c2 = config("n2", names(2), 4);
    c2.resolve_timeout = Duration::from_millis(200);
    let n2 = node(&net, c2);
    let (_r, seen, _h) = recorder(&n2, "/svc/rec");
    // Registered but not exposed: refused once the resolve timeout passes.
    let g = Source::actor(Props::new(|| Forward).register_as("/svc/hidden"))
        .to_mat(Sink::ignore(), Keep::left);
    let (_hidden, _h) = n2.m.materialize(&g).unwrap();
    let hidden = n1
        .actors
        .remote("n2", "/svc/hidden")
        .tells::<u64>()
        .unwrap();
    hidden.tell(1).await.unwrap();
    eventually("the hidden ref refused", || {
        n1.actors.stats().refused() == 1
    })
    .await;
    assert_eq!(
        within(hidden.tell(2)).await,
        Err(TellError::Stopped {
            actor: "weir://n2/svc/hidden".into()
        })
    );
    // Exposed for `Req`, told `String`s: refused at once.
    let wrong = n1
        .actors
        .remote("n2", "/svc/rec")
        .tells::<String>()
        .unwrap();
    wrong.tell("hello".into()).await.unwrap();
    eventually("the mistyped ref refused", || {
        n1.actors.stats().refused() == 2
    })
    .await;
    assert_eq!(n2.actors.stats().refused(), 2);
    assert!(snapshot(&seen).is_empty());
    dead.close();
    let letters = within(dead.source().run_with(Sink::collect()).unwrap())
        .await
        .unwrap();
    let refusals: Vec<&str> = letters
        .iter()
        .map(|u| u.reason.as_str())
        .filter(|r| r.starts_with("refused by node n2"))
        .collect();
    assert_eq!(refusals.len(), 2, "{letters:?}");
    assert!(
        refusals[0].contains("path /svc/hidden is not exposed on node n2"),
        "{refusals:?}"
    );
    assert!(
        refusals[1].contains("takes remote_actors::Req"),
        "{refusals:?}"
    );
    assert_eq!(n2.actors.stats().delivered(), 0);
    // Exposing it twice with other types is an error.
    assert!(n2.actors.expose::<String>("/svc/rec").is_err());
    assert!(n2.actors.expose_ask::<Req, u64>("/svc/rec").is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_is_not_a_peer_is_refused() {
    let net = MemoryNetwork::new(4);
    let n1 = node(&net, config("n1", names(2), 4));
    let n2 = node(&net, config("n2", names(2), 4));
    let (_r, seen, _h) = recorder(&n2, "/svc/rec");
    // n3 counts n2 as its peer; n2 does not know n3.
    let n3 = node(&net, config("n3", vec!["n2".into()], 4));
    let r = n3.actors.remote("n2", "/svc/rec").tells().unwrap();
    r.tell(Req::Put(1)).await.unwrap();
    eventually("the stranger refused", || {
        n2.actors.stats().strangers() >= 1
    })
    .await;
    let ok = n1.actors.remote("n2", "/svc/rec").tells().unwrap();
    ok.tell(Req::Put(2)).await.unwrap();
    eventually("the peer's tell delivered", || {
        !seen.lock().unwrap().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(snapshot(&seen), vec![2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_refs_deliver_exactly_once_in_order_across_broken_links() {
    let (_net, nodes) = memory_nodes(2, 4);
    let (_r, seen, _h) = recorder(&nodes[1], "/svc/rec");
    let r = nodes[0]
        .actors
        .remote("n2", "/svc/rec")
        .reliable()
        .asks::<Req, u64>()
        .unwrap();
    let total = 3000u64;
    let teller = tokio::spawn({
        let r = r.clone();
        async move {
            for i in 0..total {
                r.tell(Req::Put(i)).await.unwrap();
            }
        }
    });
    // Both ends break their streams every few milliseconds while the tells flow.
    while !teller.is_finished() {
        tokio::time::sleep(Duration::from_millis(3)).await;
        nodes[0].actors.break_links();
        tokio::time::sleep(Duration::from_millis(3)).await;
        nodes[1].actors.break_links();
    }
    within(teller).await.unwrap();
    eventually("all tells delivered", || {
        seen.lock().unwrap().len() as u64 >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(snapshot(&seen), (0..total).collect::<Vec<_>>());
    let (s1, s2) = (nodes[0].actors.stats(), nodes[1].actors.stats());
    assert!(s1.links_broken() >= 10, "{} breaks", s1.links_broken());
    assert_eq!(s1.lost(), 0);
    assert_eq!(s2.delivered(), total);
    assert!(
        s1.redelivered() >= s2.duplicates(),
        "every duplicate was sent again"
    );
    // Asks on a reliable ref after the breaks are still answered.
    let doubled: u64 = within(r.ask(Req::Double(8), Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(doubled, 16);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_most_once_refs_keep_order_and_lose_only_what_they_count_lost() {
    let (_net, nodes) = memory_nodes(2, 4);
    let (_r, seen, _h) = recorder(&nodes[1], "/svc/rec");
    let r = nodes[0].actors.remote("n2", "/svc/rec").tells().unwrap();
    let total = 3000u64;
    let teller = tokio::spawn(async move {
        for i in 0..total {
            r.tell(Req::Put(i)).await.unwrap();
        }
    });
    while !teller.is_finished() {
        tokio::time::sleep(Duration::from_millis(3)).await;
        nodes[0].actors.break_links();
    }
    within(teller).await.unwrap();
    let (s1, s2) = (nodes[0].actors.stats(), nodes[1].actors.stats());
    eventually("every tell sent", || s1.sent() == total).await;
    eventually("every tell delivered or lost", || {
        s2.delivered() + s1.lost() >= total
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let got = snapshot(&seen);
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in order, no duplicate"
    );
    assert!(got.iter().all(|x| *x < total));
    assert_eq!(got.len() as u64, s2.delivered());
    assert!(total - got.len() as u64 <= s1.lost());
    assert!(s1.links_broken() >= 5, "{} breaks", s1.links_broken());
    assert_eq!(s2.duplicates(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reliable_refs_deliver_at_least_once_across_a_restart_of_the_receiving_node() {
    let net = MemoryNetwork::new(4);
    let n1 = node(&net, config("n1", names(2), 4));
    let registry = Arc::new(ActorRegistry::new());
    let m = Materializer::new().with_service(Arc::clone(&registry));
    let start_n2 = || {
        ActorNode::start(
            net.node("n2"),
            Arc::clone(&registry),
            config("n2", names(2), 4),
        )
        .unwrap()
    };
    let mut n2 = start_n2();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = Arc::clone(&seen);
    let g = Source::actor(
        Props::new(move || Recorder {
            seen: Arc::clone(&s),
        })
        .register_as("/svc/rec"),
    )
    .to_mat(Sink::ignore(), Keep::left);
    let (_r, _h) = m.materialize(&g).unwrap();
    n2.expose_ask::<Req, u64>("/svc/rec").unwrap();
    let r = n1
        .actors
        .remote("n2", "/svc/rec")
        .reliable()
        .tells()
        .unwrap();
    let total = 2000u64;
    let teller = tokio::spawn(async move {
        for i in 0..total {
            r.tell(Req::Put(i)).await.unwrap();
            if i % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let mut restarts = 0;
    while !teller.is_finished() {
        tokio::time::sleep(Duration::from_millis(5)).await;
        // The receiving node's service restarts: what it delivered is forgotten.
        drop(n2);
        n2 = start_n2();
        n2.expose_ask::<Req, u64>("/svc/rec").unwrap();
        restarts += 1;
    }
    within(teller).await.unwrap();
    eventually("every tell delivered", || {
        let got = seen.lock().unwrap();
        let mut have: Vec<u64> = got.clone();
        have.sort_unstable();
        have.dedup();
        have.len() as u64 == total
    })
    .await;
    let got = snapshot(&seen);
    // Each value at least once; a value seen again is one that was in flight (at most a
    // window of them per restart), and the first sightings are in order.
    let mut firsts = Vec::new();
    let mut once = std::collections::HashSet::new();
    for x in &got {
        if once.insert(*x) {
            firsts.push(*x);
        }
    }
    assert_eq!(firsts, (0..total).collect::<Vec<_>>());
    let again = got.len() - firsts.len();
    assert!(
        again <= 4 * (restarts + 1),
        "{again} again after {restarts} restarts"
    );
    assert!(restarts >= 3, "{restarts} restarts");
}

fn quic_node(ca: &weir_cluster::tls::ClusterCa, name: &str) -> Arc<QuicTransport> {
    let cert = make_node_cert(ca, name, &[]).unwrap();
    let id = NodeIdentity::from_parts(ca, &cert);
    QuicTransport::bind(QuicConfig::new(id, "127.0.0.1:0".parse().unwrap())).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_tell_and_ask_over_quic_with_mutual_tls() {
    let ca = make_ca("actors").unwrap();
    let ns = names(2);
    let ts: Vec<Arc<QuicTransport>> = ns.iter().map(|n| quic_node(&ca, n)).collect();
    for a in &ts {
        for (b, name) in ts.iter().zip(&ns) {
            a.add_peer(name, b.local_addr().unwrap());
        }
    }
    let nodes: Vec<Node> = ts
        .iter()
        .zip(&ns)
        .map(|(t, me)| {
            let registry = Arc::new(ActorRegistry::new());
            let m = Materializer::new().with_service(Arc::clone(&registry));
            let t: Arc<dyn Transport> = Arc::clone(t) as Arc<dyn Transport>;
            let actors =
                ActorNode::start(t, Arc::clone(&registry), config(me, names(2), 64)).unwrap();
            Node {
                actors,
                registry,
                m,
            }
        })
        .collect();
    let (_r, seen, _h) = recorder(&nodes[1], "/svc/rec");
    assert_eq!(nodes[1].registry.paths(), vec!["/svc/rec".to_owned()]);
    let r = nodes[0]
        .actors
        .remote("n2", "/svc/rec")
        .reliable()
        .asks::<Req, u64>()
        .unwrap();
    for i in 0..1000 {
        r.tell(Req::Put(i)).await.unwrap();
    }
    let doubled: u64 = within(r.ask(Req::Double(1000), Duration::from_secs(10)))
        .await
        .unwrap();
    assert_eq!(doubled, 2000);
    assert_eq!(snapshot(&seen), (0..=1000).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refs_of_a_stopped_node_stop() {
    let (_net, mut nodes) = memory_nodes(2, 4);
    let (_r, _seen, _h) = recorder(&nodes[1], "/svc/rec");
    let r = nodes[0].actors.remote("n2", "/svc/rec").tells().unwrap();
    r.tell(Req::Put(1)).await.unwrap();
    let n1 = nodes.remove(0);
    n1.actors.stop();
    assert_eq!(
        within(r.tell(Req::Put(2))).await,
        Err(TellError::Stopped {
            actor: "weir://n2/svc/rec".into()
        })
    );
}
