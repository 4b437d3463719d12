//! Backoff supervisor: a worker that crashes is restarted after 100 ms, then 200 ms (doubling up
//! to 1 s); messages sent meanwhile wait in its mailbox. Runs on a virtual clock, so the times
//! are exact.

use std::sync::Arc;
use std::time::Duration;
use weir::engine::VirtualClock;
use weir::operators::actor::{Actor, ActorRef, Ctx, Props, SupervisorStrategy};
use weir::prelude::*;

/// What the worker is told.
#[derive(Debug, Clone, Copy)]
pub enum Job {
    /// Work on job `n`.
    Run(u32),
    /// Fail.
    Crash,
}

/// Emits when it starts and when it finishes a job, stamped with the run clock in ms.
struct Worker;

impl Actor for Worker {
    type Msg = Job;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        ctx.emit(format!("{} ms: worker started", ctx.now().as_millis()));
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, job: Job) -> Result<(), StageError> {
        match job {
            Job::Run(n) => {
                ctx.emit(format!("{} ms: job {n} done", ctx.now().as_millis()));
                Ok(())
            }
            Job::Crash => Err(StageError::user("crash")),
        }
    }
}

/// Supervises the worker with a restart backoff and passes every job on to it.
#[derive(Default)]
struct Supervisor {
    worker: Option<ActorRef<Job>>,
}

impl Actor for Supervisor {
    type Msg = Job;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.worker = Some(ctx.spawn(Props::new(|| Worker).with_name("worker"))?);
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, job: Job) -> Result<(), StageError> {
        if let Some(w) = &self.worker {
            ctx.forward(w, job)
                .map_err(|e| StageError::user(e.to_string()))?;
        }
        Ok(())
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one().with_backoff(ms(100), ms(1000), 0.0)
    }
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Tells the supervisor jobs and crashes at set times of a virtual clock.
pub async fn run() -> Result<Vec<String>, crate::ExampleError> {
    let clock = VirtualClock::new();
    let m = Materializer::new().with_clock(Arc::new(clock.clone()));
    let g = Source::actor(Props::<Supervisor>::default_of()).to_mat(Sink::collect(), Keep::both);
    let ((r, done), _handle) = m.materialize(&g)?;
    // t = 0: a job, then a crash: the restart waits 100 ms.
    r.tell(Job::Run(1)).await?;
    r.tell(Job::Crash).await?;
    clock.run_for(ms(10)).await;
    // t = 10: queued until the restart at 100.
    r.tell(Job::Run(2)).await?;
    clock.run_for(ms(100)).await;
    // t = 110: the second crash waits 200 ms (until 310).
    r.tell(Job::Crash).await?;
    r.tell(Job::Run(3)).await?;
    clock.run_for(ms(300)).await;
    // t = 410: dropping the last ref completes the source.
    drop(r);
    clock.run_for(ms(1)).await;
    Ok(done.await?)
}
