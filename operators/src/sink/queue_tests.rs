use super::*;
use crate::source::test_support::async_sink;
use futures::StreamExt;

#[tokio::test]
async fn pull_backpressures_and_completes() {
    let (task, feed, mut q) = async_sink(&queue::<u32>(2));
    let task = tokio::spawn(task);
    feed.batch((0..5u32).collect::<Vec<_>>());
    tokio::task::yield_now().await;
    // Only `capacity` elements are buffered while nobody pulls.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    assert!(q.0.0.lock().buf.len() <= 2);
    feed.end();
    let mut got = Vec::new();
    while let Some(x) = q.pull().await.unwrap() {
        got.push(x);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);
    assert_eq!(q.pull().await.unwrap(), None);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn pull_sees_upstream_error_after_buffered_elements() {
    let (task, feed, mut q) = async_sink(&queue::<u32>(8));
    let task = tokio::spawn(task);
    feed.batch(vec![1u32]);
    feed.error(StageError::user("up"));
    assert_eq!(q.pull().await.unwrap(), Some(1));
    assert_eq!(q.pull().await.unwrap_err().message(), "up");
    assert!(task.await.unwrap().is_err());
}

#[tokio::test]
async fn dropping_the_handle_cancels_upstream() {
    let (task, feed, q) = async_sink(&queue::<u32>(1));
    let task = tokio::spawn(task);
    feed.batch(vec![1u32, 2, 3]);
    tokio::task::yield_now().await;
    q.cancel();
    task.await.unwrap().unwrap();
    assert!(feed.is_cancelled());
}

#[tokio::test]
async fn stopping_the_stage_ends_pulls_with_cancelled() {
    let (task, _feed, mut q) = async_sink(&queue::<u32>(1));
    drop(task);
    let e = q.pull().await.unwrap_err();
    assert_eq!(e.kind(), weir_graph::ErrorKind::Cancelled);
}

#[tokio::test]
async fn into_stream_yields_results_then_ends() {
    let (task, feed, stream) = async_sink(&into_stream::<u32>());
    let task = tokio::spawn(task);
    feed.batch(vec![1u32, 2]);
    feed.batch(vec![3u32]);
    feed.end();
    let got: Vec<u32> = stream.map(|r| r.unwrap()).collect().await;
    assert_eq!(got, vec![1, 2, 3]);
    task.await.unwrap().unwrap();

    let (task, feed, mut stream) = async_sink(&into_stream::<u32>());
    let task = tokio::spawn(task);
    feed.error(StageError::user("x"));
    assert!(stream.next().await.unwrap().is_err());
    assert!(stream.next().await.is_none());
    assert!(futures::stream::FusedStream::is_terminated(&stream));
    assert!(task.await.unwrap().is_err());
}
