//! Mailboxes and [`ActorRef`]: a bounded queue into one actor, woken by its stage.
//!
//! A ref's queue is bounded: `tell(msg).await` waits for room (backpressure for senders outside
//! the graph), `try_tell` applies the mailbox's [`Overflow`] policy. Pushing into an empty queue
//! puts the actor on its stage's ready list and wakes the stage, which moves a turn's worth of
//! messages out under one lock.

use super::props::ActorId;
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::task::{Poll, Waker};
use std::time::Duration;
use weir_graph::{Clock, DeadLetter, DeadLetterSink, StageError};

/// Default number of messages a mailbox holds.
pub const DEFAULT_MAILBOX_CAPACITY: usize = 1024;

/// What `try_tell` (and a send from inside the stage) does when the mailbox is full.
#[derive(Clone)]
pub enum Overflow {
    /// The new message goes to dead letters (the default).
    DropNew,
    /// The oldest queued message goes to dead letters and the new one is queued.
    DropOld,
    /// The actor's stage fails with an error naming the actor.
    Fail,
    /// The message goes to another actor's ref (an `ActorRef` of the same message type).
    Redirect(Arc<dyn Any + Send + Sync>),
}

impl fmt::Debug for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DropNew => f.write_str("DropNew"),
            Self::DropOld => f.write_str("DropOld"),
            Self::Fail => f.write_str("Fail"),
            Self::Redirect(_) => f.write_str("Redirect"),
        }
    }
}

impl Overflow {
    /// Redirects overflowing messages to `to`.
    pub fn redirect<M: Send + 'static>(to: ActorRef<M>) -> Self {
        Self::Redirect(Arc::new(to))
    }
}

/// Capacity and overflow policy of an actor's mailbox.
#[derive(Clone, Debug)]
pub struct MailboxConfig {
    /// Messages the ref's queue holds before senders wait (`tell`) or overflow (`try_tell`).
    pub capacity: usize,
    /// What `try_tell` does when the queue is full.
    pub overflow: Overflow,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_MAILBOX_CAPACITY,
            overflow: Overflow::DropNew,
        }
    }
}

impl MailboxConfig {
    /// A mailbox of `capacity` messages (at least 1) dropping new messages when full.
    pub fn bounded(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            overflow: Overflow::DropNew,
        }
    }
    /// This mailbox with another overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
}

/// How full a mailbox is: below half `Normal`, below 90% `High`, else `Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Pressure {
    /// Less than half full.
    Normal,
    /// At least half full.
    High,
    /// At least 90% full.
    Critical,
}

/// Why a message could not be delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TellError {
    /// The mailbox was full and its policy dropped the message (it went to dead letters).
    #[error("mailbox of actor '{actor}' is full: message dropped")]
    Full {
        /// The actor's path.
        actor: String,
    },
    /// The actor stopped (or its stage ended): the message went to dead letters.
    #[error("actor '{actor}' is stopped")]
    Stopped {
        /// The actor's path.
        actor: String,
    },
    /// The mailbox was full under `Overflow::Fail`: the actor's stage fails.
    #[error("mailbox of actor '{actor}' overflowed (policy fail)")]
    Overflowed {
        /// The actor's path.
        actor: String,
    },
}

