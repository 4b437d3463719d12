use super::*;
use crate::source::test_support::{SourceHarness, poll_once, source};
use futures::FutureExt;

fn mk(cap: usize, s: OverflowStrategy) -> (SourceHarness<u32>, SourceQueue<u32>) {
    source(&queue::<u32>(cap, s), 8)
}

type Res = Poll<Result<QueueOfferResult, String>>;

fn res(p: Poll<Result<QueueOfferResult, StageError>>) -> Res {
    p.map(|r| r.map_err(|e| e.message().to_owned()))
}

fn offer_now(q: &SourceQueue<u32>, x: u32) -> Res {
    res(poll_once(&mut q.offer(x).boxed()))
}

#[test]
fn offers_are_emitted_in_order_and_complete_drains() {
    let (mut h, q) = mk(4, OverflowStrategy::Backpressure);
    assert!(h.poll().is_none());
    for i in 0..3 {
        assert_eq!(
            offer_now(&q, i),
            Poll::Ready(Ok(QueueOfferResult::Enqueued))
        );
    }
    assert!(h.flag.take());
    q.complete();
    assert_eq!(
        offer_now(&q, 9),
        Poll::Ready(Ok(QueueOfferResult::QueueClosed))
    );
    assert_eq!(h.drain().unwrap(), vec![0, 1, 2]);
}

#[test]
fn backpressure_waits_for_room() {
    let (mut h, q) = mk(2, OverflowStrategy::Backpressure);
    assert!(offer_now(&q, 1).is_ready());
    assert!(offer_now(&q, 2).is_ready());
    let mut pending = q.offer(3).boxed();
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(h.poll().unwrap().unwrap(), (vec![1, 2], Step::More));
    assert_eq!(
        res(poll_once(&mut pending)),
        Poll::Ready(Ok(QueueOfferResult::Enqueued))
    );
    assert_eq!(h.poll().unwrap().unwrap(), (vec![3], Step::More));
}

#[test]
fn drop_strategies() {
    for (s, want, res) in [
        (
            OverflowStrategy::DropHead,
            vec![2, 3],
            QueueOfferResult::Enqueued,
        ),
        (
            OverflowStrategy::DropTail,
            vec![1, 3],
            QueueOfferResult::Enqueued,
        ),
        (
            OverflowStrategy::DropBuffer,
            vec![3],
            QueueOfferResult::Enqueued,
        ),
        (
            OverflowStrategy::DropNew,
            vec![1, 2],
            QueueOfferResult::Dropped,
        ),
    ] {
        let (mut h, q) = mk(2, s);
        assert!(offer_now(&q, 1).is_ready());
        assert!(offer_now(&q, 2).is_ready());
        assert_eq!(offer_now(&q, 3), Poll::Ready(Ok(res)), "{s:?}");
        drop(q);
        assert_eq!(h.drain().unwrap(), want, "{s:?}");
    }
}

#[test]
fn fail_strategy_and_fail_call_fail_the_stream() {
    let (mut h, q) = mk(1, OverflowStrategy::Fail);
    assert!(offer_now(&q, 1).is_ready());
    let Poll::Ready(Err(e)) = poll_once(&mut q.offer(2).boxed()) else {
        panic!("expected overflow")
    };
    assert!(e.downcast_cause::<BufferOverflow>().is_some());
    assert!(h.poll().unwrap().is_err());

    let (mut h, q) = mk(4, OverflowStrategy::Backpressure);
    assert!(offer_now(&q, 1).is_ready());
    q.fail(StageError::user("stop"));
    assert_eq!(h.poll().unwrap().unwrap_err().message(), "stop");
    assert!(matches!(offer_now(&q, 2), Poll::Ready(Err(_))));
}

#[test]
fn stage_stop_closes_the_queue_and_releases_waiting_offers() {
    let (mut h, q) = mk(1, OverflowStrategy::Backpressure);
    assert!(offer_now(&q, 1).is_ready());
    let mut pending = q.offer(2).boxed();
    assert!(poll_once(&mut pending).is_pending());
    h.post_stop();
    assert_eq!(
        res(poll_once(&mut pending)),
        Poll::Ready(Ok(QueueOfferResult::QueueClosed))
    );
    assert_eq!(q.buffered(), 0);
}

#[test]
fn dropping_every_handle_completes() {
    let (mut h, q) = mk(4, OverflowStrategy::Backpressure);
    let q2 = q.clone();
    assert!(offer_now(&q, 5).is_ready());
    drop(q);
    assert!(offer_now(&q2, 6).is_ready());
    drop(q2);
    assert_eq!(h.drain().unwrap(), vec![5, 6]);
}
