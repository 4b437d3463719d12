//! Hot swap: a [`Versioned`] actor runs one [`Version`] of its logic at a time; its
//! [`SwapHandle`] replaces the running version with a new one made from its state (a
//! migration), and rolls back to the previous version with its state as it was at the swap.
//!
//! A swap or rollback asked for through the handle is applied just before the actor handles its
//! next message (so that message is the first the new version sees) and its future resolves
//! then, with the number of the version now running (1 for the first). The old instance is
//! kept untouched for a rollback: what the new version did is dropped with it. A restart of
//! the actor makes the first version again from its props (the versions it swapped in are not
//! its recipe); a versioned actor is not checkpointed.

use super::ctx::Ctx;
use super::props::{Actor, Props};
use futures::channel::oneshot;
use std::any::Any;
use std::collections::VecDeque;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use weir_graph::StageError;

/// One version of a [`Versioned`] actor's logic; the value is the version's state.
pub trait Version: Send + 'static {
    /// Messages the actor handles (the same for every version of it).
    type Msg: Send + 'static;
    /// Elements the actor emits (the same for every version of it).
    type Out: Send + 'static;
    /// Handles one message.
    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Versioned<Self::Msg, Self::Out>>,
        msg: Self::Msg,
    ) -> Result<(), StageError>;
}

/// Why a swap or a rollback was not applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SwapError {
    /// The running version is not the one the migration starts from.
    #[error("actor '{actor}' runs version {running}, not {expected}: the swap was not applied")]
    WrongVersion {
        /// The actor's path.
        actor: String,
        /// The version type the migration takes.
        expected: &'static str,
        /// The version type running.
        running: &'static str,
    },
    /// A rollback while the first version runs.
    #[error("actor '{actor}' runs its first version: there is nothing to roll back to")]
    NothingToRollBack {
        /// The actor's path.
        actor: String,
    },
    /// The actor stopped before it applied the request.
    #[error("the versioned actor stopped before it applied the request")]
    Stopped,
}

/// A version with its type erased.
trait AnyVersion<M: Send + 'static, O: Send + 'static>: Send {
    fn handle(&mut self, ctx: &mut Ctx<'_, Versioned<M, O>>, msg: M) -> Result<(), StageError>;
    fn as_any(&self) -> &dyn Any;
    fn type_name(&self) -> &'static str;
}

impl<V: Version> AnyVersion<V::Msg, V::Out> for V {
    fn handle(
        &mut self,
        ctx: &mut Ctx<'_, Versioned<V::Msg, V::Out>>,
        msg: V::Msg,
    ) -> Result<(), StageError> {
        Version::handle(self, ctx, msg)
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn type_name(&self) -> &'static str {
        std::any::type_name::<V>()
    }
}

type Boxed<M, O> = Box<dyn AnyVersion<M, O>>;
type Reply = oneshot::Sender<Result<usize, SwapError>>;
type Migrate<M, O> =
    Box<dyn FnOnce(&dyn AnyVersion<M, O>, &str) -> Result<Boxed<M, O>, SwapError> + Send>;

enum Command<M, O> {
    Swap(Migrate<M, O>, Reply),
    Rollback(Reply),
}

/// What a handle and the actor's instances share.
struct Control<M, O> {
    pending: Mutex<VecDeque<Command<M, O>>>,
    /// Whether `pending` may hold a command (checked once per message).
    any: AtomicBool,
    /// The number of the version running (1 for the first).
    version: AtomicUsize,
    /// Live instances: when the last goes, pending requests fail with `Stopped`.
    instances: AtomicUsize,
    stopped: AtomicBool,
}

impl<M, O> Control<M, O> {
    fn lock(&self) -> MutexGuard<'_, VecDeque<Command<M, O>>> {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
    fn push(&self, c: Command<M, O>) {
        let mut q = self.lock();
        if self.stopped.load(Ordering::Acquire) {
            // Dropping the command's reply resolves its future with `Stopped`.
            return;
        }
        q.push_back(c);
        self.any.store(true, Ordering::Release);
    }
}

/// An actor running one [`Version`] of its logic at a time (see [`Props::versioned`]).
pub struct Versioned<M: Send + 'static, O: Send + 'static> {
    current: Boxed<M, O>,
    /// Versions swapped out, as they were then (a rollback takes the last).
    previous: Vec<Boxed<M, O>>,
    control: Arc<Control<M, O>>,
}

impl<M: Send + 'static, O: Send + 'static> Versioned<M, O> {
    fn new(first: Boxed<M, O>, control: Arc<Control<M, O>>) -> Self {
        control.instances.fetch_add(1, Ordering::AcqRel);
        control.stopped.store(false, Ordering::Release);
        control.version.store(1, Ordering::Release);
        Self {
            current: first,
            previous: Vec::new(),
            control,
        }
    }