/// Why an `ask` got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AskError {
    /// The message was not delivered.
    #[error(transparent)]
    Tell(#[from] TellError),
    /// No reply within the timeout.
    #[error("ask of actor '{actor}' timed out after {timeout:?}")]
    Timeout {
        /// The actor's path.
        actor: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The actor handled the message without replying (or stopped first).
    #[error("actor '{actor}' did not reply")]
    NoReply {
        /// The actor's path.
        actor: String,
    },
    /// The reply was not of the type the asker expected.
    #[error("actor '{actor}' replied with another type than {expected}")]
    ReplyType {
        /// The actor's path.
        actor: String,
        /// The expected reply type.
        expected: &'static str,
    },
}

impl From<AskError> for StageError {
    fn from(e: AskError) -> Self {
        match &e {
            AskError::Timeout { .. } => StageError::timeout(e.to_string()),
            _ => StageError::user(e.to_string()),
        }
    }
}

/// Where the answer to a message goes.
pub(crate) enum ReplyTo {
    /// An `ask` waiting for a reply.
    Ask(oneshot::Sender<Box<dyn Any + Send>>),
    /// The actor that sent the message.
    Actor(Arc<dyn AnyRef>),
}

/// A message with its reply address.
pub(crate) struct Envelope<M> {
    pub(crate) msg: M,
    pub(crate) reply: Option<ReplyTo>,
}

impl<M> Envelope<M> {
    /// A message without a reply address.
    pub(crate) fn plain(msg: M) -> Self {
        Self { msg, reply: None }
    }
}

/// A ref whose message type is erased: a reply is delivered if it is of the ref's type.
pub(crate) trait AnyRef: Send + Sync {
    /// Delivers `msg` if it is the ref's message type; gives it back otherwise.
    fn tell_any(&self, msg: Box<dyn Any + Send>) -> Result<(), Box<dyn Any + Send>>;
    /// The actor's path.
    fn path(&self) -> &str;
}

/// What every mailbox of one stage shares: the actors with messages waiting, the waker of the
/// stage's task, and the run's hooks once the stage started.
#[derive(Default)]
pub(crate) struct StageShared {
    ready: Mutex<Vec<ActorId>>,
    /// Set when the stage starts.
    hooks: OnceLock<StageHooks>,
    /// Tasks waiting for the stage to start (an `ask` timing out on the run's clock).
    start_waiters: Mutex<Vec<Waker>>,
    waker: AtomicWaker,
    /// Set when a mailbox under `Overflow::Fail` overflowed.
    failed: Mutex<Option<StageError>>,
    /// Set when a ref to the root was dropped (a source stage checks for the last one).
    ref_dropped: AtomicBool,
}

impl StageShared {
    fn push(&self, id: ActorId) {
        lock(&self.ready).push(id);
        self.waker.wake();
    }
    /// Takes the ready actors (in the order they became ready).
    pub(crate) fn take(&self, into: &mut Vec<ActorId>) {
        into.append(&mut lock(&self.ready));
    }
    /// Whether any actor is ready, registering the stage's waker otherwise.
    pub(crate) fn poll_ready(&self, waker: &Waker) -> bool {
        self.waker.register(waker);
        !lock(&self.ready).is_empty()
            || lock(&self.failed).is_some()
            || self.ref_dropped.load(Ordering::Acquire)
    }
    /// A mailbox overflow that fails the stage, if one happened.
    pub(crate) fn take_failure(&self) -> Option<StageError> {
        lock(&self.failed).take()
    }
    /// Whether a root ref was dropped since the last call.
    pub(crate) fn take_ref_dropped(&self) -> bool {
        self.ref_dropped.swap(false, Ordering::AcqRel)
    }
    /// Hands the stage's hooks to its mailboxes (once, when the stage starts).
    pub(crate) fn start(&self, hooks: StageHooks) {
        let _ = self.hooks.set(hooks);
        for w in lock(&self.start_waiters).drain(..) {
            w.wake();
        }
    }
    /// The hooks, once the stage started.
    pub(crate) fn hooks(&self) -> Option<&StageHooks> {
        self.hooks.get()
    }
    /// The run's clock, waiting for the stage to start.
    async fn clock(&self) -> Arc<dyn Clock> {
        poll_fn(|cx| {
            if let Some(h) = self.hooks.get() {
                return Poll::Ready(Arc::clone(&h.clock));
            }
            lock(&self.start_waiters).push(cx.waker().clone());
            match self.hooks.get() {
                Some(h) => Poll::Ready(Arc::clone(&h.clock)),
                None => Poll::Pending,
            }
        })
        .await
    }
    fn fail(&self, e: StageError) {
        lock(&self.failed).get_or_insert(e);
        self.waker.wake();
    }
}

/// What the stage hands its mailboxes when it starts: the run's clock and dead-letter sink.
pub(crate) struct StageHooks {
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) dead_letters: Option<DeadLetterSink>,
    pub(crate) stage: Arc<str>,
}

