//! Stages of a run reach one replicator through the run's services: one stage increments a
//! shared counter, a later one reads it; a run without the service fails naming the stage.

use std::sync::Arc;
use weir_cluster::crdt::{Consistency, PNCounter, ReplicatorHandle, Write};
use weir_engine::prelude::*;
use weir_graph::{FlowLogic, StageCx, StageError};
use weir_operators::prelude::*;

/// A flow applying `f` to each element with the run's counter handle.
struct WithCounter<F> {
    handle: ReplicatorHandle<PNCounter>,
    f: F,
}

impl<F> FlowLogic<i64, (i64, i128)> for WithCounter<F>
where
    F: FnMut(&ReplicatorHandle<PNCounter>, i64) -> Result<(i64, i128), StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<i64>,
        out: &mut Vec<(i64, i128)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input.drain(..) {
            out.push((self.f)(&self.handle, x)?);
        }
        Ok(())
    }
}

/// Adds each element to the shared counter `total` (passing it on with the value it wrote).
fn count() -> Flow<i64, (i64, i128), ()> {
    Flow::from_logic("count", |info| {
        let handle = ReplicatorHandle::<PNCounter>::of(info)?;
        let f = |h: &ReplicatorHandle<PNCounter>, x: i64| {
            let w = h
                .update("total", Consistency::Majority, 1000, |c, w| {
                    c.add(w.replica, x)
                })
                .map_err(StageError::from_error)?;
            assert_eq!(
                w,
                Write::Done,
                "a local replicator completes a write at once"
            );
            Ok((x, 0))
        };
        Ok((WithCounter { handle, f }, ()))
    })
}

/// Replaces the second field by the counter's value as this stage reads it.
fn observe() -> Flow<(i64, i128), (i64, i128), ()> {
    Flow::from_logic("observe", |info| {
        let handle = ReplicatorHandle::<PNCounter>::of(info)?;
        Ok((Observe(handle), ()))
    })
}

struct Observe(ReplicatorHandle<PNCounter>);

impl FlowLogic<(i64, i128), (i64, i128)> for Observe {
    fn on_batch(
        &mut self,
        input: &mut Vec<(i64, i128)>,
        out: &mut Vec<(i64, i128)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for (x, _) in input.drain(..) {
            let v = self.0.with("total", |c| c.map_or(0, PNCounter::value));
            out.push((x, v));
        }
        Ok(())
    }
}

#[tokio::test]
async fn one_stage_increments_a_shared_counter_and_another_reads_it() {
    let handle = ReplicatorHandle::<PNCounter>::local();
    let graph = Source::from_iter(vec![5i64, -2, 10, 1])
        .via(count())
        .via(observe())
        .to_sink_mat(Sink::collect());
    let (fut, _run) = Materializer::new()
        .with_batch_size(1)
        .with_service(Arc::new(handle.clone()))
        .materialize(&graph)
        .unwrap();
    let out = fut.await.unwrap();
    // The reader sees every increment of the elements before it and of its own.
    assert_eq!(out, vec![(5, 5), (-2, 3), (10, 13), (1, 14)]);
    // The handle outlives the run and holds the final value.
    assert_eq!(handle.get("total").map(|c| c.value()), Some(14));
}

#[tokio::test]
async fn a_run_without_the_replicator_fails_naming_the_stage() {
    let graph = Source::from_iter(vec![1i64])
        .via(count())
        .to_sink_mat(Sink::collect());
    // The stage factory refuses the run as it materializes.
    let Err(e) = Materializer::new().materialize(&graph) else {
        panic!("a run without the replicator materialized")
    };
    assert_eq!(
        e.to_string(),
        "stage 'count#1' failed: it reads replicated data, but the run has no \
         ReplicatorHandle<PNCounter>: register one with Materializer::with_service"
    );
}
