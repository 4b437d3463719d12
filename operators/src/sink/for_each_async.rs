//! `for_each_async(parallelism, f)`: runs an async function per element, at most `parallelism`
//! futures in flight (a `FuturesUnordered` inside the stage's own task).

use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::task::Poll;
use weir_graph::{AsyncFn, Event, Input, Promise, Sink, SinkFuture, StageError, promise};

/// What woke the stage: an input event, or only completed futures.
enum Wake<T> {
    Input(Event<T>),
    Progress,
}

async fn run<T, F, Fut>(
    mut input: Input<T>,
    parallelism: usize,
    mut f: F,
    mut promise: Promise<()>,
) -> Result<(), StageError>
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut queued: VecDeque<T> = VecDeque::new();
    let mut running = FuturesUnordered::new();
    let mut ended = false;
    loop {
        while running.len() < parallelism {
            match queued.pop_front() {
                Some(x) => running.push(f(x)),
                None => break,
            }
        }
        if ended && queued.is_empty() && running.is_empty() {
            promise.complete(Ok(()));
            return Ok(());
        }
        // Pull the next batch only once the previous one is fully started.
        let can_recv = !ended && queued.is_empty();
        let wake = poll_fn(|cx| {
            let mut progressed = false;
            while let Poll::Ready(Some(())) = running.poll_next_unpin(cx) {
                progressed = true;
            }
            if can_recv && let Poll::Ready(ev) = input.poll_recv(cx) {
                return Poll::Ready(Wake::Input(ev));
            }
            if progressed {
                Poll::Ready(Wake::Progress)
            } else {
                Poll::Pending
            }
        })
        .await;
        match wake {
            Wake::Progress => {}
            Wake::Input(Event::Batch(v)) => queued.extend(v),
            Wake::Input(Event::End) => ended = true,
            Wake::Input(Event::Error(e)) => {
                promise.complete(Err(e.clone()));
                return Err(e);
            }
        }
    }
}

pub(crate) fn for_each_async<T, F, Fut>(parallelism: usize, f: F) -> Sink<T, SinkFuture<()>>
where
    T: Send + 'static,
    F: FnMut(T) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let invalid = weir_graph::at_least("for_each_async: parallelism", parallelism, 1);
    let parallelism = parallelism.max(1);
    Sink::from_async("for_each_async", move |_| {
        let (promise, future) = promise();
        let f = f.clone();
        let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
            async move {
                let input = io.input::<T>(0)?;
                run(input, parallelism, f, promise).await
            }
            .boxed()
        });
        Ok((logic, future))
    })
    .reject(invalid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::async_sink;
    use futures::channel::oneshot;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn bounded_parallelism_and_completion() {
        let live = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let sum = Arc::new(AtomicUsize::new(0));
        let (l, p, s) = (Arc::clone(&live), Arc::clone(&peak), Arc::clone(&sum));
        let sink = for_each_async(3, move |x: usize| {
            let (l, p, s) = (Arc::clone(&l), Arc::clone(&p), Arc::clone(&s));
            async move {
                let now = l.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                s.fetch_add(x, Ordering::SeqCst);
                l.fetch_sub(1, Ordering::SeqCst);
            }
        });
        let (task, feed, fut) = async_sink(&sink);
        let task = tokio::spawn(task);
        feed.batch((0..10usize).collect::<Vec<_>>());
        feed.batch(vec![100usize]);
        feed.end();
        fut.await.unwrap();
        task.await.unwrap().unwrap();
        assert_eq!(sum.load(Ordering::SeqCst), 145);
        assert!(peak.load(Ordering::SeqCst) <= 3);
    }

    #[tokio::test]
    async fn waits_for_in_flight_futures_and_propagates_errors() {
        let gate: Arc<Mutex<Option<oneshot::Receiver<()>>>> = Arc::default();
        let (tx, rx) = oneshot::channel();
        *gate.lock().unwrap() = Some(rx);
        let g = Arc::clone(&gate);
        let sink = for_each_async(2, move |_: u8| {
            let w = g.lock().unwrap().take();
            async move {
                if let Some(w) = w {
                    let _ = w.await;
                }
            }
        });
        let (task, feed, mut fut) = async_sink(&sink);
        let task = tokio::spawn(task);
        feed.batch(vec![1u8]);
        feed.end();
        tokio::task::yield_now().await;
        assert!(fut.try_get().is_none());
        tx.send(()).unwrap();
        fut.await.unwrap();
        task.await.unwrap().unwrap();

        let (task, feed, fut) = async_sink(&for_each_async(2, |_: u8| async {}));
        feed.error(StageError::user("up"));
        assert!(task.await.is_err());
        assert_eq!(fut.await.unwrap_err().message(), "up");
    }
}
