//! The [`Actor`] trait and [`Props`], the recipe a supervisor makes (and remakes) an actor from.

use super::ctx::Ctx;
use super::mailbox::MailboxConfig;
use super::supervisor::SupervisorStrategy;
use std::fmt;
use std::sync::Arc;
use weir_graph::StageError;

/// Identity of an actor inside its stage: a slot and a generation, so a stopped actor's id is
/// never mistaken for the next actor in the same slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ActorId {
    pub(crate) slot: u32,
    pub(crate) generation: u32,
}

impl ActorId {
    /// The root actor of a stage (the one the stage's props make).
    pub const ROOT: ActorId = ActorId {
        slot: 0,
        generation: 0,
    };
}

impl fmt::Debug for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorId({}.{})", self.slot, self.generation)
    }
}

impl fmt::Display for ActorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.slot, self.generation)
    }
}

/// An actor: state plus a handler for its messages, run inside an actor stage.
///
/// Every hook takes the actor's context ([`Ctx`]): `ctx.emit(x)` sends `x` downstream,
/// `ctx.reply(x)` answers the message's sender, `ctx.spawn(props)` starts a child it supervises
/// with [`Actor::supervisor_strategy`]. A hook that returns `Err` (or panics) is a failure its
/// parent's strategy decides about (the root's parent is the stage's `Supervision`).
pub trait Actor: Send + Sized + 'static {
    /// Messages the actor handles.
    type Msg: Send + 'static;
    /// Elements the actor emits downstream (children emit into the same output).
    type Out: Send + 'static;

    /// Handles one message.
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) -> Result<(), StageError>;

    /// Called once before the first message (and on a fresh instance after a restart).
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let _ = ctx;
        Ok(())
    }

    /// Called once when the actor stops (after its children stopped; not on a restart); it may
    /// still emit.
    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        let _ = ctx;
    }

    /// Called on the failed instance before a restart replaces it (its children are stopped
    /// already; its state and stash are still there).
    fn pre_restart(&mut self, ctx: &mut Ctx<'_, Self>, error: &StageError) {
        let _ = (ctx, error);
    }

    /// Handles stream elements (messages without a sender) from the front of `msgs`, in
    /// order, while the actor has no behaviour installed; it returns once
    /// [`Ctx::batch_interrupted`] (the actor asked to stop or to unstash, or installed a
    /// behaviour) and leaves the rest in `msgs` for the stage. A failure consumes the failing
    /// message. Default: [`Actor::handle`] per message; an actor whose calls cost more than
    /// its messages (a Python actor) handles the batch in one call.
    fn handle_batch(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        msgs: &mut std::vec::IntoIter<Self::Msg>,
    ) -> Result<(), StageError> {
        for msg in msgs.by_ref() {
            self.handle(ctx, msg)?;
            if ctx.batch_interrupted() {
                break;
            }
        }
        Ok(())
    }

    /// Called when an actor this one watches ([`Ctx::watch`]) stopped.
    fn on_terminated(&mut self, ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        let _ = (ctx, who);
        Ok(())
    }

    /// How this actor supervises its children (default: one-for-one, always restart).
    fn supervisor_strategy(&self) -> SupervisorStrategy {
        SupervisorStrategy::default()
    }
}

/// How to make an actor: a factory (called again on every restart), its mailbox and a name.
pub struct Props<A> {
    pub(crate) make: Arc<dyn Fn() -> A + Send + Sync>,
    pub(crate) mailbox: MailboxConfig,
    pub(crate) name: Option<Arc<str>>,
    pub(crate) throughput: usize,
    pub(crate) max_actors: usize,
    pub(crate) stash_capacity: usize,
    pub(crate) handler_time_limit: Option<std::time::Duration>,
    /// Set by `checkpointed()`: how the actor is saved at a checkpoint (a `CellCodec<A>`).
    pub(crate) codec: Option<Arc<dyn std::any::Any + Send + Sync>>,
    /// Set by `register_as(path)`: the run registry path of the actor's ref.
    pub(crate) register_as: Option<Arc<str>>,
    /// Bytes every mailbox of the stage may hold together (root props only).
    pub(crate) mailbox_budget: Option<usize>,
}

