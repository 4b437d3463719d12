//! `unfold` and `unfold_async`: a source generated from a state by a user function.

use futures::FutureExt;
use futures::future::BoxFuture;
use std::future::Future;
use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// Calls `f(state)` until it returns `None`, a whole batch per poll.
struct UnfoldLogic<S, F> {
    state: Option<S>,
    f: F,
}

impl<S, T, F> SourceLogic<T> for UnfoldLogic<S, F>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnMut(S) -> Option<(S, T)> + Send + 'static,
{
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        for _ in 0..scx.batch_size().max(1) {
            let Some(s) = self.state.take() else {
                return Poll::Ready(Ok(Step::Done));
            };
            match (self.f)(s) {
                Some((s, x)) => {
                    self.state = Some(s);
                    out.push(x);
                }
                None => return Poll::Ready(Ok(Step::Done)),
            }
        }
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn unfold<S, T, F>(state: S, f: F) -> Source<T>
where
    S: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: FnMut(S) -> Option<(S, T)> + Clone + Send + Sync + 'static,
{
    Source::from_logic("unfold", move |_| {
        let logic = UnfoldLogic {
            state: Some(state.clone()),
            f: f.clone(),
        };
        Ok((logic, ()))
    })
}

/// Awaits `f(state)` one call at a time; ready results fill the batch.
struct UnfoldAsyncLogic<S, T, F> {
    state: Option<S>,
    f: F,
    running: Option<BoxFuture<'static, Option<(S, T)>>>,
}

impl<S, T, F, Fut> SourceLogic<T> for UnfoldAsyncLogic<S, T, F>
where
    S: Send + 'static,
    T: Send + 'static,
    F: FnMut(S) -> Fut + Send + 'static,
    Fut: Future<Output = Option<(S, T)>> + Send + 'static,
{
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        let start = out.len();
        while out.len() - start < scx.batch_size().max(1) {
            let fut = match &mut self.running {
                Some(fut) => fut,
                None => match self.state.take() {
                    Some(s) => self.running.insert((self.f)(s).boxed()),
                    None => return Poll::Ready(Ok(Step::Done)),
                },
            };
            match fut.poll_unpin(cx) {
                Poll::Ready(Some((s, x))) => {
                    self.running = None;
                    self.state = Some(s);
                    out.push(x);
                }
                Poll::Ready(None) => {
                    self.running = None;
                    return Poll::Ready(Ok(Step::Done));
                }
                Poll::Pending if out.len() == start => return Poll::Pending,
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn unfold_async<S, T, F, Fut>(state: S, f: F) -> Source<T>
where
    S: Clone + Send + Sync + 'static,
    T: Send + 'static,
    F: FnMut(S) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Option<(S, T)>> + Send + 'static,
{
    Source::from_logic("unfold_async", move |_| {
        let logic = UnfoldAsyncLogic {
            state: Some(state.clone()),
            f: f.clone(),
            running: None,
        };
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;
    use futures::channel::oneshot;
    use std::sync::{Arc, Mutex};

    fn fib() -> Source<u64> {
        unfold((0u64, 1u64), |(a, b)| (a < 50).then_some(((b, a + b), a)))
    }

    #[test]
    fn unfold_generates_until_none() {
        let want = vec![0, 1, 1, 2, 3, 5, 8, 13, 21, 34];
        assert_eq!(source(&fib(), 3).0.drain().unwrap(), want);
        assert_eq!(source(&fib(), 100).0.drain().unwrap(), want);
    }

    #[test]
    fn unfold_async_ready_futures_fill_a_batch() {
        let s = unfold_async(0u32, |n| async move { (n < 5).then_some((n + 1, n * 10)) });
        let (mut h, ()) = source(&s, 3);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![0, 10, 20], Step::More));
        assert_eq!(h.drain().unwrap(), vec![30, 40]);
    }

    #[test]
    fn unfold_async_pending_future_wakes() {
        let gate: Arc<Mutex<Option<oneshot::Receiver<()>>>> = Arc::default();
        let (tx, rx) = oneshot::channel();
        *gate.lock().unwrap() = Some(rx);
        let g = Arc::clone(&gate);
        let s = unfold_async(0u32, move |n| {
            let wait = g.lock().unwrap().take();
            async move {
                if let Some(w) = wait {
                    let _ = w.await;
                }
                (n < 2).then_some((n + 1, n))
            }
        });
        let (mut h, ()) = source(&s, 8);
        assert!(h.poll().is_none());
        tx.send(()).unwrap();
        assert!(h.flag.take());
        assert_eq!(h.drain().unwrap(), vec![0, 1]);
    }
}
