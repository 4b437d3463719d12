//! Selective receive (`Ctx::receive`): an actor waits for the next message that matches, the
//! others are set aside in arrival order (with their senders) and put back in front of its
//! queue once the receive completes, and a timeout on the run's clock ends the wait.

use super::ctx::Ctx;
use super::mailbox::Envelope;
use super::props::Actor;
use super::timers::TimerKind;
use std::time::Duration;
use weir_graph::StageError;

/// What runs when a receive completes: with the matching message, or `None` on its timeout.
pub(crate) type ReceiveFn<A> = Box<
    dyn FnOnce(&mut A, &mut Ctx<'_, A>, Option<<A as Actor>::Msg>) -> Result<(), StageError> + Send,
>;

/// A selective receive waiting for its message.
pub(crate) struct Receiving<A: Actor> {
    /// Which message it waits for.
    pub(crate) matches: Box<dyn Fn(&A::Msg) -> bool + Send>,
    /// What runs when it completes.
    pub(crate) then: ReceiveFn<A>,
    /// The timer generation of its timeout (`None`: it waits until a message matches).
    pub(crate) timer: Option<u64>,
}

impl<A: Actor> Ctx<'_, A> {
    /// Waits for the next message for which `matches` holds and hands it to `then` (with its
    /// sender, so `then` may reply), instead of the actor's handler. Messages that do not match
    /// are set aside in arrival order (at most the stash capacity: one more fails the actor
    /// naming it) and go back in front of the queue, in order, once the receive completed, so
    /// they are handled next (by `then`'s next receive, or the handler). After `timeout` on the
    /// run's clock without a match, `then` gets `None`. `Err` when a receive already waits.
    ///
    /// A checkpoint taken meanwhile saves the set-aside messages ahead of the queue; the wait
    /// itself (a closure) is not saved: a restored actor handles them with its handler.
    pub fn receive(
        &mut self,
        matches: impl Fn(&A::Msg) -> bool + Send + 'static,
        timeout: Option<Duration>,
        then: impl FnOnce(&mut A, &mut Ctx<'_, A>, Option<A::Msg>) -> Result<(), StageError>
        + Send
        + 'static,
    ) -> Result<(), StageError> {
        if self.state.receiving.is_some() {
            return Err(StageError::user(format!(
                "actor '{}': a receive is already waiting",
                self.meta.path
            )));
        }
        let timer = timeout.map(|d| {
            let generation = self.sys.timers.next_generation();
            let at = self.now() + d;
            self.sys
                .timers
                .push(at, self.meta.id, generation, TimerKind::Receive);
            generation
        });
        self.state.receiving = Some(Receiving {
            matches: Box::new(matches),
            then: Box::new(then),
            timer,
        });
        Ok(())
    }

    /// Whether a selective receive waits.
    pub fn is_receiving(&self) -> bool {
        self.state.receiving.is_some()
    }

    /// Messages a waiting receive set aside.
    pub fn set_aside(&self) -> usize {
        self.state.set_aside.len()
    }
}

/// Offers `msg` to the waiting receive: `Err(msg)` back when none waits; otherwise it was set
/// aside or handed to the receive's `then` (whose result this is).
pub(crate) fn offer<A: Actor>(
    actor: &mut A,
    ctx: &mut Ctx<'_, A>,
    msg: A::Msg,
) -> Result<Result<(), StageError>, A::Msg> {
    let Some(r) = ctx.state.receiving.as_ref() else {
        return Err(msg);
    };
    if !(r.matches)(&msg) {
        if ctx.state.set_aside.len() >= ctx.state.stash_capacity {
            super::mailbox::dead_letter(ctx.sys.shared(), &ctx.meta.path, msg, "stash full");
            return Ok(Err(StageError::user(format!(
                "actor '{}': a receive set aside more than its stash capacity ({} messages)",
                ctx.meta.path, ctx.state.stash_capacity
            ))));
        }
        ctx.state.set_aside.push_back(Envelope {
            msg,
            reply: ctx.reply.take(),
        });
        return Ok(Ok(()));
    }
    Ok(complete(actor, ctx, Some(msg)))
}

/// Completes the waiting receive with `msg` (`None`: its timeout): its `then` runs, and the
/// set-aside messages go back in front of the queue after the turn.
pub(crate) fn complete<A: Actor>(
    actor: &mut A,
    ctx: &mut Ctx<'_, A>,
    msg: Option<A::Msg>,
) -> Result<(), StageError> {
    ctx.state.receive_timed_out = false;
    let Some(r) = ctx.state.receiving.take() else {
        return Ok(());
    };
    ctx.state.received = true;
    (r.then)(actor, ctx, msg)
}
