//! `grouped_within`: groups of up to `n` elements, closed by size or by a timer window.

use super::util::{race, recv_or_closed, send_rows};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use std::time::Duration;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Chunks the stream into groups of at most `n` elements (`n` of 0 counts as 1), as Akka's
/// `groupedWithin`: a timer of period `within` starts with the stage and restarts on every
/// emission; a group is emitted when it is full or when the timer fires. A timer firing on an
/// empty group emits nothing (no empty groups) and simply runs another period.
///
/// - **emits when** the group holds `n` elements, or `within` has passed since the last emission
///   (or the start) and the group is not empty
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
            let mut deadline = clock.now().saturating_add(within);
            loop {
                let recv = recv_or_closed(&mut input, &mut output);
                let ev = match race(clock.sleep_until(deadline), recv).await {
                    Either::Left(()) => {
                        if !group.is_empty() {
                            let g = std::mem::take(&mut group);
                            if output.send(vec![g]).await.is_err() {
                                return Ok(());
                            }
                        }
                        deadline = clock.now().saturating_add(within);
                        continue;
                    }
                    Either::Right(ev) => ev,
                };
                let Some(ev) = ev else { return Ok(()) };
                match ev {
                    Event::Batch(batch) => {
                        let mut ready = Vec::new();
                        for x in batch {
                            if group.is_empty() {
                                group.reserve(cap);
                            }
                            group.push(x);
                            if group.len() >= n {
                                ready.push(std::mem::take(&mut group));
                            }
                        }
                        if !ready.is_empty() {
                            if send_rows(&mut output, ready).await.is_err() {
                                return Ok(());
                            }
                            deadline = clock.now().saturating_add(within);
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
