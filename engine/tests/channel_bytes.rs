//! Channels are bounded in bytes as well as rows: a channel of large strings holds its byte
//! budget, not its row capacity.

use futures::FutureExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use tokio::sync::Notify;
use weir_engine::Materializer;
use weir_graph::{
    AsyncFn, AsyncIo, Event, Keep, Sink, Source, SourceLogic, StageCx, StageError, Step, promise,
};

const SIZE: usize = 10 * 1024;
const BATCH: usize = 16;
/// Bytes of one batch: the strings' inline size and their heap bytes.
const BATCH_BYTES: usize = BATCH * (std::mem::size_of::<String>() + SIZE);

/// Emits `batches` batches of `BATCH` strings of `SIZE` bytes; tells `gate` when it has
/// produced `notify_at` batches.
struct Strings {
    left: usize,
    made: Arc<AtomicUsize>,
    notify_at: usize,
    gate: Arc<Notify>,
}

impl SourceLogic<String> for Strings {
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        _: &mut StageCx<'_>,
        out: &mut Vec<String>,
    ) -> Poll<Result<Step, StageError>> {
        let k = self.made.fetch_add(1, Ordering::SeqCst) + 1;
        out.extend((0..BATCH).map(|i| format!("{k:05}-{i:03}-").repeat(SIZE / 10)));
        if k == self.notify_at {
            self.gate.notify_one();
        }
        self.left -= 1;
        Poll::Ready(Ok(if self.left == 0 {
            Step::Done
        } else {
            Step::More
        }))
    }
}

