//! Topics: publishers and subscribers of named topics in several runs, the slowest reader
//! holding publishers back, closing, and the peer-facing reader and inbound rings.

use proptest::prelude::*;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{ProbeEvent, SinkProbe, TestSink, TestSource};
use weir_graph::{Keep, Sink, Source};
use weir_operators::hub::{Topic, TopicError, TopicStats, Topics};
use weir_operators::prelude::*;

const WAIT: Duration = Duration::from_secs(10);

async fn within<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(WAIT, f).await.expect("timed out")
}

/// Lets every spawned task run until it waits.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

fn tight() -> Materializer {
    Materializer::new().with_batch_size(1).with_buffer_rows(1)
}

fn subscribe<T: Clone + Send + std::fmt::Debug + 'static>(
    t: &Topic<T>,
    m: &Materializer,
) -> SinkProbe<T> {
    t.source()
        .to_mat(TestSink::probe(), Keep::right)
        .run_on(m)
        .unwrap()
}

#[tokio::test]
async fn every_subscriber_gets_what_is_published_after_it_attached_in_publish_order() {
    let topics = Topics::with_buffer(4).unwrap();
    let t = topics.topic::<u32>("prices").unwrap();
    // Nobody listens yet: published elements are dropped and counted.
    Source::from_iter(vec![100, 101])
        .run_with(t.sink())
        .unwrap()
        .await
        .unwrap();
    assert_eq!(t.stats().unheard, 2);
    let mut a = subscribe(&t, &Materializer::new());
    let mut b = subscribe(
        &topics.topic::<u32>("prices").unwrap(),
        &Materializer::new(),
    );
    a.request(100);
    b.request(100);
    let p = TestSource::probe::<u32>().to(t.sink()).run().unwrap();
    p.send_all(vec![1, 2, 3]);
    assert_eq!(within(a.expect_next_n(3)).await, vec![1, 2, 3]);
    assert_eq!(within(b.expect_next_n(3)).await, vec![1, 2, 3]);
    // `b` leaves; `a` goes on alone and a newcomer starts after what was published before it.
    b.cancel();
    settle().await;
    p.send(4);
    assert_eq!(within(a.expect_next()).await, 4);
    let mut c = subscribe(&t, &Materializer::new());
    c.request(100);
    settle().await;
    p.send(5);
    assert_eq!(within(a.expect_next()).await, 5);
    assert_eq!(within(c.expect_next()).await, 5);
    p.complete();
    settle().await;
    assert_eq!(
        t.stats(),
        TopicStats {
            subscribers: 2,
            remote_readers: 0,
            published: 5,
            unheard: 2,
            received: 0,
            dropped: 0,
            buffered: 0,
        }
    );
    // A publisher's end does not end the topic; closing it does, after what is held.
    assert!(a.try_next_event().is_none());
    t.close();
    within(a.expect_complete()).await;
    within(c.expect_complete()).await;
    assert!(
        b.try_next_event().is_none(),
        "a cancelled subscriber gets nothing more"
    );
}

#[tokio::test]
async fn a_topic_is_typed_by_its_first_use() {
    let topics = Topics::new();
    topics.topic::<u32>("t").unwrap();
    let e = topics.topic::<String>("t").unwrap_err();
    assert_eq!(
        e,
        TopicError::WrongType {
            topic: "t".into(),
            has: "u32",
            asked: "alloc::string::String",
        }
    );
    assert_eq!(
        e.to_string(),
        "topic \"t\" carries u32, not alloc::string::String"
    );
    assert_eq!(topics.names(), vec!["t".to_owned()]);
    assert!(Topics::with_buffer(0).is_err());
}

