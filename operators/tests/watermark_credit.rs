//! A control sends the rows pending ahead of it without waiting for credit; the stage then
//! waits until its channel is back within capacity before it takes more input. Without that,
//! a stage emitting a watermark after every batch (`assign_timestamps`, a window firing on
//! watermarks) filled its channel without bound under backpressure, and a checkpoint barrier
//! behind those rows never completed.

use futures::FutureExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use weir_engine::Materializer;
use weir_graph::{
    AsyncFn, AsyncIo, Control, Event, Flow, FlowLogic, Keep, Sink, SinkFuture, Source, SourceLogic,
    StageCx, StageError, Step, promise,
};
use weir_operators::prelude::*;
use weir_operators::time::{Timestamped, WatermarkStrategy};

/// Rows per source batch: fewer than the channel's batch, so each watermark sends a partial
/// batch ahead of it.
const SMALL: u64 = 10;
const BATCH: usize = 64;
const N: u64 = 4000;

/// Emits `0..N` in batches of `SMALL`; tells `all` once it emitted every row.
struct Numbers {
    next: u64,
    all: Arc<Notify>,
}

impl SourceLogic<u64> for Numbers {
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        _: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        let end = (self.next + SMALL).min(N);
        out.extend(self.next..end);
        self.next = end;
        if end == N {
            self.all.notify_one();
            return Poll::Ready(Ok(Step::Done));
        }
        Poll::Ready(Ok(Step::More))
    }
}

/// Holds its rows until the next watermark, then emits them (as a window fires): a fused
/// stage whose every output goes ahead of a control.
struct Hold(Vec<Timestamped<u64>>);

impl FlowLogic<Timestamped<u64>, Timestamped<u64>> for Hold {
    fn on_batch(
        &mut self,
        input: &mut Vec<Timestamped<u64>>,
        _out: &mut Vec<Timestamped<u64>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.0.append(input);
        Ok(())
    }
    fn on_control(
        &mut self,
        control: Control,
        out: &mut Vec<Timestamped<u64>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        out.append(&mut self.0);
        Ok(Some(control))
    }
    fn on_finish(
        &mut self,
        out: &mut Vec<Timestamped<u64>>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.append(&mut self.0);
        Ok(())
    }
}

/// Reads nothing until the source emitted every row or a generous 2 s passed, then collects.
fn late_sink(all: Arc<Notify>) -> Sink<Timestamped<u64>, SinkFuture<Vec<u64>>> {
    Sink::from_async("late", move |_| {
        let all = Arc::clone(&all);
        let (done, fut) = promise();
        let mut done = Some(done);
        Ok((
            AsyncFn(move |mut io: AsyncIo| {
                let all = Arc::clone(&all);
                let done = done.take();
                async move {
                    let mut input = io.input::<Timestamped<u64>>(0)?;
                    tokio::select! {
                        _ = all.notified() => {}
                        _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                    }
                    let mut got = Vec::new();
                    let r = loop {
                        match input.recv().await {
                            Event::Batch(b) => got.extend(b.into_iter().map(|t| t.value)),
                            Event::End => break Ok(got),
                            Event::Error(e) => break Err(e),
                        }
                    };
                    if let Some(mut d) = done {
                        d.complete(r.clone());
                    }
                    r.map(|_| ())
                }
                .boxed()
            }),
            fut,
        ))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermarks_after_every_batch_keep_the_channel_within_its_capacity() {
    let all = Arc::new(Notify::new());
    let made = Arc::new(AtomicUsize::new(0));
    let (a, m2) = (Arc::clone(&all), Arc::clone(&made));
    let src = Source::from_logic("numbers", move |_| {
        m2.fetch_add(1, Ordering::SeqCst);
        Ok((
            Numbers {
                next: 0,
                all: Arc::clone(&a),
            },
            (),
        ))
    })
    .batch_size(SMALL as usize);
    let g = src
        .assign_timestamps(
            |x: &u64| *x as i64,
            WatermarkStrategy::bounded_out_of_orderness(Duration::ZERO),
        )
        .via(Flow::from_logic("hold", |_| Ok((Hold(Vec::new()), ()))))
        .to_mat(late_sink(Arc::clone(&all)), Keep::right);
    let m = Materializer::new().with_batch_size(BATCH);
    let plan = m.plan(&g).unwrap();
    let cap = plan.edges.iter().map(|e| e.buffer_rows).max().unwrap() as u64;
    assert!(cap < N / 2, "the channels hold {cap} rows");
    let (rows, h) = m.materialize(&g).unwrap();
    assert_eq!(rows.await.unwrap(), (0..N).collect::<Vec<_>>());
    h.wait().await.unwrap();
    assert_eq!(made.load(Ordering::SeqCst), 1);
    let sink = h
        .metrics()
        .into_iter()
        .find(|s| s.path.starts_with("late#"))
        .unwrap();
    // The source ran ahead of the idle sink until the channel was full (within one of its
    // batches), and no further than one forced partial batch past its capacity.
    assert!(
        (cap - SMALL..=cap + SMALL).contains(&sink.queue_peak),
        "peak {} rows, capacity {cap}",
        sink.queue_peak
    );
}
