//! `from_stream` / `from_try_stream`: a source polling a `futures::Stream` built per materialization.
//!
//! Design choice: the constructors take a *factory* (`Fn() -> S`) rather than a `Clone + Unpin`
//! stream, so any stream (including `!Unpin` ones, which are pinned in a box) can be replayed by
//! each materialization. They run as a poll-based [`SourceLogic`], so they fuse with the stages
//! after them instead of needing a task of their own.

use futures::Stream;
use std::pin::Pin;
use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// Polls a boxed stream until a batch is full or the stream is pending.
struct StreamLogic<S: Stream, T> {
    stream: Pin<Box<S>>,
    conv: fn(S::Item) -> Result<T, StageError>,
    /// An error met after elements were pushed: reported on the next poll.
    failed: Option<StageError>,
}

impl<T, S> SourceLogic<T> for StreamLogic<S, T>
where
    T: Send + 'static,
    S: Stream + Send + 'static,
{
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        let n = scx.batch_size().max(1);
        let start = out.len();
        while out.len() - start < n {
            match self.stream.as_mut().poll_next(cx) {
                Poll::Ready(Some(x)) => match (self.conv)(x) {
                    Ok(x) => out.push(x),
                    Err(e) if out.len() == start => return Poll::Ready(Err(e)),
                    Err(e) => {
                        self.failed = Some(e);
                        break;
                    }
                },
                Poll::Ready(None) => return Poll::Ready(Ok(Step::Done)),
                // Nothing yet: the stream registered our waker.
                Poll::Pending if out.len() == start => return Poll::Pending,
                // Deliver what we have; the engine polls again after the batch is sent.
                Poll::Pending => break,
            }
        }
        Poll::Ready(Ok(Step::More))
    }
}

pub(crate) fn from_stream<T, S, F>(factory: F) -> Source<T>
where
    T: Send + 'static,
    S: Stream<Item = T> + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    Source::from_logic("from_stream", move |_| {
        let logic = StreamLogic {
            stream: Box::pin(factory()),
            conv: Ok,
            failed: None,
        };
        Ok((logic, ()))
    })
}

pub(crate) fn from_try_stream<T, S, F>(factory: F) -> Source<T>
where
    T: Send + 'static,
    S: Stream<Item = Result<T, StageError>> + Send + 'static,
    F: Fn() -> S + Send + Sync + 'static,
{
    Source::from_logic("from_try_stream", move |_| {
        let logic = StreamLogic {
            stream: Box::pin(factory()),
            conv: |r| r,
            failed: None,
        };
        Ok((logic, ()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::test_support::source;
    use futures::channel::mpsc;
    use futures::stream;
    use std::sync::{Arc, Mutex};

    #[test]
    fn replays_the_stream_per_materialization() {
        let s = from_stream(|| stream::iter(1..=5));
        assert_eq!(source(&s, 2).0.drain().unwrap(), vec![1, 2, 3, 4, 5]);
        assert_eq!(source(&s, 9).0.drain().unwrap(), vec![1, 2, 3, 4, 5]);
    }

    #[test]
    fn pending_stream_registers_waker_and_partial_batches_flow() {
        let (tx, rx) = mpsc::unbounded::<u32>();
        let rx = Arc::new(Mutex::new(Some(rx)));
        let s = from_stream(move || rx.lock().unwrap().take().unwrap());
        let (mut h, ()) = source(&s, 4);
        assert!(h.poll().is_none());
        tx.unbounded_send(1).unwrap();
        assert!(h.flag.take());
        assert_eq!(h.poll().unwrap().unwrap(), (vec![1], Step::More));
        drop(tx);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![], Step::Done));
    }

    #[test]
    fn try_stream_fails_on_error_item() {
        let s = from_try_stream(|| stream::iter(vec![Ok(1), Err(StageError::user("bad")), Ok(3)]));
        let (mut h, ()) = source(&s, 8);
        assert_eq!(h.poll().unwrap().unwrap(), (vec![1], Step::More));
        assert_eq!(h.poll().unwrap().unwrap_err().message(), "bad");
    }
}
