//! `idle_timeout`, `completion_timeout`, `initial_timeout`: fail a stream that is too slow (a
//! zero timeout is reported as an invalid parameter when the graph is validated).

use super::util::{race, recv_or_closed};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Fails the stream with a timeout error when no element passes for `timeout`: exactly
/// `timeout` after the start or the arrival of the last element (a downstream that backpressures
/// that long fails it too, as in Akka).
///
/// - **emits when** upstream emits
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or `timeout` passes without an element
pub fn idle_timeout<T: Send + 'static>(timeout: Duration) -> Flow<T, T> {
    timeout_flow("idle_timeout", Mode::Idle, timeout)
}

/// Fails the stream with a timeout error when it has not completed within `timeout` of its start.
///
/// - **emits when** upstream emits
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or `timeout` passes before upstream completes
pub fn completion_timeout<T: Send + 'static>(timeout: Duration) -> Flow<T, T> {
    timeout_flow("completion_timeout", Mode::Completion, timeout)
}

/// Fails the stream with a timeout error when the first element has not arrived within `timeout`.
///
/// - **emits when** upstream emits
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails, or `timeout` passes before the first element (or completion)
pub fn initial_timeout<T: Send + 'static>(timeout: Duration) -> Flow<T, T> {
    timeout_flow("initial_timeout", Mode::Initial, timeout)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Idle,
    Completion,
    Initial,
}

fn timeout_flow<T: Send + 'static>(
    name: &'static str,
    mode: Mode,
    timeout: Duration,
) -> Flow<T, T> {
    Flow::from_async(name, move |_| {
        Ok((
            Timeout::<T> {
                name,
                mode,
                timeout,
                _t: PhantomData,
            },
            (),
        ))
    })
    .reject(weir_graph::positive(&format!("{name}: timeout"), timeout))
}

struct Timeout<T> {
    name: &'static str,
    mode: Mode,
    timeout: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T> Timeout<T> {
    fn error(&self) -> StageError {
        let what = match self.mode {
            Mode::Idle => "no element passed within",
            Mode::Completion => "the stream did not complete within",
            Mode::Initial => "the first element did not arrive within",
        };
        StageError::timeout(format!("{}: {what} {:?}", self.name, self.timeout))
    }
}

impl<T: Send + 'static> AsyncLogic for Timeout<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            let mut deadline = clock.now().saturating_add(self.timeout);
            let mut armed = true;
            loop {
                let recv = recv_or_closed(&mut input, &mut output);
                let ev = if armed {
                    match race(recv, clock.sleep_until(deadline)).await {
                        Either::Left(ev) => ev,
                        Either::Right(()) => return Err(self.error()),
                    }
                } else {
                    recv.await
                };
                let batch = match ev {
                    Some(Event::Batch(b)) => b,
                    Some(Event::End) | None => return Ok(()),
                    Some(Event::Error(e)) => return Err(e),
                };
                // Idle: an element held up by a backpressuring downstream has not passed yet.
                let sent = if self.mode != Mode::Initial {
                    match race(output.send(batch), clock.sleep_until(deadline)).await {
                        Either::Left(r) => r,
                        Either::Right(()) => return Err(self.error()),
                    }
                } else {
                    output.send(batch).await
                };
                if sent.is_err() {
                    return Ok(());
                }
                match self.mode {
                    Mode::Idle => deadline = clock.now().saturating_add(self.timeout),
                    Mode::Initial => armed = false,
                    Mode::Completion => {}
                }
            }
        }
        .boxed()
    }
}
