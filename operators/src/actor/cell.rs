//! One actor inside its stage: the instance, its mailbox and local queue, its behaviours,
//! stash and timers, and its place in the supervision tree.

use super::ctx::{Behavior, Ctx};
use super::mailbox::{Envelope, Mailbox};
use super::props::{Actor, ActorId, Props};
use super::supervisor::{RestartLog, SupervisorStrategy};
use super::system::System;
use super::timers::TimerKey;
use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_graph::StageError;

/// Default number of messages an actor may stash.
pub const DEFAULT_STASH_CAPACITY: usize = 1024;

/// Where an actor sits in its stage's tree.
#[derive(Debug)]
pub(crate) struct Meta {
    pub(crate) id: ActorId,
    pub(crate) path: Arc<str>,
    pub(crate) parent: Option<ActorId>,
    pub(crate) children: Vec<ActorId>,
    pub(crate) watchers: Vec<ActorId>,
    pub(crate) restarts: RestartLog,
    /// Waiting for a delayed restart: no message is handled meanwhile.
    pub(crate) suspended: bool,
    /// Being stopped (its children stop first): it gets no terminated notices meanwhile.
    pub(crate) stopping: bool,
}

/// A timer's message: once, or made again for every period.
pub(crate) enum TimerSlot<M> {
    Once {
        generation: u64,
        msg: Option<M>,
    },
    Periodic {
        generation: u64,
        interval: Duration,
        make: Box<dyn FnMut() -> M + Send>,
    },
}

impl<M> TimerSlot<M> {
    pub(crate) fn once(generation: u64, msg: M) -> Self {
        Self::Once {
            generation,
            msg: Some(msg),
        }
    }
    pub(crate) fn periodic(
        generation: u64,
        interval: Duration,
        make: impl FnMut() -> M + Send + 'static,
    ) -> Self {
        Self::Periodic {
            generation,
            interval,
            make: Box::new(make),
        }
    }
    fn generation(&self) -> u64 {
        match self {
            Self::Once { generation, .. } | Self::Periodic { generation, .. } => *generation,
        }
    }
}

/// An actor's behaviours, stash and timers (what its context changes).
pub(crate) struct CellState<A: Actor> {
    /// Behaviours above `handle`; the running one is taken out while it runs.
    pub(crate) behaviors: Vec<Option<Behavior<A>>>,
    pub(crate) stash: VecDeque<Envelope<A::Msg>>,
    pub(crate) stash_capacity: usize,
    pub(crate) unstash: bool,
    pub(crate) stop_requested: bool,
    /// Set by `Ctx::pause_input`: the stage hands this actor (its root) no stream batch.
    pub(crate) input_paused: bool,
    pub(crate) timers: HashMap<TimerKey, TimerSlot<A::Msg>>,
    /// This actor as the sender of what it tells (made on its first tell, then shared).
    pub(crate) me: Option<Arc<dyn super::mailbox::AnyRef>>,
    /// A selective receive waiting for its message (`Ctx::receive`).
    pub(crate) receiving: Option<super::receive::Receiving<A>>,
    /// Messages the receive set aside, in arrival order.
    pub(crate) set_aside: VecDeque<Envelope<A::Msg>>,
    /// The receive completed: the set-aside messages go back in front after the turn.
    pub(crate) received: bool,
    /// The receive's timeout fired: it completes with `None` at the actor's next turn.
    pub(crate) receive_timed_out: bool,
    /// Set by `Ctx::park`: only notices are handed to the actor until `Ctx::unpark`.
    pub(crate) parked: bool,
    /// Messages `Ctx::requeue` puts back in front of the queue after the turn.
    pub(crate) requeue: VecDeque<Envelope<A::Msg>>,
}

impl<A: Actor> CellState<A> {
    fn new(stash_capacity: usize) -> Self {
        Self {
            behaviors: Vec::new(),
            stash: VecDeque::new(),
            stash_capacity,
            unstash: false,
            stop_requested: false,
            input_paused: false,
            timers: HashMap::new(),
            me: None,
            receiving: None,
            set_aside: VecDeque::new(),
            received: false,
            receive_timed_out: false,
            parked: false,
            requeue: VecDeque::new(),
        }
    }
}

