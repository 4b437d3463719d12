//! A `Source::actor` completes when its last outside ref is dropped, also when the drop races
//! with the stage running on another worker thread.

use std::sync::Arc;
use std::time::Duration;
use weir_engine::VirtualClock;
use weir_engine::prelude::*;
use weir_graph::Keep;
use weir_operators::actor::{Actor, Ctx, Props};
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
