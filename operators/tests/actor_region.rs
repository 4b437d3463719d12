//! Shard regions: entities made on their first message with exact per-entity order, counters,
//! passivation of idle entities on the virtual clock (made again on their next message), an
//! entity stopped by its supervision made again, and a region at parallelism 2.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{
    Actor, ActorDirective, Ctx, MailboxConfig, Props, RegionMsg, RegionSettings,
    SupervisorStrategy, sharded,
};
use weir_operators::prelude::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

async fn timed<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .expect("test timed out")
}

/// Counts its messages and emits `(entity, its running count, the value)`; fails on 0.
struct Counter {
    id: u32,
    n: u64,
}

impl Actor for Counter {
    type Msg = (u32, u64);
    type Out = (u32, u64, u64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (_, x): (u32, u64)) -> Result<(), StageError> {
        if x == 0 {
            return Err(StageError::user("zero"));
        }
        self.n += 1;
        ctx.emit((self.id, self.n, x));
        Ok(())
    }
}

fn counter(id: &u32) -> Props<Counter> {
    let id = *id;
    Props::new(move || Counter { id, n: 0 })
}

fn by_entity(out: &[(u32, u64, u64)]) -> BTreeMap<u32, Vec<(u64, u64)>> {
    let mut m: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for &(e, n, x) in out {
        m.entry(e).or_default().push((n, x));
    }
    m
}

#[tokio::test]
async fn entities_are_made_on_first_message_and_keep_their_order() {
    for par in [1, 2] {
        let settings = RegionSettings::default().parallelism(par);
        let stats = settings.stats();
        let msgs: Vec<(u32, u64)> = (1..=300u64).map(|x| ((x % 7) as u32, x)).collect();
        let out = timed(
            Source::from_iter(msgs.clone())
                .via(sharded(counter, |m: &(u32, u64)| m.0, settings))
                .run_with(Sink::collect())
                .expect("materializes"),
        )
        .await
        .expect("runs");
        let mut want: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
        for (e, x) in msgs {
            let v = want.entry(e).or_default();
            v.push((v.len() as u64 + 1, x));
        }
        assert_eq!(by_entity(&out), want, "parallelism {par}");
        assert_eq!(
            (stats.created(), stats.messages(), stats.alive()),
            (7, 300, 0),
            "parallelism {par}"
        );
    }
}

