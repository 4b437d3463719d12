//! Actors as graph stages.
//!
//! An [`Actor`] is state plus a handler; it runs inside an actor stage, an asynchronous stage
//! that hosts the root actor its [`Props`] make and the children the root spawns:
//!
//! - [`ActorFlows::actor`] (`Flow::actor(props)`): stream elements are messages to the root; what
//!   the actors emit goes downstream. The stage's input channel is the root's mailbox for stream
//!   elements, so a slow actor slows its source.
//! - [`ActorSinks::actor`] (`Sink::actor(props)`) and [`ActorSources::actor`]
//!   (`Source::actor(props)`: emits what the actor emits while it handles messages told to its
//!   materialized [`ActorRef`]).
//!
//! Every stage materializes the root's [`ActorRef`]: `tell(msg).await` waits while the mailbox
//! is full, `try_tell` applies its [`Overflow`] policy, `ask(msg, timeout)` waits for
//! `ctx.reply`. Inside a stage, a parent supervises its children with its
//! [`SupervisorStrategy`] (one-for-one or all-for-one, restart budget, backoff, escalate); the
//! root's failures go to the stage's `Supervision`. Timers run on the run's clock, so
//! virtual-time tests drive them exactly. Cancelling the run drops the stage, which closes every
//! mailbox: no actor, timer or pending ask outlives the run.
//!
//! [`Props::checkpointed`] saves an actor tree at every checkpoint barrier and restores it by
//! path; [`ActorRegistry`] (a run service) finds refs by path (`/svc/payments/one`);
//! [`Props::versioned`] makes an actor whose logic a [`SwapHandle`] replaces and rolls back.
//!
//! On top of [`Actor`]: [`Fsm`] (finite-state machines with state timeouts) and [`Router`]
//! (a pool of routees, `Flow::actor_router`); supervision semantics are in
//! [`SupervisorStrategy`]'s module.

mod cell;
mod checkpoint;
mod ctx;
mod fsm;
mod group;
mod mailbox;
mod park;
mod props;
mod proxy;
mod receive;
mod region;
mod registry;
mod router;
mod stage;
mod supervisor;
mod swap;
mod system;
mod timers;
mod weighted;
// Mailboxes: priority order, spill to disk, outside scheduling, dead letters, `Flow::ask`.
mod ask;
mod dead_letters;
mod items;
mod schedule;
mod spill;

pub use cell::DEFAULT_STASH_CAPACITY;
pub use ctx::{Behavior, Ctx, Sender};
pub use mailbox::{
    ActorRef, AskError, DEFAULT_MAILBOX_CAPACITY, MailboxConfig, Overflow, Pressure, TellError,
};
pub use park::{SenderSlot, Wakeup};
pub use props::{Actor, ActorId, DEFAULT_THROUGHPUT, Props};
pub use proxy::{Inbox, Incoming, PendingReply, Replier};
pub use region::{
    DEFAULT_SHARD_BUFFER, REGION_BUFFERED, REGION_ENTITIES_ALIVE, REGION_ENTITIES_CREATED,
    REGION_ENTITIES_PASSIVATED, REGION_SHARD_MESSAGES, RegionMsg, RegionSettings, RegionStats,
    sharded, sharded_checkpointed, try_sharded,
};
pub use stage::{actor_flow, actor_sink, actor_source};
pub use supervisor::{ActorDirective, Backoff, Scope, SupervisorStrategy};
pub use timers::TimerKey;
// Mailboxes: priority order, spill to disk, outside scheduling, dead letters, `Flow::ask`.
pub use ask::{AskOps, ask_flow};
pub use dead_letters::{DeadLetterService, DeadLetterSources, DeadLetters, Undelivered, reason};
pub use schedule::ScheduleHandle;
pub use spill::Spill;

// Checkpointed actors (`Props::checkpointed`), the run's registry, hot swap.
pub use registry::{ActorRegistry, RegistryError};
pub use swap::{SwapError, SwapHandle, Version, Versioned};

// Routers and FSM actors.
pub use fsm::{
    Fsm, FsmEvent, FsmMsg, FsmState, StateChange, StateHandler, StateTimeoutToken, Transition,
    TransitionHook, goto, stay,
};
pub use group::group_router;
pub use router::{ActorRouters, Router, RouterMsg, Routing, actor_router, jump_hash};
pub use weighted::{RouteeWeights, WeightedRoundRobin};

use weir_graph::{Flow, Sink, Source};

/// `Flow::actor(props)`.
pub trait ActorFlows {
    /// See [`actor_flow`].
    fn actor<A: Actor>(props: Props<A>) -> Flow<A::Msg, A::Out, ActorRef<A::Msg>>;
}

impl ActorFlows for Flow<(), ()> {
    fn actor<A: Actor>(props: Props<A>) -> Flow<A::Msg, A::Out, ActorRef<A::Msg>> {
        actor_flow(props)
    }
}

/// `Sink::actor(props)`.
pub trait ActorSinks {
    /// See [`actor_sink`].
    fn actor<A: Actor>(props: Props<A>) -> Sink<A::Msg, ActorRef<A::Msg>>;
}

impl ActorSinks for Sink<(), ()> {
    fn actor<A: Actor>(props: Props<A>) -> Sink<A::Msg, ActorRef<A::Msg>> {
        actor_sink(props)
    }
}

/// `Source::actor(props)`.
pub trait ActorSources {
    /// See [`actor_source`].
    fn actor<A: Actor>(props: Props<A>) -> Source<A::Out, ActorRef<A::Msg>>;
}

impl ActorSources for Source<(), ()> {
    fn actor<A: Actor>(props: Props<A>) -> Source<A::Out, ActorRef<A::Msg>> {
        actor_source(props)
    }
}
