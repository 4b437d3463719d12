//! Small future combinators shared by the time and async families (deterministic poll order).

use futures::future::Either;
use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use weir_graph::{Cancelled, Event, Input, Output, Signal};

/// Waits for the first of `a` and `b`; `a` is polled first, so it wins a tie.
pub(crate) async fn race<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let mut a = pin!(a);
    let mut b = pin!(b);
    poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}

/// Runs `f` when present; never completes when absent (a disabled `race` branch).
pub(crate) async fn maybe<F: Future>(f: Option<F>) -> F::Output {
    match f {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Gives the executor a chance to run other tasks once.
pub(crate) async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    })
    .await
}

/// Sends `rows` unless empty; `Err` once downstream is gone.
pub(crate) async fn send_rows<T: Send + 'static>(
    output: &mut Output<T>,
    rows: Vec<T>,
) -> Result<(), Cancelled> {
    if rows.is_empty() {
        return Ok(());
    }
    output.send(rows).await
}

/// Receives the next event from `input`, or `None` once every consumer of `output` is gone.
pub(crate) async fn recv_or_closed<I: Send + 'static, O: Send + 'static>(
    input: &mut Input<I>,
    output: &mut Output<O>,
) -> Option<Event<I>> {
    match race(input.recv(), output.closed()).await {
        Either::Left(ev) => Some(ev),
        Either::Right(()) => None,
    }
}

/// Like [`recv_or_closed`], asking a demand-driven upstream for at most `max_rows` rows.
pub(crate) async fn recv_up_to_or_closed<I: Send + 'static, O: Send + 'static>(
    input: &mut Input<I>,
    output: &mut Output<O>,
    max_rows: usize,
) -> Option<Event<I>> {
    match race(input.recv_up_to(max_rows), output.closed()).await {
        Either::Left(ev) => Some(ev),
        Either::Right(()) => None,
    }
}

/// Receives the next signal (rows, end, control) from `input`, or `None` once every consumer of
/// `output` is gone.
pub(crate) async fn recv_signal_or_closed<I: Send + 'static, O: Send + 'static>(
    input: &mut Input<I>,
    output: &mut Output<O>,
) -> Option<Signal<I>> {
    match race(input.recv_signal(), output.closed()).await {
        Either::Left(s) => Some(s),
        Either::Right(()) => None,
    }
}

/// When `flushing`, sends the rows pending on `output`; otherwise only waits for every consumer
/// to go away. Either way `Err` means downstream is gone.
pub(crate) async fn flush_or_closed<O: Send + 'static>(
    output: &mut Output<O>,
    flushing: bool,
) -> Result<(), Cancelled> {
    if flushing {
        output.flush(true).await
    } else {
        output.closed().await;
        Err(Cancelled)
    }
}
