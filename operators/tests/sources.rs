//! Sources run through the engine.

use futures::StreamExt;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{TestSink, VirtualClock};
use weir_graph::{Clock, Keep, Sink, Source, StageError};
use weir_operators::sink::SinkCtors;
use weir_operators::source::{OverflowStrategy, QueueOfferResult, SourceCtors};

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

#[tokio::test]
async fn from_iter_single_empty_into_collect() {
    let v = Source::from_iter(vec![1, 2, 3])
        .run_with(Sink::collect())
        .unwrap();
    assert_eq!(within(v).await.unwrap(), vec![1, 2, 3]);
    let s = Source::single("x").run_with(Sink::collect()).unwrap();
    assert_eq!(within(s).await.unwrap(), vec!["x"]);
    let e = Source::<u8>::empty().run_with(Sink::collect()).unwrap();
    assert!(within(e).await.unwrap().is_empty());
}

#[tokio::test]
async fn blueprints_are_reusable() {
    let src = Source::from_iter(0..10u32);
    for _ in 0..3 {
        let f = src.clone().run_with(Sink::fold(0, |a, x| a + x)).unwrap();
        assert_eq!(within(f).await.unwrap(), 45);
    }
}

#[tokio::test]
async fn failed_source_fails_the_sink() {
    let f = Source::<u8>::failed(StageError::user("nope"))
        .run_with(Sink::collect())
        .unwrap();
    let e = within(f).await.unwrap_err();
    assert_eq!(e.message(), "nope");
}

#[tokio::test]
async fn range_is_exact_for_every_batch_size() {
    for batch in [1, 7, 1024] {
        let m = Materializer::new().with_batch_size(batch);
        let f = Source::range(0u64, 100_000)
            .run_with_on(Sink::fold((0u64, 0u64), |(n, s), x| (n + 1, s + x)), &m)
            .unwrap();
        assert_eq!(within(f).await.unwrap(), (100_000, 4_999_950_000));
    }
    let f = Source::range(-5i64, 5).run_with(Sink::collect()).unwrap();
    assert_eq!(within(f).await.unwrap(), (-5..5).collect::<Vec<_>>());
    let f = Source::range(3usize, 3).run_with(Sink::collect()).unwrap();
    assert!(within(f).await.unwrap().is_empty());
}

#[tokio::test]
async fn infinite_repeat_is_cancelled_by_head() {
    let f = Source::repeat(7u8).run_with(Sink::head()).unwrap();
    assert_eq!(within(f).await.unwrap(), 7);
}

#[tokio::test]
async fn from_stream_and_unfolds() {
    let f = Source::from_stream(|| futures::stream::iter(1..=4).then(|x| async move { x * 2 }))
        .run_with(Sink::collect())
        .unwrap();
    assert_eq!(within(f).await.unwrap(), vec![2, 4, 6, 8]);

    let f =
        Source::from_try_stream(|| futures::stream::iter(vec![Ok(1), Err(StageError::user("s"))]))
            .run_with(Sink::collect())
            .unwrap();
    assert_eq!(within(f).await.unwrap_err().message(), "s");

    let f = Source::unfold(1u64, |n| (n <= 1000).then_some((n * 10, n)))
        .run_with(Sink::collect())
        .unwrap();
    assert_eq!(within(f).await.unwrap(), vec![1, 10, 100, 1000]);

    let f = Source::unfold_async(0u32, |n| async move {
        tokio::task::yield_now().await;
        (n < 5).then_some((n + 1, n))
    })
    .run_with(Sink::collect())
    .unwrap();
    assert_eq!(within(f).await.unwrap(), vec![0, 1, 2, 3, 4]);
}

#[tokio::test]
async fn tick_follows_the_virtual_clock() {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let g = Source::tick(Duration::from_millis(10), Duration::from_millis(5), 'x')
        .to_mat(TestSink::probe(), Keep::both);
    let ((cancel, mut probe), _run) = m.materialize(&g).unwrap();
    probe.request(10);
    for _ in 0..3 {
        within(async {
            while clock.pending_timers() == 0 {
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(probe.try_next_event().is_none());
        let due = clock.next_deadline().unwrap();
        clock.advance(due - clock.now());
        assert_eq!(probe.expect_next().await, 'x');
    }
    assert_eq!(clock.now(), Duration::from_millis(20));
    cancel.cancel();
    probe.expect_complete().await;
}

#[tokio::test]
async fn queue_backpressures_offers_and_completes() {
    let g = Source::queue(4, OverflowStrategy::Backpressure).to_mat(Sink::collect(), Keep::both);
    let (q, out) = g.run().unwrap();
    within(async {
        for i in 0..1000u32 {
            assert_eq!(q.offer(i).await.unwrap(), QueueOfferResult::Enqueued);
        }
    })
    .await;
    q.complete();
    assert_eq!(within(out).await.unwrap(), (0..1000).collect::<Vec<_>>());
    assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::QueueClosed);
}

#[tokio::test]
async fn queue_fail_and_downstream_cancel() {
    let g = Source::queue(4, OverflowStrategy::DropNew).to_mat(Sink::collect(), Keep::both);
    let (q, out) = g.run().unwrap();
    q.fail(StageError::user("gone"));
    assert_eq!(within(out).await.unwrap_err().message(), "gone");
    assert!(q.offer(1u8).await.is_err());

    let g = Source::queue(2, OverflowStrategy::Backpressure).to_mat(Sink::head(), Keep::both);
    let (q, head) = g.run().unwrap();
    assert_eq!(q.offer(5u8).await.unwrap(), QueueOfferResult::Enqueued);
    assert_eq!(within(head).await.unwrap(), 5);
    within(async {
        while q.offer(6).await.unwrap() != QueueOfferResult::QueueClosed {
            tokio::task::yield_now().await;
        }
    })
    .await;
}

#[tokio::test]
async fn dropping_the_queue_handle_completes_the_source() {
    let g = Source::<u8, _>::queue(2, OverflowStrategy::Backpressure)
        .to_mat(Sink::collect(), Keep::right);
    let out = g.run().unwrap();
    assert!(within(out).await.unwrap().is_empty());
}

/// Throughput smoke check for the fast path; run with `--release -- --ignored`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "timing; run in release"]
async fn range_throughput_smoke() {
    let n = 200_000_000u64;
    let t = std::time::Instant::now();
    let f = Source::range(0u64, n).run_with(Sink::ignore()).unwrap();
    f.await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    eprintln!("range -> ignore: {:.2} Melem/s", n as f64 / secs / 1e6);
    let t = std::time::Instant::now();
    let f = Source::range(0u64, n)
        .run_with(Sink::fold(0u64, |a, x| a.wrapping_add(x)))
        .unwrap();
    assert_eq!(f.await.unwrap(), (n - 1) * n / 2);
    let secs = t.elapsed().as_secs_f64();
    eprintln!("range -> fold: {:.2} Melem/s", n as f64 / secs / 1e6);
}
