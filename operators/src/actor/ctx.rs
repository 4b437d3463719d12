//! [`Ctx`]: what an actor's handler can do: emit downstream, reply, send, spawn and watch
//! actors, change behaviour, stash messages, and schedule timers.

use super::cell::{CellState, Meta, TimerSlot};
use super::mailbox::{ActorRef, Envelope, Mailbox, ReplyTo, TellError};
use super::props::{Actor, ActorId, Props};
use super::system::{Op, System};
use super::timers::{TimerKey, TimerKind};
use std::any::Any;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use weir_graph::StageError;

/// A behaviour installed with [`Ctx::become_`]: handles messages instead of [`Actor::handle`].
pub type Behavior<A> =
    Box<dyn FnMut(&mut A, &mut Ctx<'_, A>, <A as Actor>::Msg) -> Result<(), StageError> + Send>;

/// The sender of the message being handled: an `ask` waiting for its reply, or an actor.
pub struct Sender<'a>(&'a ReplyTo);

impl fmt::Debug for Sender<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            ReplyTo::Ask(_) => f.write_str("Sender(ask)"),
            ReplyTo::Actor(r) => write!(f, "Sender({})", r.path()),
        }
    }
}

impl Sender<'_> {
    /// The sending actor's path (`None` for an `ask` from outside an actor).
    pub fn path(&self) -> Option<&str> {
        match self.0 {
            ReplyTo::Ask(_) => None,
            ReplyTo::Actor(r) => Some(r.path()),
        }
    }
}

/// The context of one call into an actor.
pub struct Ctx<'a, A: Actor> {
    pub(crate) sys: &'a mut System<A::Out>,
    pub(crate) meta: &'a mut Meta,
    pub(crate) state: &'a mut CellState<A>,
    pub(crate) mailbox: &'a Arc<Mailbox<A::Msg>>,
    pub(crate) reply: Option<ReplyTo>,
}

impl<A: Actor> fmt::Debug for Ctx<'_, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Ctx({})", self.meta.path)
    }
}

