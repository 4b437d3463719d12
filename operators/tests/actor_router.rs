//! Routers: which routee handles what under round robin, broadcast, consistent hash, smallest
//! mailbox and weights; group routers over given refs (weights changing at run time, a full
//! slow routee holding the stream back); resizing up and down without losing messages; routees supervised by the
//! router's strategy; asks answered by routees; and the parallel form (an actor stage at
//! parallelism `n` behind a hash edge).

use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{Keep, SinkFuture};
use weir_operators::actor::{
    Actor, ActorDirective, ActorRef, Ctx, MailboxConfig, Props, RouteeWeights, Router, RouterMsg,
    Routing, SupervisorStrategy, jump_hash,
};
use weir_operators::prelude::*;
use weir_operators::source::OverflowStrategy;

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// The last segment of an actor's path (`w-1`).
fn name<A: Actor>(ctx: &Ctx<'_, A>) -> String {
    ctx.path().rsplit('/').next().unwrap_or_default().to_owned()
}

/// Emits `(its name, message, running sum)`; fails on negative messages; replies to asks
/// with its name; logs its stop.
struct W {
    sum: i64,
    stops: Arc<Mutex<Vec<String>>>,
}

impl Actor for W {
    type Msg = i64;
    type Out = (String, i64, i64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x < 0 {
            return Err(StageError::user(format!("negative {x}")));
        }
        self.sum += x;
        let me = name(ctx);
        ctx.emit((me.clone(), x, self.sum));
        if ctx.sender().is_some() {
            ctx.reply(me);
        }
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        let me = name(ctx);
        if let Ok(mut v) = self.stops.lock() {
            v.push(me);
        }
    }
}

type Stops = Arc<Mutex<Vec<String>>>;

fn w(stops: &Stops) -> Props<W> {
    let stops = Arc::clone(stops);
    Props::new(move || W {
        sum: 0,
        stops: Arc::clone(&stops),
    })
    .with_name("w")
}

/// `(routee, message)` of every output, ordered by message then routee.
fn handled(out: &[(String, i64, i64)]) -> Vec<(String, i64)> {
    let mut v: Vec<(String, i64)> = out.iter().map(|(n, x, _)| (n.clone(), *x)).collect();
    v.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    v
}

fn pairs(v: &[(&str, i64)]) -> Vec<(String, i64)> {
    v.iter().map(|(n, x)| ((*n).to_owned(), *x)).collect()
}

