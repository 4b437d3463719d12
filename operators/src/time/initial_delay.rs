//! `initial_delay`: holds the stream back for a while after the start.

use super::util::{race, recv_or_closed};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Emits nothing until `delay` after the start, then passes every element through (Akka's
/// `initialDelay`). A first batch that arrives earlier is held; upstream stays backpressured.
/// Unlike Akka, an upstream failure never drops accepted elements: a held batch is emitted
/// when the delay elapses, and the failure follows it.
///
/// - **emits when** upstream emits and the initial delay has passed
/// - **backpressures when** the initial delay has not passed or downstream backpressures
/// - **completes when** upstream completes (at once when nothing is held)
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails (at once when nothing is held; otherwise after the held batch,
///   when the delay elapses)
pub fn initial_delay<T: Send + 'static>(delay: Duration) -> Flow<T, T> {
    Flow::from_async("initial_delay", move |_| {
        Ok((
            InitialDelay::<T> {
                delay,
                _t: PhantomData,
            },
            (),
        ))
    })
}

struct InitialDelay<T> {
    delay: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> AsyncLogic for InitialDelay<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            let until = clock.now().saturating_add(self.delay);
            let mut held: Option<Vec<T>> = None;
            let mut ended = false;
            loop {
                // While a batch is held, upstream is not read: a failure behind it is seen (and
                // passed on) only after the held batch went out.
                let ev = if held.is_some() || ended {
                    match race(clock.sleep_until(until), output.closed()).await {
                        Either::Left(()) => break,
                        Either::Right(()) => return Ok(()),
                    }
                } else {
                    let recv = recv_or_closed(&mut input, &mut output);
                    match race(clock.sleep_until(until), recv).await {
                        Either::Left(()) => break,
                        Either::Right(ev) => ev,
                    }
                };
                match ev {
                    Some(Event::Batch(b)) => held = Some(b),
                    Some(Event::End) => ended = true,
                    None => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                }
                if ended && held.is_none() {
                    return Ok(());
                }
            }
            if let Some(b) = held
                && output.send(b).await.is_err()
            {
                return Ok(());
            }
            if ended {
                return Ok(());
            }
            loop {
                match recv_or_closed(&mut input, &mut output).await {
                    Some(Event::Batch(b)) => {
                        if output.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Event::End) | None => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
