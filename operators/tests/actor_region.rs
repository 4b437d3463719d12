//! Shard regions: entities made on their first message with exact per-entity order, counters,
//! passivation of idle entities on the virtual clock (made again on their next message), an
//! entity stopped by its supervision made again, and a region at parallelism 2.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{
    Actor, ActorDirective, Ctx, Props, RegionMsg, RegionSettings, SupervisorStrategy, sharded,
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
    let ((relay, done), _h) = m.materialize(&g).expect("materializes");
    relay.tell((1, 10)).await.expect("told");
    relay.tell((2, 20)).await.expect("told");
    clock.run_for(ms(60)).await;
    relay.tell((1, 11)).await.expect("told");
    clock.run_for(ms(60)).await;
    // Entity 2 idle for 120 ms: passivated; entity 1 (idle 60 ms) is not.
    assert_eq!((stats.alive(), stats.passivated()), (1, 1));
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
