//! `grouped_within`: groups of up to `n` elements, emitted early once the group has waited long enough.

use super::util::{race, recv_or_closed, send_rows};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Chunks the stream into groups of at most `n` elements (`n` of 0 counts as 1), emitting a
/// group early once `within` has passed since its first element arrived.
///
/// - **emits when** the group holds `n` elements, or `within` has passed since its first element
/// - **backpressures when** a group is ready and downstream backpressures
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
}

struct GroupedWithin<T> {
    n: usize,
    within: Duration,
    _t: PhantomData<fn() -> T>,
}

impl<T: Send + 'static> AsyncLogic for GroupedWithin<T> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<Vec<T>>(0)?;
            let clock = io.clock;
            let (n, within) = (self.n, self.within);
            let cap = n.min(io.batch_size.max(1));
            let mut group: Vec<T> = Vec::new();
            let mut deadline = Duration::ZERO;
            loop {
                let ev = if group.is_empty() {
                    recv_or_closed(&mut input, &mut output).await
                } else {
                    let recv = recv_or_closed(&mut input, &mut output);
                    match race(clock.sleep_until(deadline), recv).await {
                        Either::Left(()) => {
                            let g = std::mem::take(&mut group);
                            if output.send(vec![g]).await.is_err() {
                                return Ok(());
                            }
                            continue;
                        }
                        Either::Right(ev) => ev,
                    }
                };
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Event::Batch(batch) => {
                        let now = clock.now();
                        let mut ready = Vec::new();
                        if !group.is_empty() && now >= deadline {
                            ready.push(std::mem::take(&mut group));
                        }
                        for x in batch {
                            if group.is_empty() {
                                deadline = now + within;
                                group.reserve(cap);
                            }
                            group.push(x);
                            if group.len() >= n {
                                ready.push(std::mem::take(&mut group));
                            }
                        }
                        if send_rows(&mut output, ready).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => {
                        if !group.is_empty() {
                            // Downstream gone at the end changes nothing: the stage completes.
                            let _ = output.send(vec![group]).await;
                        }
                        return Ok(());
                    }
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