#[tokio::test]
async fn idle_entities_are_passivated_and_made_again_on_their_next_message() {
    let clock = VirtualClock::new();
    let settings = RegionSettings::default().passivate_after(ms(100));
    let stats = settings.stats();
    let g = Source::actor(Props::new(|| Relay))
        .via(sharded(counter, |m: &(u32, u64)| m.0, settings))
        .to_mat(Sink::collect(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((relay, done), h) = m.materialize(&g).expect("materializes");
    relay.tell((1, 10)).await.expect("told");
    relay.tell((2, 20)).await.expect("told");
    clock.run_for(ms(60)).await;
    relay.tell((1, 11)).await.expect("told");
    clock.run_for(ms(60)).await;
    // Entity 2 idle for 120 ms: passivated; entity 1 (idle 60 ms) is not.
    assert_eq!((stats.alive(), stats.passivated()), (1, 1));
    // The same counters as the stage's gauges on the run handle, with messages per shard.
    let (s1, s2) = (
        weir_graph::stable_key_group(&1u32).to_string(),
        weir_graph::stable_key_group(&2u32).to_string(),
    );
    let mut want = BTreeMap::from([
        (("weir_region_entities_alive".to_owned(), None), 1),
        (("weir_region_entities_created".to_owned(), None), 2),
        (("weir_region_entities_passivated".to_owned(), None), 1),
        (("weir_region_buffered_messages".to_owned(), None), 0),
    ]);
    *want
        .entry(("weir_region_shard_messages".to_owned(), Some(s1)))
        .or_default() += 2;
    *want
        .entry(("weir_region_shard_messages".to_owned(), Some(s2)))
        .or_default() += 1;
    assert_eq!(region_gauges(&h), want);
    relay.tell((2, 21)).await.expect("told");
    clock.run_for(ms(10)).await;
    assert_eq!((stats.alive(), stats.created()), (2, 3));
    clock.run_for(ms(300)).await;
    assert_eq!((stats.alive(), stats.passivated()), (0, 3));
    drop(relay);
    clock.run_for(ms(10)).await;
    let out = timed(done).await.expect("completes");
    // A passivated entity's in-memory count starts again.
    assert_eq!(out, vec![(1, 1, 10), (2, 1, 20), (1, 2, 11), (2, 1, 21)]);
}

/// The region's stage gauges on `h`: `(name, shard label)` to value (one region, subtask 0).
fn region_gauges(h: &RunHandle) -> BTreeMap<(String, Option<String>), i64> {
    h.stage_gauges()
        .into_iter()
        .filter(|s| s.name.starts_with("weir_region_"))
        .map(|s| {
            assert_eq!(s.subtask, 0);
            assert!(s.stage.starts_with("actor#"), "{}", s.stage);
            let shard = s
                .labels
                .iter()
                .find(|l| l.0 == "shard")
                .map(|l| l.1.clone());
            ((s.name, shard), s.value)
        })
        .collect()
}

/// Passes on what it is told (a source of region messages driven from the test).
struct Relay;

impl Actor for Relay {
    type Msg = (u32, u64);
    type Out = (u32, u64);
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, m: (u32, u64)) -> Result<(), StageError> {
        ctx.emit(m);
        Ok(())
    }
}

#[tokio::test]
async fn an_entity_its_supervision_stopped_is_made_again() {
    let settings = RegionSettings::default()
        .strategy(SupervisorStrategy::one_for_one().with_directive(ActorDirective::Stop));
    let stats = settings.stats();
    let m = Materializer::new().with_batch_size(1);
    let out = timed(
        Source::from_iter(vec![(1, 5), (1, 6), (1, 0), (1, 7), (2, 8)])
            .via(sharded(counter, |m: &(u32, u64)| m.0, settings))
            .run_with_on(Sink::collect(), &m)
            .expect("materializes"),
    )
    .await
    .expect("runs");
    assert_eq!(out, vec![(1, 1, 5), (1, 2, 6), (1, 1, 7), (2, 1, 8)]);
    assert_eq!(stats.created(), 3);
}

#[tokio::test]
async fn the_region_ref_takes_messages_from_outside() {
    let g = Source::<(u32, u64)>::never()
        .via_mat(
            sharded(counter, |m: &(u32, u64)| m.0, RegionSettings::default()),
            Keep::right,
        )
        .take(2)
        .to_mat(Sink::collect(), Keep::both);
    let ((region, done), _h) = Materializer::new().materialize(&g).expect("materializes");
    region
        .tell(RegionMsg::Deliver((4, 40)))
        .await
        .expect("told");
    region
        .tell(RegionMsg::Deliver((4, 41)))
        .await
        .expect("told");
    assert_eq!(
        timed(done).await.expect("completes"),
        vec![(4, 1, 40), (4, 2, 41)]
    );
}

// ---------------------------------------------------------------------------------------------
// Backpressure per shard

/// A region whose entities have mailboxes of 2 and shards parking 3 messages, on the virtual
/// clock with batches of one element; an entity's first message 0 fails it, and its restart
/// waits a minute (the entity is blocked until the clock is advanced).
fn blocking_region() -> (RegionSettings, Materializer, VirtualClock) {
    let settings = RegionSettings::default().shard_buffer(3).strategy(
        SupervisorStrategy::one_for_one().with_backoff(
            Duration::from_secs(60),
            Duration::from_secs(60),
            0.0,
        ),
    );
    let clock = VirtualClock::new();
    let m = Materializer::new()
        .with_clock(Arc::new(clock.clone()))
        .with_batch_size(1);
    (settings, m, clock)
}

fn small_counter(id: &u32) -> Props<Counter> {
    counter(id).with_mailbox(MailboxConfig::bounded(2))
}

/// Four entity ids whose shards differ from entity 0's.
fn other_shards() -> Vec<u32> {
    let blocked = weir_graph::stable_key_group(&0u32);
    let ids: Vec<u32> = (1..)
        .filter(|k| weir_graph::stable_key_group(k) != blocked)
        .take(4)
        .collect();
    assert_eq!(ids.len(), 4);
    ids
}

/// Runs `msgs` through a blocking region into a vector the test reads while the run goes on.
fn run_blocking(
    msgs: Vec<(u32, u64)>,
) -> (
    Arc<std::sync::Mutex<Vec<(u32, u64, u64)>>>,
    Arc<weir_operators::actor::RegionStats>,
    VirtualClock,
    weir_graph::SinkFuture<()>,
    RunHandle,
) {
    let (settings, m, clock) = blocking_region();
    let stats = settings.stats();
    let out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_out = Arc::clone(&out);
    let g = Source::from_iter(msgs)
        .via(sharded(small_counter, |m: &(u32, u64)| m.0, settings))
        .to_mat(
            Sink::for_each(move |x| sink_out.lock().unwrap().push(x)),
            Keep::right,
        );
    let (done, h) = m.materialize(&g).expect("materializes");
    (out, stats, clock, done, h)
}

async fn until(what: &str, cond: impl Fn() -> bool) {
    for _ in 0..20_000 {
        if cond() {
            return;
        }
        tokio::time::sleep(ms(1)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_blocked_entity_holds_back_only_its_shard() {
    let o = other_shards();
    let mut msgs = vec![(0, 0)];
    // Five messages for the blocked entity fit its mailbox (2) and its shard's buffer (3).
    for i in 1..=5u64 {
        msgs.push((0, i));
        msgs.push((o[(i as usize) % 4], 100 + i));
    }
    msgs.push((o[0], 200));
    let (out, stats, clock, done, _h) = run_blocking(msgs.clone());
    let others: Vec<&(u32, u64)> = msgs.iter().filter(|m| m.0 != 0).collect();
    until("the other entities' replies", || {
        out.lock().unwrap().len() == others.len()
    })
    .await;
    let mut want: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    for (e, x) in others {
        let v = want.entry(*e).or_default();
        v.push((v.len() as u64 + 1, *x));
    }
    assert_eq!(by_entity(&out.lock().unwrap()), want);
    assert_eq!((stats.buffered(), stats.paused()), (3, 0));
    // Released: the blocked entity (made again) handles its five messages in order.
    clock.run_for(Duration::from_secs(60)).await;
    timed(done).await.expect("completes");
    want.insert(0, (1..=5).map(|i| (i, i)).collect());
    assert_eq!(by_entity(&out.lock().unwrap()), want);
    assert_eq!(
        (stats.buffered(), stats.peak_buffered(), stats.messages()),
        (0, 3, msgs.len() as u64)
    );
    let shard0 = weir_graph::stable_key_group(&0u32);
    assert_eq!(stats.shard_messages(shard0), 6);
    let per_shard: u64 = stats.messages_per_shard().iter().map(|s| s.1).sum();
    assert_eq!(per_shard, msgs.len() as u64);
}

#[tokio::test]
async fn a_full_shard_at_the_head_holds_the_region_input_with_bounded_memory() {
    let o = other_shards();
    let mut msgs = vec![(0, 0), (o[0], 100)];
    // 1000 messages for the blocked entity: 2 in its mailbox, 3 parked, the 6th held at the
    // head of the region's input; what follows waits behind it.
    msgs.extend((1..=1000u64).map(|i| (0, i)));
    msgs.push((o[1], 101));
    let (out, stats, clock, done, _h) = run_blocking(msgs.clone());
    until("the held input", || stats.paused() == 1).await;
    until("the first entity's reply", || {
        out.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(*out.lock().unwrap(), vec![(o[0], 1, 100)]);
    assert_eq!(stats.buffered(), 4);
    // Released: every message, in order per entity, never more than 4 buffered.
    clock.run_for(Duration::from_secs(60)).await;
    timed(done).await.expect("completes");
    let mut want: BTreeMap<u32, Vec<(u64, u64)>> = BTreeMap::new();
    want.insert(0, (1..=1000).map(|i| (i, i)).collect());
    want.insert(o[0], vec![(1, 100)]);
    want.insert(o[1], vec![(1, 101)]);
    assert_eq!(by_entity(&out.lock().unwrap()), want);
    assert_eq!(
        (stats.buffered(), stats.peak_buffered(), stats.paused()),
        (0, 4, 0)
    );
}

#[tokio::test]
async fn messages_told_to_a_holding_region_wait_in_its_bounded_mailbox() {
    let o = other_shards();
    let mut msgs = vec![(0, 0), (o[0], 100)];
    // Enough for the blocked entity to fill its mailbox (2) and shard (3) and hold the input.
    msgs.extend((1..=10u64).map(|i| (0, i)));
    let (settings, m, clock) = blocking_region();
    let stats = settings.stats();
    let out = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink_out = Arc::clone(&out);
    let region_props = sharded(small_counter, |m: &(u32, u64)| m.0, settings);
    let g = Source::from_iter(msgs)
        .via_mat(region_props, Keep::right)
        .to_mat(
            Sink::for_each(move |x| sink_out.lock().unwrap().push(x)),
            Keep::both,
        );
    let ((region, done), _h) = m.materialize(&g).expect("materializes");
    until("the held input", || stats.paused() == 1).await;
    let buffered = stats.buffered();
    assert_eq!(buffered, 4);
    // Told from outside while it holds: they wait in the region's mailbox, not in its buffers.
    let capacity = region.capacity();
    let told = Arc::new(AtomicU64::new(0));
    let to = o[1];
    let teller = tokio::spawn({
        let (region, told) = (region.clone(), Arc::clone(&told));
        async move {
            for i in 0..(capacity as u64 + 50) {
                region.tell(RegionMsg::Deliver((to, 1000 + i))).await?;
                told.fetch_add(1, Ordering::SeqCst);
            }
            Ok::<_, weir_operators::actor::TellError>(())
        }
    });
    until("a full region mailbox", || {
        told.load(Ordering::SeqCst) == capacity as u64
    })
    .await;
    tokio::time::sleep(ms(50)).await;
    assert_eq!(told.load(Ordering::SeqCst), capacity as u64);
    assert!(!teller.is_finished());
    assert_eq!((stats.buffered(), region.len()), (buffered, capacity));
    // Released: everything arrives, in order per entity.
    clock.run_for(Duration::from_secs(60)).await;
    timed(teller)
        .await
        .expect("joins")
        .expect("every tell delivered");
    drop(region);
    timed(done).await.expect("completes");
    let got = by_entity(&out.lock().unwrap());
    assert_eq!(got[&0], (1..=10).map(|i| (i, i)).collect::<Vec<_>>());
    assert_eq!(
        got[&o[1]],
        (0..(capacity as u64 + 50))
            .map(|i| (i + 1, 1000 + i))
            .collect::<Vec<_>>()
    );
    // Two shards in use, three parked each, and at most one turn of the region's messages
    // (its throughput) taken from its mailbox before it found a shard full again.
    let bound = 2 * 3 + weir_operators::actor::DEFAULT_THROUGHPUT as u64;
    assert!(
        stats.peak_buffered() <= bound,
        "peak {}",
        stats.peak_buffered()
    );
}
