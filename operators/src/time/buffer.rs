//! `buffer`: a bounded buffer between upstream and downstream with an overflow strategy.

use crate::source::{BufferOverflow, OverflowStrategy};
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Module, StageError, async_node};

/// Holds up to `size` elements (0 is reported as an invalid parameter) while downstream is slower; when full, applies
/// `strategy` to each arriving element. Its output is demand-driven: elements leave only when
/// the consumer asks for them, and no more than it asked for, so what the consumer has not
/// requested is still in the buffer and subject to `strategy` (a consumer that requests `k`
/// after 1000 elements went into `buffer(100, DropHead)` receives elements 901..900+k).
///
/// - **emits when** downstream requests elements and the buffer is not empty
/// - **backpressures when** the buffer is full and `strategy` is `Backpressure`
/// - **completes when** upstream completes and the buffer has been drained
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or the buffer is full and `strategy` is `Fail`
pub fn buffer<T: Send + 'static>(size: usize, strategy: OverflowStrategy) -> Flow<T, T> {
    let invalid = weir_graph::at_least("buffer: size", size, 1);
    let node = async_node(
        "buffer",
        1,
        vec![weir_graph::router_for::<T>()],
        move |_| {
            Ok((
                Buffer::<T> {
                    size: size.max(1),
                    strategy,
                    _t: PhantomData,
                },
                (),
            ))
        },
    )
    .with_parallelizable(true)
    .with_demand_outputs();
    Flow::from_module(Arc::new(Module::single(node))).reject(invalid)
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

/// What the buffer woke up for.
enum Wake<T> {
    /// Downstream asked for this many rows.
    Demand(usize),
    /// Upstream sent something.
    In(Event<T>),
    /// Downstream is gone.
    Gone,
}

impl<T: Send + 'static> AsyncLogic for Buffer<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let max_rows = io.batch_size.max(1);
            let mut held: VecDeque<T> = VecDeque::with_capacity(self.size.min(max_rows * 4));
            let mut ended = false;
            loop {
                if ended && held.is_empty() {
                    return Ok(());
                }
                let full =
                    self.strategy == OverflowStrategy::Backpressure && held.len() >= self.size;
                let can_recv = !ended && !full;
                let empty = held.is_empty();
                // Rows leave only when downstream asks, so the overflow strategy decides on
                // everything downstream has not requested yet.
                let wake = poll_fn(|cx| {
                    if empty {
                        if output.poll_closed(cx).is_ready() {
                            return Poll::Ready(Wake::Gone);
                        }
                    } else if let Poll::Ready(r) = output.poll_demand(cx) {
                        return Poll::Ready(r.map_or(Wake::Gone, Wake::Demand));
                    }
                    if can_recv && let Poll::Ready(ev) = input.poll_recv(cx) {
                        return Poll::Ready(Wake::In(ev));
                    }
                    Poll::Pending
                })
                .await;
                match wake {
                    Wake::Demand(n) => {
                        let k = held.len().min(n).min(max_rows);
                        if output.send(held.drain(..k).collect()).await.is_err() {
                            return Ok(());
                        }
                    }
                    Wake::Gone => return Ok(()),
                    Wake::In(Event::Batch(b)) => {
                        for x in b {
                            self.offer(&mut held, x)?;
                        }
                    }
                    Wake::In(Event::End) => ended = true,
                    Wake::In(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
