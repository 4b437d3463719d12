//! Actor stage regressions: a `Source::actor` completes when its last outside ref is dropped,
//! also when the drop races with the stage running on another worker thread; a parent with
//! many children stops every one of them, in spawn order.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{Actor, ActorRef, Ctx, Props};
use weir_operators::prelude::*;

/// Sums what it is told; emits the sum when it stops.
#[derive(Default)]
struct Summer {
    sum: u64,
}

impl Actor for Summer {
    type Msg = u64;
    type Out = u64;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, x: u64) -> Result<(), StageError> {
        self.sum += x;
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(self.sum);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_ref_while_the_stage_runs_completes_the_source_every_time() {
    for i in 0..300u64 {
        let clock = VirtualClock::new();
        let m = Materializer::new().with_clock(Arc::new(clock.clone()));
        let g = Source::actor(Props::<Summer>::default_of()).to_mat(Sink::collect(), Keep::both);
        let ((r, done), handle) = m.materialize(&g).expect("materializes");
        r.tell(i).await.expect("told");
        r.tell(1).await.expect("told");
        // The stage waits for messages; the drop wakes it on a worker while this thread is
        // still in the ref's drop.
        clock.settle().await;
        drop(r);
        let out = tokio::time::timeout(Duration::from_secs(10), done)
            .await
            .unwrap_or_else(|_| panic!("run {i}: the source did not complete"))
            .expect("completes");
        assert_eq!(out, vec![i + 1], "run {i}");
        handle.wait().await.expect("the run ends");
    }
}

/// Emits its number when it stops.
struct Kid(u32);

impl Actor for Kid {
    type Msg = ();
    type Out = u32;
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(self.0);
    }
}

/// Spawns `n` kids when it starts; emits `u32::MAX` when it stops (after them).
struct Crowd {
    n: u32,
    kids: Vec<ActorRef<()>>,
}

impl Actor for Crowd {
    type Msg = ();
    type Out = u32;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for i in 0..self.n {
            self.kids.push(ctx.spawn(Props::new(move || Kid(i)))?);
        }
        Ok(())
    }
    fn handle(&mut self, _ctx: &mut Ctx<'_, Self>, _msg: ()) -> Result<(), StageError> {
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(u32::MAX);
    }
}

#[tokio::test]
async fn a_parent_with_many_children_stops_every_child_in_spawn_order_then_itself() {
    let n = 20_000u32;
    let props = Props::new(move || Crowd {
        n,
        kids: Vec::new(),
    });
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        Source::from_iter(vec![(), ()])
            .via(Flow::actor(props))
            .run_with(Sink::collect())
            .expect("materializes"),
    )
    .await
    .expect("completes in time")
    .expect("runs");
    let mut want: Vec<u32> = (0..n).collect();
    want.push(u32::MAX);
    assert_eq!(out, want);
}
