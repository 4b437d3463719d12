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

struct WatchLogic {
    done: Promise<Termination>,
}

impl<T: Send + 'static> FlowLogic<T, T> for WatchLogic {
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
        self.done.complete(Ok(Termination::Completed));
        Ok(())
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        _out: &mut Vec<T>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.done.complete(Err(error.clone()));
        Err(error)
    }

    fn post_stop(&mut self) {
        self.done.complete(Ok(Termination::Cancelled));
    }
}

/// Flow form of [`LifecycleOps::watch_termination`](super::LifecycleOps::watch_termination).
pub fn watch_termination<T: Send + 'static>() -> Flow<T, T, SinkFuture<Termination>> {
    Flow::from_logic("watch_termination", |_| {
        let (done, fut) = promise();
        Ok((WatchLogic { done }, fut))
    })
}
