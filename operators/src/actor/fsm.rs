//! Finite-state-machine actors: named states, a handler per state returning a [`Transition`],
//! state timeouts on the run's clock, transition hooks and subscribers. [`Fsm`] is an
//! [`Actor`] (an adapter over the same runtime), so it is supervised, stashes, spawns and
//! runs as a stage like any actor.
//!
//! Semantics (Akka's classic FSM):
//! - Every event (a message, or a state timeout) goes to the handler of the current state
//!   ([`Fsm::when`]); a state without one goes to [`Fsm::when_unhandled`], else the message
//!   goes to dead letters and the machine stays.
//! - Handling an event cancels the pending state timeout. The transition then arms the next
//!   one: [`Transition::for_max`]'s duration, else the target state's default
//!   ([`Fsm::state_timeout`]); a timeout from before is never delivered (each carries a
//!   generation).
//! - `Goto(s)` runs the transition hooks and tells subscribers, also when `s` is the current
//!   state; `Stay` does not. `Stop` stops the actor.
//! - A restart makes a fresh machine from the props (its initial state and data).

use super::ctx::Ctx;
use super::mailbox::{ActorRef, dead_letter};
use super::props::Actor;
use std::fmt;
use std::time::Duration;
use weir_graph::StageError;

/// The timer key of the state timeout.
const STATE_TIMEOUT: &str = "fsm-state-timeout";

/// What a state's handler asks for after an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition<S> {
    /// Moves to the state (hooks and subscribers are told).
    Goto(S),
    /// Moves to the state, with a state timeout after the duration.
    GotoFor(S, Duration),
    /// Stays in the current state.
    Stay,
    /// Stays, with a state timeout after the duration.
    StayFor(Duration),
    /// Stops the actor.
    Stop,
}

impl<S> Transition<S> {
    /// This transition with a state timeout after `d` (no effect on `Stop`).
    pub fn for_max(self, d: Duration) -> Self {
        match self {
            Self::Goto(s) | Self::GotoFor(s, _) => Self::GotoFor(s, d),
            Self::Stay | Self::StayFor(_) => Self::StayFor(d),
            Self::Stop => Self::Stop,
        }
    }
}

/// `Transition::Goto(state)`, to chain `.for_max(d)`.
pub fn goto<S>(state: S) -> Transition<S> {
    Transition::Goto(state)
}

/// `Transition::Stay`, to chain `.for_max(d)`.
pub fn stay<S>() -> Transition<S> {
    Transition::Stay
}

/// What a state's handler gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsmEvent<M> {
    /// A message.
    Msg(M),
    /// The state's timeout elapsed without an event.
    StateTimeout,
}

/// What subscribers of an [`Fsm`] are told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateChange<S> {
    /// The state when the subscription arrived.
    Current(S),
    /// A `Goto` from one state to another.
    Transition {
        /// The state left.
        from: S,
        /// The state entered.
        to: S,
    },
}

/// What a state type needs: named (`Debug`), compared (`Eq`), copied into notices (`Clone`).
pub trait FsmState: Clone + Eq + fmt::Debug + Send + 'static {}

impl<S: Clone + Eq + fmt::Debug + Send + 'static> FsmState for S {}

/// A state timeout's identity (only the machine makes them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateTimeoutToken(u64);

/// A message to an [`Fsm`] actor.
pub enum FsmMsg<M, S> {
    /// An event for the current state's handler.
    Event(M),
    /// Tells `ref` the current state now and every transition after.
    Subscribe(ActorRef<StateChange<S>>),
    /// A state timeout (sent by the machine to itself).
    Timeout(StateTimeoutToken),
}

impl<M, S> fmt::Debug for FsmMsg<M, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Event(_) => f.write_str("Event(..)"),
            Self::Subscribe(r) => write!(f, "Subscribe({r:?})"),
            Self::Timeout(t) => write!(f, "Timeout({})", t.0),
        }
    }
}

/// A state's handler: the data, the context, the event; the transition to take.
pub type StateHandler<S, D, M, O> = Box<
    dyn FnMut(
            &mut D,
            &mut Ctx<'_, Fsm<S, D, M, O>>,
            FsmEvent<M>,
        ) -> Result<Transition<S>, StageError>
        + Send,
>;