struct Queue<M> {
    items: VecDeque<Envelope<M>>,
    /// The actor is on the ready list (or being drained) already.
    scheduled: bool,
    closed: bool,
    /// Senders waiting for room.
    senders: Vec<Waker>,
}

/// The queue behind an [`ActorRef`].
pub(crate) struct Mailbox<M> {
    queue: Mutex<Queue<M>>,
    len: AtomicUsize,
    capacity: usize,
    overflow: ResolvedOverflow<M>,
    id: ActorId,
    path: Arc<str>,
    stage: Arc<StageShared>,
}

enum ResolvedOverflow<M> {
    DropNew,
    DropOld,
    Fail,
    Redirect(ActorRef<M>),
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<M: Send + 'static> Mailbox<M> {
    /// A mailbox for actor `id` at `path` of a stage whose ready list is `ready`.
    pub(crate) fn new(
        config: &MailboxConfig,
        id: ActorId,
        path: Arc<str>,
        stage: Arc<StageShared>,
    ) -> Result<Self, StageError> {
        let overflow = match &config.overflow {
            Overflow::DropNew => ResolvedOverflow::DropNew,
            Overflow::DropOld => ResolvedOverflow::DropOld,
            Overflow::Fail => ResolvedOverflow::Fail,
            Overflow::Redirect(to) => match Arc::clone(to).downcast::<ActorRef<M>>() {
                Ok(r) => ResolvedOverflow::Redirect(ActorRef::clone(&r)),
                Err(_) => {
                    return Err(StageError::user(format!(
                        "actor '{path}': the redirect target of its mailbox takes another message type than {}",
                        std::any::type_name::<M>()
                    )));
                }
            },
        };
        Ok(Self {
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                scheduled: false,
                closed: false,
                senders: Vec::new(),
            }),
            len: AtomicUsize::new(0),
            capacity: config.capacity.max(1),
            overflow,
            id,
            path,
            stage,
        })
    }

    fn enqueue(&self, q: &mut Queue<M>, env: Envelope<M>) {
        q.items.push_back(env);
        self.len.store(q.items.len(), Ordering::Release);
        if !q.scheduled {
            q.scheduled = true;
            self.stage.push(self.id);
        }
    }

    /// Sends `env` to dead letters with `reason`.
    pub(crate) fn dead_letter(&self, env: Envelope<M>, reason: &str) {
        dead_letter(&self.stage, &self.path, env.msg, reason);
        if let Some(ReplyTo::Ask(tx)) = env.reply {
            drop(tx);
        }
    }

    /// Queues `env`, applying the overflow policy when full.
    pub(crate) fn offer(&self, env: Envelope<M>) -> Result<(), TellError> {
        let mut q = lock(&self.queue);
        if q.closed {
            drop(q);
            self.dead_letter(env, "actor stopped");
            return Err(self.stopped());
        }
        if q.items.len() < self.capacity {
            self.enqueue(&mut q, env);
            return Ok(());
        }
        match &self.overflow {
            ResolvedOverflow::DropNew => {
                drop(q);
                self.dead_letter(env, "mailbox full");
                Err(TellError::Full {
                    actor: self.path.to_string(),
                })
            }
            ResolvedOverflow::DropOld => {
                let old = q.items.pop_front();
                self.enqueue(&mut q, env);
                drop(q);
                if let Some(old) = old {
                    self.dead_letter(old, "mailbox full: dropped the oldest message");
                }
                Ok(())
            }
            ResolvedOverflow::Fail => {
                drop(q);
                let err = TellError::Overflowed {
                    actor: self.path.to_string(),
                };
                self.dead_letter(env, "mailbox overflowed");
                self.stage.fail(StageError::user(err.to_string()));
                Err(err)
            }
            ResolvedOverflow::Redirect(to) => {
                drop(q);
                to.0.offer(env)
            }
        }
    }

    /// Queues `env`, waiting while the mailbox is full.
    pub(crate) async fn send(&self, env: Envelope<M>) -> Result<(), TellError> {
        let mut env = Some(env);
        poll_fn(|cx| {
            let mut q = lock(&self.queue);
            if q.closed {
                drop(q);
                if let Some(e) = env.take() {
                    self.dead_letter(e, "actor stopped");
                }
                return Poll::Ready(Err(self.stopped()));
            }
            if q.items.len() < self.capacity {
                if let Some(e) = env.take() {
                    self.enqueue(&mut q, e);
                }
                return Poll::Ready(Ok(()));
            }
            q.senders.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// Moves at most `max` messages into `into`; clears the scheduled mark when it empties.
    pub(crate) fn drain_into(&self, into: &mut VecDeque<Envelope<M>>, max: usize) {
        let mut q = lock(&self.queue);
        let n = q.items.len().min(max);
        into.extend(q.items.drain(..n));
        self.len.store(q.items.len(), Ordering::Release);
        if q.items.is_empty() {
            q.scheduled = false;
        } else {
            // Still work: stay on the ready list.
            self.stage.push(self.id);
        }
        if n > 0 {
            for w in q.senders.drain(..) {
                w.wake();
            }
        }
    }

    /// Closes the mailbox: queued and later messages go to dead letters.
    pub(crate) fn close(&self) {
        let (items, senders) = {
            let mut q = lock(&self.queue);
            q.closed = true;
            self.len.store(0, Ordering::Release);
            (std::mem::take(&mut q.items), std::mem::take(&mut q.senders))
        };
        for w in senders {
            w.wake();
        }
        for env in items {
            self.dead_letter(env, "actor stopped");
        }
    }

    /// The actor's path.
    pub(crate) fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// Whether no message waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.len.load(Ordering::Acquire) == 0
    }

    /// Whether the mailbox was closed.
    pub(crate) fn is_closed(&self) -> bool {
        lock(&self.queue).closed
    }

    fn stopped(&self) -> TellError {
        TellError::Stopped {
            actor: self.path.to_string(),
        }
    }
}

/// Sends `msg` to the stage's dead letters (and logs it) with `reason`.
pub(crate) fn dead_letter<M: Send + 'static>(
    stage: &StageShared,
    actor: &str,
    msg: M,
    reason: &str,
) {
    tracing::debug!(actor, reason, "dead letter");
    if let Some(h) = stage.hooks()
        && let Some(dl) = &h.dead_letters
    {
        let repr = weir_graph::render_element(&msg);
        dl.send(DeadLetter {
            stage: h.stage.to_string(),
            error: StageError::user(format!("actor '{actor}': {reason}")),
            element: Some(Box::new(msg)),
            repr,
        });
    }
}