    /// Applies the swaps and rollbacks asked for since the last message.
    fn apply(&mut self, actor: &str) {
        self.control.any.store(false, Ordering::Release);
        let commands: Vec<_> = self.control.lock().drain(..).collect();
        for c in commands {
            let (r, reply) = match c {
                Command::Swap(migrate, reply) => {
                    let r = migrate(&*self.current, actor).map(|next| {
                        let old = std::mem::replace(&mut self.current, next);
                        self.previous.push(old);
                    });
                    (r, reply)
                }
                Command::Rollback(reply) => {
                    let r = match self.previous.pop() {
                        Some(old) => {
                            self.current = old;
                            Ok(())
                        }
                        None => Err(SwapError::NothingToRollBack {
                            actor: actor.to_owned(),
                        }),
                    };
                    (r, reply)
                }
            };
            let version = self.previous.len() + 1;
            self.control.version.store(version, Ordering::Release);
            match &r {
                Ok(()) => tracing::info!(
                    actor,
                    version,
                    to = self.current.type_name(),
                    "actor logic swapped"
                ),
                Err(e) => tracing::warn!(actor, error = %e, "actor swap refused"),
            }
            let _ = reply.send(r.map(|()| version));
        }
    }
}

impl<M: Send + 'static, O: Send + 'static> Drop for Versioned<M, O> {
    fn drop(&mut self) {
        if self.control.instances.fetch_sub(1, Ordering::AcqRel) == 1 {
            let mut q = self.control.lock();
            self.control.stopped.store(true, Ordering::Release);
            q.clear();
        }
    }
}

impl<M: Send + 'static, O: Send + 'static> Actor for Versioned<M, O> {
    type Msg = M;
    type Out = O;
    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: M) -> Result<(), StageError> {
        if self.control.any.load(Ordering::Acquire) {
            let path = ctx.path().to_owned();
            self.apply(&path);
        }
        self.current.handle(ctx, msg)
    }
}

/// Swaps and rolls back the logic of the [`Versioned`] actors its props make.
pub struct SwapHandle<M, O> {
    control: Arc<Control<M, O>>,
    _t: PhantomData<fn(M) -> O>,
}

impl<M, O> Clone for SwapHandle<M, O> {
    fn clone(&self) -> Self {
        Self {
            control: Arc::clone(&self.control),
            _t: PhantomData,
        }
    }
}

impl<M, O> std::fmt::Debug for SwapHandle<M, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "SwapHandle(version {})",
            self.control.version.load(Ordering::Acquire)
        )
    }
}

/// Waits for the actor's answer (its end answers `Stopped`).
async fn answer(rx: oneshot::Receiver<Result<usize, SwapError>>) -> Result<usize, SwapError> {
    rx.await.unwrap_or(Err(SwapError::Stopped))
}

impl<M: Send + 'static, O: Send + 'static> SwapHandle<M, O> {
    /// Replaces the running version `Old` with `migrate(&old)` before the next message; the old
    /// instance is kept for [`SwapHandle::rollback`]. Resolves with the new version's number,
    /// or an error (and no change) when `Old` is not the version running.
    pub fn swap<Old, New>(
        &self,
        migrate: impl FnOnce(&Old) -> New + Send + 'static,
    ) -> impl Future<Output = Result<usize, SwapError>> + Send + 'static
    where
        Old: Version<Msg = M, Out = O>,
        New: Version<Msg = M, Out = O>,
    {
        let (tx, rx) = oneshot::channel();
        let migrate: Migrate<M, O> = Box::new(move |cur, actor| {
            let Some(old) = cur.as_any().downcast_ref::<Old>() else {
                return Err(SwapError::WrongVersion {
                    actor: actor.to_owned(),
                    expected: std::any::type_name::<Old>(),
                    running: cur.type_name(),
                });
            };
            Ok(Box::new(migrate(old)) as Boxed<M, O>)
        });
        self.control.push(Command::Swap(migrate, tx));
        answer(rx)
    }
    /// Goes back to the version before the last swap, with its state as it was then, before
    /// the next message. Resolves with the version's number, or an error when the first
    /// version runs.
    pub fn rollback(&self) -> impl Future<Output = Result<usize, SwapError>> + Send + 'static {
        let (tx, rx) = oneshot::channel();
        self.control.push(Command::Rollback(tx));
        answer(rx)
    }
    /// The number of the version running (1 for the first), as of the last message handled.
    pub fn version(&self) -> usize {
        self.control.version.load(Ordering::Acquire)
    }
}

impl<M: Send + 'static, O: Send + 'static> Props<Versioned<M, O>> {
    /// Props of an actor running the version `make` makes, swappable through the handle
    /// (every instance these props make shares it; a restart makes `make`'s version again).
    pub fn versioned<V>(make: impl Fn() -> V + Send + Sync + 'static) -> (Self, SwapHandle<M, O>)
    where
        V: Version<Msg = M, Out = O>,
    {
        let control = Arc::new(Control {
            pending: Mutex::new(VecDeque::new()),
            any: AtomicBool::new(false),
            version: AtomicUsize::new(1),
            instances: AtomicUsize::new(0),
            stopped: AtomicBool::new(false),
        });
        let handle = SwapHandle {
            control: Arc::clone(&control),
            _t: PhantomData,
        };
        let props = Props::new(move || Versioned::new(Box::new(make()), Arc::clone(&control)))
            .with_name(super::props::short_type_name::<V>());
        (props, handle)
    }
}
