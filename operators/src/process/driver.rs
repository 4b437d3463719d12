//! The asynchronous driver shared by the stages that fire on the run's clock as well as on the
//! watermark (keyed process functions, processing-time windows): it reads batches and control
//! from its input and sleeps until the logic's next processing-time deadline, whichever comes
//! first.

use crate::time::util::{maybe, race};
use futures::future::{BoxFuture, Either, FutureExt};
use std::time::Duration;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Event, KeyGroupRange, Signal, Snapshot, StageCx, StageError,
};

/// A one-input logic driven by its input, the watermark and the run's clock.
pub(crate) trait Timed<I, O>: Send + 'static {
    /// A batch arrived at processing time `now`.
    fn on_batch(
        &mut self,
        batch: Vec<I>,
        now: Duration,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// The (combined) upstream watermark advanced to `ms`; returns whether to forward it.
    fn on_watermark(
        &mut self,
        ms: i64,
        now: Duration,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<bool, StageError>;
    /// The clock reached the deadline asked for by [`Timed::next_deadline`] (or later).
    fn on_time(
        &mut self,
        now: Duration,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// The earliest processing time the logic wants to be called at, if any.
    fn next_deadline(&self) -> Option<Duration>;
    /// The input completed.
    fn on_finish(
        &mut self,
        now: Duration,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// The state as a barrier passes (an error when it cannot be saved).
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError>;
    /// Restores the state saved by [`Timed::snapshot`].
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError>;
    /// Restores every old subtask's state at a changed parallelism, keeping `key_groups`
    /// (refused by default: the state is not split by key group).
    fn restore_rescaled(
        &mut self,
        _snapshots: &[Snapshot],
        _key_groups: KeyGroupRange,
    ) -> Result<(), StageError> {
        Err(StageError::internal(
            "its state is not kept by key group, so it cannot be restored at a parallelism \
             other than the checkpoint's: run it at the checkpoint's parallelism",
        ))
    }
}

/// Runs a [`Timed`] logic as an asynchronous stage that handles control itself.
pub(crate) struct Driver<L, I, O> {
    pub(crate) logic: L,
    pub(crate) _io: std::marker::PhantomData<fn(I) -> O>,
}

impl<L, I, O> Driver<L, I, O> {
    /// Drives `logic`.
    pub(crate) fn new(logic: L) -> Self {
        Self {
            logic,
            _io: std::marker::PhantomData,
        }
    }
}

impl<L, I, O> AsyncLogic for Driver<L, I, O>
where
    L: Timed<I, O>,
    I: Send + 'static,
    O: Send + 'static,
{
    fn handles_control(&self) -> bool {
        true
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.logic.restore(snapshot)
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.logic.restore_rescaled(snapshots, key_groups)
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut logic = self.logic;
            let mut input = io.input::<I>(0)?;
            let mut output = io.output::<O>(0)?;
            let clock = std::sync::Arc::clone(&io.clock);
            let mut out: Vec<O> = Vec::new();
            loop {
                let deadline = logic.next_deadline();
                let signal = race(
                    race(input.recv_signal(), output.closed()),
                    maybe(deadline.map(|d| clock.sleep_until(d))),
                )
                .await;
                let now = clock.now();
                let mut scx = io.stage_cx();
                let mut forward = None;
                let step = match signal {
                    Either::Left(Either::Left(Signal::Event(Event::Batch(b)))) => {
                        logic.on_batch(b, now, &mut out, &mut scx)
                    }
                    Either::Left(Either::Left(Signal::Event(Event::End))) => {
                        let r = logic.on_finish(now, &mut out, &mut scx);
                        send(&mut output, &mut out).await;
                        return r;
                    }
                    Either::Left(Either::Left(Signal::Event(Event::Error(e)))) => {
                        send(&mut output, &mut out).await;
                        return Err(e);
                    }
                    Either::Left(Either::Left(Signal::Control(c))) => match c {
                        Control::Watermark { ms } => logic
                            .on_watermark(ms, now, &mut out, &mut scx)
                            .map(|fwd| forward = fwd.then_some(c)),
                        Control::Barrier { id } => {
                            // The state as of the barrier goes to the checkpoint; a stage that
                            // cannot save it fails instead of being restored empty.
                            logic.snapshot().map(|snap| {
                                if let Some(ck) = &io.checkpoint {
                                    ck.ack(id, snap);
                                }
                                forward = Some(c);
                            })
                        }
                        other => {
                            forward = Some(other);
                            Ok(())
                        }
                    },
                    Either::Left(Either::Right(())) => return Ok(()),
                    Either::Right(()) => logic.on_time(now, &mut out, &mut scx),
                };
                // What was emitted before a failure goes out ahead of it.
                if !send(&mut output, &mut out).await {
                    return step.map(|_| ());
                }
                step?;
                if let Some(c) = forward {
                    output.control(c);
                }
            }
        }
        .boxed()
    }
}

/// Sends the rows in `out` (if any); `false` once downstream is gone.
async fn send<O: Send + 'static>(output: &mut weir_graph::Output<O>, out: &mut Vec<O>) -> bool {
    if out.is_empty() {
        return true;
    }
    output.send(std::mem::take(out)).await.is_ok()
}
