//! Control messages injected at the sources by `RunHandle::inject` travel in band through fused
//! chains, channels, junctions and parallel subtasks, and reach every sink input exactly once,
//! after every element that was produced before them.

use futures::StreamExt;
use futures::channel::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use weir_engine::prelude::*;
use weir_graph::{
    Control, FlowLogic, GraphBuilder, Promise, Sink, SinkLogic, Source, SourceLogic, StageCx,
    StageError, Step, promise,
};
use weir_operators::fan::{Broadcast, Merge};
use weir_operators::prelude::*;

/// What a recording sink saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Rec {
    El(u32),
    Ctl(Control),
    End,
}

/// A source fed batch by batch by the test, one feed per subtask.
struct Gated(mpsc::UnboundedReceiver<Vec<u32>>);

impl SourceLogic<u32> for Gated {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        _scx: &mut StageCx<'_>,
        out: &mut Vec<u32>,
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

type Feed = mpsc::UnboundedSender<Vec<u32>>;

/// A gated source with `subtasks` feeds (one per subtask).
fn gated(name: &str, subtasks: usize) -> (Source<u32, ()>, Vec<Feed>) {
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
    // Each subtask reads its own feed: the source may run as several subtasks.
    let mut m = weir_graph::Module::clone(src.module());
    m.nodes[0].parallelizable = true;
    (Source::from_module(Arc::new(m)), txs)
}

/// A sink that reports every element, control and its end on a channel.
struct Recorder(mpsc::UnboundedSender<Rec>, Option<Promise<()>>);

impl SinkLogic<u32> for Recorder {
    fn on_batch(&mut self, input: &mut Vec<u32>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
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

fn recorder() -> (Sink<u32, weir_graph::SinkFuture<()>>, Log) {
    let (tx, rx) = mpsc::unbounded();
    let sink = Sink::from_logic("recorder", move |_| {
        let (p, f) = promise();
        Ok((Recorder(tx.clone(), Some(p)), f))
    });
    (sink, Log(rx))
}

/// What one recorder reported so far.
struct Log(mpsc::UnboundedReceiver<Rec>);

impl Log {
    /// The next `n` records (generous bound: a missing record fails the test, never hangs it).
    async fn next(&mut self, n: usize) -> Vec<Rec> {
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

    /// The next `n` records, elements sorted (their order across merged inputs is free).
    async fn next_elements(&mut self, n: usize) -> Vec<Rec> {
        let mut v = self.next(n).await;
        v.sort_by_key(|r| match r {
            Rec::El(x) => *x,
            _ => u32::MAX,
        });
        v
    }

    /// Nothing more arrives: the channel closes after what was read.
    async fn closed(&mut self) {
        let rest = tokio::time::timeout(Duration::from_secs(10), self.0.next()).await;
        assert!(matches!(rest, Ok(None)), "unexpected {rest:?}");
    }
}

fn els(xs: impl IntoIterator<Item = u32>) -> Vec<Rec> {
    xs.into_iter().map(Rec::El).collect()
}

fn ctl(id: u64) -> Rec {
    Rec::Ctl(Control::marker(id))
}

async fn done(h: RunHandle, f: weir_graph::SinkFuture<()>) {
    f.await.unwrap();
    h.wait().await.unwrap();
}

#[tokio::test]
async fn a_marker_passes_a_fused_chain_after_the_batch_before_it() {
    let (src, feeds) = gated("src", 1);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .map(|x| x * 10)
        .filter(|x| *x != 20)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1, 2, 3]).unwrap();
    assert_eq!(log.next(2).await, els([10, 30]));
    assert_eq!(h.inject(Control::marker(7)), 1);
    assert_eq!(log.next(1).await, vec![ctl(7)]);
    feeds[0].unbounded_send(vec![4]).unwrap();
    drop(feeds);
    assert_eq!(log.next(2).await, vec![Rec::El(40), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn a_marker_crosses_async_boundaries_and_channels_in_order() {
    let (src, feeds) = gated("src", 1);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .async_boundary()
        .map(|x| x + 1)
        .async_boundary()
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1, 2]).unwrap();
    assert_eq!(log.next(2).await, els([2, 3]));
    h.inject(Control::marker(1));
    feeds[0].unbounded_send(vec![3]).unwrap();
    h.inject(Control::marker(2));
    drop(feeds);
    assert_eq!(
        log.next(4).await,
        vec![ctl(1), Rec::El(4), ctl(2), Rec::End]
    );
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn parallel_sources_align_and_the_sink_sees_one_marker() {
    let (src, feeds) = gated("src", 2);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .parallelism(2)
        .map(|x| x + 100)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1, 2]).unwrap();
    feeds[1].unbounded_send(vec![3]).unwrap();
    assert_eq!(log.next_elements(3).await, els([101, 102, 103]));
    assert_eq!(h.inject(Control::marker(5)), 2);
    assert_eq!(log.next(1).await, vec![ctl(5)]);
    feeds[1].unbounded_send(vec![4]).unwrap();
    feeds[0].unbounded_send(vec![5]).unwrap();
    drop(feeds);
    let mut rest = log.next_elements(3).await;
    assert_eq!(rest.pop(), Some(Rec::End));
    assert_eq!(rest, els([104, 105]));
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn a_channel_that_delivered_a_marker_waits_for_the_others() {
    // Subtask 0 has its marker and more data queued behind it; subtask 1 has not reached the
    // marker yet: the data behind the marker is held until subtask 1 delivers it too.
    let (src, feeds) = gated("src", 2);
    let (sink, mut log) = recorder();
    let (f, h) = src
        .parallelism(2)
        .async_boundary()
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1]).unwrap();
    feeds[1].unbounded_send(vec![2]).unwrap();
    assert_eq!(log.next_elements(2).await, els([1, 2]));
    h.inject(Control::marker(1));
    feeds[0].unbounded_send(vec![3]).unwrap();
    feeds[1].unbounded_send(vec![4]).unwrap();
    drop(feeds);
    let v = log.next(4).await;
    assert_eq!(v[0], ctl(1), "{v:?}");
    let mut after = v[1..3].to_vec();
    after.sort_by_key(|r| match r {
        Rec::El(x) => *x,
        _ => 0,
    });
    assert_eq!(after, els([3, 4]));
    assert_eq!(v[3], Rec::End);
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn merge_of_two_sources_forwards_one_marker() {
    let (a, fa) = gated("a", 1);
    let (b, fb) = gated("b", 1);
    let (sink, mut log) = recorder();
    let mut g = GraphBuilder::new();
    let (sa, _) = g.add_source(a);
    let (sb, _) = g.add_source(b);
    let m = g.add(Merge::<u32>::new(2));
    let (si, k) = g.add_sink(sink);
    g.connect(sa, m.inlets[0]).unwrap();
    g.connect(sb, m.inlets[1]).unwrap();
    g.connect(m.outlet, si).unwrap();
    let (f, h) = g
        .build_mat(move |mv| mv.take(k).unwrap())
        .unwrap()
        .start()
        .unwrap();
    fa[0].unbounded_send(vec![1, 2]).unwrap();
    fb[0].unbounded_send(vec![3]).unwrap();
    assert_eq!(log.next_elements(3).await, els([1, 2, 3]));
    assert_eq!(h.inject(Control::marker(9)), 2);
    assert_eq!(log.next(1).await, vec![ctl(9)]);
    fa[0].unbounded_send(vec![4]).unwrap();
    drop(fa);
    drop(fb);
    assert_eq!(log.next(2).await, vec![Rec::El(4), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn broadcast_gives_each_branch_one_marker_and_a_diamond_rejoins_them_once() {
    let (src, feeds) = gated("src", 1);
    let (left, mut log_left) = recorder();
    let (joined, mut log_joined) = recorder();
    let mut g = GraphBuilder::new();
    let (s, _) = g.add_source(src);
    let bc = g.add(Broadcast::<u32>::new(3));
    let m = g.add(Merge::<u32>::new(2));
    let (l, kl) = g.add_sink(left);
    let (j, kj) = g.add_sink(joined);
    g.connect(s, bc.inlet).unwrap();
    g.connect(bc.outlets[0], l).unwrap();
    g.connect(bc.outlets[1], m.inlets[0]).unwrap();
    g.connect(bc.outlets[2], m.inlets[1]).unwrap();
    g.connect(m.outlet, j).unwrap();
    let ((fl, fj), h) = g
        .build_mat(move |mv| (mv.take(kl).unwrap(), mv.take(kj).unwrap()))
        .unwrap()
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1]).unwrap();
    assert_eq!(log_left.next(1).await, els([1]));
    assert_eq!(log_joined.next(2).await, els([1, 1]));
    h.inject(Control::marker(3));
    assert_eq!(log_left.next(1).await, vec![ctl(3)]);
    assert_eq!(log_joined.next(1).await, vec![ctl(3)]);
    drop(feeds);
    assert_eq!(log_left.next(1).await, vec![Rec::End]);
    assert_eq!(log_joined.next(1).await, vec![Rec::End]);
    fl.await.unwrap();
    done(h, fj).await;
    log_left.closed().await;
    log_joined.closed().await;
}

#[tokio::test]
async fn zip_forwards_one_marker_once_both_inputs_delivered_it() {
    let (a, fa) = gated("a", 1);
    let (b, fb) = gated("b", 1);
    let (sink, mut log) = recorder();
    let (f, h) = a
        .zip(b)
        .map(|(x, y)| x * 10 + y)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    fa[0].unbounded_send(vec![1, 2]).unwrap();
    fb[0].unbounded_send(vec![3, 4]).unwrap();
    assert_eq!(log.next(2).await, els([13, 24]));
    h.inject(Control::marker(1));
    assert_eq!(log.next(1).await, vec![ctl(1)]);
    fa[0].unbounded_send(vec![5]).unwrap();
    fb[0].unbounded_send(vec![6]).unwrap();
    drop(fa);
    drop(fb);
    assert_eq!(log.next(2).await, vec![Rec::El(56), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

/// Emits how many elements it passed since the last marker, just before passing the marker on.
struct CountAtMarker(u32);

impl FlowLogic<u32, u32> for CountAtMarker {
    fn on_batch(
        &mut self,
        input: &mut Vec<u32>,
        out: &mut Vec<u32>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.0 += input.len() as u32;
        out.append(input);
        Ok(())
    }
    fn on_control(
        &mut self,
        control: Control,
        out: &mut Vec<u32>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        out.push(1000 + std::mem::take(&mut self.0));
        // Marker 0 is held back (a stage may consume a control).
        Ok((control != Control::marker(0)).then_some(control))
    }
}

#[tokio::test]
async fn a_stage_that_handles_control_emits_before_it_and_may_hold_it_back() {
    let (src, feeds) = gated("src", 1);
    let (sink, mut log) = recorder();
    let counter = weir_graph::Flow::from_logic("count-at-marker", |_| Ok((CountAtMarker(0), ())));
    let (f, h) = src
        .via(counter)
        .map(|x| x + 1)
        .to_sink_mat(sink)
        .start()
        .unwrap();
    feeds[0].unbounded_send(vec![1, 2, 3]).unwrap();
    assert_eq!(log.next(3).await, els([2, 3, 4]));
    h.inject(Control::marker(4));
    assert_eq!(log.next(2).await, vec![Rec::El(1004), ctl(4)]);
    feeds[0].unbounded_send(vec![5]).unwrap();
    assert_eq!(log.next(1).await, els([6]));
    h.inject(Control::marker(0));
    assert_eq!(log.next(1).await, els([1002]));
    drop(feeds);
    assert_eq!(log.next(1).await, vec![Rec::End]);
    done(h, f).await;
    log.closed().await;
}

/// Fails on any control.
struct FailOnControl;

impl FlowLogic<u32, u32> for FailOnControl {
    fn on_batch(
        &mut self,
        input: &mut Vec<u32>,
        out: &mut Vec<u32>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.append(input);
        Ok(())
    }
    fn on_control(
        &mut self,
        _control: Control,
        _out: &mut Vec<u32>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        Err(StageError::user("cannot take a marker"))
    }
}

#[tokio::test]
async fn a_failing_control_handler_fails_the_run_naming_the_stage() {
    let (src, feeds) = gated("src", 1);
    let (sink, mut log) = recorder();
    let stage = weir_graph::Flow::from_logic("picky", |_| Ok((FailOnControl, ())));
    let (f, h) = src.via(stage).to_sink_mat(sink).start().unwrap();
    feeds[0].unbounded_send(vec![1]).unwrap();
    assert_eq!(log.next(1).await, els([1]));
    h.inject(Control::marker(1));
    let e = f.await.unwrap_err();
    assert_eq!(e.to_string(), h.wait().await.unwrap_err().to_string());
    assert!(e.to_string().contains("picky#1"), "{e}");
    assert!(e.to_string().contains("cannot take a marker"), "{e}");
    log.closed().await;
}

/// An asynchronous stage that handles control itself: passes elements on and, at a marker,
/// emits how many it passed since the last one before forwarding the marker.
struct AsyncCounter;

impl weir_graph::AsyncLogic for AsyncCounter {
    fn run(
        self: Box<Self>,
        mut io: weir_graph::AsyncIo,
    ) -> futures::future::BoxFuture<'static, Result<(), StageError>> {
        use futures::FutureExt;
        use weir_graph::{Event, Signal};
        async move {
            let mut input = io.input::<u32>(0)?;
            let mut output = io.output::<u32>(0)?;
            let mut seen = 0;
            loop {
                match input.recv_signal().await {
                    Signal::Event(Event::Batch(b)) => {
                        seen += b.len() as u32;
                        if output.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Signal::Event(Event::End) => return Ok(()),
                    Signal::Event(Event::Error(e)) => return Err(e),
                    Signal::Control(c) => {
                        output.push(vec![1000 + std::mem::take(&mut seen)]);
                        output.control(c);
                        if output.flush(true).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        .boxed()
    }
    fn handles_control(&self) -> bool {
        true
    }
}

#[tokio::test]
async fn an_async_stage_that_handles_control_sees_it_and_forwards_it_itself() {
    let (src, feeds) = gated("src", 1);
    let (sink, mut log) = recorder();
    let counter = weir_graph::Flow::from_async("counter", |_| Ok((AsyncCounter, ())));
    let (f, h) = src.via(counter).to_sink_mat(sink).start().unwrap();
    feeds[0].unbounded_send(vec![1, 2, 3]).unwrap();
    assert_eq!(log.next(3).await, els([1, 2, 3]));
    h.inject(Control::marker(2));
    assert_eq!(log.next(2).await, vec![Rec::El(1003), ctl(2)]);
    feeds[0].unbounded_send(vec![4]).unwrap();
    drop(feeds);
    assert_eq!(log.next(2).await, vec![Rec::El(4), Rec::End]);
    done(h, f).await;
    log.closed().await;
}

#[tokio::test]
async fn an_asynchronous_source_takes_injected_control_too() {
    use weir_operators::source::OverflowStrategy;
    let (sink, mut log) = recorder();
    let (q, f, h) = {
        let g = Source::<u32, _>::queue(16, OverflowStrategy::Backpressure)
            .map(|x| x + 1)
            .to_mat(sink, Keep::both);
        let ((q, f), h) = g.start().unwrap();
        (q, f, h)
    };
    q.offer(1).await.unwrap();
    q.offer(2).await.unwrap();
    assert_eq!(log.next(2).await, els([2, 3]));
    assert_eq!(h.inject(Control::marker(8)), 1);
    assert_eq!(log.next(1).await, vec![ctl(8)]);
    q.offer(3).await.unwrap();
    q.complete();
    assert_eq!(log.next(2).await, vec![Rec::El(4), Rec::End]);
    done(h, f).await;
    log.closed().await;
}