impl<'a, A: Actor> Ctx<'a, A> {
    /// Sends `x` downstream (held until the stage's output has room).
    pub fn emit(&mut self, x: A::Out) {
        self.sys.out.push(x);
    }
    /// Sends every element of `xs` downstream.
    pub fn emit_all(&mut self, xs: impl IntoIterator<Item = A::Out>) {
        self.sys.out.extend(xs);
    }
    /// Answers the message being handled: to the `ask` that sent it, or to the sending actor
    /// when `x` is of its message type. `false` (and a dead letter) when nobody takes it.
    pub fn reply<R: Send + 'static>(&mut self, x: R) -> bool {
        let delivered = match self.reply.take() {
            Some(ReplyTo::Ask(tx)) => tx.send(Box::new(x) as Box<dyn Any + Send>).is_ok(),
            Some(ReplyTo::Actor(to)) => match to.tell_any(Box::new(x)) {
                Ok(()) => true,
                Err(x) => {
                    self.dead_letter_any(x, "reply of another type than the sender's messages");
                    return false;
                }
            },
            None => {
                self.dead_letter_any(Box::new(x), "reply without a sender");
                return false;
            }
        };
        if !delivered {
            tracing::debug!(actor = %self.meta.path, "reply after the asker gave up");
        }
        delivered
    }
    /// Sends `msg` to the stage's dead letters with `reason`, naming this actor (e.g. a message
    /// of a kind the actor does not handle).
    pub fn dead_letter<M: Send + 'static>(&self, msg: M, reason: &str) {
        super::mailbox::dead_letter(self.sys.shared(), &self.meta.path, msg, reason);
    }
    fn dead_letter_any(&self, x: Box<dyn Any + Send>, reason: &str) {
        super::mailbox::dead_letter(self.sys.shared(), &self.meta.path, x, reason);
    }
    /// The sender of the message being handled, if it has one.
    pub fn sender(&self) -> Option<Sender<'_>> {
        self.reply.as_ref().map(Sender)
    }
    /// A ref to this actor.
    pub fn self_ref(&self) -> ActorRef<A::Msg> {
        ActorRef::new(Arc::clone(self.mailbox))
    }
    /// This actor's id in its stage.
    pub fn id(&self) -> ActorId {
        self.meta.id
    }
    /// This actor's path (`stage/root/child`).
    pub fn path(&self) -> &str {
        &self.meta.path
    }
    /// The parent's id (`None` for the stage's root actor).
    pub fn parent(&self) -> Option<ActorId> {
        self.meta.parent
    }
    /// The ids of this actor's children, in spawn order.
    pub fn children(&self) -> &[ActorId] {
        &self.meta.children
    }
    /// A value this actor's stage publishes about itself: `name` with `labels` beyond the
    /// stage's path and subtask, read by the run's handle (`RunHandle::stage_gauges`) and the
    /// metrics endpoint; the same handle for the same identity. `None` outside a run.
    pub fn stage_gauge(
        &self,
        name: &str,
        help: &str,
        kind: weir_graph::GaugeKind,
        labels: &[(&str, String)],
    ) -> Option<weir_graph::Gauge> {
        let g = self.sys.gauges.as_ref()?;
        let metric = weir_graph::Metric { name, help, kind };
        Some(
            g.at(self.sys.stage_path(), self.sys.subtask)
                .register(metric, labels),
        )
    }
    /// The run's clock: time since the run's epoch.
    pub fn now(&self) -> Duration {
        self.sys.clock.now()
    }
    /// Sends `msg` to `to` with this actor as its sender (a reply of this actor's message type
    /// comes back to it). A handler never waits: to an actor of this stage the message is always
    /// queued (beyond the mailbox's capacity the stage takes no stream input until it drained,
    /// so backpressure reaches the source instead of dropping); to an actor of another stage a
    /// full mailbox applies its overflow policy.
    pub fn tell<M: Send + 'static>(&mut self, to: &ActorRef<M>, msg: M) -> Result<(), TellError> {
        let me = Arc::clone(
            self.state
                .me
                .get_or_insert_with(|| Mailbox::reply_address(self.mailbox)),
        );
        self.send(
            to,
            Envelope {
                msg,
                reply: Some(ReplyTo::Actor(me)),
            },
        )
    }
    /// A send to an actor of this stage never drops for room (the stage stops taking stream
    /// input while the mailbox is over capacity); one to another stage applies its policy.
    pub(crate) fn send<M: Send + 'static>(
        &self,
        to: &ActorRef<M>,
        env: Envelope<M>,
    ) -> Result<(), TellError> {
        if to.0.same_stage(self.mailbox) {
            to.0.offer_within(env)
        } else {
            to.0.offer(env)
        }
    }
    /// Forwards `msg` to `to`, keeping the current message's sender as its sender.
    pub fn forward<M: Send + 'static>(
        &mut self,
        to: &ActorRef<M>,
        msg: M,
    ) -> Result<(), TellError> {
        let env = Envelope {
            msg,
            reply: self.reply.take(),
        };
        self.send(to, env)
    }
    /// Takes the current message's reply address (a parked message keeps it).
    pub(crate) fn take_reply(&mut self) -> Option<ReplyTo> {
        self.reply.take()
    }
    /// Makes the stage hand this actor (its root) no further stream batches until
    /// [`Ctx::resume_input`]; the batch being handled is handed over whole, and messages told to
    /// its ref still arrive. Reset by a restart.
    pub fn pause_input(&mut self) {
        self.state.input_paused = true;
    }
    /// Lets the stage hand this actor stream batches again (see [`Ctx::pause_input`]).
    pub fn resume_input(&mut self) {
        self.state.input_paused = false;
    }
    /// Takes only the runtime's notices from this actor's mailbox until
    /// [`Ctx::resume_mailbox`]: messages told to its ref stay queued, so the mailbox fills and
    /// senders outside wait (a shard region holding its input holds its ref's messages too).
    pub(crate) fn pause_mailbox(&mut self) {
        self.mailbox.pause_user();
    }
    /// Takes this actor's user messages again (see [`Ctx::pause_mailbox`]).
    pub(crate) fn resume_mailbox(&mut self) {
        self.mailbox.resume_user();
    }
    /// Whether [`Ctx::pause_input`] holds the stage's stream input back now.
    pub fn input_paused(&self) -> bool {
        self.state.input_paused
    }
    /// Starts a child actor supervised by this one (its `pre_start` runs after this call
    /// returns); its emitted elements go to the stage's output.
    pub fn spawn<C: Actor<Out = A::Out>>(
        &mut self,
        props: Props<C>,
    ) -> Result<ActorRef<C::Msg>, StageError> {
        let r = self
            .sys
            .spawn_cell(props, Some(self.meta.id), &self.meta.path)?;
        self.meta.children.push(r.id());
        Ok(r)
    }
    /// Stops this actor after the current message (its children stop first).
    pub fn stop(&mut self) {
        self.state.stop_requested = true;
    }
    /// Stops the child `id` (and its children) after the current message.
    pub fn stop_child(&mut self, id: ActorId) {
        if self.meta.children.contains(&id) {
            self.sys.ops.push(Op::Stop(id));
        }
    }
    /// Asks for [`Actor::on_terminated`] when actor `who` (of this stage) stops; at once when it
    /// is already stopped.
    pub fn watch(&mut self, who: ActorId) {
        self.sys.ops.push(Op::Watch {
            watcher: self.meta.id,
            target: who,
        });
    }
    /// Delivers `msg` to this actor when the actor behind `who` stops (its mailbox closes: it
    /// stopped, or its stage ended), in this stage or another; at once when it is stopped
    /// already. The notice skips the mailbox's capacity and goes ahead of the messages queued
    /// (as a system message), survives this actor's restarts, and is dropped if this actor
    /// stopped first.
    pub fn watch_with<M: Send + 'static>(&mut self, who: &ActorRef<M>, msg: A::Msg) {
        let me = Arc::downgrade(self.mailbox);
        who.0.on_close(Box::new(move || {
            if let Some(mailbox) = me.upgrade() {
                mailbox.offer_notice(msg);
            }
        }));
    }
    /// Stops the child `id` once it handled every message queued for it (and its mailbox is
    /// empty), so a child taken out of service loses nothing it accepted.
    pub fn stop_child_when_idle(&mut self, id: ActorId) {
        if self.meta.children.contains(&id) {
            self.sys.ops.push(Op::StopWhenIdle(id));
        }
    }
    /// Cancels a [`Ctx::watch`].
    pub fn unwatch(&mut self, who: ActorId) {
        self.sys.ops.push(Op::Unwatch {
            watcher: self.meta.id,
            target: who,
        });
    }
    /// Handles the next messages with `behavior` instead of the current one (kept underneath:
    /// [`Ctx::unbecome`] goes back to it).
    pub fn become_(
        &mut self,
        behavior: impl FnMut(&mut A, &mut Ctx<'_, A>, A::Msg) -> Result<(), StageError> + Send + 'static,
    ) {
        self.state.behaviors.push(Some(Box::new(behavior)));
    }
    /// Goes back to the behaviour before the last [`Ctx::become_`] (`handle` at the bottom).
    pub fn unbecome(&mut self) {
        self.state.behaviors.pop();
    }
    /// Keeps `msg` (with the current sender) for later; `Err` naming the actor when the stash
    /// is full (the message then goes to dead letters).
    pub fn stash(&mut self, msg: A::Msg) -> Result<(), StageError> {
        if self.state.stash.len() >= self.state.stash_capacity {
            super::mailbox::dead_letter(self.sys.shared(), &self.meta.path, msg, "stash full");
            return Err(StageError::user(format!(
                "actor '{}': stash full ({} messages)",
                self.meta.path, self.state.stash_capacity
            )));
        }
        self.state.stash.push_back(Envelope {
            msg,
            reply: self.reply.take(),
        });
        Ok(())
    }
    /// Puts every stashed message back in front of the mailbox, in the order they were stashed.
    pub fn unstash_all(&mut self) {
        self.state.unstash = true;
    }
    /// Whether [`Actor::handle_batch`] must return before its next message: the actor asked to
    /// stop or to unstash, installed a behaviour, waits in a receive or parked.
    pub fn batch_interrupted(&self) -> bool {
        self.state.stop_requested
            || self.state.unstash
            || !self.state.behaviors.is_empty()
            || self.state.receiving.is_some()
            || self.state.parked
    }
    /// Messages in the stash.
    pub fn stashed(&self) -> usize {
        self.state.stash.len()
    }
    /// Delivers `msg` to this actor once after `delay` (replacing a timer of the same key).
    pub fn schedule_once(&mut self, key: impl Into<TimerKey>, delay: Duration, msg: A::Msg) {
        let key = key.into();
        let generation = self.sys.timers.next_generation();
        let at = self.now() + delay;
        self.state
            .timers
            .insert(key.clone(), TimerSlot::once(generation, msg));
        self.sys
            .timers
            .push(at, self.meta.id, generation, TimerKind::User(key));
    }
    /// Delivers a copy of `msg` to this actor every `interval` (replacing a timer of the same
    /// key) until cancelled.
    pub fn schedule_periodically(
        &mut self,
        key: impl Into<TimerKey>,
        interval: Duration,
        msg: A::Msg,
    ) where
        A::Msg: Clone,
    {
        let key = key.into();
        let interval = interval.max(Duration::from_nanos(1));
        let generation = self.sys.timers.next_generation();
        let at = self.now() + interval;
        self.state.timers.insert(
            key.clone(),
            TimerSlot::periodic(generation, interval, move || msg.clone()),
        );
        self.sys
            .timers
            .push(at, self.meta.id, generation, TimerKind::User(key));
    }
    /// Cancels the timer `key`; `true` when one was active.
    pub fn cancel_timer(&mut self, key: impl Into<TimerKey>) -> bool {
        self.state.timers.remove(&key.into()).is_some()
    }
    /// Whether the timer `key` is active.
    pub fn is_timer_active(&self, key: impl Into<TimerKey>) -> bool {
        self.state.timers.contains_key(&key.into())
    }
}
