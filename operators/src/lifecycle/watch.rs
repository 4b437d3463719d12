//! `watch_termination`: a pass-through stage whose materialized future tells how the stream ended.

use weir_graph::{Flow, FlowLogic, Promise, SinkFuture, StageCx, StageError, promise};

/// How a watched stream ended without failing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Termination {
    /// Upstream completed and every element passed the stage.
    Completed,
    /// The stage was stopped before upstream completed (downstream cancelled, or the run was
    /// cancelled or stopped by a failure elsewhere).
    Cancelled,
}

struct WatchLogic<R> {
    done: Promise<R>,
    /// The values reported on completion and on cancellation.
    values: Option<(R, R)>,
}

impl<R> WatchLogic<R> {
    fn report(&mut self, completed: bool) {
        if let Some((c, x)) = self.values.take() {
            self.done.complete(Ok(if completed { c } else { x }));
        }
    }
}

impl<T: Send + 'static, R: Send + 'static> FlowLogic<T, T> for WatchLogic<R> {
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        crate::simple::pass(input, out);
        Ok(())
    }

    fn on_finish(&mut self, _out: &mut Vec<T>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.report(true);
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        _out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.values = None;
        self.done.complete(Err(error.clone()));
        Err(error)
    }

    fn post_stop(&mut self) {
        self.report(false);
    }
}

/// Flow form of [`LifecycleOps::watch_termination`](super::LifecycleOps::watch_termination).
pub fn watch_termination<T: Send + 'static>() -> Flow<T, T, SinkFuture<Termination>> {
    watch_termination_as(|| (Termination::Completed, Termination::Cancelled))
}

/// [`watch_termination`] whose future yields the first value `values()` returns on completion
/// and the second on cancellation (`values` runs once per materialization, e.g. to build
/// foreign objects while the materializing thread may).
pub fn watch_termination_as<T, R>(
    values: impl Fn() -> (R, R) + Send + Sync + 'static,
) -> Flow<T, T, SinkFuture<R>>
where
    T: Send + 'static,
    R: Send + 'static,
{
    Flow::from_logic("watch_termination", move |_| {
        let (done, fut) = promise();
        Ok((
            WatchLogic {
                done,
                values: Some(values()),
            },
            fut,
        ))
    })
}