/// Messages an actor handles per turn before the other actors of its stage get theirs.
pub const DEFAULT_THROUGHPUT: usize = 256;

impl<A> Clone for Props<A> {
    fn clone(&self) -> Self {
        Self {
            make: Arc::clone(&self.make),
            mailbox: self.mailbox.clone(),
            name: self.name.clone(),
            throughput: self.throughput,
            max_actors: self.max_actors,
            stash_capacity: self.stash_capacity,
            handler_time_limit: self.handler_time_limit,
            codec: self.codec.clone(),
            register_as: self.register_as.clone(),
            mailbox_budget: self.mailbox_budget,
        }
    }
}

impl<A> fmt::Debug for Props<A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Props")
            .field("actor", &std::any::type_name::<A>())
            .field("name", &self.name)
            .field("mailbox", &self.mailbox)
            .finish()
    }
}

impl<A: Actor> Props<A> {
    /// Props making each instance with `make`.
    pub fn new(make: impl Fn() -> A + Send + Sync + 'static) -> Self {
        Self {
            make: Arc::new(make),
            mailbox: MailboxConfig::default(),
            name: None,
            throughput: DEFAULT_THROUGHPUT,
            max_actors: usize::MAX,
            stash_capacity: super::cell::DEFAULT_STASH_CAPACITY,
            handler_time_limit: None,
            codec: None,
            register_as: None,
            mailbox_budget: None,
        }
    }
    /// Props making each instance with `A::default()`.
    pub fn default_of() -> Self
    where
        A: Default,
    {
        Self::new(A::default)
    }
    /// These props with another mailbox (capacity and overflow policy of the actor's ref).
    pub fn with_mailbox(mut self, mailbox: MailboxConfig) -> Self {
        self.mailbox = mailbox;
        self
    }
    /// These props with a name (used in errors, dead letters and paths).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Some(Arc::from(name));
        self
    }
    /// These props handling at most `n` messages (at least 1) per turn before the stage's
    /// other actors get theirs (fairness budget).
    pub fn with_throughput(mut self, n: usize) -> Self {
        self.throughput = n.max(1);
        self
    }
    /// These props (of a stage's root actor) allowing at most `n` actors in the stage, the
    /// root included; a spawn beyond it fails in the spawning actor.
    pub fn with_max_actors(mut self, n: usize) -> Self {
        self.max_actors = n.max(1);
        self
    }
    /// These props with a stash of at most `n` messages; stashing more fails the handler.
    pub fn with_stash_capacity(mut self, n: usize) -> Self {
        self.stash_capacity = n;
        self
    }
    /// These props failing a handler call that runs longer than `limit` (wall time): the
    /// failure names the actor and is supervised like any other; the call's effects stand.
    pub fn with_handler_time_limit(mut self, limit: std::time::Duration) -> Self {
        self.handler_time_limit = Some(limit);
        self
    }
    /// These props (of a stage's root actor) letting the mailboxes of every actor of the stage
    /// hold at most `bytes` together, each queued message counted as
    /// [`ActorRef::message_bytes`](super::ActorRef::message_bytes) (heap data a message owns is
    /// not counted); beyond it a mailbox counts as full (`tell` waits, `try_tell` applies the
    /// overflow policy).
    pub fn with_mailbox_budget(mut self, bytes: usize) -> Self {
        self.mailbox_budget = Some(bytes);
        self
    }
    /// The name given with [`Props::with_name`], or the actor's type name.
    pub fn name(&self) -> &str {
        match &self.name {
            Some(n) => n,
            None => short_type_name::<A>(),
        }
    }
    /// A fresh instance.
    pub(crate) fn make(&self) -> A {
        (self.make)()
    }
}

/// The last path segment of `T`'s type name (`Counter` for `my_crate::Counter`).
pub(crate) fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}
