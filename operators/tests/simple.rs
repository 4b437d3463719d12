//! Integration tests of the simple family, run by the engine.

use std::task::{Context, Poll};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{
    DeadLetterSink, ErrorKind, Promise, SinkLogic, SourceLogic, StageCx, Step, promise,
};
use weir_operators::prelude::*;
use weir_operators::simple;

/// Collects every element; completes the future with them or with the stream's error.
struct Collect<T> {
    buf: Vec<T>,
    done: Promise<Vec<T>>,
}

impl<T: Send + 'static> SinkLogic<T> for Collect<T> {
    fn on_batch(&mut self, input: &mut Vec<T>, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.buf.append(input);
        Ok(())
    }
    fn on_finish(&mut self, _: &mut StageCx<'_>) -> Result<(), StageError> {
        self.done.complete(Ok(std::mem::take(&mut self.buf)));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.done.complete(Err(error.clone()));
    }
}

fn collect<T: Send + 'static>() -> Sink<T, SinkFuture<Vec<T>>> {
    Sink::from_logic("collect", |_| {
        let (done, fut) = promise();
        Ok((
            Collect {
                buf: Vec::new(),
                done,
            },
            fut,
        ))
    })
}

/// Emits `items` then fails with a user error.
struct ThenFail<T> {
    items: Vec<T>,
}

impl<T: Send + 'static> SourceLogic<T> for ThenFail<T> {
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        _: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        if self.items.is_empty() {
            return Poll::Ready(Err(StageError::user("source broke")));
        }
        out.append(&mut self.items);
        Poll::Ready(Ok(Step::More))
    }
}

fn then_fail<T: Clone + Send + Sync + 'static>(items: Vec<T>) -> Source<T> {
    Source::from_logic("then_fail", move |_| {
        Ok((
            ThenFail {
                items: items.clone(),
            },
            (),
        ))
    })
}

async fn run<T: Send + 'static>(src: Source<T>, bs: usize) -> Result<Vec<T>, StageError> {
    let m = Materializer::new().with_batch_size(bs);
    let fut = src.run_with_on(collect(), &m);
    let fut = match fut {
        Ok(f) => f,
        Err(e) => return Err(StageError::internal(e.to_string())),
    };
    match tokio::time::timeout(Duration::from_secs(20), fut).await {
        Ok(r) => r,
        Err(_) => Err(StageError::timeout("test run timed out")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn map_filter_sum_like_w1() {
    let src = Source::range(0i64, 100_000)
        .map(|x| x * 2)
        .filter(|x| x % 3 == 0)
        .fold(0i64, |a, x| a + x);
    let want: i64 = (0i64..100_000).map(|x| x * 2).filter(|x| x % 3 == 0).sum();
    assert_eq!(run(src, 1024).await.ok(), Some(vec![want]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn standalone_flows_compose() {
    let flow = simple::map(|x: u32| x + 1)
        .via(simple::filter(|x: &u32| x.is_multiple_of(2)))
        .via(simple::zip_with_index());
    let src = Source::from_iter(vec![1u32, 2, 3, 4, 5]).via(flow);
    assert_eq!(run(src, 2).await.ok(), Some(vec![(2, 0), (4, 1), (6, 2)]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_resume_sends_dead_letters() {
    let (dl, store) = DeadLetterSink::collector();
    let src = Source::from_iter(vec!["1", "x", "3", "y"])
        .try_map(|s: &&str| s.parse::<i32>())
        .with_supervision(Supervision::resume().with_dead_letters(dl));
    assert_eq!(run(src, 1).await.ok(), Some(vec![1, 3]));
    let letters = store.lock().map(|v| v.len()).unwrap_or(0);
    assert_eq!(letters, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_restart_recreates_the_stage_and_goes_on() {
    let (dl, store) = DeadLetterSink::collector();
    let src = Source::from_iter(vec!["1", "x", "3", "4"])
        .try_map(|s: &&str| s.parse::<i32>())
        .with_supervision(Supervision::restart().with_dead_letters(dl));
    assert_eq!(run(src, 8).await.ok(), Some(vec![1, 3, 4]));
    assert_eq!(store.lock().map(|v| v.len()).unwrap_or(0), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn try_map_stop_fails_the_stream() {
    let src = Source::from_iter(vec!["1", "x", "3"]).try_map(|s: &&str| s.parse::<i32>());
    let err = run(src, 4).await.err();
    assert_eq!(err.as_ref().map(StageError::kind), Some(ErrorKind::User));
    assert!(
        err.and_then(|e| e.stage().map(|s| s.starts_with("try_map")))
            .unwrap_or(false)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_cancels_an_endless_source() {
    let src = Source::repeat(7u8).async_boundary().take(5);
    assert_eq!(run(src, 3).await.ok(), Some(vec![7; 5]));
    let src = Source::repeat(1u8).take(0);
    assert_eq!(run(src, 3).await.ok(), Some(vec![]));
    let src = Source::range(0u64, u64::MAX).take_while(|x| *x < 4);
    assert_eq!(run(src, 2).await.ok(), Some(vec![0, 1, 2, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_turns_failure_into_last_element() {
    let src = then_fail(vec![1, 2]).recover(|e| (e.kind() == ErrorKind::User).then_some(-1));
    assert_eq!(run(src, 8).await.ok(), Some(vec![1, 2, -1]));
    let src = then_fail(vec![1])
        .async_boundary()
        .recover_with(|_| Some(vec![8, 9]));
    assert_eq!(run(src, 8).await.ok(), Some(vec![1, 8, 9]));
    let src = then_fail(vec![1]).recover(|_| None);
    assert!(run(src, 8).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reduce_on_empty_fails_and_scan_emits_zero() {
    let src = Source::<u8>::empty().reduce(|a, b| a + b);
    assert!(run(src, 8).await.is_err());
    let src = Source::<u8>::empty().scan(0u32, |a, x| a + u32::from(x));
    assert_eq!(run(src, 8).await.ok(), Some(vec![0]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_and_intersperse_across_boundaries() {
    let src = Source::from_iter(1..=7u8)
        .async_boundary()
        .grouped(3)
        .async_boundary()
        .map(|g| g.len());
    assert_eq!(run(src, 2).await.ok(), Some(vec![3, 3, 1]));
    let src = Source::from_iter(1..=5u8).sliding(2, 3);
    assert_eq!(run(src, 1).await.ok(), Some(vec![vec![1, 2], vec![4, 5]]));
    let src = Source::from_iter(vec!["a", "b"])
        .async_boundary()
        .intersperse_around("[", ",", "]")
        .log("words");
    assert_eq!(run(src, 1).await.ok(), Some(vec!["[", "a", ",", "b", "]"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_map_keeps_every_element() {
    let src = Source::range(0u64, 10_000)
        .rebalance()
        .map(|x| x + 1)
        .parallelism(3)
        .fold(0u64, |a, x| a + x);
    assert_eq!(run(src, 64).await.ok(), Some(vec![(1..=10_000u64).sum()]));
}