/// What the stage asks of a cell whose actor type it does not know.
pub(crate) trait AnyCell<O>: Send {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
    fn meta(&self) -> &Meta;
    fn meta_mut(&mut self) -> &mut Meta;
    /// Handles up to `budget` messages (its local queue first, then its mailbox).
    fn turn(&mut self, sys: &mut System<O>, budget: usize) -> Result<(), StageError>;
    /// Runs `pre_start` (making the instance first if there is none).
    fn start(&mut self, sys: &mut System<O>) -> Result<(), StageError>;
    /// Replaces the instance after `error` (`pre_restart` on the old one, `pre_start` on the new).
    fn restart(&mut self, sys: &mut System<O>, error: &StageError) -> Result<(), StageError>;
    /// Runs `post_stop` and closes the mailbox (what is queued goes to dead letters).
    fn stop(&mut self, sys: &mut System<O>);
    /// Tells the actor that `who` stopped.
    fn terminated(&mut self, sys: &mut System<O>, who: ActorId) -> Result<(), StageError>;
    /// Queues the message of timer `key` if `generation` is still its current one; returns the
    /// next deadline of a periodic timer.
    fn fire(&mut self, key: &TimerKey, generation: u64, at: Duration) -> Option<Duration>;
    /// The strategy this actor supervises its children with.
    fn strategy(&self) -> SupervisorStrategy;
    /// Whether messages wait in its local queue.
    fn has_local_work(&self) -> bool;
    /// Whether it is running with nothing queued (local queue and mailbox empty).
    fn is_idle(&self) -> bool;
    /// Whether it has an active timer.
    fn has_timers(&self) -> bool;
    /// Marks the waiting receive timed out when `generation` is its timer's; whether it was.
    fn receive_timed_out(&mut self, generation: u64) -> bool;
    /// References to its mailbox outside the stage (every `ActorRef` clone).
    fn outside_refs(&self) -> usize;
    /// Closes its mailbox without running hooks (the stage is dropped: the run was cancelled).
    fn close(&mut self);
    /// Its saved state for a checkpoint (`None` without an instance); an error naming it when
    /// its props are not checkpointed.
    fn save(&self) -> Result<Option<Vec<u8>>, StageError>;
}

/// An actor of type `A` inside its stage.
pub(crate) struct Cell<A: Actor> {
    pub(crate) meta: Meta,
    actor: Option<A>,
    props: Props<A>,
    pub(crate) mailbox: Arc<Mailbox<A::Msg>>,
    pub(crate) local: VecDeque<Envelope<A::Msg>>,
    state: CellState<A>,
}

impl<A: Actor> Cell<A> {
    pub(crate) fn new(meta: Meta, props: Props<A>, mailbox: Arc<Mailbox<A::Msg>>) -> Self {
        let state = CellState::new(props.stash_capacity);
        Self {
            meta,
            actor: None,
            props,
            mailbox,
            local: VecDeque::new(),
            state,
        }
    }

    /// Whether the mailbox and the local queue are empty.
    pub(crate) fn mailbox_is_empty(&self) -> bool {
        self.local.is_empty() && self.mailbox.is_empty()
    }

    /// Whether the actor takes the next stream batch now (running, nothing queued locally).
    pub(crate) fn accepts(&self) -> bool {
        self.actor.is_some()
            && !self.meta.suspended
            && self.local.is_empty()
            && !self.state.input_paused
            && !self.state.parked
    }

