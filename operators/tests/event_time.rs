//! Event time through the engine: `assign_timestamps` emits watermarks in band, junctions and
//! exchanges forward the minimum over their inputs, idle inputs stop holding it back (on the
//! virtual clock), and keyed windows fire on the combined watermark.

use futures::StreamExt;
use futures::channel::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_engine::testkit::{
    ExactProbe, ExactSink, Observed, SourceProbe, TestSource, VirtualClock,
};
use weir_graph::{
    Clock as _, Control, Keep, Promise, Sink, SinkLogic, Source, SourceLogic, StageCx, StageError,
    Step, promise,
};
use weir_operators::prelude::*;
use weir_operators::time::{Timestamped, WatermarkGenerator, WatermarkStrategy};
use weir_operators::window::{Window, WindowOutput, Windows};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// A source fed batch by batch by the test, one feed per subtask.
struct Gated<T>(mpsc::UnboundedReceiver<Vec<T>>);

impl<T: Send + 'static> SourceLogic<T> for Gated<T> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        match self.0.poll_next_unpin(cx) {
            Poll::Ready(Some(b)) => {
                out.extend(b);
                Poll::Ready(Ok(Step::More))
            }
            Poll::Ready(None) => Poll::Ready(Ok(Step::Done)),
            Poll::Pending => Poll::Pending,
        }
    }
}

type Feed<T> = mpsc::UnboundedSender<Vec<T>>;

/// A gated source with `subtasks` feeds (one per subtask).
fn gated<T: Send + 'static>(name: &str, subtasks: usize) -> (Source<T, ()>, Vec<Feed<T>>) {
    let (txs, rxs): (Vec<_>, Vec<_>) = (0..subtasks).map(|_| mpsc::unbounded()).unzip();
    let rxs = Arc::new(Mutex::new(rxs.into_iter().map(Some).collect::<Vec<_>>()));
    let src = Source::from_logic(name, move |info| {
        let rx = rxs
            .lock()
            .ok()
            .and_then(|mut v| v.get_mut(info.subtask).and_then(Option::take))
            .ok_or_else(|| StageError::internal("feed taken twice"))?;
        Ok((Gated(rx), ()))
    });
    let mut m = weir_graph::Module::clone(src.module());
    m.nodes[0].parallelizable = true;
    (Source::from_module(Arc::new(m)), txs)
}

/// What a recording sink saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec<T> {
    El(T),
    Ctl(Control),
    End,
}

struct Recorder<T>(mpsc::UnboundedSender<Rec<T>>, Option<Promise<()>>);

impl<T: Send + 'static> SinkLogic<T> for Recorder<T> {
    fn on_batch(&mut self, input: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        for x in input.drain(..) {
            let _ = self.0.unbounded_send(Rec::El(x));
        }
        Ok(())
    }
    fn on_control(&mut self, control: Control, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let _ = self.0.unbounded_send(Rec::Ctl(control));
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let _ = self.0.unbounded_send(Rec::End);
        if let Some(mut p) = self.1.take() {
            p.complete(Ok(()));
        }
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        if let Some(mut p) = self.1.take() {
            p.complete(Err(error.clone()));
        }
    }
}

fn recorder<T: Send + 'static>() -> (Sink<T, weir_graph::SinkFuture<()>>, Log<T>) {
    let (tx, rx) = mpsc::unbounded();
    let sink = Sink::from_logic("recorder", move |_| {
        let (p, f) = promise();
        Ok((Recorder(tx.clone(), Some(p)), f))
    });
    (sink, Log(rx))
}

struct Log<T>(mpsc::UnboundedReceiver<Rec<T>>);

impl<T: std::fmt::Debug> Log<T> {
    /// The next `n` records (generous bound: a missing record fails the test, never hangs it).
    async fn next(&mut self, n: usize) -> Vec<Rec<T>> {
        let mut v = Vec::new();
        while v.len() < n {
            match tokio::time::timeout(Duration::from_secs(10), self.0.next()).await {
                Ok(Some(r)) => v.push(r),
                Ok(None) => panic!("recorder closed after {v:?}"),
                Err(_) => panic!("timed out after {v:?}"),
            }
        }
        v
    }

