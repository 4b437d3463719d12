//! Cancellation and completion always end the run: a downstream that is done cancels every
//! upstream stage, including sources parked on outside input, timers and in-flight futures.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use weir_engine::prelude::*;
use weir_graph::{GraphBuilder, Keep, Sink, SinkFuture, Source};
use weir_operators::fan::Broadcast;
use weir_operators::prelude::*;
use weir_operators::source::{OverflowStrategy, QueueOfferResult, SourceQueue};

/// Generous real-time bound: the runs below end within milliseconds.
const BOUND: Duration = Duration::from_secs(5);
const HOUR: Duration = Duration::from_secs(3600);

/// The queue reports `closed` and refuses `x`.
async fn assert_closed<T: Send + 'static>(q: &SourceQueue<T>, x: T) {
    assert!(q.is_closed());
    assert_eq!(q.offer(x).await.unwrap(), QueueOfferResult::QueueClosed);
}

async fn ends<F: std::future::Future>(what: &str, f: F) -> F::Output {
    let t = Instant::now();
    let out = tokio::time::timeout(BOUND, f)
        .await
        .unwrap_or_else(|_| panic!("{what}: the run did not end within {BOUND:?}"));
    eprintln!("{what}: ended in {:?}", t.elapsed());
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_zero_cancels_a_parked_queue() {
    let g = Source::<u32>::queue(4, OverflowStrategy::Backpressure)
        .take(0)
        .to_mat(Sink::collect(), Keep::both);
    let ((q, out), h) = g.start().unwrap();
    assert_eq!(ends("take(0) fused", out).await.unwrap(), Vec::<u32>::new());
    ends("take(0) fused wait", h.wait()).await.unwrap();
    assert_closed(&q, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_zero_behind_a_boundary_cancels_a_parked_queue() {
    let g = Source::<u32>::queue(4, OverflowStrategy::Backpressure)
        .async_boundary()
        .take(0)
        .to_mat(Sink::collect(), Keep::both);
    let ((q, out), h) = g.start().unwrap();
    assert_eq!(
        ends("take(0) boundary", out).await.unwrap(),
        Vec::<u32>::new()
    );
    ends("take(0) boundary wait", h.wait()).await.unwrap();
    assert_closed(&q, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_n_after_n_elements_cancels_a_parked_queue() {
    for boundary in [false, true] {
        let src = Source::<u32>::queue(4, OverflowStrategy::Backpressure);
        let src = if boundary { src.async_boundary() } else { src };
        let g = src.take(2).to_mat(Sink::collect(), Keep::both);
        let ((q, out), h) = g.start().unwrap();
        assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::Enqueued);
        tokio::task::yield_now().await;
        assert_eq!(q.offer(2).await.unwrap(), QueueOfferResult::Enqueued);
        assert_eq!(ends("take(2)", out).await.unwrap(), vec![1, 2]);
        ends("take(2) wait", h.wait()).await.unwrap();
        assert_closed(&q, 3).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_zero_cancels_a_slow_tick() {
    let g = Source::tick(HOUR, HOUR, 7u8)
        .take(0)
        .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    assert_eq!(ends("tick take(0)", out).await.unwrap(), Vec::<u8>::new());
    ends("tick take(0) wait", h.wait()).await.unwrap();
    let g = Source::tick(Duration::ZERO, HOUR, 7u8)
        .take(1)
        .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    assert_eq!(ends("tick take(1)", out).await.unwrap(), vec![7]);
    ends("tick take(1) wait", h.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zip_after_one_input_completed_cancels_the_other() {
    let g = Source::<u32>::queue(4, OverflowStrategy::Backpressure)
        .zip(Source::from_iter(vec!['a']))
        .to_mat(Sink::collect(), Keep::both);
    let ((q, out), h) = g.start().unwrap();
    assert_eq!(q.offer(1).await.unwrap(), QueueOfferResult::Enqueued);
    assert_eq!(ends("zip", out).await.unwrap(), vec![(1, 'a')]);
    ends("zip wait", h.wait()).await.unwrap();
    assert_closed(&q, 3).await;
    let g = Source::tick(HOUR, HOUR, 1u8)
        .zip(Source::<u8>::empty())
        .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    assert_eq!(ends("zip tick", out).await.unwrap(), vec![]);
    ends("zip tick wait", h.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intersperse_then_take_cancels_a_parked_queue() {
    let g = Source::<u32>::queue(4, OverflowStrategy::Backpressure)
        .intersperse(0)
        .take(3)
        .to_mat(Sink::collect(), Keep::both);
    let ((q, out), h) = g.start().unwrap();
    q.offer(1).await.unwrap();
    q.offer(2).await.unwrap();
    assert_eq!(ends("intersperse", out).await.unwrap(), vec![1, 0, 2]);
    ends("intersperse wait", h.wait()).await.unwrap();
    assert_closed(&q, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcast_whose_outputs_all_cancelled_cancels_upstream() {
    let g = broadcast_graph(
        Broadcast::<u32>::new(2),
        weir_operators::simple::take::<u32>(1).to_mat(Sink::collect(), Keep::right),
    );
    let ((q, o0, o1), h) = g.start().unwrap();
    assert_eq!(ends("broadcast out1", o1).await.unwrap(), Vec::<u32>::new());
    q.offer(5).await.unwrap();
    assert_eq!(ends("broadcast out0", o0).await.unwrap(), vec![5]);
    ends("broadcast wait", h.wait()).await.unwrap();
    assert_closed(&q, 6).await;
}

/// Counts live futures: incremented on creation, decremented on drop.
struct Live(Arc<AtomicUsize>);
impl Live {
    /// One more live future counted in `live`.
    fn track(live: &Arc<AtomicUsize>) -> Self {
        live.fetch_add(1, Ordering::SeqCst);
        Self(Arc::clone(live))
    }
}
impl Drop for Live {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Waits (up to a second) until `n` futures are live, and checks that they are.
async fn expect_live(live: &AtomicUsize, n: usize) {
    for _ in 0..1000 {
        if live.load(Ordering::SeqCst) == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(live.load(Ordering::SeqCst), n);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_switch_shutdown_drops_map_async_futures_in_flight() {
    let live = Arc::new(AtomicUsize::new(0));
    let l2 = Arc::clone(&live);
    let g = Source::<u32>::queue(16, OverflowStrategy::Backpressure)
        .map_async(4, move |x: u32| {
            let guard = Live::track(&l2);
            async move {
                let _g = guard;
                futures::future::pending::<()>().await;
                Ok::<u32, weir_graph::StageError>(x)
            }
        })
        .via_mat(KillSwitches::single(), Keep::both)
        .to_mat(Sink::collect(), Keep::both);
    let (((q, ks), out), h) = g.start().unwrap();
    for i in 0..6 {
        q.offer(i).await.unwrap();
    }
    expect_live(&live, 4).await;
    ks.shutdown();
    assert_eq!(ends("kill switch", out).await.unwrap(), Vec::<u32>::new());
    ends("kill switch wait", h.wait()).await.unwrap();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "in-flight futures are dropped"
    );
    assert_closed(&q, 9).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_with_a_sink_stuck_in_a_blocking_call_returns_after_the_grace() {
    use std::sync::atomic::AtomicBool;
    assert_eq!(weir_engine::DEFAULT_CANCEL_GRACE, Duration::from_secs(3));
    let release = Arc::new(AtomicBool::new(false));
    let entered = Arc::new(AtomicBool::new(false));
    let (r2, e2) = (Arc::clone(&release), Arc::clone(&entered));
    let g = Source::from_iter(0..10u32).to_mat(
        Sink::for_each(move |_x: u32| {
            e2.store(true, Ordering::SeqCst);
            // A user call that blocks its thread until the test lets it go.
            while !r2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        })
        .named("stuck_sink"),
        Keep::right,
    );
    let grace = Duration::from_millis(300);
    let m = Materializer::new().with_cancel_grace(grace);
    let (_done, h) = m.materialize(&g).unwrap();
    while !entered.load(Ordering::SeqCst) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = Instant::now();
    h.cancel();
    let err = ends("stuck sink", h.wait()).await.unwrap_err();
    let took = t.elapsed();
    release.store(true, Ordering::SeqCst);
    assert!(took >= grace, "waited the grace first ({took:?})");
    assert_eq!(err.kind(), weir_graph::ErrorKind::Timeout);
    assert_eq!(err.stage(), Some("stuck_sink#1"));
    let msg = err.to_string();
    assert!(
        msg.starts_with(
            "stage 'stuck_sink#1' failed: did not stop within 300ms of cancellation: stuck in a \
             blocking call on thread"
        ) && msg.contains("(island-"),
        "{msg}"
    );
}

/// A parked queue into `bc`, its output 0 into `first`, its output 1 into `take(0)`.
fn broadcast_graph(
    bc: Broadcast<u32>,
    first: Sink<u32, SinkFuture<Vec<u32>>>,
) -> weir_graph::RunnableGraph<(SourceQueue<u32>, SinkFuture<Vec<u32>>, SinkFuture<Vec<u32>>)> {
    let mut b = GraphBuilder::new();
    let (src, kq) = b.add_source(Source::<u32>::queue(4, OverflowStrategy::Backpressure));
    let bc = b.add(bc);
    b.connect(src, bc.inlet).unwrap();
    let (s0, k0) = b.add_sink(first);
    let (s1, k1) =
        b.add_sink(weir_operators::simple::take::<u32>(0).to_mat(Sink::collect(), Keep::right));
    b.connect(bc.outlets[0], s0).unwrap();
    b.connect(bc.outlets[1], s1).unwrap();
    b.build_mat(move |m| {
        (
            m.take(kq).unwrap(),
            m.take(k0).unwrap(),
            m.take(k1).unwrap(),
        )
    })
    .unwrap()
}

fn unzip_graph(
    eager: bool,
) -> weir_graph::RunnableGraph<(
    weir_operators::source::SourceQueue<(u32, char)>,
    weir_graph::SinkFuture<Vec<u32>>,
    weir_graph::SinkFuture<Vec<char>>,
)> {
    use weir_operators::fan::Unzip;
    let mut b = GraphBuilder::new();
    let (src, kq) = b.add_source(Source::<(u32, char)>::queue(
        4,
        OverflowStrategy::Backpressure,
    ));
    let u = b.add(Unzip::<u32, char>::new().eager_cancel(eager));
    b.connect(src, u.inlet).unwrap();
    let (l, kl) =
        b.add_sink(weir_operators::simple::take::<u32>(2).to_mat(Sink::collect(), Keep::right));
    let (r, kr) =
        b.add_sink(weir_operators::simple::take::<char>(0).to_mat(Sink::collect(), Keep::right));
    b.connect(u.left, l).unwrap();
    b.connect(u.right, r).unwrap();
    b.build_mat(move |m| {
        (
            m.take(kq).unwrap(),
            m.take(kl).unwrap(),
            m.take(kr).unwrap(),
        )
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unzip_serves_its_last_output_and_cancels_upstream_when_it_cancels() {
    let ((q, left, right), h) = unzip_graph(false).start().unwrap();
    assert_eq!(
        ends("unzip right", right).await.unwrap(),
        Vec::<char>::new()
    );
    // The right output is gone; the left one still gets every first half.
    assert_eq!(q.offer((1, 'a')).await.unwrap(), QueueOfferResult::Enqueued);
    assert_eq!(q.offer((2, 'b')).await.unwrap(), QueueOfferResult::Enqueued);
    assert_eq!(ends("unzip left", left).await.unwrap(), vec![1, 2]);
    ends("unzip wait", h.wait()).await.unwrap();
    assert!(q.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_unzip_cancels_upstream_at_the_first_cancelled_output() {
    let ((q, left, right), h) = unzip_graph(true).start().unwrap();
    assert_eq!(
        ends("eager unzip right", right).await.unwrap(),
        Vec::<char>::new()
    );
    assert_eq!(
        ends("eager unzip left", left).await.unwrap(),
        Vec::<u32>::new()
    );
    ends("eager unzip wait", h.wait()).await.unwrap();
    assert!(q.is_closed());
    assert_eq!(
        q.offer((1, 'a')).await.unwrap(),
        QueueOfferResult::QueueClosed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eager_broadcast_cancels_upstream_at_the_first_cancelled_output() {
    let g = broadcast_graph(Broadcast::<u32>::new(2).eager_cancel(true), Sink::collect());
    let ((q, o0, o1), h) = g.start().unwrap();
    assert_eq!(
        ends("eager broadcast out1", o1).await.unwrap(),
        Vec::<u32>::new()
    );
    assert_eq!(
        ends("eager broadcast out0", o0).await.unwrap(),
        Vec::<u32>::new()
    );
    ends("eager broadcast wait", h.wait()).await.unwrap();
    assert!(q.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_drops_map_async_futures_in_flight() {
    let live = Arc::new(AtomicUsize::new(0));
    let l2 = Arc::clone(&live);
    let g = Source::repeat(1u32)
        .map_async(4, move |x: u32| {
            let guard = Live::track(&l2);
            async move {
                let _g = guard;
                tokio::time::sleep(HOUR).await;
                Ok::<u32, weir_graph::StageError>(x)
            }
        })
        .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    expect_live(&live, 4).await;
    h.cancel();
    let err = ends("cancel map_async", h.wait()).await.unwrap_err();
    assert_eq!(err.kind(), weir_graph::ErrorKind::Cancelled);
    assert_eq!(
        out.await.unwrap_err().kind(),
        weir_graph::ErrorKind::Cancelled
    );
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "in-flight futures are dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_downstream_drops_parked_unfold_async_and_stream_sources() {
    let live = Arc::new(AtomicUsize::new(0));
    let l2 = Arc::clone(&live);
    let g = Source::unfold_async(0u32, move |s: u32| {
        let guard = Live::track(&l2);
        async move {
            let _g = guard;
            if s == 0 {
                return Some((1, 10u32));
            }
            // The second call waits for outside input that never comes.
            futures::future::pending::<Option<(u32, u32)>>().await
        }
    })
    .async_boundary()
    .take(1)
    .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    assert_eq!(ends("unfold_async", out).await.unwrap(), vec![10]);
    ends("unfold_async wait", h.wait()).await.unwrap();
    assert_eq!(
        live.load(Ordering::SeqCst),
        0,
        "the parked future is dropped"
    );
    let g = Source::from_stream(futures::stream::pending::<u8>)
        .zip(Source::<u8>::empty())
        .to_mat(Sink::collect(), Keep::right);
    let (out, h) = g.start().unwrap();
    assert_eq!(ends("pending stream", out).await.unwrap(), vec![]);
    ends("pending stream wait", h.wait()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_returns_after_the_grace_when_every_sink_finished_but_a_source_is_stuck() {
    use std::sync::atomic::AtomicBool;
    let release = Arc::new(AtomicBool::new(false));
    let r2 = Arc::clone(&release);
    let g = Source::unfold(0u32, move |s| {
        if s == 1 {
            // A user call that blocks its thread (outside input that does not come).
            while !r2.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        Some((s + 1, s))
    })
    .async_boundary()
    .take(1)
    .to_mat(Sink::collect(), Keep::right);
    let grace = Duration::from_millis(300);
    let m = Materializer::new()
        .with_batch_size(1)
        .with_cancel_grace(grace);
    let (out, h) = m.materialize(&g).unwrap();
    assert_eq!(ends("stuck source", out).await.unwrap(), vec![0]);
    let t = Instant::now();
    let r = ends("stuck source wait", h.wait()).await;
    let took = t.elapsed();
    assert!(!h.is_finished(), "the stuck source is left behind");
    release.store(true, Ordering::SeqCst);
    r.unwrap();
    assert!(took >= grace / 2, "waited for the grace ({took:?})");
}
