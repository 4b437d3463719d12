//! `grouped_within`: groups of up to `n` elements, closed by size or by a timer window.

use super::held::HeldControls;
use super::util::{race, recv_signal_or_closed as recv_or_closed, send_rows};
use futures::future::{BoxFuture, Either, FutureExt};
use std::future::poll_fn;
use std::marker::PhantomData;
use std::task::Poll;
use std::time::Duration;
use weir_graph::{
    AsyncIo, AsyncLogic, Cancelled, Control, Event, Flow, Input, Output, Signal, StageError,
};

/// Chunks the stream into groups of at most `n` elements (`n` of 0 and a zero `within` are
/// reported as invalid parameters when the graph is validated), as Akka's
/// `groupedWithin`: a timer of period `within` starts with the stage and restarts on every
/// emission; a group is emitted when it is full or when the timer fires. A timer firing on an
/// empty group emits nothing (no empty groups) and simply runs another period. A timer firing
/// while downstream has no demand marks the group due: it keeps taking elements until it holds
/// `n`, and is emitted (with what it holds) as soon as downstream demands.
///
/// A checkpoint barrier closes the group: what it holds is emitted (once downstream has
/// credit), then the barrier goes on, so a checkpoint through the stage is exact. Other
/// controls (watermarks) leave after the group holding the elements that arrived before them.
///
/// - **emits when** the group holds `n` elements, or `within` has passed since the last emission
///   (or the start), the group is not empty and downstream demands
/// - **backpressures when** the group holds `n` elements and downstream backpressures
/// - **completes when** upstream completes (the pending group, if any, is emitted first)
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn grouped_within<T: Send + 'static>(n: usize, within: Duration) -> Flow<T, Vec<T>> {
    Flow::from_async("grouped_within", move |_| {
        Ok((
            GroupedWithin::<T> {
                n: n.max(1),
                within,
                _t: PhantomData,
            },
            (),
        ))
    })
    .reject(
        weir_graph::at_least("grouped_within: n", n, 1)
            .or_else(|| weir_graph::positive("grouped_within: within", within)),
    )
}

struct GroupedWithin<T> {
    n: usize,
    within: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> AsyncLogic for GroupedWithin<T> {
    /// Controls wait behind the group of the elements that arrived before them.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<Vec<T>>(0)?;
            let clock = io.clock;
            let (n, within) = (self.n, self.within);
            let cap = n.min(io.batch_size.max(1));
            let mut group: Vec<T> = Vec::new();
            // The timer runs with period `within` from `epoch` (the start or the last emission).
            // While the group is empty a firing would do nothing, so it is only armed when the
            // first element of a group arrives: at the next tick of that period.
            let mut epoch = clock.now();
            let mut deadline = Duration::MAX;
            // The timer fired on a non-empty group that found no demand: the group is emitted as
            // soon as downstream asks, and keeps taking elements until then (up to `n`).
            let mut due = false;
            // Elements received and elements emitted in groups; the controls behind a group.
            let (mut received, mut emitted) = (0u64, 0u64);
            let mut controls = HeldControls::default();
            loop {
                controls.release(emitted, &mut output);
                let ev = if group.is_empty() {
                    recv_or_closed(&mut input, &mut output).await
                } else if due {
                    match demand_or_recv(&mut output, &mut input).await {
                        Either::Left(Ok(_)) => {
                            let g = std::mem::take(&mut group);
                            emitted += g.len() as u64;
                            if output.send(vec![g]).await.is_err() {
                                return Ok(());
                            }
                            epoch = clock.now();
                            due = false;
                            continue;
                        }
                        Either::Left(Err(_)) => return Ok(()),
                        Either::Right(ev) => Some(ev),
                    }
                } else {
                    let recv = recv_or_closed(&mut input, &mut output);
                    match race(clock.sleep_until(deadline), recv).await {
                        Either::Left(()) => {
                            if output.demand_now() == 0 {
                                due = true;
                                continue;
                            }
                            let g = std::mem::take(&mut group);
                            emitted += g.len() as u64;
                            if output.send(vec![g]).await.is_err() {
                                return Ok(());
                            }
                            epoch = clock.now();
                            continue;
                        }
                        Either::Right(ev) => ev,
                    }
                };
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Signal::Control(c) => {
                        if matches!(c, Control::Barrier { .. }) && !group.is_empty() {
                            // The barrier closes the group: its elements leave before it.
                            let g = std::mem::take(&mut group);
                            emitted += g.len() as u64;
                            if output.send(vec![g]).await.is_err() {
                                return Ok(());
                            }
                            epoch = clock.now();
                            due = false;
                        }
                        controls.arrive(received, c);
                    }
                    Signal::Event(Event::Batch(batch)) => {
                        received += batch.len() as u64;
                        if group.is_empty() {
                            deadline = next_tick(epoch, within, clock.now());
                        }
                        let mut ready = Vec::new();
                        for x in batch {
                            if group.is_empty() {
                                group.reserve(cap);
                            }
                            group.push(x);
                            if group.len() >= n {
                                emitted += group.len() as u64;
                                ready.push(std::mem::take(&mut group));
                            }
                        }
                        if !ready.is_empty() {
                            // Full groups wait for credit; the rest starts a new window.
                            if send_rows(&mut output, ready).await.is_err() {
                                return Ok(());
                            }
                            epoch = clock.now();
                            deadline = epoch.saturating_add(within);
                            due = false;
                        }
                    }
                    Signal::Event(Event::End) => {
                        if !group.is_empty() {
                            // Downstream gone at the end changes nothing: the stage completes.
                            emitted += group.len() as u64;
                            let _ = output.send(vec![group]).await;
                        }
                        controls.release(emitted, &mut output);
                        return Ok(());
                    }
                    Signal::Event(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }
}

/// Waits for downstream demand (polled first) or the next input signal.
async fn demand_or_recv<T: Send + 'static, O: Send + 'static>(
    output: &mut Output<O>,
    input: &mut Input<T>,
) -> Either<Result<usize, Cancelled>, Signal<T>> {
    poll_fn(|cx| {
        if let Poll::Ready(r) = output.poll_demand(cx) {
            return Poll::Ready(Either::Left(r));
        }
        input.poll_signal(cx).map(Either::Right)
    })
    .await
}

/// The first tick of the timer of period `within` started at `epoch` that is after `now`.
fn next_tick(epoch: Duration, within: Duration, now: Duration) -> Duration {
    let step = within.as_nanos();
    if step == 0 {
        return now;
    }
    let ticks = now.saturating_sub(epoch).as_nanos() / step + 1;
    let ahead = u64::try_from(ticks.saturating_mul(step)).unwrap_or(u64::MAX);
    epoch.saturating_add(Duration::from_nanos(ahead))
}

#[cfg(test)]
mod tests {
    use super::next_tick;
    use std::time::Duration;

    #[test]
    fn the_timer_ticks_on_its_period_from_the_epoch() {
        let ms = Duration::from_millis;
        assert_eq!(next_tick(ms(30), ms(100), ms(30)), ms(130));
        assert_eq!(next_tick(ms(30), ms(100), ms(129)), ms(130));
        assert_eq!(next_tick(ms(30), ms(100), ms(130)), ms(230));
        assert_eq!(next_tick(ms(30), ms(100), ms(500)), ms(530));
        assert_eq!(next_tick(ms(30), Duration::ZERO, ms(500)), ms(500));
    }
}