#[tokio::test]
async fn the_slowest_subscriber_holds_every_publisher_until_it_reads_or_leaves() {
    let topics = Topics::with_buffer(4).unwrap();
    let t = topics.topic::<u32>("t").unwrap();
    let fast = t
        .source()
        .take(200)
        .run_with_on(Sink::collect(), &tight())
        .unwrap();
    let mut slow = subscribe(&t, &tight());
    let pulled = Arc::new(AtomicUsize::new(0));
    let counted = |from: u32, pulled: &Arc<AtomicUsize>| {
        let pulled = Arc::clone(pulled);
        Source::from_iter(from..from + 100).map(move |x| {
            pulled.fetch_add(1, Ordering::SeqCst);
            x
        })
    };
    let p1 = counted(0, &pulled).run_with_on(t.sink(), &tight()).unwrap();
    let p2 = counted(1000, &pulled)
        .run_with_on(t.sink(), &tight())
        .unwrap();
    settle().await;
    // The slow subscriber asked for nothing: the ring (4) plus what each publisher and the
    // slow subscriber's stages hold in flight is all that left the sources.
    let held = pulled.load(Ordering::SeqCst);
    assert!(held <= 4 + 2 * 3 + 3, "publishers ran ahead: {held} pulled");
    assert!(held >= 4, "publishers never filled the ring: {held}");
    assert!(t.stats().buffered <= 4);
    // Once it reads, everything flows; per publisher in order, all of both.
    slow.request(1_000);
    let got = within(slow.expect_next_n(200)).await;
    let fast = within(fast).await.unwrap();
    for out in [&got, &fast] {
        let (a, b): (Vec<u32>, Vec<u32>) = out.iter().partition(|x| **x < 1000);
        assert_eq!(a, (0..100).collect::<Vec<_>>());
        assert_eq!(b, (1000..1100).collect::<Vec<_>>());
    }
    within(p1).await.unwrap();
    within(p2).await.unwrap();
}

#[tokio::test]
async fn a_cancelled_slow_subscriber_releases_the_publishers() {
    let t = Topics::with_buffer(2).unwrap().topic::<u32>("t").unwrap();
    let fast = t.source().take(50).run_with(Sink::collect()).unwrap();
    let slow = subscribe(&t, &tight());
    let p = Source::from_iter(0..50)
        .run_with_on(t.sink(), &tight())
        .unwrap();
    settle().await;
    assert!(
        t.stats().published < 50,
        "the slow subscriber held nothing back"
    );
    slow.cancel();
    within(p).await.unwrap();
    assert_eq!(within(fast).await.unwrap(), (0..50).collect::<Vec<_>>());
    assert_eq!(t.stats().subscribers, 0);
}

#[tokio::test]
async fn closing_a_topic_completes_subscribers_after_what_they_hold_and_cancels_publishers() {
    let t = Topics::new().topic::<u32>("t").unwrap();
    let mut sub = subscribe(&t, &Materializer::new());
    let (src, done) = TestSource::probe::<u32>()
        .to_mat(t.sink(), Keep::both)
        .run()
        .unwrap();
    src.send_all(vec![1, 2]);
    settle().await;
    t.close();
    within(done).await.unwrap();
    within(src.expect_cancellation()).await;
    sub.request(10);
    assert_eq!(
        within(sub.collect_all()).await,
        (vec![1, 2], ProbeEvent::Complete)
    );
    // A subscriber or publisher of a closed topic ends at once.
    let late = t.source().run_with(Sink::collect()).unwrap();
    assert_eq!(within(late).await.unwrap(), Vec::<u32>::new());
    Source::from_iter(0..3)
        .run_with(t.sink())
        .unwrap()
        .await
        .unwrap();
}

#[tokio::test]
async fn a_failing_publisher_fails_only_its_own_run() {
    let t = Topics::new().topic::<u32>("t").unwrap();
    let mut sub = subscribe(&t, &Materializer::new());
    sub.request(10);
    let (bad, done) = TestSource::probe::<u32>()
        .to_mat(t.sink(), Keep::both)
        .run()
        .unwrap();
    bad.send(1);
    bad.fail(weir_graph::StageError::user("publisher broke"));
    assert_eq!(within(done).await.unwrap_err().message(), "publisher broke");
    Source::single(2).run_with(t.sink()).unwrap().await.unwrap();
    assert_eq!(within(sub.expect_next_n(2)).await, vec![1, 2]);
}

