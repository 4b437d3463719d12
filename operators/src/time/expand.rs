//! `expand`: extrapolates elements from the last one seen while downstream is faster than upstream.

use super::util::{race, recv_or_closed, yield_now};
use futures::future::{BoxFuture, Either, FutureExt};
use std::marker::PhantomData;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, StageError};

/// Turns every element into an iterator with `f`: the iterator's first item is emitted right away,
/// the following ones only while no new input is ready (a new element replaces the iterator).
///
/// - **emits when** an element arrives (its first extrapolated item), or downstream has room and no input is ready
/// - **backpressures when** downstream backpressures
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** upstream fails
pub fn expand<T, U, I, F>(f: F) -> Flow<T, U>
where
    T: Send + 'static,
    U: Send + 'static,
    I: Iterator<Item = U> + Send + 'static,
    F: FnMut(T) -> I + Clone + Send + Sync + 'static,
{
    Flow::from_async("expand", move |_| {
        Ok((
            Expand {
                f: f.clone(),
                _t: PhantomData::<fn(T) -> U>,
            },
            (),
        ))
    })
}

struct Expand<T, U, F> {
    f: F,
    _t: PhantomData<fn(T) -> U>,
}

impl<T, U, I, F> AsyncLogic for Expand<T, U, F>
where
    T: Send + 'static,
    U: Send + 'static,
    I: Iterator<Item = U> + Send + 'static,
    F: FnMut(T) -> I + Send + 'static,
{
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut f = self.f;
            let mut input = io.input::<T>(0)?;
            let mut output = io.output::<U>(0)?;
            let mut iter: Option<I> = None;
            loop {
                let next = match iter.as_mut() {
                    Some(it) if input.queued_rows() == 0 => {
                        let next = it.next();
                        if next.is_none() {
                            iter = None;
                        }
                        next
                    }
                    _ => None,
                };
                let ev = match next {
                    Some(u) => {
                        // Extrapolate one element, unless input turns up first.
                        output.push(vec![u]);
                        match race(input.recv(), output.flush(true)).await {
                            // The pushed row stays pending and leaves with the next send.
                            Either::Left(ev) => ev,
                            Either::Right(Ok(())) => {
                                yield_now().await;
                                continue;
                            }
                            Either::Right(Err(_)) => return Ok(()),
                        }
                    }
                    None => match recv_or_closed(&mut input, &mut output).await {
                        Some(ev) => ev,
                        None => return Ok(()),
                    },
                };
                match ev {
                    Event::Batch(b) => {
                        let mut firsts = Vec::with_capacity(b.len());
                        for x in b {
                            let mut it = f(x);
                            if let Some(u) = it.next() {
                                firsts.push(u);
                            }
                            iter = Some(it);
                        }
                        // Also sends an extrapolated row left pending above.
                        output.push(firsts);
                        if output.flush(true).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) => return Err(e),
                }
            }
        }
        .boxed()
    }
}