/// A handle to an actor: cheap to clone, usable from inside and outside the graph.
pub struct ActorRef<M>(pub(crate) Arc<Mailbox<M>>, LastRefNotice);

/// Tells the stage that the last ref outside it was dropped. Armed by `ActorRef`'s drop and
/// sent when this field drops, after the ref's `Arc` did: the stage then sees the lowered count
/// (telling it before let it check the count first, miss the drop and wait forever).
pub(crate) struct LastRefNotice(Option<Arc<StageShared>>);

impl Drop for LastRefNotice {
    fn drop(&mut self) {
        if let Some(stage) = self.0.take() {
            stage.ref_dropped.store(true, Ordering::Release);
            stage.waker.wake();
        }
    }
}

impl<M> ActorRef<M> {
    /// A ref to `mailbox`.
    pub(crate) fn new(mailbox: Arc<Mailbox<M>>) -> Self {
        Self(mailbox, LastRefNotice(None))
    }
}

impl<M> Clone for ActorRef<M> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.0))
    }
}

impl<M> fmt::Debug for ActorRef<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ActorRef({})", self.0.path)
    }
}

impl<M> Drop for ActorRef<M> {
    fn drop(&mut self) {
        // The stage and this ref: the last outside ref is going away (the notice goes out
        // once the count went down).
        if Arc::strong_count(&self.0) <= 2 {
            self.1.0 = Some(Arc::clone(&self.0.stage));
        }
    }
}

