//! Sinks run through the engine.

use futures::StreamExt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::TestSource;
use weir_graph::{ErrorKind, Keep, Sink, Source, StageError};
use weir_operators::sink::{EmptyStream, SinkCtors};
use weir_operators::source::SourceCtors;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

#[tokio::test]
async fn collect_fold_for_each_ignore() {
    let f = Source::range(0u32, 5000).run_with(Sink::collect()).unwrap();
    assert_eq!(within(f).await.unwrap(), (0..5000).collect::<Vec<_>>());
    let f = Source::range(1u64, 101)
        .run_with(Sink::fold(0, |a, x| a + x))
        .unwrap();
    assert_eq!(within(f).await.unwrap(), 5050);
    let seen = Arc::new(AtomicUsize::new(0));
    let s = Arc::clone(&seen);
    let f = Source::range(0usize, 10)
        .run_with(Sink::for_each(move |x| {
            s.fetch_add(x, Ordering::SeqCst);
        }))
        .unwrap();
    within(f).await.unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), 45);
    let f = Source::range(0u8, 200).run_with(Sink::ignore()).unwrap();
    within(f).await.unwrap();
}

#[tokio::test]
async fn head_last_and_options() {
    let f = Source::range(10u32, 20).run_with(Sink::head()).unwrap();
    assert_eq!(within(f).await.unwrap(), 10);
    let f = Source::<u32>::empty().run_with(Sink::head()).unwrap();
    let e = within(f).await.unwrap_err();
    assert!(e.downcast_cause::<EmptyStream>().is_some());
    let f = Source::<u32>::empty()
        .run_with(Sink::head_option())
        .unwrap();
    assert_eq!(within(f).await.unwrap(), None);
    let f = Source::range(10u32, 20).run_with(Sink::last()).unwrap();
    assert_eq!(within(f).await.unwrap(), 19);
    let f = Source::<u32>::empty().run_with(Sink::last()).unwrap();
    assert!(within(f).await.is_err());
    let f = Source::range(10u32, 20)
        .run_with(Sink::last_option())
        .unwrap();
    assert_eq!(within(f).await.unwrap(), Some(19));
}

#[tokio::test]
async fn head_cancels_upstream() {
    let g = TestSource::probe::<u32>().to_mat(Sink::head(), Keep::both);
    let (probe, head) = g.run().unwrap();
    probe.send_all(vec![3, 4, 5]);
    assert_eq!(within(head).await.unwrap(), 3);
    probe.expect_cancellation().await;
}

#[tokio::test]
async fn upstream_failure_reaches_every_future() {
    let g = TestSource::probe::<u32>().to_mat(Sink::collect(), Keep::both);
    let (probe, out) = g.run().unwrap();
    probe.send(1);
    probe.fail(StageError::user("up"));
    assert_eq!(within(out).await.unwrap_err().message(), "up");

    let g = TestSource::probe::<u32>().to_mat(Sink::for_each_async(2, |_| async {}), Keep::both);
    let (probe, out) = g.run().unwrap();
    probe.fail(StageError::user("up2"));
    assert_eq!(within(out).await.unwrap_err().message(), "up2");
}

#[tokio::test]
async fn for_each_async_bounds_parallelism() {
    let live = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let total = Arc::new(AtomicUsize::new(0));
    let (l, p, t) = (Arc::clone(&live), Arc::clone(&peak), Arc::clone(&total));
    let f = Source::range(0usize, 200)
        .run_with(Sink::for_each_async(4, move |x| {
            let (l, p, t) = (Arc::clone(&l), Arc::clone(&p), Arc::clone(&t));
            async move {
                p.fetch_max(l.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                tokio::task::yield_now().await;
                t.fetch_add(x, Ordering::SeqCst);
                l.fetch_sub(1, Ordering::SeqCst);
            }
        }))
        .unwrap();
    within(f).await.unwrap();
    assert_eq!(total.load(Ordering::SeqCst), 199 * 100);
    assert!(peak.load(Ordering::SeqCst) <= 4);
}

#[tokio::test]
async fn queue_pulls_everything_with_backpressure() {
    let mut q = Source::range(0u32, 10_000)
        .run_with(Sink::queue(8))
        .unwrap();
    let mut got = Vec::new();
    while let Some(x) = within(q.pull()).await.unwrap() {
        got.push(x);
    }
    assert_eq!(got, (0..10_000).collect::<Vec<_>>());
}

#[tokio::test]
async fn dropping_the_queue_cancels_upstream() {
    let g = TestSource::probe::<u32>().to_mat(Sink::queue(1), Keep::both);
    let (probe, mut q) = g.run().unwrap();
    probe.send_all(vec![1, 2, 3]);
    assert_eq!(within(q.pull()).await.unwrap(), Some(1));
    drop(q);
    probe.expect_cancellation().await;
}

#[tokio::test]
async fn into_stream_yields_elements_then_errors() {
    let s = Source::range(0u32, 3000)
        .run_with(Sink::into_stream())
        .unwrap();
    let got: Vec<u32> = within(s.map(Result::unwrap).collect()).await;
    assert_eq!(got, (0..3000).collect::<Vec<_>>());

    let g = TestSource::probe::<u32>().to_mat(Sink::into_stream(), Keep::both);
    let (probe, mut s) = g.run().unwrap();
    probe.send(1);
    probe.fail(StageError::user("bad"));
    assert_eq!(within(s.next()).await.unwrap().unwrap(), 1);
    assert_eq!(
        within(s.next()).await.unwrap().unwrap_err().message(),
        "bad"
    );
    assert!(s.next().await.is_none());
}

#[tokio::test]
async fn from_sink_writes_into_a_futures_sink() {
    let (tx, rx) = futures::channel::mpsc::channel::<u32>(4);
    let tx = Arc::new(Mutex::new(Some(tx)));
    let sink = Sink::from_sink(move || tx.lock().unwrap().take().expect("materialized once"));
    let done = Source::range(0u32, 500).run_with(sink).unwrap();
    let got: Vec<u32> = within(rx.collect()).await;
    assert_eq!(got, (0..500).collect::<Vec<_>>());
    within(done).await.unwrap();

    let (tx, rx) = futures::channel::mpsc::channel::<u32>(4);
    drop(rx);
    let tx = Arc::new(Mutex::new(Some(tx)));
    let sink = Sink::from_sink(move || tx.lock().unwrap().take().expect("materialized once"));
    let done = Source::range(0u32, 10).run_with(sink).unwrap();
    assert_eq!(within(done).await.unwrap_err().kind(), ErrorKind::External);
}
