//! Run-scoped services reach every stage factory of a run, including those of the sub-graphs
//! it starts while it runs (substreams, lazy sources, restart incarnations).

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{SourceLogic, StageCx, Step};
use weir_operators::prelude::*;

mod support;
use support::*;

/// The service the tests register on the materializer.
struct Tag(u32);

/// Emits its value once.
struct Once(Option<u32>);

impl SourceLogic<u32> for Once {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<u32>,
    ) -> Poll<Result<Step, StageError>> {
        out.extend(self.0.take());
        Poll::Ready(Ok(Step::Done))
    }
}

/// A source emitting `x` plus the run's `Tag`; fails to materialize outside such a run.
fn tagged(x: u32) -> Source<u32, ()> {
    Source::from_logic("tagged", move |info| {
        let tag = info
            .services
            .get::<Tag>()
            .ok_or_else(|| StageError::internal("no Tag service in this run"))?;
        Ok((Once(Some(x + tag.0)), ()))
    })
}

/// Runs `src` to a collecting sink with the `Tag(tag)` service.
async fn run_tagged(src: Source<u32, ()>, tag: u32) -> Result<Vec<u32>, StageError> {
    let (fut, _h) = Materializer::new()
        .with_service(Arc::new(Tag(tag)))
        .materialize(&src.to_sink_mat(collect()))
        .map_err(|e| StageError::internal(e.to_string()))?;
    fut.await
}

#[tokio::test]
async fn services_reach_the_stages_of_the_run_and_not_of_another() {
    assert_eq!(run_tagged(tagged(1), 100).await.unwrap(), vec![101]);
    let e = run_collect(tagged(1)).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        "stage 'tagged#0' failed: no Tag service in this run"
    );
}

#[tokio::test]
async fn substreams_see_the_services_of_their_run() {
    let s = from_vec(vec![1u32, 2, 3]).flat_map_concat(tagged);
    assert_eq!(run_tagged(s, 10).await.unwrap(), vec![11, 12, 13]);
    let s = from_vec(vec![1u32, 2, 3]).flat_map_merge(2, tagged);
    assert_eq!(sorted(run_tagged(s, 20).await.unwrap()), vec![21, 22, 23]);
}

#[tokio::test]
async fn lazy_sources_see_the_services_of_their_run() {
    let s = Source::<u32>::lazy(|| tagged(5)).map_materialized_value(|_| ());
    assert_eq!(run_tagged(s, 30).await.unwrap(), vec![35]);
}

#[tokio::test]
async fn restart_incarnations_see_the_services_of_their_run() {
    let settings = RestartSettings::new(Duration::from_millis(1), Duration::from_millis(2), 0.0)
        .unwrap()
        .with_max_restarts(2, Duration::from_secs(60));
    let s = RestartSource::with_backoff(settings, || tagged(7));
    assert_eq!(run_tagged(s, 40).await.unwrap(), vec![47, 47, 47]);
}
