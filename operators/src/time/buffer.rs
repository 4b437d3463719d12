//! `buffer`: a bounded buffer between upstream and downstream with an overflow strategy.

use super::util::{flush_or_closed, maybe, race};
use crate::source::{BufferOverflow, OverflowStrategy};
use futures::future::{BoxFuture, Either, FutureExt};
use std::collections::VecDeque;
use std::marker::PhantomData;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Holds up to `size` elements (0 counts as 1) while downstream is slower; when full, applies
/// `strategy` to each arriving element. Rows already handed to downstream (at most one batch) are
/// not counted.
///
/// - **emits when** downstream has room and the buffer is not empty
/// - **backpressures when** the buffer is full and `strategy` is `Backpressure`
/// - **completes when** upstream completes and the buffer has been drained
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or the buffer is full and `strategy` is `Fail`
pub fn buffer<T: Send + 'static>(size: usize, strategy: OverflowStrategy) -> Flow<T, T> {
    Flow::from_async("buffer", move |_| {
        Ok((
            Buffer::<T> {
                size: size.max(1),
                strategy,
                _t: PhantomData,
            },
            (),
        ))
    })
}

struct Buffer<T> {
    size: usize,
    strategy: OverflowStrategy,
    _t: PhantomData<fn() -> T>,
}

impl<T> Buffer<T> {
    /// Adds `x` to a full-or-not buffer according to the strategy.
    fn offer(&self, held: &mut VecDeque<T>, x: T) -> Result<(), StageError> {
        if held.len() < self.size {
            held.push_back(x);
            return Ok(());
        }
        match self.strategy {
            // Already-received rows are kept; receiving stops until there is room.
            OverflowStrategy::Backpressure => held.push_back(x),
            OverflowStrategy::DropHead => {
                held.pop_front();
                held.push_back(x);
            }
            OverflowStrategy::DropTail => {
                held.pop_back();
                held.push_back(x);
            }
            OverflowStrategy::DropBuffer => {
                held.clear();
                held.push_back(x);
            }
            OverflowStrategy::DropNew => {}
            OverflowStrategy::Fail => {
                return Err(BufferOverflow {
                    capacity: self.size,
                }
                .into_stage_error());
            }
        }
        Ok(())
    }
}

impl<T: Send + 'static> AsyncLogic for Buffer<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let max_rows = io.batch_size.max(1);
            let mut held: VecDeque<T> = VecDeque::with_capacity(self.size.min(max_rows * 4));
            let mut flushing = false;
            let mut ended = false;
            loop {
                if !flushing && !held.is_empty() {
                    let k = held.len().min(max_rows);
                    output.push(held.drain(..k).collect());
                    flushing = true;
                }
                if ended && !flushing {
                    return Ok(());
                }
                let full =
                    self.strategy == OverflowStrategy::Backpressure && held.len() >= self.size;
                let can_recv = !ended && !full;
                let flush = flush_or_closed(&mut output, flushing);
                let recv = maybe(can_recv.then(|| input.recv()));
                match race(flush, recv).await {
                    Either::Left(Ok(())) => flushing = false,
                    Either::Left(Err(_)) => return Ok(()),
                    Either::Right(Event::Batch(b)) => {
                        for x in b {
                            self.offer(&mut held, x)?;
                        }
                    }
                    Either::Right(Event::End) => ended = true,
                    Either::Right(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
