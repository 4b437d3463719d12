//! Parent/child tree with one-for-one restarts: a parent routes `(child, amount)` to two
//! children; a child fails on a negative amount and only that child is restarted (its running
//! total starts again from zero), the other keeps its state.

use weir::operators::actor::{Actor, ActorRef, Ctx, Props, SupervisorStrategy};
use weir::prelude::*;

/// Keeps a running total; fails on a negative amount.
struct Tally {
    name: &'static str,
    total: i64,
}

impl Actor for Tally {
    type Msg = i64;
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        ctx.emit(format!("{} started", self.name));
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, x: i64) -> Result<(), StageError> {
        if x < 0 {
            return Err(StageError::user(format!("negative amount {x}")));
        }
        self.total += x;
        ctx.emit(format!("{} total {}", self.name, self.total));
        Ok(())
    }
    fn pre_restart(&mut self, ctx: &mut Ctx<'_, Self>, error: &StageError) {
        ctx.emit(format!(
            "{} restarting after: {}",
            self.name,
            error.message()
        ));
    }
}

/// Spawns the two children and routes each amount to one of them.
#[derive(Default)]
struct Router {
    children: Vec<ActorRef<i64>>,
}

impl Actor for Router {
    type Msg = (usize, i64);
    type Out = String;
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        for name in ["left", "right"] {
            let props = Props::new(move || Tally { name, total: 0 }).with_name(name);
            self.children.push(ctx.spawn(props)?);
        }
        Ok(())
    }
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, (to, x): (usize, i64)) -> Result<(), StageError> {
        let child = self
            .children
            .get(to)
            .ok_or_else(|| StageError::user(format!("no child {to}")))?;
        ctx.tell(child, x)
            .map_err(|e| StageError::user(e.to_string()))
    }
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::one_for_one()
    }
}

/// Sends five amounts, one per batch, through the tree.
pub async fn run() -> Result<Vec<String>, crate::ExampleError> {
    let amounts = vec![(0, 1), (1, 10), (0, -1), (0, 2), (1, 20)];
    let out = Source::from_iter(amounts)
        .via(Flow::actor(Props::<Router>::default_of()))
        .run_with_on(Sink::collect(), &Materializer::new().with_batch_size(1))?
        .await?;
    Ok(out)
}