fn poll_once<R>(f: impl FnOnce(&mut Context<'_>) -> Poll<R>) -> Poll<R> {
    let waker = futures::task::noop_waker();
    f(&mut Context::from_waker(&waker))
}

#[tokio::test]
async fn peers_read_only_local_publications_and_their_rows_are_bounded_by_the_ring() {
    let t = Topics::with_buffer(3).unwrap().topic::<u32>("t").unwrap();
    let mut inbound = t.inbound();
    assert_eq!(inbound.capacity(), 3);
    // No subscriber: a peer's rows are dropped and their room handed back at once.
    inbound.push(vec![9, 9]).unwrap();
    assert_eq!(poll_once(|cx| inbound.poll_freed(cx)), Poll::Ready(2));
    assert_eq!(t.stats().dropped, 2);

    let mut reader = t.remote_reader();
    let mut sub = subscribe(&t, &Materializer::new());
    settle().await;
    inbound.push(vec![7, 8]).unwrap();
    assert_eq!(
        inbound.push(vec![1, 2]),
        Err(TopicError::Overrun {
            topic: "t".into(),
            rows: 2,
            room: 1
        })
    );
    Source::single(1).run_with(t.sink()).unwrap().await.unwrap();
    // The peer reader sees only the local publication, never what another peer delivered.
    let mut got = Vec::new();
    assert_eq!(
        poll_once(|cx| reader.poll_take(cx, 10, &mut got)),
        Poll::Ready(true)
    );
    assert_eq!(got, vec![1]);
    assert_eq!(
        poll_once(|cx| reader.poll_take(cx, 10, &mut got)),
        Poll::Pending
    );
    assert!(poll_once(|cx| inbound.poll_freed(cx)).is_pending());
    sub.request(10);
    let mut seen = within(sub.expect_next_n(3)).await;
    seen.sort_unstable();
    assert_eq!(seen, vec![1, 7, 8]);
    // The subscriber read the peer's rows: their room is credit to grant again.
    assert_eq!(poll_once(|cx| inbound.poll_freed(cx)), Poll::Ready(2));
    assert_eq!(t.stats().remote_readers, 1);
    drop(reader);
    assert_eq!(t.stats().remote_readers, 0);
    t.close();
    within(sub.expect_complete()).await;
}

#[tokio::test]
async fn interest_hooks_fire_when_subscribers_come_and_go() {
    let t = Topics::new().topic::<u32>("t").unwrap();
    let flips = Arc::new(AtomicUsize::new(0));
    let f = Arc::clone(&flips);
    t.on_interest(Arc::new(move || {
        f.fetch_add(1, Ordering::SeqCst);
    }));
    let a = subscribe(&t, &Materializer::new());
    let b = subscribe(&t, &Materializer::new());
    assert_eq!(flips.load(Ordering::SeqCst), 1);
    assert!(t.has_subscribers());
    within(t.wait_for_readers(2, 0)).await;
    a.cancel();
    settle().await;
    assert_eq!(flips.load(Ordering::SeqCst), 1);
    b.cancel();
    settle().await;
    assert_eq!(flips.load(Ordering::SeqCst), 2);
    assert!(!t.has_subscribers());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Any number of publishers and subscribers, any buffer: every subscriber gets every
    /// element once, each publisher's in its order.
    #[test]
    fn every_subscriber_gets_each_publishers_sequence_once_in_order(
        pubs in proptest::collection::vec(0u32..60, 1..4),
        subs in 1usize..4,
        buffer in 1usize..8,
        batch in 1usize..5,
    ) {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        rt.block_on(async move {
            let t = Topics::with_buffer(buffer).unwrap().topic::<(usize, u32)>("t").unwrap();
            let total: u32 = pubs.iter().sum();
            let m = Materializer::new().with_batch_size(batch);
            let outs: Vec<_> = (0..subs)
                .map(|_| t.source().take(total as usize).run_with_on(Sink::collect(), &m).unwrap())
                .collect();
            let runs: Vec<_> = pubs
                .iter()
                .enumerate()
                .map(|(p, n)| Source::from_iter((0..*n).map(move |i| (p, i))).run_with_on(t.sink(), &m).unwrap())
                .collect();
            for r in runs {
                within(r).await.unwrap();
            }
            for out in outs {
                let got = within(out).await.unwrap();
                for (p, n) in pubs.iter().enumerate() {
                    let mine: Vec<u32> = got.iter().filter(|(q, _)| *q == p).map(|(_, i)| *i).collect();
                    assert_eq!(mine, (0..*n).collect::<Vec<_>>());
                }
                assert_eq!(got.len(), total as usize);
            }
        });
    }
}