async fn through(
    routing: Routing<i64>,
    n: usize,
    xs: Vec<i64>,
    bs: usize,
) -> Vec<(String, i64, i64)> {
    let stops = Stops::default();
    let m = Materializer::new().with_batch_size(bs);
    timed(
        Source::from_iter(xs)
            .via(Flow::actor_router(w(&stops), n, routing))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs")
}

#[tokio::test]
async fn round_robin_hands_messages_to_each_routee_in_turn() {
    for bs in [1, 4, 64] {
        let out = through(Routing::round_robin(), 3, (0..7).collect(), bs).await;
        assert_eq!(
            handled(&out),
            pairs(&[
                ("w-0", 0),
                ("w-1", 1),
                ("w-2", 2),
                ("w-0", 3),
                ("w-1", 4),
                ("w-2", 5),
                ("w-0", 6)
            ]),
            "batch size {bs}"
        );
        // Each routee's own sum: its state is its own.
        let last: Vec<(String, i64)> = ["w-0", "w-1", "w-2"]
            .iter()
            .map(|n| {
                let s = out.iter().filter(|o| o.0 == *n).map(|o| o.2).max();
                ((*n).to_owned(), s.unwrap_or(-1))
            })
            .collect();
        assert_eq!(last, pairs(&[("w-0", 9), ("w-1", 5), ("w-2", 7)]));
    }
}

#[tokio::test]
async fn broadcast_hands_every_message_to_every_routee() {
    let out = through(Routing::broadcast(), 3, vec![1, 2], 64).await;
    assert_eq!(
        handled(&out),
        pairs(&[
            ("w-0", 1),
            ("w-1", 1),
            ("w-2", 1),
            ("w-0", 2),
            ("w-1", 2),
            ("w-2", 2)
        ])
    );
}

#[tokio::test]
async fn consistent_hash_sends_each_key_to_the_routee_owning_it() {
    let xs: Vec<i64> = (0..60).collect();
    let key = |x: &i64| x % 10;
    let out = through(Routing::consistent_hash(key), 4, xs.clone(), 16).await;
    let expected: Vec<(String, i64)> = xs
        .iter()
        .map(|x| {
            let i = jump_hash(weir_graph::stable_hash_of(&key(x)), 4);
            (format!("w-{i}"), *x)
        })
        .collect();
    let mut expected = expected;
    expected.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(handled(&out), expected);
    // Every key met exactly one routee, and more than one routee is in use.
    let mut owners: Vec<(i64, String)> = out.iter().map(|(n, x, _)| (key(x), n.clone())).collect();
    owners.sort();
    owners.dedup();
    assert_eq!(owners.len(), 10);
    let mut used: Vec<&String> = owners.iter().map(|(_, n)| n).collect();
    used.sort();
    used.dedup();
    assert!(used.len() > 1, "{owners:?}");
}

#[tokio::test]
async fn smallest_mailbox_prefers_the_emptiest_routee() {
    // One element per batch: every routee is idle again when the next arrives, so the first
    // (emptiest, lowest index) routee takes them all.
    let out = through(Routing::smallest_mailbox(), 3, (0..4).collect(), 1).await;
    assert_eq!(
        handled(&out),
        pairs(&[("w-0", 0), ("w-0", 1), ("w-0", 2), ("w-0", 3)])
    );
    // One batch of six: the mailboxes fill while the router routes, so they take turns.
    let out = through(Routing::smallest_mailbox(), 3, (0..6).collect(), 6).await;
    assert_eq!(
        handled(&out),
        pairs(&[
            ("w-0", 0),
            ("w-1", 1),
            ("w-2", 2),
            ("w-0", 3),
            ("w-1", 4),
            ("w-2", 5)
        ])
    );
}

fn router_source(
    props: Props<Router<W>>,
) -> (
    ActorRef<RouterMsg<i64>>,
    SinkFuture<Vec<(String, i64, i64)>>,
    RunHandle,
) {
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = Materializer::new().materialize(&g).expect("materializes");
    (r, done, h)
}

async fn size(r: &ActorRef<RouterMsg<i64>>) -> usize {
    timed(r.ask(RouterMsg::Size, Duration::from_secs(5)))
        .await
        .expect("answers")
}

#[tokio::test]
async fn resizing_moves_only_the_keys_of_added_or_removed_routees_and_loses_nothing() {
    let stops = Stops::default();
    let key = |x: &i64| x % 12;
    let (r, done, _h) = router_source(Router::pool(w(&stops), 3, Routing::consistent_hash(key)));
    let owner =
        |x: i64, n: usize| format!("w-{}", jump_hash(weir_graph::stable_hash_of(&key(&x)), n));
    let mut expected = Vec::new();
    let phases: [(usize, std::ops::Range<i64>); 3] = [(3, 0..24), (5, 24..48), (2, 48..72)];
    for (n, xs) in phases {
        if n != 3 {
            r.tell(RouterMsg::Resize(n)).await.expect("told");
        }
        for x in xs {
            r.tell(RouterMsg::Route(x)).await.expect("told");
            expected.push((owner(x, n), x));
        }
        assert_eq!(size(&r).await, n);
    }
    // 3 -> 5 moved only keys to w-3 and w-4; 5 -> 2 only keys of w-2, w-3, w-4.
    for k in 0..12i64 {
        let (a, b, c) = (owner(k, 3), owner(k, 5), owner(k, 2));
        assert!(a == b || b == "w-3" || b == "w-4", "{k}: {a} -> {b}");
        assert!(
            b == c || ["w-2", "w-3", "w-4"].contains(&b.as_str()),
            "{k}: {b} -> {c}"
        );
    }
    drop(r);
    let out = timed(done).await.expect("completes");
    expected.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    assert_eq!(
        handled(&out),
        expected,
        "every message handled by its owner"
    );
    let mut stopped = stops.lock().map(|v| v.clone()).unwrap_or_default();
    // w-2, w-3 and w-4 retired when shrinking (after handling their queues), w-0, w-1 at the end.
    let retired: Vec<String> = stopped.drain(..3).collect::<Vec<_>>();
    let mut retired_sorted = retired.clone();
    retired_sorted.sort();
    assert_eq!(retired_sorted, vec!["w-2", "w-3", "w-4"], "{retired:?}");
    stopped.sort();
    assert_eq!(stopped, vec!["w-0", "w-1"]);
}

#[tokio::test]
async fn round_robin_resize_spawns_new_routees_and_retires_the_last() {
    let stops = Stops::default();
    let (r, done, _h) = router_source(Router::pool(w(&stops), 2, Routing::round_robin()));
    for x in 0..4 {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    r.tell(RouterMsg::Resize(3)).await.expect("told");
    for x in 4..10 {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    r.tell(RouterMsg::Resize(1)).await.expect("told");
    for x in 10..12 {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    assert_eq!(size(&r).await, 1);
    drop(r);
    let out = timed(done).await.expect("completes");
    assert_eq!(
        handled(&out),
        pairs(&[
            ("w-0", 0),
            ("w-1", 1),
            ("w-0", 2),
            ("w-1", 3),
            // Three routees: the turn counter goes on (4 % 3 = 1).
            ("w-1", 4),
            ("w-2", 5),
            ("w-0", 6),
            ("w-1", 7),
            ("w-2", 8),
            ("w-0", 9),
            ("w-0", 10),
            ("w-0", 11),
        ])
    );
}

/// `(routee, message, sum)` of every output, ordered by message.
fn by_message(mut out: Vec<(String, i64, i64)>) -> Vec<(String, i64, i64)> {
    out.sort_by_key(|o| o.1);
    out
}

fn triples(v: &[(&str, i64, i64)]) -> Vec<(String, i64, i64)> {
    v.iter()
        .map(|(n, x, s)| ((*n).to_owned(), *x, *s))
        .collect()
}

#[tokio::test]
async fn routee_restarts_follow_the_router_strategy_and_asks_are_answered_by_routees() {
    let stops = Stops::default();
    let (r, done, _h) = router_source(Router::pool_with(
        w(&stops),
        2,
        Routing::round_robin(),
        SupervisorStrategy::one_for_one(),
    ));
    for x in [1, 2, -1, 10, 3, 20] {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    // The seventh message goes to w-0, which restarted after -1 (its sum starts over).
    let who: String = timed(r.ask(RouterMsg::Route(100), Duration::from_secs(5)))
        .await
        .expect("a routee answers");
    assert_eq!(who, "w-0");
    assert_eq!(size(&r).await, 2);
    drop(r);
    assert_eq!(
        by_message(timed(done).await.expect("completes")),
        triples(&[
            ("w-0", 1, 1),
            ("w-1", 2, 2),
            ("w-0", 3, 3),
            ("w-1", 10, 12),
            ("w-1", 20, 32),
            ("w-0", 100, 103),
        ])
    );
}

#[tokio::test]
async fn a_routee_stopped_by_the_router_strategy_leaves_the_pool() {
    let stops = Stops::default();
    let (r, done, _h) = router_source(Router::pool_with(
        w(&stops),
        2,
        Routing::round_robin(),
        SupervisorStrategy::one_for_one().with_directive(ActorDirective::Stop),
    ));
    for x in [1, 2, -1] {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    timed(async {
        while size(&r).await != 1 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert_eq!(
        stops.lock().map(|v| v.clone()).unwrap_or_default(),
        vec!["w-0"]
    );
    for x in [10, 3] {
        r.tell(RouterMsg::Route(x)).await.expect("told");
    }
    let who: String = timed(r.ask(RouterMsg::Route(100), Duration::from_secs(5)))
        .await
        .expect("a routee answers");
    assert_eq!(who, "w-1");
    drop(r);
    assert_eq!(
        by_message(timed(done).await.expect("completes")),
        triples(&[
            ("w-0", 1, 1),
            ("w-1", 2, 2),
            ("w-1", 3, 15),
            ("w-1", 10, 12),
            ("w-1", 100, 115),
        ])
    );
}

/// Counts the elements of each key it sees: `(key, count)`.
#[derive(Default)]
struct KeyCounter {
    counts: std::collections::HashMap<u64, u64>,
}

impl Actor for KeyCounter {
    type Msg = u64;
    type Out = (u64, u64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        let k = x % 8;
        let c = self.counts.entry(k).or_default();
        *c += 1;
        ctx.emit((k, *c));
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        // One marker per copy: how many keys it owned.
        ctx.emit((u64::MAX, self.counts.len() as u64));
    }
}

#[tokio::test]
async fn an_actor_stage_at_parallelism_n_behind_a_hash_edge_is_a_keyed_pool() {
    let out = timed(
        Source::from_iter(0..400u64)
            .partition_by_hash(|x| weir_graph::stable_hash_of(&(x % 8)))
            .via(Flow::actor(Props::<KeyCounter>::default_of()).parallelism(4))
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("runs");
    // Four copies, which together owned each of the 8 keys once, more than one of them busy.
    let mut owned: Vec<u64> = out
        .iter()
        .filter(|o| o.0 == u64::MAX)
        .map(|o| o.1)
        .collect();
    owned.sort();
    assert_eq!(owned.len(), 4, "{owned:?}");
    assert_eq!(owned.iter().sum::<u64>(), 8, "{owned:?}");
    assert!(owned.iter().filter(|n| **n > 0).count() > 1, "{owned:?}");
    let out: Vec<(u64, u64)> = out.into_iter().filter(|o| o.0 != u64::MAX).collect();
    // Each key met one copy, which saw all 50 of its elements in order.
    let mut got = out.clone();
    got.sort();
    let expected: Vec<(u64, u64)> = (0..8).flat_map(|k| (1..=50).map(move |c| (k, c))).collect();
    assert_eq!(got, expected);
    for k in 0..8 {
        let counts: Vec<u64> = out
            .iter()
            .filter(|(kk, _)| *kk == k)
            .map(|(_, c)| *c)
            .collect();
        assert_eq!(counts, (1..=50).collect::<Vec<_>>(), "key {k} in order");
    }
}

/// Handles every message it gets; how many and in which order.
struct Sink1 {
    seen: Arc<Mutex<Vec<u64>>>,
}

impl Actor for Sink1 {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        if let Ok(mut v) = self.seen.lock() {
            v.push(x);
        }
        ctx.emit(x);
        Ok(())
    }
}

#[tokio::test]
async fn routees_with_small_mailboxes_backpressure_the_stream_instead_of_dropping() {
    // Every message hashes to one routee whose mailbox holds 2: the router's stream input is
    // held back while it is over capacity, and every element arrives, in order.
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s2 = Arc::clone(&seen);
    let props = Props::new(move || Sink1 {
        seen: Arc::clone(&s2),
    })
    .with_mailbox(MailboxConfig::bounded(2));
    let (dl, letters) = weir_graph::DeadLetterSink::collector();
    for bs in [1, 7, 256] {
        if let Ok(mut v) = seen.lock() {
            v.clear();
        }
        let m = Materializer::new().with_batch_size(bs);
        let out = tokio::time::timeout(
            Duration::from_secs(20),
            Source::from_iter(0..500u64)
                .via(
                    Flow::actor_router(props.clone(), 3, Routing::consistent_hash(|_: &u64| 7u64))
                        .with_supervision(
                            weir_graph::Supervision::stop().with_dead_letters(dl.clone()),
                        ),
                )
                .run_with_on(Sink::collect(), &m)
                .expect("materializes"),
        )
        .await
        .expect("in time")
        .expect("runs");
        assert_eq!(out, (0..500).collect::<Vec<u64>>(), "batch size {bs}");
        assert_eq!(*seen.lock().unwrap(), (0..500).collect::<Vec<u64>>());
    }
    assert_eq!(letters.lock().unwrap().len(), 0);
}

/// Emits every message it gets and counts it in `seen`; slow when `pause` is set (a message
/// every `pause`).
struct Echo {
    pause: Option<Duration>,
    seen: Arc<std::sync::atomic::AtomicUsize>,
}

impl Actor for Echo {
    type Msg = i64;
    type Out = i64;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if let Some(p) = self.pause {
            std::thread::sleep(p);
        }
        ctx.emit(x);
        self.seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

type Seen = Arc<std::sync::atomic::AtomicUsize>;

/// A routee outside the router's stage: an actor source with a mailbox of `capacity`, its
/// ref, the future of what it emitted and its run.
fn echo(
    capacity: usize,
    pause: Option<Duration>,
    seen: &Seen,
) -> (ActorRef<i64>, SinkFuture<Vec<i64>>, RunHandle) {
    let seen = Arc::clone(seen);
    let props = Props::new(move || Echo {
        pause,
        seen: Arc::clone(&seen),
    })
    .with_name("echo")
    .with_mailbox(MailboxConfig::bounded(capacity));
    let g = Source::actor(props).to_mat(Sink::collect(), Keep::both);
    let ((r, done), h) = Materializer::new().materialize(&g).expect("materializes");
    (r, done, h)
}

/// Weights set at run time; each change bumps the generation.
#[derive(Default)]
struct Adjustable {
    generation: std::sync::atomic::AtomicU64,
    weights: Mutex<Vec<u32>>,
}

impl Adjustable {
    fn set(&self, w: Vec<u32>) {
        *self.weights.lock().unwrap() = w;
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl RouteeWeights for Adjustable {
    fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }
    fn weights(&self, routees: usize) -> Vec<u32> {
        let w = self.weights.lock().unwrap();
        (0..routees)
            .map(|i| w.get(i).copied().unwrap_or(0))
            .collect()
    }
}

#[tokio::test]
async fn weighted_routing_hands_each_routee_messages_in_proportion_to_its_weight() {
    for bs in [1, 64] {
        let out = through(
            Routing::weighted(Arc::new(vec![5u32, 1, 1])),
            3,
            (0..14).collect(),
            bs,
        )
        .await;
        // Smooth weighted round robin: a a b a c a a, twice.
        let mut want = Vec::new();
        for (k, r) in ["w-0", "w-0", "w-1", "w-0", "w-2", "w-0", "w-0"]
            .iter()
            .cycle()
            .take(14)
            .enumerate()
        {
            want.push(((*r).to_owned(), k as i64));
        }
        want.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
        assert_eq!(handled(&out), want, "batch size {bs}");
    }
}

#[tokio::test]
async fn a_group_router_tells_given_refs_by_their_weights_as_the_weights_change() {
    let seen = Seen::default();
    let routees: Vec<_> = (0..3).map(|_| echo(64, None, &seen)).collect();
    let refs: Vec<ActorRef<i64>> = routees.iter().map(|(r, _, _)| r.clone()).collect();
    let weights = Arc::new(Adjustable::default());
    weights.set(vec![2, 1, 0]);
    let g = Source::<i64>::queue(4, OverflowStrategy::Backpressure).to_mat(
        weir_operators::actor::group_router(
            refs,
            Routing::weighted(Arc::clone(&weights) as Arc<dyn RouteeWeights>),
        ),
        Keep::both,
    );
    let ((q, done), _h) = g.start().expect("materializes");
    // The blueprint holds the routees' refs: the routees complete once it and the run let go.
    drop(g);
    for x in 0..6 {
        q.offer(x).await.expect("offered");
    }
    // The first six are handled under the first weights; the next six under the new ones.
    timed(async {
        while seen.load(std::sync::atomic::Ordering::SeqCst) < 6 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
    .await;
    weights.set(vec![0, 1, 1]);
    for x in 6..12 {
        q.offer(x).await.expect("offered");
    }
    q.complete();
    timed(done).await.expect("completes");
    let mut got = Vec::new();
    for (r, out, _h) in routees {
        drop(r);
        got.push(timed(out).await.expect("routee ran"));
    }
    assert_eq!(
        got,
        // 2:1:0 is a b a, twice; then 0:1:1 is b c, three times.
        vec![vec![0, 2, 3, 5], vec![1, 4, 6, 8, 10], vec![7, 9, 11]]
    );
}

#[tokio::test]
async fn a_group_router_waits_for_a_full_slow_routee_and_loses_nothing() {
    let seen = Seen::default();
    let (slow, slow_out, _hs) = echo(2, Some(Duration::from_millis(1)), &seen);
    let (fast, fast_out, _hf) = echo(2, None, &seen);
    let done = Source::from_iter(0..400i64)
        .run_with(weir_operators::actor::group_router(
            vec![slow.clone(), fast.clone()],
            Routing::round_robin(),
        ))
        .expect("materializes");
    timed(done).await.expect("completes");
    drop((slow, fast));
    let slow_got = timed(slow_out).await.expect("slow ran");
    let fast_got = timed(fast_out).await.expect("fast ran");
    assert_eq!(slow_got, (0..400).step_by(2).collect::<Vec<i64>>());
    assert_eq!(fast_got, (1..400).step_by(2).collect::<Vec<i64>>());
}

#[tokio::test]
async fn a_group_router_without_routees_is_refused_when_built() {
    let Err(err) = Source::from_iter(0..3i64).run_with(weir_operators::actor::group_router(
        Vec::new(),
        Routing::round_robin(),
    )) else {
        panic!("a group router without routees was built");
    };
    assert!(
        err.to_string().contains("group router: it has no routees"),
        "{err}"
    );
}