/// A hook run on every `Goto`: the data, the context, the state left and the state entered.
pub type TransitionHook<S, D, M, O> =
    Box<dyn FnMut(&mut D, &mut Ctx<'_, Fsm<S, D, M, O>>, &S, &S) + Send>;

/// A finite-state machine over states `S` with data `D`, handling messages `M` and emitting
/// `O`; built with [`Fsm::new`] and [`Fsm::when`] inside its props' factory.
pub struct Fsm<S, D, M, O>
where
    S: FsmState,
    D: Send + 'static,
    M: Send + 'static,
    O: Send + 'static,
{
    state: S,
    data: D,
    handlers: Vec<(S, StateHandler<S, D, M, O>)>,
    timeouts: Vec<(S, Duration)>,
    unhandled: Option<StateHandler<S, D, M, O>>,
    hooks: Vec<TransitionHook<S, D, M, O>>,
    subscribers: Vec<ActorRef<StateChange<S>>>,
    generation: u64,
}

impl<S, D, M, O> Fsm<S, D, M, O>
where
    S: FsmState,
    D: Send + 'static,
    M: Send + 'static,
    O: Send + 'static,
{
    /// A machine starting in `initial` with `data`.
    pub fn new(initial: S, data: D) -> Self {
        Self {
            state: initial,
            data,
            handlers: Vec::new(),
            timeouts: Vec::new(),
            unhandled: None,
            hooks: Vec::new(),
            subscribers: Vec::new(),
            generation: 0,
        }
    }
    /// Handles the events of `state` with `handler` (replacing an earlier one).
    pub fn when(
        mut self,
        state: S,
        handler: impl FnMut(
            &mut D,
            &mut Ctx<'_, Self>,
            FsmEvent<M>,
        ) -> Result<Transition<S>, StageError>
        + Send
        + 'static,
    ) -> Self {
        self.handlers.retain(|(s, _)| *s != state);
        self.handlers.push((state, Box::new(handler)));
        self
    }
    /// A state timeout of `d` whenever the machine enters or stays in `state` without an
    /// explicit [`Transition::for_max`].
    pub fn state_timeout(mut self, state: S, d: Duration) -> Self {
        self.timeouts.retain(|(s, _)| *s != state);
        self.timeouts.push((state, d));
        self
    }
    /// Handles the events of states without a handler.
    pub fn when_unhandled(
        mut self,
        handler: impl FnMut(
            &mut D,
            &mut Ctx<'_, Self>,
            FsmEvent<M>,
        ) -> Result<Transition<S>, StageError>
        + Send
        + 'static,
    ) -> Self {
        self.unhandled = Some(Box::new(handler));
        self
    }
    /// Runs `hook(data, ctx, from, to)` on every `Goto`.
    pub fn on_transition(
        mut self,
        hook: impl FnMut(&mut D, &mut Ctx<'_, Self>, &S, &S) + Send + 'static,
    ) -> Self {
        self.hooks.push(Box::new(hook));
        self
    }
    /// The current state.
    pub fn state(&self) -> &S {
        &self.state
    }
    /// The machine's data.
    pub fn data(&self) -> &D {
        &self.data
    }

    fn default_timeout(&self, state: &S) -> Option<Duration> {
        self.timeouts
            .iter()
            .find(|(s, _)| s == state)
            .map(|(_, d)| *d)
    }

    /// Arms the state timeout `d` (cancelling the pending one either way).
    fn arm(&mut self, ctx: &mut Ctx<'_, Self>, d: Option<Duration>) {
        self.generation += 1;
        match d {
            Some(d) => ctx.schedule_once(
                STATE_TIMEOUT,
                d,
                FsmMsg::Timeout(StateTimeoutToken(self.generation)),
            ),
            None => {
                ctx.cancel_timer(STATE_TIMEOUT);
            }
        }
    }

    fn process(&mut self, ctx: &mut Ctx<'_, Self>, ev: FsmEvent<M>) -> Result<(), StageError> {
        let Self {
            state,
            data,
            handlers,
            unhandled,
            ..
        } = self;
        let handler = match handlers.iter_mut().find(|(s, _)| s == state) {
            Some((_, h)) => Some(h),
            None => unhandled.as_mut(),
        };
        let next = match handler {
            Some(h) => h(data, ctx, ev)?,
            None => {
                if let FsmEvent::Msg(m) = ev {
                    let reason = format!("no handler in state {state:?}");
                    dead_letter(ctx.sys.shared(), ctx.path(), m, &reason);
                }
                return Ok(());
            }
        };
        match next {
            Transition::Goto(to) => self.enter(ctx, to, None),
            Transition::GotoFor(to, d) => self.enter(ctx, to, Some(d)),
            Transition::Stay => {
                let d = self.default_timeout(&self.state);
                self.arm(ctx, d);
            }
            Transition::StayFor(d) => self.arm(ctx, Some(d)),
            Transition::Stop => {
                self.arm(ctx, None);
                ctx.stop();
            }
        }
        Ok(())
    }

    fn enter(&mut self, ctx: &mut Ctx<'_, Self>, to: S, d: Option<Duration>) {
        let from = std::mem::replace(&mut self.state, to.clone());
        tracing::trace!(actor = %ctx.path(), ?from, ?to, "fsm transition");
        for hook in &mut self.hooks {
            hook(&mut self.data, ctx, &from, &to);
        }
        self.subscribers.retain(|r| !r.is_stopped());
        for r in &self.subscribers {
            let _ = r.try_tell(StateChange::Transition {
                from: from.clone(),
                to: to.clone(),
            });
        }
        let d = d.or_else(|| self.default_timeout(&to));
        self.arm(ctx, d);
    }
}

impl<S, D, M, O> Actor for Fsm<S, D, M, O>
where
    S: FsmState,
    D: Send + 'static,
    M: Send + 'static,
    O: Send + 'static,
{
    type Msg = FsmMsg<M, S>;
    type Out = O;

    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let d = self.default_timeout(&self.state);
        self.arm(ctx, d);
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) -> Result<(), StageError> {
        match msg {
            FsmMsg::Event(m) => self.process(ctx, FsmEvent::Msg(m)),
            FsmMsg::Timeout(StateTimeoutToken(g)) if g == self.generation => {
                self.process(ctx, FsmEvent::StateTimeout)
            }
            // A timeout armed before the last event: stale.
            FsmMsg::Timeout(_) => Ok(()),
            FsmMsg::Subscribe(r) => {
                let _ = r.try_tell(StateChange::Current(self.state.clone()));
                self.subscribers.push(r);
                Ok(())
            }
        }
    }
}
