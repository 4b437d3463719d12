//! `delay`: shifts every element by a fixed duration, keeping order.

use super::held::HeldControls;
use super::util::{race, recv_signal_or_closed as recv_or_closed, send_rows};
use futures::future::{BoxFuture, Either, FutureExt};
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Signal, StageError};

/// Default bound on elements held by [`delay`].
pub const DEFAULT_DELAY_CAPACITY: usize = 1024;

/// Emits every element `by` after it arrived, in order, holding at most
/// [`DEFAULT_DELAY_CAPACITY`] elements (see [`delay_with_capacity`]).
///
/// - **emits when** an element has been held for `by` and downstream has room
/// - **backpressures when** the held elements reach the capacity or downstream backpressures
/// - **completes when** upstream completes and every held element has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn delay<T: Send + 'static>(by: Duration) -> Flow<T, T> {
    delay_with_capacity(by, DEFAULT_DELAY_CAPACITY)
}

/// Emits every element `by` after it arrived, in order, holding at most `capacity` elements
/// (one input batch may overshoot it; 0 is reported as an invalid parameter when the graph is
/// validated). A control (checkpoint barrier, watermark) leaves right after the elements that
/// arrived before it, so no barrier overtakes a held element.
///
/// - **emits when** an element has been held for `by` and downstream has room
/// - **backpressures when** the held elements reach `capacity` or downstream backpressures
/// - **completes when** upstream completes and every held element has been emitted
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn delay_with_capacity<T: Send + 'static>(by: Duration, capacity: usize) -> Flow<T, T> {
    Flow::from_async("delay", move |_| {
        Ok((
            Delay::<T> {
                by,
                capacity: capacity.max(1),
                _t: PhantomData,
            },
            (),
        ))
    })
    .reject(weir_graph::at_least("delay: capacity", capacity, 1))
}

struct Delay<T> {
    by: Duration,
    capacity: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> AsyncLogic for Delay<T> {
    /// Controls wait behind the elements that arrived before them.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            // Elements with the time they are due, in arrival order (so due times never decrease).
            let mut held: VecDeque<(Duration, T)> = VecDeque::new();
            let mut ended = false;
            // Elements sent, and the controls behind held elements.
            let mut sent = 0u64;
            let mut controls = HeldControls::default();
            loop {
                controls.release(sent, &mut output);
                let now = clock.now();
                let due = held.iter().take_while(|(at, _)| *at <= now).count();
                if due > 0 {
                    // Up to the next held control only: it leaves right after them.
                    let before = controls.next_at().map_or(usize::MAX, |at| {
                        usize::try_from(at - sent).unwrap_or(usize::MAX)
                    });
                    let due = due.min(before);
                    let rows: Vec<T> = held.drain(..due).map(|(_, x)| x).collect();
                    sent += due as u64;
                    if send_rows(&mut output, rows).await.is_err() {
                        return Ok(());
                    }
                    continue;
                }
                let next_due = held.front().map(|(at, _)| *at);
                let ev = match next_due {
                    None if ended => return Ok(()),
                    None => recv_or_closed(&mut input, &mut output).await,
                    Some(at) if ended || held.len() >= self.capacity => {
                        match race(clock.sleep_until(at), output.closed()).await {
                            Either::Left(()) => continue,
                            Either::Right(()) => None,
                        }
                    }
                    Some(at) => {
                        let recv = recv_or_closed(&mut input, &mut output);
                        match race(clock.sleep_until(at), recv).await {
                            Either::Left(()) => continue,
                            Either::Right(ev) => ev,
                        }
                    }
                };
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Signal::Event(Event::Batch(b)) => {
                        let at = clock.now() + self.by;
                        held.extend(b.into_iter().map(|x| (at, x)));
                    }
                    Signal::Event(Event::End) => ended = true,
                    Signal::Event(Event::Error(e)) => return Err(e),
                    Signal::Control(c) => controls.arrive(sent + held.len() as u64, c),
                }
            }
        }
        .boxed()
    }
}