impl<M: Send + 'static> ActorRef<M> {
    /// Sends `msg`, waiting while the mailbox is full; `Err` when the actor stopped.
    pub async fn tell(&self, msg: M) -> Result<(), TellError> {
        self.0.send(Envelope::plain(msg)).await
    }
    /// Sends `msg` without waiting, applying the mailbox's overflow policy when it is full.
    pub fn try_tell(&self, msg: M) -> Result<(), TellError> {
        self.0.offer(Envelope::plain(msg))
    }
    /// Sends `msg` and waits for the actor's reply (`ctx.reply`) of type `R`, for at most
    /// `timeout` on the run's clock.
    pub async fn ask<R: Send + 'static>(&self, msg: M, timeout: Duration) -> Result<R, AskError> {
        let (tx, rx) = oneshot::channel();
        let send = self.0.send(Envelope {
            msg,
            reply: Some(ReplyTo::Ask(tx)),
        });
        let wait = async {
            send.await?;
            rx.await.map_err(|_| AskError::NoReply {
                actor: self.path().to_owned(),
            })
        };
        // The timeout runs on the run's clock, from now or from the stage's start.
        let timer = async {
            let clock = self.0.stage.clock().await;
            clock.sleep(timeout).await;
        };
        futures::pin_mut!(wait, timer);
        let reply = match futures::future::select(wait, timer).await {
            futures::future::Either::Left((r, _)) => r?,
            futures::future::Either::Right(_) => {
                return Err(AskError::Timeout {
                    actor: self.path().to_owned(),
                    timeout,
                });
            }
        };
        reply
            .downcast::<R>()
            .map(|b| *b)
            .map_err(|_| AskError::ReplyType {
                actor: self.path().to_owned(),
                expected: std::any::type_name::<R>(),
            })
    }
    /// The actor's id inside its stage.
    pub fn id(&self) -> ActorId {
        self.0.id
    }
    /// The actor's path (`stage/actor`).
    pub fn path(&self) -> &str {
        &self.0.path
    }
    /// Messages waiting in the mailbox.
    pub fn len(&self) -> usize {
        self.0.len.load(Ordering::Acquire)
    }
    /// Whether no message waits in the mailbox.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How many messages the mailbox holds.
    pub fn capacity(&self) -> usize {
        self.0.capacity
    }
    /// How full the mailbox is.
    pub fn pressure(&self) -> Pressure {
        let (len, cap) = (self.len(), self.capacity());
        if len * 10 >= cap * 9 {
            Pressure::Critical
        } else if len * 2 >= cap {
            Pressure::High
        } else {
            Pressure::Normal
        }
    }
    /// Whether the actor stopped (its mailbox is closed).
    pub fn is_stopped(&self) -> bool {
        self.0.is_closed()
    }
    pub(crate) fn erased(&self) -> Arc<dyn AnyRef> {
        Arc::new(self.clone())
    }
}

impl<M: Send + 'static> AnyRef for ActorRef<M> {
    fn tell_any(&self, msg: Box<dyn Any + Send>) -> Result<(), Box<dyn Any + Send>> {
        let m = msg.downcast::<M>()?;
        // A reply that does not fit is dropped by the policy (to dead letters).
        let _ = self.try_tell(*m);
        Ok(())
    }
    fn path(&self) -> &str {
        &self.0.path
    }
}