    /// Nothing more arrives: the channel closes after what was read.
    async fn closed(&mut self) {
        let rest = tokio::time::timeout(Duration::from_secs(10), self.0.next()).await;
        assert!(matches!(rest, Ok(None)), "unexpected {rest:?}");
    }
}

fn wm<T>(t: i64) -> Rec<T> {
    Rec::Ctl(Control::watermark(t))
}

fn ts<T>(t: i64, v: T) -> Rec<Timestamped<T>> {
    Rec::El(Timestamped::new(t, v))
}

async fn done(h: RunHandle, f: weir_graph::SinkFuture<()>) {
    f.await.unwrap();
    h.wait().await.unwrap();
}

#[tokio::test]
async fn bounded_out_of_orderness_stamps_elements_and_emits_a_watermark_per_batch() {
    let (src, feeds) = gated::<i64>("src", 1);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .assign_timestamps(|x| *x, WatermarkStrategy::bounded_out_of_orderness(ms(10)))
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![100, 120, 105]).unwrap();
    assert_eq!(
        log.next(4).await,
        vec![ts(100, 100), ts(120, 120), ts(105, 105), wm(109)]
    );
    // No advance, no watermark; a marker passes in order.
    feeds[0].unbounded_send(vec![111]).unwrap();
    assert_eq!(log.next(1).await, vec![ts(111, 111)]);
    h.inject(Control::marker(3));
    assert_eq!(log.next(1).await, vec![Rec::Ctl(Control::marker(3))]);
    feeds[0].unbounded_send(vec![200]).unwrap();
    drop(feeds);
    assert_eq!(log.next(3).await, vec![ts(200, 200), wm(189), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

/// Punctuated watermarks: every element with an even timestamp asserts event time up to it.
struct EvenPunctuation(Option<i64>);

impl WatermarkGenerator for EvenPunctuation {
    fn on_event(&mut self, ts: i64) {
        if ts % 2 == 0 {
            self.0 = Some(self.0.map_or(ts, |w| w.max(ts)));
        }
    }
    fn current(&self) -> Option<i64> {
        self.0
    }
}

#[tokio::test]
async fn a_custom_strategy_and_monotonous_timestamps() {
    let (src, feeds) = gated::<i64>("src", 1);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .assign_timestamps(|x| *x, WatermarkStrategy::custom(|| EvenPunctuation(None)))
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1, 3]).unwrap();
    assert_eq!(log.next(2).await, vec![ts(1, 1), ts(3, 3)]);
    feeds[0].unbounded_send(vec![4, 5]).unwrap();
    drop(feeds);
    assert_eq!(log.next(4).await, vec![ts(4, 4), ts(5, 5), wm(4), Rec::End]);
    done(h, f).await;

    let (src, feeds) = gated::<i64>("src", 1);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .assign_timestamps(|x| *x, WatermarkStrategy::monotonous())
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![7, 9]).unwrap();
    drop(feeds);
    assert_eq!(log.next(4).await, vec![ts(7, 7), ts(9, 9), wm(8), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

type Ev = (&'static str, i64, u32);
type Out = WindowOutput<&'static str, u32, Ev>;

fn fired(key: &'static str, start: i64, end: i64, value: u32) -> Rec<Out> {
    Rec::El(WindowOutput::Fired {
        key,
        window: Window::new(start, end),
        value,
    })
}

#[tokio::test]
async fn windows_fire_on_the_minimum_watermark_of_two_merged_inputs() {
    let (a, fa) = gated::<Ev>("a", 1);
    let (b, fb) = gated::<Ev>("b", 1);
    let strategy = WatermarkStrategy::monotonous();
    let b = b.assign_timestamps(|e| e.1, strategy.clone());
    let (sink, mut log) = recorder::<Out>();
    let (f, h) = a
        .assign_timestamps(|e| e.1, strategy)
        .merge(b)
        .window_by(|e: &Timestamped<Ev>| e.value.0, Windows::tumbling(ms(10)))
        .reduce(|x, y| (x.0, x.1.max(y.1), x.2 + y.2))
        .map(|o| match o {
            WindowOutput::Fired { key, window, value } => WindowOutput::Fired {
                key,
                window,
                value: value.2,
            },
            WindowOutput::Late { key, element } => WindowOutput::Late { key, element },
        })
        .to_sink_mat(sink)
        .start()
        .unwrap();
    fa.iter()
        .for_each(|f| f.unbounded_send(vec![("k", 3, 1), ("k", 25, 2)]).unwrap());
    // Input b has no watermark yet: nothing fires, nothing is forwarded.
    fb[0].unbounded_send(vec![("k", 5, 4)]).unwrap();
    // b at 11 (watermark 10): the minimum is 10, window [0, 10) fires with both inputs' elements.
    fb[0].unbounded_send(vec![("k", 11, 8)]).unwrap();
    assert_eq!(log.next(2).await, vec![fired("k", 0, 10, 5), wm(10)]);
    // a is at 24, b goes to 40: the minimum becomes 24, [10, 20) fires.
    fb[0].unbounded_send(vec![("k", 40, 16)]).unwrap();
    assert_eq!(log.next(2).await, vec![fired("k", 10, 20, 8), wm(24)]);
    // An element of a behind the minimum is late: the side output, not the window.
    fa[0].unbounded_send(vec![("k", 2, 32)]).unwrap();
    assert_eq!(
        log.next(1).await,
        vec![Rec::El(WindowOutput::Late {
            key: "k",
            element: Timestamped::new(2, ("k", 2, 32)),
        })]
    );
    // a ends: only b counts; its 39 fires [20, 30) and [30, 40) waits for the end.
    drop(fa);
    assert_eq!(log.next(2).await, vec![fired("k", 20, 30, 2), wm(39)]);
    drop(fb);
    assert_eq!(log.next(2).await, vec![fired("k", 40, 50, 16), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn the_exchange_into_a_window_forwards_the_minimum_over_parallel_subtasks() {
    let (src, feeds) = gated::<Ev>("src", 2);
    let (sink, mut log) = recorder::<WindowOutput<&'static str, u32, Ev>>();
    let (f, h) = src
        .parallelism(2)
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .parallelism(2)
        .window_by(|e: &Timestamped<Ev>| e.value.0, Windows::tumbling(ms(10)))
        .aggregate(Sum)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0]
        .unbounded_send(vec![("x", 1, 1), ("y", 30, 2)])
        .unwrap();
    feeds[1]
        .unbounded_send(vec![("x", 4, 4), ("y", 12, 8)])
        .unwrap();
    let fired = |key, start, end, value| {
        Rec::El(WindowOutput::Fired {
            key,
            window: Window::new(start, end),
            value,
        })
    };
    // Subtask 0 is at 29, subtask 1 at 11: [0, 10) fires, [10, 20) waits.
    assert_eq!(log.next(2).await, vec![fired("x", 0, 10, 5), wm(11)]);
    feeds[1].unbounded_send(vec![("x", 35, 16)]).unwrap();
    assert_eq!(log.next(2).await, vec![fired("y", 10, 20, 8), wm(29)]);
    // Subtask 0 ends: it leaves the minimum, subtask 1's 34 is forwarded.
    let mut feeds = feeds;
    let last = feeds.pop();
    drop(feeds);
    assert_eq!(log.next(1).await, vec![wm(34)]);
    drop(last);
    // The end fires the rest, keys in first-seen order ("x" was forgotten with its first
    // window and came back after "y").
    assert_eq!(
        log.next(3).await,
        vec![fired("y", 30, 40, 2), fired("x", 30, 40, 16), Rec::End]
    );
    done(h, f).await;
    log.closed().await;
}

#[derive(Clone)]
struct Sum;

impl weir_operators::window::AggregateFunction<Ev> for Sum {
    type Acc = u32;
    type Out = u32;
    fn create(&self) -> u32 {
        0
    }
    fn add(&self, acc: &mut u32, value: Ev) {
        *acc += value.2;
    }
    fn merge(&self, acc: &mut u32, other: u32) {
        *acc += other;
    }
    fn result(&self, acc: &u32) -> u32 {
        *acc
    }
}

/// A probe source and a gated one, each with an idle timeout, merged into a window, on the
/// virtual clock.
struct IdleRig {
    a: SourceProbe<Ev>,
    b: Feed<Ev>,
    sink: ExactProbe<WindowOutput<&'static str, u32, Ev>>,
    clock: VirtualClock,
    handle: RunHandle,
}

impl IdleRig {
    fn new() -> Self {
        let clock = VirtualClock::new();
        let strategy = WatermarkStrategy::monotonous().with_idleness(ms(500));
        let (b_src, mut feeds) = gated::<Ev>("b", 1);
        let b_src = b_src.assign_timestamps(|e| e.1, strategy.clone());
        let g = TestSource::probe::<Ev>()
            .assign_timestamps(|e| e.1, strategy)
            .merge(b_src)
            .window_by(|e: &Timestamped<Ev>| e.value.0, Windows::tumbling(ms(10)))
            .aggregate(Sum)
            .to_mat(ExactSink::probe(), Keep::both);
        let m = Materializer::new().with_clock(Arc::new(clock.clone()));
        let ((a, sink), handle) = m.materialize(&g).expect("materializes");
        let b = feeds.remove(0);
        Self {
            a,
            b,
            sink,
            clock,
            handle,
        }
    }

    /// Runs the virtual clock to `t` ms after the start.
    async fn at(&self, t: u64) {
        let now = self.clock.now();
        self.clock.run_for(ms(t).saturating_sub(now)).await;
    }

    /// What reached the sink so far, with the ms it arrived at.
    fn timeline(&self) -> Vec<(u64, Option<(&'static str, (i64, i64), u32)>)> {
        self.sink
            .drain()
            .into_iter()
            .map(|(t, o)| {
                let v = match o {
                    Observed::Next(WindowOutput::Fired { key, window, value }) => {
                        Some((key, (window.start, window.end), value))
                    }
                    Observed::Next(other) => panic!("unexpected {other:?}"),
                    Observed::Complete => None,
                    Observed::Error(e) => panic!("failed: {e}"),
                };
                (t.as_millis() as u64, v)
            })
            .collect()
    }
}

#[tokio::test]
async fn an_idle_input_stops_holding_back_the_watermark_until_it_emits_again() {
    let r = IdleRig::new();
    r.sink.request(100);
    r.a.send(("k", 3, 1));
    r.b.unbounded_send(vec![("k", 1, 4)]).unwrap();
    r.at(100).await;
    // a is at 2, b at 0: nothing is due.
    r.a.send(("k", 15, 2));
    r.at(499).await;
    assert_eq!(r.timeline(), vec![]);
    // b has been quiet for 500 ms: it is idle, a alone (14) fires [0, 10).
    r.at(550).await;
    assert_eq!(r.timeline(), vec![(500, Some(("k", (0, 10), 5)))]);
    // a goes idle at 600 too; b comes back at 15 (nothing due), then 24 fires [10, 20).
    r.at(700).await;
    r.b.unbounded_send(vec![("k", 16, 8)]).unwrap();
    r.at(750).await;
    assert_eq!(r.timeline(), vec![]);
    r.b.unbounded_send(vec![("k", 25, 16)]).unwrap();
    r.at(800).await;
    assert_eq!(r.timeline(), vec![(750, Some(("k", (10, 20), 10)))]);
    r.a.complete();
    r.b.close_channel();
    r.at(900).await;
    assert_eq!(
        r.sink
            .drain()
            .into_iter()
            .map(|(t, o)| (t.as_millis() as u64, matches!(o, Observed::Complete)))
            .collect::<Vec<_>>(),
        vec![(800, false), (800, true)]
    );
    let res = tokio::time::timeout(Duration::from_secs(10), r.handle.wait()).await;
    res.expect("the run ends").expect("the run completes");
}

fn rejected<T: Send + 'static, M: Send + 'static>(src: Source<T, M>) -> String {
    let (sink, _log) = recorder::<T>();
    match src.to_sink_mat(sink).start() {
        Err(e) => e.to_string(),
        Ok(_) => panic!("expected a graph error, the graph ran"),
    }
}

#[tokio::test]
async fn zero_window_sizes_and_idleness_are_rejected_naming_the_stage() {
    let stamped = || {
        Source::from_iter(vec![("k", 1i64, 1u32)])
            .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
    };
    let by_key = |e: &Timestamped<Ev>| e.value.0;
    assert_eq!(
        rejected(
            stamped()
                .window_by(by_key, Windows::tumbling(ms(0)))
                .aggregate(Sum)
        ),
        "invalid graph: invalid parameter of stage 'window_aggregate#3': window_aggregate: tumbling window: \
         size must be at least 1 ms"
    );
    assert_eq!(
        rejected(
            stamped()
                .window_by(by_key, Windows::sliding(ms(10), ms(20)))
                .reduce(|a, _| a)
        ),
        "invalid graph: invalid parameter of stage 'window_reduce#3': window_reduce: sliding window: size and \
         slide must be at least 1 ms, slide at most size"
    );
    assert_eq!(
        rejected(
            Source::from_iter(vec![1i64])
                .assign_timestamps(|x| *x, WatermarkStrategy::monotonous().with_idleness(ms(0)))
        ),
        "invalid graph: invalid parameter of stage 'assign_timestamps#1': assign_timestamps: idleness must be \
         positive, got 0s"
    );
}

type WinOut = WindowOutput<&'static str, u32, Ev>;

/// Probe source -> timestamps -> session windows -> exact probe sink, on a virtual clock.
fn probe_rig() -> (SourceProbe<Ev>, ExactProbe<WinOut>, RunHandle) {
    let clock = VirtualClock::new();
    let g = TestSource::probe::<Ev>()
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .window_by(|e: &Timestamped<Ev>| e.value.0, Windows::session(ms(10)))
        .aggregate(Sum)
        .to_mat(ExactSink::probe(), Keep::both);
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let ((src, sink), handle) = m.materialize(&g).expect("materializes");
    (src, sink, handle)
}

#[tokio::test]
async fn an_upstream_failure_fails_the_window_stage_and_the_run() {
    let (src, sink, handle) = probe_rig();
    sink.request(10);
    src.send(("k", 1, 1));
    src.send(("k", 30, 2));
    src.fail(StageError::user("boom"));
    let res = tokio::time::timeout(Duration::from_secs(10), handle.wait()).await;
    let e = res.expect("the run ends").expect_err("the run fails");
    assert!(e.to_string().contains("boom"), "{e}");
    let got: Vec<_> = sink.drain().into_iter().map(|(_, o)| o).collect();
    // The session [1, 11) fired on the watermark 29 before the failure; the open one does not.
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(matches!(
        &got[0],
        Observed::Next(WindowOutput::Fired { key: "k", window, value: 1 })
            if *window == Window::new(1, 11)
    ));
    assert!(matches!(&got[1], Observed::Error(e) if e.to_string().contains("boom")));
}

#[tokio::test]
async fn cancelling_downstream_cancels_the_source_through_the_windows() {
    let (src, sink, handle) = probe_rig();
    sink.request(10);
    src.send(("k", 1, 1));
    sink.cancel();
    let res = tokio::time::timeout(Duration::from_secs(10), handle.wait()).await;
    res.expect("the run ends")
        .expect("a cancelled run completes");
    assert!(src.is_cancelled());
    assert!(sink.drain().is_empty());
}

#[tokio::test]
async fn late_to_splits_late_elements_off_to_their_own_sink() {
    use weir_operators::window::LateOps;
    let (src, feeds) = gated::<Ev>("src", 1);
    let (late_sink, mut late) = recorder::<(&'static str, Timestamped<Ev>)>();
    let (sink, mut log) = recorder::<(&'static str, Window, u32)>();
    let (f, h) = src
        .assign_timestamps(|e| e.1, WatermarkStrategy::monotonous())
        .window_by(|e: &Timestamped<Ev>| e.value.0, Windows::tumbling(ms(10)))
        .aggregate(Sum)
        .late_to(late_sink)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0]
        .unbounded_send(vec![("k", 5, 1), ("k", 20, 2)])
        .unwrap();
    assert_eq!(
        log.next(2).await,
        vec![Rec::El(("k", Window::new(0, 10), 1)), wm(19)]
    );
    feeds[0].unbounded_send(vec![("k", 3, 4)]).unwrap();
    drop(feeds);
    assert_eq!(
        log.next(2).await,
        vec![Rec::El(("k", Window::new(20, 30), 2)), Rec::End]
    );
    assert_eq!(
        late.next(3).await,
        vec![
            wm(19),
            Rec::El(("k", Timestamped::new(3, ("k", 3, 4)))),
            Rec::End
        ]
    );
    done(h, f).await;
    log.closed().await;
    late.closed().await;
}
