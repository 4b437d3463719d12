//! Substream operators, run through the engine.

use std::task::{Context, Poll};
use weir_engine::prelude::*;
use weir_engine::testkit::{TestSink, TestSource};
use weir_graph::{Flow, FlowLogic, Keep, Source, SourceLogic, StageCx, StageError, Step};
use weir_operators::substream::SubstreamOps;

// ---- tiny local stages (independent of the other operator families) ----

mod support;
use support::*;

fn repeat(x: u32) -> Source<u32, ()> {
    struct R(u32);
    impl SourceLogic<u32> for R {
        fn poll_next(
            &mut self,
            cx: &mut Context<'_>,
            _scx: &mut StageCx<'_>,
            out: &mut Vec<u32>,
        ) -> Poll<Result<Step, StageError>> {
            out.extend(std::iter::repeat_n(self.0, 16));
            cx.waker().wake_by_ref();
            Poll::Ready(Ok(Step::More))
        }
    }
    Source::from_logic("repeat", move |_| Ok((R(x), ())))
}

struct Take(usize);
impl FlowLogic<u32, u32> for Take {
    fn on_batch(
        &mut self,
        input: &mut Vec<u32>,
        out: &mut Vec<u32>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let n = self.0.min(input.len());
        out.extend(input.drain(..).take(n));
        self.0 -= n;
        Ok(())
    }
    fn is_done(&self) -> bool {
        self.0 == 0
    }
}

fn take(n: usize) -> Flow<u32, u32, ()> {
    Flow::from_logic("take", move |_| Ok((Take(n), ())))
}

/// Emits everything received as one vector when upstream completes.
fn to_vec<T: Send + 'static>() -> Flow<T, Vec<T>, ()> {
    struct V<T>(Vec<T>);
    impl<T: Send + 'static> FlowLogic<T, Vec<T>> for V<T> {
        fn on_batch(
            &mut self,
            input: &mut Vec<T>,
            _out: &mut Vec<Vec<T>>,
            _scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            self.0.append(input);
            Ok(())
        }
        fn on_finish(
            &mut self,
            out: &mut Vec<Vec<T>>,
            _scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            out.push(std::mem::take(&mut self.0));
            Ok(())
        }
    }
    Flow::from_logic("to_vec", |_| Ok((V(Vec::new()), ())))
}

// ---- flat_map ----

#[tokio::test]
async fn flat_map_concat_keeps_substream_order() {
    let s = from_vec(vec![1u32, 2, 3, 0, 4]).flat_map_concat(|x| from_vec(vec![x; x as usize]));
    assert_eq!(
        run_collect(s).await.unwrap(),
        vec![1, 2, 2, 3, 3, 3, 4, 4, 4, 4]
    );
    // Substreams bigger than a batch are still emitted one after the other.
    let s = from_vec(vec![0u32, 1, 2]).flat_map_concat(|x| from_vec(vec![x; 5000]));
    let v = run_collect(s).await.unwrap();
    assert_eq!(v.len(), 15_000);
    assert!(v.windows(2).all(|w| w[0] <= w[1]));
}

