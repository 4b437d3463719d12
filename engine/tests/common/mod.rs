//! Tiny stages for engine tests (the engine never depends on the operator library).
#![allow(dead_code, reason = "each test file uses a subset")]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use weir_graph::{
    Flow, FlowLogic, Promise, Sink, SinkFuture, SinkLogic, Source, SourceLogic, StageCx,
    StageError, Step, promise,
};

pub struct Range {
    next: u64,
    end: u64,
}

impl SourceLogic<u64> for Range {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<u64>,
    ) -> Poll<Result<Step, StageError>> {
        let n = (scx.batch_size() as u64).min(self.end - self.next);
        out.extend(self.next..self.next + n);
        self.next += n;
        Poll::Ready(Ok(if self.next >= self.end {
            Step::Done
        } else {
            Step::More
        }))
    }
}

pub fn range(start: u64, end: u64) -> Source<u64, ()> {
    Source::from_logic("range", move |_| Ok((Range { next: start, end }, ())))
}

/// A source that counts its stop hook calls.
pub fn counted_range(end: u64, stops: Arc<AtomicUsize>) -> Source<u64, ()> {
    struct R(Range, Arc<AtomicUsize>);
    impl SourceLogic<u64> for R {
        fn poll_next(
            &mut self,
            cx: &mut Context<'_>,
            scx: &mut StageCx<'_>,
            out: &mut Vec<u64>,
        ) -> Poll<Result<Step, StageError>> {
            self.0.poll_next(cx, scx, out)
        }
        fn post_stop(&mut self) {
            self.1.fetch_add(1, Ordering::SeqCst);
        }
    }
    Source::from_logic("range", move |_| {
        Ok((R(Range { next: 0, end }, Arc::clone(&stops)), ()))
    })
}

pub struct MapF<F>(pub F);
impl<F: FnMut(u64) -> Result<u64, StageError> + Send + 'static> FlowLogic<u64, u64> for MapF<F> {
    fn on_batch(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        weir_graph::consume(input, |it| {
            for x in it {
                match (self.0)(x) {
                    Ok(y) => out.push(y),
                    Err(e) => scx.element_failed(e, Some(Box::new(x)), Some(x.to_string()))?,
                }
            }
            Ok(())
        })
    }
}

pub fn map(f: impl Fn(u64) -> u64 + Clone + Send + Sync + 'static) -> Flow<u64, u64, ()> {
    Flow::from_logic("map", move |_| {
        let f = f.clone();
        Ok((MapF(move |x| Ok(f(x))), ()))
    })
}

pub fn try_map(
    f: impl Fn(u64) -> Result<u64, StageError> + Clone + Send + Sync + 'static,
) -> Flow<u64, u64, ()> {
    Flow::from_logic("try_map", move |_| Ok((MapF(f.clone()), ())))
}

/// Running sum that resets on restart (to observe state reset).
pub fn running_sum() -> Flow<u64, u64, ()> {
    struct S(u64);
    impl FlowLogic<u64, u64> for S {
        fn on_batch(
            &mut self,
            input: &mut Vec<u64>,
            out: &mut Vec<u64>,
            _scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            for x in input.drain(..) {
                self.0 += x;
                out.push(self.0);
            }
            Ok(())
        }
    }
    Flow::from_logic("running_sum", |_| Ok((S(0), ())))
}

pub struct Take(pub usize);
impl FlowLogic<u64, u64> for Take {
    fn on_batch(
        &mut self,
        input: &mut Vec<u64>,
        out: &mut Vec<u64>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let n = self.0.min(input.len());
        out.extend(input.drain(..).take(n));
        self.0 -= n;
        Ok(())
    }
    fn is_done(&self) -> bool {
        self.0 == 0
    }
}

pub fn take(n: usize) -> Flow<u64, u64, ()> {
    Flow::from_logic("take", move |_| Ok((Take(n), ())))
}

pub struct Collect(Vec<u64>, Promise<Vec<u64>>);
impl SinkLogic<u64> for Collect {
    fn on_batch(&mut self, input: &mut Vec<u64>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.0.append(input);
        Ok(())
    }
    fn on_finish(&mut self, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let v = std::mem::take(&mut self.0);
        self.1.complete(Ok(v));
        Ok(())
    }
    fn on_error(&mut self, error: &StageError) {
        self.1.complete(Err(error.clone()));
    }
}

pub fn collect() -> Sink<u64, SinkFuture<Vec<u64>>> {
    Sink::from_logic("collect", |_| {
        let (p, f) = promise();
        Ok((Collect(Vec::new(), p), f))
    })
}

/// An infinite source.
pub fn naturals() -> Source<u64, ()> {
    range(0, u64::MAX)
}

/// Running sum that fails on `bad` (through supervision), to observe state reset on restart.
pub fn failing_sum(bad: u64) -> Flow<u64, u64, ()> {
    struct S(u64, u64);
    impl FlowLogic<u64, u64> for S {
        fn on_batch(
            &mut self,
            input: &mut Vec<u64>,
            out: &mut Vec<u64>,
            scx: &mut StageCx<'_>,
        ) -> Result<(), StageError> {
            let mut it = std::mem::take(input).into_iter();
            while let Some(x) = it.next() {
                if x == self.1 {
                    if let Err(e) =
                        scx.element_failed(StageError::user("bad"), Some(Box::new(x)), None)
                    {
                        input.extend(it);
                        return Err(e);
                    }
                    continue;
                }
                self.0 += x;
                out.push(self.0);
            }
            Ok(())
        }
    }
    Flow::from_logic("failing_sum", move |_| Ok((S(0, bad), ())))
}
