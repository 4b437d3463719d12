//! `recover_with_retries`: on failure, continue with a source chosen from the error.

use futures::FutureExt;
use futures::future::BoxFuture;
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{AsyncIo, AsyncLogic, Event, Flow, Input, Source, StageError};

type Recover<T, M> =
    Arc<dyn Fn(&StageError) -> Result<Option<Source<T, M>>, StageError> + Send + Sync>;

/// The flow behind `recover_with_retries(attempts, f)`.
pub(crate) fn flow<T: Send + 'static, M: Send + 'static>(
    attempts: usize,
    f: impl Fn(&StageError) -> Option<Source<T, M>> + Send + Sync + 'static,
) -> Flow<T, T, ()> {
    try_recover_with_retries(attempts, move |e: &StageError| Ok(f(e)))
}

/// `recover_with_retries` with a fallible `f`: on upstream failure, continues with the source
/// `f` returns for the error, at most `attempts` times; `Ok(None)` keeps the failure, `Err` fails
/// the stage with `f`'s error instead.
///
/// Emits when: the current upstream (original or recovery source) emits.
/// Backpressures when: downstream backpressures.
/// Completes when: the current upstream completes.
/// Cancels when: downstream cancels.
/// Fails when: a failure arrives with no attempt left, or `f` returns `Ok(None)` (that failure)
/// or `Err` (its error) for it.
pub fn try_recover_with_retries<T: Send + 'static, M: Send + 'static>(
    attempts: usize,
    f: impl Fn(&StageError) -> Result<Option<Source<T, M>>, StageError> + Send + Sync + 'static,
) -> Flow<T, T, ()> {
    let f: Recover<T, M> = Arc::new(f);
    Flow::from_async("recover_with_retries", move |_info| {
        Ok((
            RecoverLogic {
                attempts,
                f: Arc::clone(&f),
            },
            (),
        ))
    })
}

struct RecoverLogic<T, M> {
    attempts: usize,
    f: Recover<T, M>,
}

impl<T: Send + 'static, M: Send + 'static> AsyncLogic for RecoverLogic<T, M> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self { mut attempts, f } = *self;
        async move {
            let path: Arc<str> = Arc::from(io.info.path.as_str());
            let sub = Arc::clone(&io.sub);
            let mut input = io.input::<T>(0)?;
            let mut out = io.output::<T>(0)?;
            loop {
                let ev = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(None);
                    }
                    input.poll_recv(cx).map(Some)
                })
                .await;
                match ev {
                    None | Some(Event::End) => return Ok(()),
                    Some(Event::Batch(v)) => {
                        if out.send(v).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Event::Error(e)) => {
                        if attempts == 0 {
                            return Err(e);
                        }
                        let Some(source) = f(&e).map_err(|e| e.with_stage(&path))? else {
                            return Err(e);
                        };
                        attempts -= 1;
                        let inner = sub
                            .source(Arc::clone(source.module()))
                            .map_err(|e| e.with_stage(&path))?;
                        input = Input::new(inner, Arc::clone(&path));
                    }
                }
            }
        }
        .boxed()
    }
}