#[tokio::test]
async fn flat_map_merge_emits_everything() {
    let s = from_vec((0..50u32).collect()).flat_map_merge(8, |x| from_vec(vec![x; 100]));
    let v = run_collect(s).await.unwrap();
    assert_eq!(
        sorted(v),
        (0..50u32).flat_map(|x| vec![x; 100]).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn flat_map_merge_runs_at_most_breadth_substreams() {
    // Endless substreams: only the first `breadth` ever start.
    let s = from_vec((0..10u32).collect())
        .flat_map_merge(2, repeat)
        .via(take(5000));
    let v = run_collect(s).await.unwrap();
    assert_eq!(v.len(), 5000);
    assert!(v.iter().all(|x| *x < 2), "only substreams 0 and 1 run");
    assert!(v.contains(&0) && v.contains(&1));
}

#[tokio::test]
async fn flat_map_fails_when_a_substream_fails() {
    let s = from_vec(vec![1u32, 2, 3]).flat_map_concat(|x| {
        if x == 2 {
            failing(vec![20], "sub failed")
        } else {
            from_vec(vec![x])
        }
    });
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("sub failed"), "{err}");
}

#[tokio::test]
async fn flat_map_cancels_upstream_when_downstream_cancels() {
    let g = TestSource::probe::<u32>()
        .flat_map_merge(4, |x| from_vec(vec![x, x]))
        .to_mat(TestSink::probe::<u32>(), Keep::both);
    let ((src, mut sink), _h) = g.start().unwrap();
    sink.request(2);
    src.send(7);
    assert_eq!(sink.expect_next().await, 7);
    assert_eq!(sink.expect_next().await, 7);
    sink.cancel();
    src.expect_cancellation().await;
}

// ---- group_by ----

#[tokio::test]
async fn group_by_runs_one_flow_per_key() {
    let s = from_vec((0..3000u32).collect())
        .group_by(10, |x| x % 3)
        .merge_substreams_via(to_vec());
    let mut groups = run_collect(s).await.unwrap();
    groups.sort();
    assert_eq!(groups.len(), 3);
    for (k, g) in groups.iter().enumerate() {
        assert_eq!(
            *g,
            (0..3000u32)
                .filter(|x| x % 3 == k as u32)
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn group_by_fails_past_max_substreams() {
    let s = from_vec((0..10u32).collect())
        .group_by(2, |x| x % 3)
        .merge_substreams_via(to_vec());
    let err = run_collect(s).await.unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("too many substreams"), "{msg}");
    assert!(msg.contains("group_by#"), "{msg}");
}

#[tokio::test]
async fn group_by_drops_elements_of_a_substream_that_completed() {
    let s = from_vec((0..100u32).collect())
        .group_by(4, |x| x % 2)
        .merge_substreams_via(take(3));
    let v = run_collect(s).await.unwrap();
    assert_eq!(sorted(v), vec![0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn group_by_propagates_upstream_failure() {
    let s = failing((0..10u32).collect(), "upstream broke")
        .group_by(4, |x| x % 2)
        .merge_substreams_via(to_vec());
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("upstream broke"), "{err}");
}

// ---- split ----

#[tokio::test]
async fn split_when_starts_segments_at_matches() {
    let s = from_vec(vec![1u32, 2, 3, 10, 4, 5, 10, 6])
        .split_when(|x| *x == 10)
        .merge_substreams_via(to_vec());
    assert_eq!(
        run_collect(s).await.unwrap(),
        vec![vec![1, 2, 3], vec![10, 4, 5], vec![10, 6]]
    );
    // A match on the very first element opens no empty segment.
    let s = from_vec(vec![10u32, 1, 10])
        .split_when(|x| *x == 10)
        .merge_substreams_via(to_vec());
    assert_eq!(run_collect(s).await.unwrap(), vec![vec![10, 1], vec![10]]);
}

#[tokio::test]
async fn split_after_ends_segments_at_matches() {
    let s = from_vec(vec![1u32, 2, 3, 10, 4, 5, 10, 6])
        .split_after(|x| *x == 10)
        .merge_substreams_via(to_vec());
    assert_eq!(
        run_collect(s).await.unwrap(),
        vec![vec![1, 2, 3, 10], vec![4, 5, 10], vec![6]]
    );
    let s = from_vec(vec![1u32, 10])
        .split_after(|x| *x == 10)
        .merge_substreams_via(to_vec());
    assert_eq!(run_collect(s).await.unwrap(), vec![vec![1, 10]]);
}

#[tokio::test]
async fn split_segments_run_through_separate_flow_instances() {
    // take(2) per segment: each segment gets a fresh instance.
    let s = from_vec((0..12u32).collect())
        .split_when(|x| x % 4 == 0)
        .merge_substreams_via(take(2));
    assert_eq!(run_collect(s).await.unwrap(), vec![0, 1, 4, 5, 8, 9]);
    // Large segments (several batches each) keep their order.
    let s = from_vec((0..20_000u32).collect())
        .split_after(|x| x % 7000 == 6999)
        .merge_substreams_via(to_vec());
    let segs = run_collect(s).await.unwrap();
    assert_eq!(
        segs.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![7000, 7000, 6000]
    );
    assert_eq!(segs.concat(), (0..20_000u32).collect::<Vec<_>>());
}

// ---- recover_with_retries ----

#[tokio::test]
async fn recover_with_retries_switches_to_the_recovery_source() {
    let s = failing(vec![1u32, 2], "boom").recover_with_retries(1, |e| {
        assert!(e.to_string().contains("boom"));
        Some(from_vec(vec![9u32, 10]))
    });
    assert_eq!(run_collect(s).await.unwrap(), vec![1, 2, 9, 10]);
}

#[tokio::test]
async fn try_recover_with_retries_fails_with_the_error_of_its_function() {
    use weir_operators::substream::try_recover_with_retries;
    let f = try_recover_with_retries(2, |e: &StageError| {
        if e.message() == "first" {
            Ok(Some(failing(vec![7u32], "second")))
        } else {
            Err(StageError::user("no recovery"))
        }
    });
    let g = failing(vec![1u32], "first")
        .via(f)
        .to_mat(TestSink::probe::<u32>(), Keep::right);
    let mut probe = g.run().unwrap();
    probe.request(10);
    assert_eq!(probe.expect_next_n(2).await, vec![1, 7]);
    assert_eq!(
        probe.expect_error().await,
        "stage 'recover_with_retries#1' failed: no recovery"
    );
}

#[tokio::test]
async fn recover_with_retries_gives_up_after_attempts() {
    let s = failing(vec![1u32], "first")
        .recover_with_retries(2, |_| Some(failing(vec![5u32], "again")));
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("again"), "{err}");
    let s = failing(vec![1u32], "first").recover_with_retries(0, |_| Some(from_vec(vec![5u32])));
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("first"), "{err}");
    let s = failing(vec![1u32], "kept").recover_with_retries(3, |_| None::<Source<u32, ()>>);
    let err = run_collect(s).await.unwrap_err();
    assert!(err.to_string().contains("kept"), "{err}");
}