/// A sink that takes nothing until `gate` is notified, then counts every string and its bytes.
fn gated_sink(gate: Arc<Notify>) -> Sink<String, weir_graph::SinkFuture<(usize, usize)>> {
    Sink::from_async("gated", move |_| {
        let gate = Arc::clone(&gate);
        let (done, fut) = promise();
        let mut done = Some(done);
        Ok((
            AsyncFn(move |mut io: AsyncIo| {
                let gate = Arc::clone(&gate);
                let done = done.take();
                async move {
                    let mut input = io.input::<String>(0)?;
                    gate.notified().await;
                    let (mut n, mut bytes) = (0, 0);
                    let r = loop {
                        match input.recv().await {
                            Event::Batch(b) => {
                                n += b.len();
                                bytes += b.iter().map(String::len).sum::<usize>();
                            }
                            Event::End => break Ok((n, bytes)),
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
async fn a_channel_of_large_strings_holds_its_byte_budget() {
    let budget = 1 << 20;
    // Six batches fit the budget, a seventh would not; the row capacity (8 x 16) is not reached.
    assert!((6 * BATCH_BYTES..7 * BATCH_BYTES).contains(&budget));
    let made = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    let (m2, g2) = (Arc::clone(&made), Arc::clone(&gate));
    let src = Source::from_logic("strings", move |_| {
        Ok((
            Strings {
                left: 40,
                made: Arc::clone(&m2),
                notify_at: 7,
                gate: Arc::clone(&g2),
            },
            (),
        ))
    })
    .batch_size(BATCH);
    let g = src.to_mat(gated_sink(Arc::clone(&gate)).batch_size(BATCH), Keep::right);
    let m = Materializer::new().with_buffer_bytes(budget);
    assert_eq!(m.plan(&g).unwrap().edges[0].buffer_rows, 8 * BATCH);
    let (fut, h) = m.materialize(&g).unwrap();
    // The source made its seventh batch only after the channel took six and had no credit for
    // it; the sink starts reading only then.
    let (n, bytes) = fut.await.unwrap();
    h.wait().await.unwrap();
    assert_eq!((n, bytes), (40 * BATCH, 40 * BATCH * SIZE));
    assert_eq!(made.load(Ordering::SeqCst), 40);
    let sink = h
        .metrics()
        .into_iter()
        .find(|s| s.path == "gated#1")
        .unwrap();
    assert_eq!(sink.queue_peak_bytes, (6 * BATCH_BYTES) as u64);
    assert_eq!(sink.queue_peak, (6 * BATCH) as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixed_size_elements_are_bounded_by_rows_first() {
    let made = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(Notify::new());
    // u64 batches weigh 8 bytes a row: 128 rows are 1 KiB, far below the default budget.
    let (m2, g2) = (Arc::clone(&made), Arc::clone(&gate));
    struct Nums(usize, Arc<AtomicUsize>, Arc<Notify>);
    impl SourceLogic<u64> for Nums {
        fn poll_next(
            &mut self,
            _: &mut Context<'_>,
            _: &mut StageCx<'_>,
            out: &mut Vec<u64>,
        ) -> Poll<Result<Step, StageError>> {
            let k = self.1.fetch_add(1, Ordering::SeqCst) + 1;
            out.extend(0..BATCH as u64);
            if k == 9 {
                self.2.notify_one();
            }
            self.0 -= 1;
            Poll::Ready(Ok(if self.0 == 0 { Step::Done } else { Step::More }))
        }
    }
    let src = Source::from_logic("nums", move |_| {
        Ok((Nums(20, Arc::clone(&m2), Arc::clone(&g2)), ()))
    })
    .batch_size(BATCH);
    let sink = Sink::from_async("gated", move |_| {
        let gate = Arc::clone(&gate);
        Ok((
            AsyncFn(move |mut io: AsyncIo| {
                let gate = Arc::clone(&gate);
                async move {
                    let mut input = io.input::<u64>(0)?;
                    gate.notified().await;
                    while let Event::Batch(_) = input.recv().await {}
                    Ok(())
                }
                .boxed()
            }),
            (),
        ))
    })
    .batch_size(BATCH);
    let g = src.to_mat(sink, Keep::left);
    let (_, h) = Materializer::new().materialize(&g).unwrap();
    h.wait().await.unwrap();
    let m = h
        .metrics()
        .into_iter()
        .find(|s| s.path == "gated#1")
        .unwrap();
    assert_eq!(m.queue_peak, (8 * BATCH) as u64);
    assert_eq!(m.queue_peak_bytes, (8 * BATCH * 8) as u64);
}

#[test]
fn the_byte_budget_is_planned_on_every_channel_and_zero_is_a_setting_error() {
    let g = Source::from_logic("nums", |_| Ok((Empty, ())))
        .async_boundary()
        .to_mat(
            Sink::<u64, ()>::from_logic("ignore", |_| Ok((Ignore, ()))),
            Keep::left,
        );
    let p = Materializer::new().plan(&g).unwrap();
    assert_eq!(p.edges[0].buffer_bytes, weir_engine::DEFAULT_BUFFER_BYTES);
    assert_eq!(weir_engine::DEFAULT_BUFFER_BYTES, 64 << 20);
    let p = Materializer::new()
        .with_buffer_bytes(4096)
        .plan(&g)
        .unwrap();
    assert_eq!(p.edges[0].buffer_bytes, 4096);
    let err = Materializer::new()
        .with_buffer_bytes(0)
        .plan(&g)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid materializer setting: buffer_bytes must be at least 1, got 0"
    );
}

struct Empty;
impl SourceLogic<u64> for Empty {
    fn poll_next(
        &mut self,
        _: &mut Context<'_>,
        _: &mut StageCx<'_>,
        _: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        Poll::Ready(Ok(Step::Done))
    }
}

struct Ignore;
impl weir_graph::SinkLogic<u64> for Ignore {
    fn on_batch(&mut self, input: &mut Vec<u64>, _: &mut StageCx<'_>) -> Result<(), StageError> {
        input.clear();
        Ok(())
    }
    fn on_finish(&mut self, _: &mut StageCx<'_>) -> Result<(), StageError> {
        Ok(())
    }
    fn on_error(&mut self, _: &StageError) {}
}
