//! `buffer`: a bounded buffer between upstream and downstream with an overflow strategy.

use super::held::HeldControls;
use crate::source::{BufferOverflow, OverflowStrategy};
use futures::future::{BoxFuture, FutureExt};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Module, Signal, StageError, async_node};

/// Holds up to `size` elements (0 is reported as an invalid parameter) while downstream is slower; when full, applies
/// `strategy` to each arriving element. Its output is demand-driven: elements leave only when
/// the consumer asks for them, and no more than it asked for, so what the consumer has not
/// requested is still in the buffer and subject to `strategy` (a consumer that requests `k`
/// after 1000 elements went into `buffer(100, DropHead)` receives elements 901..900+k).
///
/// A control (checkpoint barrier, watermark) keeps its place among the rows: it leaves once
/// every row that arrived before it left or was dropped, so a checkpoint through the buffer is
/// exact. While a barrier waits, a buffer with a dropping strategy reads nothing more (no row
/// after the barrier may displace one before it); `Backpressure` keeps reading.
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
    /// Adds `x` to a full-or-not buffer according to the strategy; `base` counts the rows that
    /// left the front (sent or dropped).
    fn offer(&self, held: &mut VecDeque<T>, base: &mut u64, x: T) -> Result<(), StageError> {
        if held.len() < self.size {
            held.push_back(x);
            return Ok(());
        }
        match self.strategy {
            // Already-received rows are kept; receiving stops until there is room.
            OverflowStrategy::Backpressure => held.push_back(x),
            OverflowStrategy::DropHead => {
                held.pop_front();
                *base += 1;
                held.push_back(x);
            }
            OverflowStrategy::DropTail => {
                held.pop_back();
                held.push_back(x);
            }
            OverflowStrategy::DropBuffer => {
                *base += held.len() as u64;
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
    In(Signal<T>),
    /// Downstream is gone.
    Gone,
}

impl<T: Send + 'static> AsyncLogic for Buffer<T> {
    /// Controls wait behind the rows that arrived before them.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let max_rows = io.batch_size.max(1);
            let mut held: VecDeque<T> = VecDeque::with_capacity(self.size.min(max_rows * 4));
            let mut ended = false;
            // Rows that left the front (sent or dropped), and the controls behind held rows.
            let mut base = 0u64;
            let mut controls = HeldControls::default();
            loop {
                controls.release(base, &mut output);
                if ended && held.is_empty() {
                    return Ok(());
                }
                let backpressure = self.strategy == OverflowStrategy::Backpressure;
                let full = backpressure && held.len() >= self.size;
                let blocked = !backpressure && controls.barrier_held();
                let can_recv = !ended && !full && !blocked;
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
                    if can_recv && let Poll::Ready(s) = input.poll_signal(cx) {
                        return Poll::Ready(Wake::In(s));
                    }
                    Poll::Pending
                })
                .await;
                match wake {
                    Wake::Demand(n) => {
                        // Rows up to the next held control only: it leaves right after them.
                        let before = controls.next_at().map_or(usize::MAX, |at| {
                            usize::try_from(at - base).unwrap_or(usize::MAX)
                        });
                        let k = held.len().min(n).min(max_rows).min(before);
                        if output.send(held.drain(..k).collect()).await.is_err() {
                            return Ok(());
                        }
                        base += k as u64;
                    }
                    Wake::Gone => return Ok(()),
                    Wake::In(Signal::Event(Event::Batch(b))) => {
                        for x in b {
                            self.offer(&mut held, &mut base, x)?;
                        }
                    }
                    Wake::In(Signal::Event(Event::End)) => ended = true,
                    Wake::In(Signal::Event(Event::Error(e))) => return Err(e),
                    Wake::In(Signal::Control(c)) => controls.arrive(base + held.len() as u64, c),
                }
            }
        }
        .boxed()
    }
}