    /// Calls `f` with the actor and a context (no current message).
    fn with_ctx<R>(
        &mut self,
        sys: &mut System<A::Out>,
        f: impl FnOnce(&mut A, &mut Ctx<'_, A>) -> R,
    ) -> Option<R> {
        let actor = self.actor.as_mut()?;
        let mut ctx = Ctx {
            sys,
            meta: &mut self.meta,
            state: &mut self.state,
            mailbox: &self.mailbox,
            reply: None,
        };
        Some(f(actor, &mut ctx))
    }

    /// Handles one message: a waiting receive's, else the current behaviour's.
    fn deliver(actor: &mut A, ctx: &mut Ctx<'_, A>, msg: A::Msg) -> Result<(), StageError> {
        // (The receive is looked at here first: no call on the path of every message.)
        let msg = if ctx.state.receiving.is_some() {
            match super::receive::offer(actor, ctx, msg) {
                Ok(r) => return r,
                Err(msg) => msg,
            }
        } else {
            msg
        };
        let depth = ctx.state.behaviors.len();
        let Some(mut b) = ctx.state.behaviors.last_mut().and_then(Option::take) else {
            return actor.handle(ctx, msg);
        };
        let r = b(actor, ctx, msg);
        // Put it back unless it replaced itself (unbecome, or unbecome then become).
        if let Some(slot) = ctx.state.behaviors.get_mut(depth - 1)
            && slot.is_none()
        {
            *slot = Some(b);
        }
        r
    }

    /// Handles one message, failing (after its effects) when the handler ran longer than
    /// `limit` (the actor's handler time limit).
    fn deliver_timed(
        actor: &mut A,
        ctx: &mut Ctx<'_, A>,
        msg: A::Msg,
        limit: Duration,
    ) -> Result<(), StageError> {
        let started = Instant::now();
        let r = Self::deliver(actor, ctx, msg);
        let took = started.elapsed();
        if took > limit {
            r?;
            tracing::warn!(actor = %ctx.meta.path, ?took, ?limit, "handler over its time limit");
            return Err(StageError::timeout(format!(
                "actor '{}': handler took {took:?}, over its time limit of {limit:?}",
                ctx.meta.path
            )));
        }
        r
    }

    /// Handles the messages of `batch` (stream elements of the root) in order; what a failure
    /// leaves unhandled stays in the local queue.
    pub(crate) fn handle_batch(
        &mut self,
        sys: &mut System<A::Out>,
        batch: Vec<A::Msg>,
    ) -> Result<(), StageError> {
        if !self.local.is_empty()
            || self.meta.suspended
            || self.state.parked
            || self.actor.is_none()
        {
            // Queued behind what waits; its turn (or its restart) handles it.
            self.local.extend(batch.into_iter().map(Envelope::plain));
            if !self.meta.suspended && !self.state.parked {
                sys.runnable.push(self.meta.id);
            }
            return Ok(());
        }
        let mut it = batch.into_iter();
        let Self {
            meta,
            actor,
            state,
            mailbox,
            local,
            ..
        } = self;
        let Some(actor) = actor.as_mut() else {
            return Ok(());
        };
        let limit = self.props.handler_time_limit;
        let r = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Ctx {
                sys,
                meta,
                state,
                mailbox,
                reply: None,
            };
            // The timed loop only for actors with a handler time limit (no clock read per
            // message otherwise).
            match limit {
                // Whole batches through `handle_batch` while no behaviour is installed.
                None => {
                    while it.len() > 0 {
                        let before = it.len();
                        if ctx.state.behaviors.is_empty() && ctx.state.receiving.is_none() {
                            actor.handle_batch(&mut ctx, &mut it)?;
                        }
                        if it.len() == before
                            && let Some(msg) = it.next()
                        {
                            Self::deliver(actor, &mut ctx, msg)?;
                        }
                        if ctx.state.stop_requested
                            || ctx.state.unstash
                            || ctx.state.received
                            || ctx.state.parked
                        {
                            break;
                        }
                    }
                }
                Some(limit) => {
                    for msg in &mut it {
                        Self::deliver_timed(actor, &mut ctx, msg, limit)?;
                        if ctx.state.stop_requested
                            || ctx.state.unstash
                            || ctx.state.received
                            || ctx.state.parked
                        {
                            break;
                        }
                    }
                }
            }
            Ok(())
        }));
        local.extend(it.map(Envelope::plain));
        self.after_turn(sys);
        self.outcome(r)
    }

    fn outcome(
        &self,
        r: Result<Result<(), StageError>, Box<dyn Any + Send>>,
    ) -> Result<(), StageError> {
        match r {
            Ok(r) => r.map_err(|e| e.with_stage(&self.meta.path)),
            Err(p) => Err(StageError::user(format!(
                "actor '{}' panicked: {}",
                self.meta.path,
                weir_graph::panic_message(&*p)
            ))),
        }
    }

    /// Applies what the context asked for: unstash, stop.
    fn after_turn(&mut self, sys: &mut System<A::Out>) {
        for env in self.state.requeue.drain(..).rev() {
            self.local.push_front(env);
        }
        if std::mem::take(&mut self.state.received) {
            for env in self.state.set_aside.drain(..).rev() {
                self.local.push_front(env);
            }
        }
        if std::mem::take(&mut self.state.unstash) {
            for env in self.state.stash.drain(..).rev() {
                self.local.push_front(env);
            }
        }
        if std::mem::take(&mut self.state.stop_requested) {
            sys.ops.push(super::system::Op::Stop(self.meta.id));
        }
        // A parked actor's queue waits: a notice schedules it.
        if !self.local.is_empty() && !self.state.parked {
            sys.runnable.push(self.meta.id);
        }
    }

    /// Handles up to `n` messages from the front of the local queue (`notices`: the notices a
    /// parked actor was handed, put there first).
    #[inline]
    fn run_local(
        &mut self,
        sys: &mut System<A::Out>,
        n: usize,
        notices: bool,
    ) -> Result<(), StageError> {
        let Self {
            meta,
            actor,
            state,
            mailbox,
            local,
            ..
        } = self;
        let Some(actor) = actor.as_mut() else {
            return Ok(());
        };
        let limit = self.props.handler_time_limit;
        let r = catch_unwind(AssertUnwindSafe(|| {
            if state.receive_timed_out && !notices {
                let mut ctx = Ctx {
                    sys: &mut *sys,
                    meta: &mut *meta,
                    state: &mut *state,
                    mailbox,
                    reply: None,
                };
                super::receive::complete(actor, &mut ctx, None)?;
                return Ok(());
            }
            for _ in 0..n {
                let Some(env) = local.pop_front() else { break };
                let mut ctx = Ctx {
                    sys: &mut *sys,
                    meta: &mut *meta,
                    state: &mut *state,
                    mailbox,
                    reply: env.reply,
                };
                match limit {
                    None => Self::deliver(actor, &mut ctx, env.msg)?,
                    Some(limit) => Self::deliver_timed(actor, &mut ctx, env.msg, limit)?,
                }
                // A park ends a normal turn; a turn of notices ends when the park does.
                if state.stop_requested
                    || state.unstash
                    || state.received
                    || state.parked != notices
                {
                    break;
                }
            }
            Ok(())
        }));
        self.after_turn(sys);
        self.outcome(r)
    }

    /// Takes the instance, local queue and stash a checkpoint saved for this actor.
    fn load_saved(&mut self, bytes: &[u8]) -> Result<(), StageError> {
        let saved = super::checkpoint::load_cell(self.props.cell_codec(), &self.meta.path, bytes)?;
        self.actor = Some(saved.actor);
        self.local
            .extend(saved.local.into_iter().map(Envelope::plain));
        self.state
            .stash
            .extend(saved.stash.into_iter().map(Envelope::plain));
        Ok(())
    }

    fn cancel_everything(&mut self) {
        self.state.timers.clear();
        self.state.receiving = None;
        self.state.received = false;
        self.state.receive_timed_out = false;
        self.state.behaviors.clear();
        self.state.unstash = false;
        self.state.stop_requested = false;
        self.state.input_paused = false;
        self.state.parked = false;
        self.mailbox.resume_user();
    }
}

