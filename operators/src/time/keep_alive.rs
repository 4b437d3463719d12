//! `keep_alive`: injects an element when upstream has been quiet for a while.

use super::util::{race, recv_or_closed};
use futures::future::{BoxFuture, Either, FutureExt};
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Emits `inject()` whenever no element has passed for `max_idle` (Akka's `keepAlive`): exactly
/// `max_idle` after the start, the last upstream element or the last injected one. A zero
/// `max_idle` is reported as an invalid parameter when the graph is validated.
///
/// - **emits when** upstream emits, or `max_idle` has passed without an element
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn keep_alive<T, F>(max_idle: Duration, inject: F) -> Flow<T, T>
where
    T: Send + 'static,
    F: FnMut() -> T + Clone + Send + Sync + 'static,
{
    Flow::from_async("keep_alive", move |_| {
        Ok((
            KeepAlive {
                max_idle,
                inject: inject.clone(),
            },
            (),
        ))
    })
    .reject(weir_graph::positive("keep_alive: max_idle", max_idle))
}

struct KeepAlive<F> {
    max_idle: Duration,
    inject: F,
}

impl<T, F> AsyncLogic for KeepAlive<F>
where
    T: Send + 'static,
    F: FnMut() -> T + Send + 'static,
{
    fn run(mut self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<T>(0)?;
            let clock = io.clock;
            let mut deadline = clock.now().saturating_add(self.max_idle);
            loop {
                let recv = recv_or_closed(&mut input, &mut output);
                let batch = match race(recv, clock.sleep_until(deadline)).await {
                    Either::Left(Some(Event::Batch(b))) => {
                        deadline = clock.now().saturating_add(self.max_idle);
                        b
                    }
                    Either::Left(Some(Event::End) | None) => return Ok(()),
                    Either::Left(Some(Event::Error(e))) => return Err(e),
                    Either::Right(()) => vec![(self.inject)()],
                };
                if output.send(batch).await.is_err() {
                    return Ok(());
                }
                if deadline <= clock.now() {
                    deadline = clock.now().saturating_add(self.max_idle);
                }
            }
        }
        .boxed()
    }
}
