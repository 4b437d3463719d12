//! Router pool: a parent spawns `n` workers and routes the jobs round robin; each worker
//! squares its jobs and reports how many it handled when the stream ends.

use weir::operators::actor::{Actor, ActorRef, Ctx, Props};
use weir::prelude::*;

/// What the pool emits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Report {
    /// Worker `worker` squared `job`.
    Squared {
        /// The job.
        job: u64,
        /// The worker that did it.
        worker: usize,
        /// `job * job`.
        square: u64,
    },
    /// Worker `worker` stopped after handling `jobs` jobs.
    Handled {
        /// The worker.
        worker: usize,
        /// Jobs it handled.
        jobs: u64,
    },
}

/// Squares jobs.
struct Squarer {
    id: usize,
    jobs: u64,
}

impl Actor for Squarer {
    type Msg = u64;
    type Out = Report;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, job: u64) -> Result<(), StageError> {
        self.jobs += 1;
        ctx.emit(Report::Squared {
            job,
            worker: self.id,
            square: job * job,
        });
        Ok(())
    }
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        ctx.emit(Report::Handled {
            worker: self.id,
            jobs: self.jobs,
        });
    }
}

/// Spawns the workers and routes round robin.
struct Pool {
    size: usize,
    workers: Vec<ActorRef<u64>>,
    next: usize,
}

impl Actor for Pool {
    type Msg = u64;
    type Out = Report;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for id in 0..self.size {
            let props = Props::new(move || Squarer { id, jobs: 0 }).with_name(&format!("w{id}"));
            self.workers.push(ctx.spawn(props)?);
        }
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, job: u64) -> Result<(), StageError> {
        let Some(w) = self.workers.get(self.next) else {
            return Err(StageError::user("the pool has no workers"));
        };
        self.next = (self.next + 1) % self.workers.len();
        ctx.tell(w, job)
            .map_err(|e| StageError::user(e.to_string()))
    }
}

/// Routes jobs `0..jobs` over a pool of `size` workers; the reports, sorted.
pub async fn run(size: usize, jobs: u64) -> Result<Vec<Report>, crate::ExampleError> {
    let props = Props::new(move || Pool {
        size,
        workers: Vec::new(),
        next: 0,
    });
    let mut out = Source::from_iter(0..jobs)
        .via(Flow::actor(props))
        .run_with(Sink::collect())?
        .await?;
    out.sort();
    Ok(out)
}