impl<A: Actor> AnyCell<A::Out> for Cell<A> {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn meta(&self) -> &Meta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut Meta {
        &mut self.meta
    }

    fn turn(&mut self, sys: &mut System<A::Out>, budget: usize) -> Result<(), StageError> {
        if self.meta.suspended || self.actor.is_none() {
            return Ok(());
        }
        let parked = self.state.parked;
        if parked {
            // Only notices (a paused mailbox hands out nothing else), ahead of what waits.
            let mut notices = std::collections::VecDeque::new();
            self.mailbox.drain_into(&mut notices, budget);
            if notices.is_empty() {
                return Ok(());
            }
            let n = notices.len();
            for env in notices.into_iter().rev() {
                self.local.push_front(env);
            }
            return self.run_local(sys, n, true);
        }
        if self.local.len() < budget {
            let want = budget - self.local.len();
            self.mailbox.drain_into(&mut self.local, want);
        }
        let n = budget.min(self.local.len());
        if n == 0 && !self.state.receive_timed_out {
            return Ok(());
        }
        self.run_local(sys, n, false)
    }

    fn start(&mut self, sys: &mut System<A::Out>) -> Result<(), StageError> {
        if self.actor.is_none() {
            match sys.restored.take(&self.meta.path) {
                // Saved state that does not load fails the stage: never a fresh instance.
                Some(bytes) => {
                    if let Err(e) = self.load_saved(&bytes) {
                        sys.shared().fail(e);
                        return Ok(());
                    }
                }
                None => self.actor = Some(self.props.make()),
            }
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            self.with_ctx(sys, |a, ctx| a.pre_start(ctx))
                .unwrap_or(Ok(()))
        }));
        self.after_turn(sys);
        self.outcome(r)
    }

    fn restart(&mut self, sys: &mut System<A::Out>, error: &StageError) -> Result<(), StageError> {
        let r = catch_unwind(AssertUnwindSafe(|| {
            self.with_ctx(sys, |a, ctx| a.pre_restart(ctx, error));
        }));
        if let Err(p) = r {
            tracing::warn!(actor = %self.meta.path, panic = %weir_graph::panic_message(&*p), "pre_restart panicked");
        }
        if std::mem::take(&mut self.state.parked) {
            sys.parked -= 1;
        }
        self.cancel_everything();
        // Stashed messages go back in front of the queue, in stash order (the new instance
        // sees them first), ahead of what a receive set aside; the mailbox is kept.
        for env in self.state.set_aside.drain(..).rev() {
            self.local.push_front(env);
        }
        for env in self.state.stash.drain(..).rev() {
            self.local.push_front(env);
        }
        self.actor = Some(self.props.make());
        self.meta.suspended = false;
        self.start(sys)
    }

    fn stop(&mut self, sys: &mut System<A::Out>) {
        let r = catch_unwind(AssertUnwindSafe(|| {
            self.with_ctx(sys, |a, ctx| a.post_stop(ctx));
        }));
        if let Err(p) = r {
            tracing::warn!(actor = %self.meta.path, panic = %weir_graph::panic_message(&*p), "post_stop panicked");
        }
        if std::mem::take(&mut self.state.parked) {
            sys.parked -= 1;
        }
        self.cancel_everything();
        self.actor = None;
        let set_aside = std::mem::take(&mut self.state.set_aside);
        for env in set_aside
            .into_iter()
            .chain(self.local.drain(..))
            .chain(self.state.stash.drain(..))
        {
            self.mailbox.dead_letter(env, "actor stopped");
        }
        self.mailbox.close();
    }

    fn terminated(&mut self, sys: &mut System<A::Out>, who: ActorId) -> Result<(), StageError> {
        if self.meta.suspended || self.meta.stopping {
            return Ok(());
        }
        let r = catch_unwind(AssertUnwindSafe(|| {
            self.with_ctx(sys, |a, ctx| a.on_terminated(ctx, who))
                .unwrap_or(Ok(()))
        }));
        self.after_turn(sys);
        self.outcome(r)
    }

    fn fire(&mut self, key: &TimerKey, generation: u64, at: Duration) -> Option<Duration> {
        let slot = self.state.timers.get_mut(key)?;
        if slot.generation() != generation {
            return None;
        }
        match slot {
            TimerSlot::Once { msg, .. } => {
                let msg = msg.take();
                self.state.timers.remove(key);
                if let Some(m) = msg {
                    self.local.push_back(Envelope::plain(m));
                }
                None
            }
            TimerSlot::Periodic { interval, make, .. } => {
                let next = at + *interval;
                self.local.push_back(Envelope::plain(make()));
                Some(next)
            }
        }
    }

    fn strategy(&self) -> SupervisorStrategy {
        self.actor
            .as_ref()
            .map(Actor::supervisor_strategy)
            .unwrap_or_default()
    }

    fn has_local_work(&self) -> bool {
        !self.local.is_empty() || self.state.receive_timed_out
    }

    fn has_timers(&self) -> bool {
        !self.state.timers.is_empty()
            || self
                .state
                .receiving
                .as_ref()
                .is_some_and(|r| r.timer.is_some())
    }

    fn receive_timed_out(&mut self, generation: u64) -> bool {
        let due = self
            .state
            .receiving
            .as_ref()
            .is_some_and(|r| r.timer == Some(generation));
        if due {
            self.state.receive_timed_out = true;
        }
        due
    }

    fn is_idle(&self) -> bool {
        self.actor.is_some() && !self.meta.suspended && self.mailbox_is_empty()
    }

    fn outside_refs(&self) -> usize {
        Arc::strong_count(&self.mailbox) - 1
    }

    fn save(&self) -> Result<Option<Vec<u8>>, StageError> {
        let Some(actor) = self.actor.as_ref() else {
            return Ok(None);
        };
        // Messages a selective receive set aside are queued ahead of the local queue.
        let local: Vec<&A::Msg> = (self.state.set_aside.iter().chain(&self.local))
            .map(|e| &e.msg)
            .collect();
        let stash: Vec<&A::Msg> = self.state.stash.iter().map(|e| &e.msg).collect();
        super::checkpoint::save_cell(
            self.props.cell_codec(),
            &self.meta.path,
            actor,
            &local,
            &stash,
        )
        .map(Some)
    }

    fn close(&mut self) {
        self.actor = None;
        self.cancel_everything();
        self.local.clear();
        self.state.stash.clear();
        self.state.set_aside.clear();
        self.mailbox.close();
    }
}
