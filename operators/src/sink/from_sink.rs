//! `from_sink(factory)`: a weir sink writing into a `futures::Sink` built per materialization.

use futures::{FutureExt, SinkExt};
use std::error::Error;
use weir_graph::{AsyncFn, AsyncIo, ErrorKind, Event, Sink, SinkFuture, StageError, promise};

fn external<E: Into<Box<dyn Error + Send + Sync>>>(e: E) -> StageError {
    StageError::from_boxed(ErrorKind::External, e.into())
}

pub(crate) fn from_sink<T, S, F>(factory: F) -> Sink<T, SinkFuture<()>>
where
    T: Send + 'static,
    S: futures::Sink<T> + Send + 'static,
    S::Error: Into<Box<dyn Error + Send + Sync>>,
    F: Fn() -> S + Send + Sync + 'static,
{
    Sink::from_async("from_sink", move |_| {
        let (mut promise, future) = promise();
        let sink = factory();
        let logic = AsyncFn(move |mut io: AsyncIo| {
            async move {
                let mut sink = Box::pin(sink);
                let mut input = io.input::<T>(0)?;
                let result = loop {
                    match input.recv().await {
                        Event::Batch(v) => {
                            let mut fed = Ok(());
                            for x in v {
                                fed = sink.feed(x).await.map_err(external);
                                if fed.is_err() {
                                    break;
                                }
                            }
                            if let Err(e) = fed.and(sink.flush().await.map_err(external)) {
                                break Err(e);
                            }
                        }
                        Event::End => break sink.close().await.map_err(external),
                        Event::Error(e) => break Err(e),
                    }
                };
                promise.complete(result.clone());
                result
            }
            .boxed()
        });
        Ok((logic, future))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::async_sink;
    use futures::StreamExt;
    use futures::channel::mpsc;
    use std::sync::{Arc, Mutex};

    #[tokio::test]
    async fn writes_into_the_futures_sink_and_closes_it() {
        let (tx, rx) = mpsc::channel::<u32>(1);
        let tx = Arc::new(Mutex::new(Some(tx)));
        let s = from_sink(move || tx.lock().unwrap().take().unwrap());
        let (task, feed, fut) = async_sink(&s);
        let task = tokio::spawn(task);
        feed.batch(vec![1u32, 2, 3]);
        feed.end();
        let got: Vec<u32> = rx.collect().await;
        assert_eq!(got, vec![1, 2, 3]);
        fut.await.unwrap();
        task.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn sink_errors_fail_the_stage() {
        let (tx, rx) = mpsc::channel::<u32>(1);
        drop(rx);
        let tx = Arc::new(Mutex::new(Some(tx)));
        let s = from_sink(move || tx.lock().unwrap().take().unwrap());
        let (task, feed, fut) = async_sink(&s);
        feed.batch(vec![1u32]);
        assert!(task.await.is_err());
        assert_eq!(fut.await.unwrap_err().kind(), ErrorKind::External);
    }
}
