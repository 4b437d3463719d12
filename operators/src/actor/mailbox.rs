//! Mailboxes and [`ActorRef`]: a bounded queue into one actor, woken by its stage.
//!
//! A ref's queue is bounded: `tell(msg).await` waits for room (backpressure for senders outside
//! the graph), `try_tell` applies the mailbox's [`Overflow`] policy. Pushing into an empty queue
//! puts the actor on its stage's ready list and wakes the stage, which moves a turn's worth of
//! messages out under one lock.

use super::dead_letters::{DeadLetterService, Undelivered, reason};
use super::items::{Items, PriorityFn};
use super::props::ActorId;
use super::schedule::{ScheduleHandle, Scheduled};
use super::spill::{Spill, SpillError, SpillFile};
use futures::channel::oneshot;
use futures::task::AtomicWaker;
use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::task::{Context, Poll, Waker};
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
    /// The message is written to a file on disk and read back in order as the mailbox drains
    /// (see [`MailboxConfig::spill`]).
    Spill(Spill),
}

impl fmt::Debug for Overflow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::DropNew => f.write_str("DropNew"),
            Self::DropOld => f.write_str("DropOld"),
            Self::Fail => f.write_str("Fail"),
            Self::Redirect(_) => f.write_str("Redirect"),
            Self::Spill(s) => write!(f, "Spill({s:?})"),
        }
    }
}

impl Overflow {
    /// Redirects overflowing messages to `to`.
    pub fn redirect<M: Send + 'static>(to: ActorRef<M>) -> Self {
        Self::Redirect(Arc::new(to))
    }
}

/// Capacity, overflow policy and order of an actor's mailbox.
#[derive(Clone)]
pub struct MailboxConfig {
    /// Messages the ref's queue holds before senders wait (`tell`) or overflow (`try_tell`).
    pub capacity: usize,
    /// What `try_tell` does when the queue is full.
    pub overflow: Overflow,
    /// The priority function of a priority mailbox (a `PriorityFn<M>`).
    priority: Option<Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for MailboxConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxConfig")
            .field("capacity", &self.capacity)
            .field("overflow", &self.overflow)
            .field("priority", &self.priority.is_some())
            .finish()
    }
}

impl Default for MailboxConfig {
    fn default() -> Self {
        Self {
            capacity: DEFAULT_MAILBOX_CAPACITY,
            overflow: Overflow::DropNew,
            priority: None,
        }
    }
}

impl MailboxConfig {
    /// A mailbox of `capacity` messages (at least 1) dropping new messages when full.
    pub fn bounded(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            ..Self::default()
        }
    }
    /// This mailbox with another overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }
    /// This mailbox spilling to disk when full: a message that finds the queue full is encoded
    /// (postcard) into an append-only file under `dir` and read back in order as the queue
    /// drains; once the file holds `max_bytes`, further messages go to dead letters ("spill
    /// full"). The file is removed when it is drained and when the actor stops. `tell` still
    /// waits for room in memory; `try_tell` and sends from other actors spill.
    pub fn spill<M>(self, dir: impl Into<PathBuf>, max_bytes: u64) -> Self
    where
        M: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.overflow(Overflow::Spill(Spill::of::<M>(dir.into(), max_bytes)))
    }
    /// This mailbox handing out messages by priority: higher `priority(&msg)` first, in arrival
    /// order within one priority (`DropOld` drops the oldest of the lowest priority). Stream
    /// elements of a `Flow::actor` are not reordered: they go to the actor as they arrive.
    pub fn priority<M: 'static>(
        mut self,
        priority: impl Fn(&M) -> u8 + Send + Sync + 'static,
    ) -> Self {
        let f: PriorityFn<M> = Arc::new(priority);
        self.priority = Some(Arc::new(f));
        self
    }
}

impl MailboxConfig {
    /// A control-aware mailbox: messages for which `is_control(&msg)` holds are handed out
    /// ahead of the others, in arrival order among themselves (a priority mailbox of two
    /// priorities; `DropOld` drops the oldest ordinary message first). The runtime's notices
    /// (a watched actor terminated) go ahead of both in every mailbox.
    pub fn control_aware<M: 'static>(
        self,
        is_control: impl Fn(&M) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.priority(move |m: &M| u8::from(is_control(m)))
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

impl Pressure {
    /// The pressure of a mailbox holding `len` of `capacity` messages.
    pub fn of(len: usize, capacity: usize) -> Self {
        if len * 10 >= capacity * 9 {
            Self::Critical
        } else if len * 2 >= capacity {
            Self::High
        } else {
            Self::Normal
        }
    }
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
    /// Deliveries scheduled from outside (`send_after`, `send_interval`).
    pub(crate) scheduled: Scheduled,
    /// Set when an outside delivery was scheduled (the stage recomputes its next deadline).
    schedule_changed: AtomicBool,
    /// The stage's path and the run's dead-letter stream (set when the stage is made, so what
    /// is undeliverable before it starts is recorded too).
    letters: OnceLock<(Arc<str>, Arc<DeadLetterService>)>,
    /// The bytes every mailbox of the stage may hold together, when limited.
    budget: OnceLock<Budget>,
    /// Mailboxes over their capacity by sends from actors of this stage: while any is, the
    /// stage takes no stream input (backpressure instead of dropping).
    overfull: AtomicUsize,
    /// The mailboxes' pressure, published as stage gauges once the stage runs.
    pub(crate) pressure: MailboxPressure,
}

/// How hard the mailboxes of one stage subtask are pressed: what they hold and at which
/// pressure level (read from every mailbox's length when sampled, so a `tell` pays nothing for
/// it), how often a sender waited for room, how often a message met a full mailbox's overflow
/// policy.
#[derive(Default)]
pub(crate) struct MailboxPressure {
    /// `tell`s that waited for room.
    pub(crate) waits: weir_graph::Gauge,
    /// Messages that found their mailbox full and met its overflow policy.
    pub(crate) overflows: weir_graph::Gauge,
    /// Every mailbox of the stage (dropped ones pruned when read).
    mailboxes: Arc<Mutex<Vec<Weak<dyn Held>>>>,
}

/// A mailbox as the pressure totals read it.
trait Held: Send + Sync {
    /// Messages held (in memory and spilled) and the capacity.
    fn held(&self) -> (usize, usize);
}

impl<M: Send + 'static> Held for Mailbox<M> {
    fn held(&self) -> (usize, usize) {
        (self.len.load(Ordering::Acquire), self.capacity)
    }
}

/// What the mailboxes hold together, and how many are at pressure high and at critical.
fn totals(mailboxes: &Mutex<Vec<Weak<dyn Held>>>) -> (i64, i64, i64) {
    let (mut queued, mut high, mut critical) = (0i64, 0i64, 0i64);
    lock(mailboxes).retain(|m| {
        let Some(m) = m.upgrade() else {
            return false;
        };
        let (n, capacity) = m.held();
        queued += n as i64;
        match Pressure::of(n, capacity) {
            Pressure::Normal => {}
            Pressure::High => high += 1,
            Pressure::Critical => critical += 1,
        }
        true
    });
    (queued, high, critical)
}

impl MailboxPressure {
    /// Counts `mailbox` in the totals while it lives.
    fn track<M: Send + 'static>(&self, mailbox: &Arc<Mailbox<M>>) {
        let weak: Weak<dyn Held> = Arc::downgrade(mailbox) as Weak<dyn Held>;
        lock(&self.mailboxes).push(weak);
    }

    /// Publishes these values as gauges of the stage at `stage`, subtask `subtask`.
    pub(crate) fn publish(&self, gauges: &weir_graph::StageGauges, stage: &str, subtask: usize) {
        use weir_graph::Metric;
        let read = |pick: fn((i64, i64, i64)) -> i64| -> weir_graph::GaugeFn {
            let mailboxes = Arc::clone(&self.mailboxes);
            Arc::new(move || pick(totals(&mailboxes)))
        };
        let at = gauges.at(stage, subtask);
        at.adopt_fn(MAILBOX_MESSAGES, &[], read(|t| t.0));
        at.adopt(MAILBOX_WAITS, &[], &self.waits);
        at.adopt(MAILBOX_OVERFLOWS, &[], &self.overflows);
        at.adopt_fn(MAILBOXES_HIGH, &[], read(|t| t.1));
        at.adopt_fn(MAILBOXES_CRITICAL, &[], read(|t| t.2));
        /// Messages queued in the stage's mailboxes.
        const MAILBOX_MESSAGES: Metric<'static> = Metric::gauge(
            "weir_actor_mailbox_messages",
            "Messages queued in the mailboxes of the stage's actors (spilled ones included).",
        );
        /// Tells that waited for room.
        const MAILBOX_WAITS: Metric<'static> = Metric::counter(
            "weir_actor_mailbox_waits",
            "Tells that waited for room in a full mailbox.",
        );
        /// Messages that met an overflow policy.
        const MAILBOX_OVERFLOWS: Metric<'static> = Metric::counter(
            "weir_actor_mailbox_overflows",
            "Messages that found their mailbox full and met its overflow policy.",
        );
        /// Mailboxes at pressure high.
        const MAILBOXES_HIGH: Metric<'static> = Metric::gauge(
            "weir_actor_mailboxes_high",
            "Mailboxes at pressure high now (at least half full, below 90%).",
        );
        /// Mailboxes at pressure critical.
        const MAILBOXES_CRITICAL: Metric<'static> = Metric::gauge(
            "weir_actor_mailboxes_critical",
            "Mailboxes at pressure critical now (at least 90% full).",
        );
    }
}

/// A stage's mailbox budget: bytes queued in all its mailboxes, and senders waiting for room.
struct Budget {
    limit: usize,
    used: AtomicUsize,
    waiters: Mutex<Vec<Waker>>,
}

impl StageShared {
    /// Whether a mailbox of this stage is over its capacity.
    pub(crate) fn is_overfull(&self) -> bool {
        self.overfull.load(Ordering::Acquire) > 0
    }
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
            || self.schedule_changed.swap(false, Ordering::AcqRel)
    }
    /// Limits the mailboxes of this stage to `bytes` together.
    pub(crate) fn set_budget(&self, bytes: usize) {
        let _ = self.budget.set(Budget {
            limit: bytes,
            used: AtomicUsize::new(0),
            waiters: Mutex::new(Vec::new()),
        });
    }
    /// Whether `bytes` more fit into the stage's mailbox budget.
    fn budget_allows(&self, bytes: usize) -> bool {
        self.budget
            .get()
            .is_none_or(|b| b.used.load(Ordering::Acquire) + bytes <= b.limit)
    }
    fn budget_add(&self, bytes: usize) {
        if let Some(b) = self.budget.get() {
            b.used.fetch_add(bytes, Ordering::AcqRel);
        }
    }
    /// Frees `bytes` of the budget and wakes the senders waiting for it.
    fn budget_sub(&self, bytes: usize) {
        if let Some(b) = self.budget.get()
            && bytes > 0
        {
            b.used.fetch_sub(bytes, Ordering::AcqRel);
            for w in lock(&b.waiters).drain(..) {
                w.wake();
            }
        }
    }
    /// Registers a sender waiting for budget; `false` when the stage has no budget.
    fn budget_wait(&self, waker: &Waker) -> bool {
        match self.budget.get() {
            Some(b) => {
                let mut w = lock(&b.waiters);
                if !w.iter().any(|x| x.will_wake(waker)) {
                    w.push(waker.clone());
                }
                true
            }
            None => false,
        }
    }
    /// Bytes queued in the stage's mailboxes (0 without a budget).
    fn budget_used(&self) -> usize {
        self.budget
            .get()
            .map_or(0, |b| b.used.load(Ordering::Acquire))
    }
    /// Records this stage's dead letters in `letters` (when the run has a dead-letter stream).
    pub(crate) fn record_dead_letters(&self, stage: &str, letters: Option<Arc<DeadLetterService>>) {
        if let Some(l) = letters {
            let _ = self.letters.set((Arc::from(stage), l));
        }
    }
    /// Schedules an outside delivery, waking the stage so it sees the new deadline.
    fn schedule(
        &self,
        delay: Duration,
        interval: Option<Duration>,
        deliver: super::schedule::Deliver,
    ) -> Option<ScheduleHandle> {
        let now = self.hooks().map(|h| h.clock.now());
        let handle = self.scheduled.add(now, delay, interval, deliver)?;
        self.schedule_changed.store(true, Ordering::Release);
        self.waker.wake();
        Some(handle)
    }
    /// Whether an actor is on the ready list.
    pub(crate) fn has_ready(&self) -> bool {
        !lock(&self.ready).is_empty()
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
    pub(crate) fn fail(&self, e: StageError) {
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
    items: Items<M>,
    /// Messages spilled to disk (only under `Overflow::Spill`): behind every queued one.
    spill: Option<SpillFile<M>>,
    /// The actor is on the ready list (or being drained) already.
    scheduled: bool,
    closed: bool,
    /// Senders waiting for room.
    senders: Vec<Waker>,
    /// Run once when the mailbox closes (watchers in any stage).
    on_close: Vec<CloseHook>,
    /// Over capacity by sends from its own stage (counted in the stage's `overfull`).
    overfull: bool,
    /// Run once when a drain leaves the queue below its capacity (`Mailbox::on_room`).
    on_room: Option<CloseHook>,
    /// The actor takes only the runtime's notices now (`Mailbox::pause_user`): the user's
    /// messages stay queued, so senders meet a full mailbox.
    paused: bool,
}

/// What a watcher asked to run when a mailbox closes.
pub(crate) type CloseHook = Box<dyn FnOnce() + Send>;

/// The queue behind an [`ActorRef`].
pub(crate) struct Mailbox<M> {
    queue: Mutex<Queue<M>>,
    len: AtomicUsize,
    /// Messages on disk now, and ever spilled.
    spilled: AtomicUsize,
    spilled_total: AtomicU64,
    capacity: usize,
    overflow: ResolvedOverflow<M>,
    id: ActorId,
    path: Arc<str>,
    pub(crate) stage: Arc<StageShared>,
    /// The priority function of a priority mailbox, run by senders before they take the
    /// queue's lock (so user code, a Python function for instance, never runs under it).
    priority: Option<PriorityFn<M>>,
}

enum ResolvedOverflow<M> {
    DropNew,
    DropOld,
    Fail,
    Redirect(ActorRef<M>),
    Spill,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<M: Send + 'static> Mailbox<M> {
    /// A mailbox for actor `id` at `path` of a stage whose ready list is `ready` (counted in
    /// the stage's pressure totals while it lives).
    pub(crate) fn new(
        config: &MailboxConfig,
        id: ActorId,
        path: Arc<str>,
        stage: Arc<StageShared>,
    ) -> Result<Arc<Self>, StageError> {
        let mut spill = None;
        let overflow = match &config.overflow {
            Overflow::Spill(s) => match SpillFile::new(s) {
                Some(f) => {
                    spill = Some(f);
                    ResolvedOverflow::Spill
                }
                None => {
                    return Err(StageError::user(format!(
                        "actor '{path}': its mailbox spills another message type than {}",
                        std::any::type_name::<M>()
                    )));
                }
            },
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
        let priority = match &config.priority {
            None => None,
            Some(p) => match Arc::clone(p).downcast::<PriorityFn<M>>() {
                Ok(f) => Some(PriorityFn::clone(&f)),
                Err(_) => {
                    return Err(StageError::user(format!(
                        "actor '{path}': the priority function of its mailbox takes another message type than {}",
                        std::any::type_name::<M>()
                    )));
                }
            },
        };
        let mailbox = Arc::new(Self {
            queue: Mutex::new(Queue {
                items: Items::new(priority.is_some()),
                spill,
                scheduled: false,
                closed: false,
                senders: Vec::new(),
                on_close: Vec::new(),
                overfull: false,
                on_room: None,
                paused: false,
            }),
            len: AtomicUsize::new(0),
            spilled: AtomicUsize::new(0),
            spilled_total: AtomicU64::new(0),
            capacity: config.capacity.max(1),
            overflow,
            id,
            path,
            stage,
            priority,
        });
        mailbox.stage.pressure.track(&mailbox);
        Ok(mailbox)
    }

    /// Bytes one queued message counts for in the stage's mailbox budget.
    const MESSAGE_BYTES: usize = std::mem::size_of::<Envelope<M>>();

    /// The priority of `msg` in a priority mailbox (computed before the lock is taken).
    fn rank(&self, msg: &M) -> Option<u8> {
        self.priority.as_ref().map(|f| f(msg))
    }

    fn enqueue(&self, q: &mut Queue<M>, env: Envelope<M>, rank: Option<u8>) {
        q.items.push(env, rank);
        self.account_queued(q, false);
    }

    /// Accounts for a message just queued (a notice of the runtime when `system`): budget,
    /// length, the stage's ready list (not for a user message while the mailbox is paused).
    fn account_queued(&self, q: &mut Queue<M>, system: bool) {
        self.stage.budget_add(Self::MESSAGE_BYTES);
        self.store_len(q);
        if !q.scheduled && (system || !q.paused) {
            q.scheduled = true;
            self.stage.push(self.id);
        }
    }

    fn store_len(&self, q: &Queue<M>) {
        let spilled = q.spill.as_ref().map_or(0, SpillFile::len);
        self.len.store(q.items.len() + spilled, Ordering::Release);
        if q.spill.is_some() {
            self.spilled.store(spilled, Ordering::Release);
        }
    }

    /// Whether a message may go to the in-memory queue now (room, nothing spilled before it).
    fn has_room(&self, q: &Queue<M>) -> bool {
        q.items.len() < self.capacity
            && q.spill.as_ref().is_none_or(|s| s.len() == 0)
            && self.stage.budget_allows(Self::MESSAGE_BYTES)
    }

    /// Sends `env` to dead letters with `reason`.
    pub(crate) fn dead_letter(&self, env: Envelope<M>, reason: &str) {
        dead_letter(&self.stage, &self.path, env.msg, reason);
        if let Some(ReplyTo::Ask(tx)) = env.reply {
            drop(tx);
        }
    }

    /// Queues `env` sent by an actor of the same stage: never dropped for room (a spilling
    /// mailbox spills); beyond the capacity the mailbox is marked overfull, and the stage takes
    /// no stream input until it drained below its capacity again.
    pub(crate) fn offer_within(&self, env: Envelope<M>) -> Result<(), TellError> {
        if matches!(self.overflow, ResolvedOverflow::Spill) {
            return self.offer(env);
        }
        let rank = self.rank(&env.msg);
        let mut q = lock(&self.queue);
        if q.closed {
            drop(q);
            self.dead_letter(env, reason::STOPPED);
            return Err(self.stopped());
        }
        if !self.has_room(&q) && !q.overfull {
            q.overfull = true;
            self.stage.overfull.fetch_add(1, Ordering::AcqRel);
        }
        self.enqueue(&mut q, env, rank);
        Ok(())
    }

    /// Clears the overfull mark once the queue is below its capacity (waking the stage, which
    /// may take input again).
    fn settle_overfull(&self, q: &mut Queue<M>) {
        if q.overfull && (q.closed || q.items.len() < self.capacity) {
            q.overfull = false;
            self.stage.overfull.fetch_sub(1, Ordering::AcqRel);
            self.stage.waker.wake();
        }
    }

    /// Whether `self` and `other` belong to the same stage.
    pub(crate) fn same_stage<N>(&self, other: &Mailbox<N>) -> bool {
        Arc::ptr_eq(&self.stage, &other.stage)
    }

    /// Queues `env`, applying the overflow policy when full.
    pub(crate) fn offer(&self, env: Envelope<M>) -> Result<(), TellError> {
        let rank = self.rank(&env.msg);
        let mut q = lock(&self.queue);
        if q.closed {
            drop(q);
            self.dead_letter(env, reason::STOPPED);
            return Err(self.stopped());
        }
        if self.has_room(&q) {
            self.enqueue(&mut q, env, rank);
            return Ok(());
        }
        self.stage.pressure.overflows.add(1);
        match &self.overflow {
            ResolvedOverflow::Spill => {
                let Some(spill) = q.spill.as_mut() else {
                    return Err(self.stopped());
                };
                match spill.push(env) {
                    Ok(()) => {
                        self.spilled_total.fetch_add(1, Ordering::AcqRel);
                        self.store_len(&q);
                        Ok(())
                    }
                    Err((env, e)) => {
                        drop(q);
                        let why = match e {
                            SpillError::Full { .. } => reason::SPILL_FULL.to_owned(),
                            e => format!("{}: {e}", reason::SPILL_FAILED),
                        };
                        self.dead_letter(env, &why);
                        Err(TellError::Full {
                            actor: self.path.to_string(),
                        })
                    }
                }
            }
            ResolvedOverflow::DropNew => {
                drop(q);
                self.dead_letter(env, reason::MAILBOX_FULL);
                Err(TellError::Full {
                    actor: self.path.to_string(),
                })
            }
            ResolvedOverflow::DropOld => {
                let Some(old) = q.items.evict() else {
                    // Out of budget with nothing of its own to drop: the new one goes.
                    drop(q);
                    self.dead_letter(env, reason::MAILBOX_FULL);
                    return Err(TellError::Full {
                        actor: self.path.to_string(),
                    });
                };
                self.stage.budget_sub(Self::MESSAGE_BYTES);
                self.enqueue(&mut q, env, rank);
                drop(q);
                self.dead_letter(old, reason::DROPPED_OLDEST);
                Ok(())
            }
            ResolvedOverflow::Fail => {
                drop(q);
                let err = TellError::Overflowed {
                    actor: self.path.to_string(),
                };
                self.dead_letter(env, reason::OVERFLOWED);
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
        let rank = self.rank(&env.msg);
        let mut env = Some(env);
        let mut waited = false;
        poll_fn(|cx| {
            let mut q = lock(&self.queue);
            if q.closed {
                drop(q);
                if let Some(e) = env.take() {
                    self.dead_letter(e, reason::STOPPED);
                }
                return Poll::Ready(Err(self.stopped()));
            }
            if self.has_room(&q) {
                if let Some(e) = env.take() {
                    self.enqueue(&mut q, e, rank);
                }
                return Poll::Ready(Ok(()));
            }
            if !std::mem::replace(&mut waited, true) {
                self.stage.pressure.waits.add(1);
            }
            self.wait_for_room(&mut q, cx);
            Poll::Pending
        })
        .await
    }

    /// Keeps `cx`'s waker to be woken when the full mailbox (or the stage's budget) has room.
    fn wait_for_room(&self, q: &mut Queue<M>, cx: &mut Context<'_>) {
        if !q.senders.iter().any(|w| w.will_wake(cx.waker())) {
            q.senders.push(cx.waker().clone());
        }
        if self.stage.budget_wait(cx.waker()) && self.has_room(q) {
            // Budget freed meanwhile by another mailbox of the stage.
            cx.waker().wake_by_ref();
        }
    }

    /// Queues the front of `envs` while the mailbox has room, under one lock: `Ready(Ok)` once
    /// at least one went (or `envs` is empty), `Pending` with the waker kept while it is full,
    /// `Ready(Err)` when the actor stopped (`envs` left as they are).
    pub(crate) fn poll_send_many(
        &self,
        envs: &mut VecDeque<Envelope<M>>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), TellError>> {
        let ranks: Vec<u8> = match &self.priority {
            Some(f) => envs.iter().map(|e| f(&e.msg)).collect(),
            None => Vec::new(),
        };
        let mut q = lock(&self.queue);
        if q.closed {
            return Poll::Ready(Err(self.stopped()));
        }
        let mut sent = envs.is_empty();
        let mut i = 0;
        while self.has_room(&q) {
            let Some(e) = envs.pop_front() else { break };
            self.enqueue(&mut q, e, ranks.get(i).copied());
            i += 1;
            sent = true;
        }
        if sent {
            return Poll::Ready(Ok(()));
        }
        self.stage.pressure.waits.add(1);
        self.wait_for_room(&mut q, cx);
        Poll::Pending
    }

    /// Moves at most `max` messages into `into`; clears the scheduled mark when it empties.
    pub(crate) fn drain_into(&self, into: &mut VecDeque<Envelope<M>>, max: usize) {
        let room = self.drain_locked(into, max);
        if let Some(hook) = room {
            hook();
        }
    }

    /// [`Mailbox::drain_into`] under the lock; the room hook to run once it is released.
    fn drain_locked(&self, into: &mut VecDeque<Envelope<M>>, max: usize) -> Option<CloseHook> {
        let mut q = lock(&self.queue);
        let available = |q: &Queue<M>| {
            if q.paused {
                q.items.system_len()
            } else {
                q.items.len()
            }
        };
        let n = available(&q).min(max);
        q.items.drain_into(into, n);
        self.stage.budget_sub(n * Self::MESSAGE_BYTES);
        if n > 0 && q.spill.as_ref().is_some_and(|s| s.len() > 0) {
            self.refill(&mut q);
        }
        self.store_len(&q);
        self.settle_overfull(&mut q);
        if available(&q) == 0 {
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
        if n > 0 && q.items.len() < self.capacity {
            q.on_room.take()
        } else {
            None
        }
    }

    /// Runs `hook` once a drain leaves the queue below its capacity (at once when it is below
    /// already; never once it is closed). A second hook replaces the first.
    pub(crate) fn on_room(&self, hook: CloseHook) {
        let mut q = lock(&self.queue);
        if q.closed {
            return;
        }
        if q.items.len() < self.capacity && q.spill.as_ref().is_none_or(|s| s.len() == 0) {
            drop(q);
            hook();
        } else {
            q.on_room = Some(hook);
        }
    }

    /// Reads spilled messages back into the in-memory queue while it has room; a message that
    /// does not read back fails the stage (naming the actor).
    fn refill(&self, q: &mut Queue<M>) {
        while q.items.len() < self.capacity {
            let Some(r) = q.spill.as_mut().and_then(SpillFile::pop) else {
                break;
            };
            match r {
                Ok(env) => {
                    let rank = self.rank(&env.msg);
                    q.items.push(env, rank);
                    self.stage.budget_add(Self::MESSAGE_BYTES);
                }
                Err(e) => {
                    let msg = format!("actor '{}': {}: {e}", self.path, reason::SPILL_FAILED);
                    tracing::warn!(actor = %self.path, error = %e, "mailbox spill read failed");
                    self.stage.fail(StageError::internal(msg));
                    break;
                }
            }
        }
    }

    /// Closes the mailbox: queued, spilled and later messages go to dead letters (the spill
    /// file is removed), then the close hooks run (once).
    pub(crate) fn close(&self) {
        let (items, spilled, senders, hooks) = {
            let mut q = lock(&self.queue);
            q.closed = true;
            q.on_room = None;
            self.settle_overfull(&mut q);
            self.len.store(0, Ordering::Release);
            let items = q.items.take_all();
            self.stage.budget_sub(items.len() * Self::MESSAGE_BYTES);
            let mut spilled = Vec::new();
            if let Some(s) = q.spill.as_mut() {
                while let Some(r) = s.pop() {
                    match r {
                        Ok(env) => spilled.push(env),
                        Err(e) => {
                            tracing::warn!(actor = %self.path, error = %e, "a spilled message did not read back");
                        }
                    }
                }
                s.remove();
                self.spilled.store(0, Ordering::Release);
            }
            (
                items,
                spilled,
                std::mem::take(&mut q.senders),
                std::mem::take(&mut q.on_close),
            )
        };
        for w in senders {
            w.wake();
        }
        for env in items.into_iter().chain(spilled) {
            self.dead_letter(env, reason::STOPPED);
        }
        for hook in hooks {
            hook();
        }
    }

    /// Hands the actor only the runtime's notices until [`Mailbox::resume_user`]: its user
    /// messages stay queued, so the mailbox fills and senders wait (or overflow) behind them.
    pub(crate) fn pause_user(&self) {
        lock(&self.queue).paused = true;
    }

    /// Hands the actor its user messages again (scheduling it when some wait).
    pub(crate) fn resume_user(&self) {
        let mut q = lock(&self.queue);
        q.paused = false;
        if !q.items.is_empty() && !q.scheduled && !q.closed {
            q.scheduled = true;
            self.stage.push(self.id);
        }
    }

    /// Runs `hook` when the mailbox closes; at once when it is closed already.
    pub(crate) fn on_close(&self, hook: CloseHook) {
        let mut q = lock(&self.queue);
        if q.closed {
            drop(q);
            hook();
        } else {
            q.on_close.push(hook);
        }
    }

    /// Queues a notice from the runtime (a watched actor terminated) even when the mailbox is
    /// full, ahead of every user message already queued (as Akka's system messages are);
    /// dropped silently once the mailbox is closed.
    pub(crate) fn offer_notice(&self, msg: M) {
        let mut q = lock(&self.queue);
        if !q.closed {
            q.items.push_system(Envelope::plain(msg));
            self.account_queued(&mut q, true);
        }
    }

    /// The actor's path.
    pub(crate) fn path(&self) -> &Arc<str> {
        &self.path
    }

    /// Messages waiting (in memory and spilled).
    pub(crate) fn queued(&self) -> usize {
        self.len.load(Ordering::Acquire)
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
    let sink = stage
        .hooks()
        .and_then(|h| Some((&h.stage, h.dead_letters.as_ref()?)));
    let letters = stage.letters.get();
    if sink.is_none() && letters.is_none() {
        return;
    }
    // A reply nobody took comes boxed already: record what is inside.
    let boxed: Box<dyn Any + Send> = Box::new(msg);
    let boxed = match boxed.downcast::<Box<dyn Any + Send>>() {
        Ok(inner) => *inner,
        Err(b) => b,
    };
    let repr = weir_graph::render_any(&*boxed);
    let mut element = Some(boxed);
    if let Some((path, dl)) = sink {
        dl.send(DeadLetter {
            stage: path.to_string(),
            error: StageError::user(format!("actor '{actor}': {reason}")),
            element: element.take(),
            repr: repr.clone(),
        });
    }
    if let Some((path, letters)) = letters {
        letters.record(Undelivered {
            stage: path.to_string(),
            actor: actor.to_owned(),
            reason: reason.to_owned(),
            repr,
            message: element,
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
        Pressure::of(self.len(), self.capacity())
    }
    /// Whether the actor stopped (its mailbox is closed).
    pub fn is_stopped(&self) -> bool {
        self.0.is_closed()
    }
    /// Bytes one queued message counts for in a stage's mailbox budget
    /// ([`Props::with_mailbox_budget`](super::Props::with_mailbox_budget)).
    pub fn message_bytes() -> usize {
        Mailbox::<M>::MESSAGE_BYTES
    }
    /// Bytes queued in the mailboxes of this actor's stage (0 when it has no budget).
    pub fn stage_mailbox_bytes(&self) -> usize {
        self.0.stage.budget_used()
    }
    /// Messages of a spilling mailbox waiting on disk now (0 for other mailboxes).
    pub fn spilled(&self) -> usize {
        self.0.spilled.load(Ordering::Acquire)
    }
    /// Messages a spilling mailbox wrote to disk since the actor started.
    pub fn spilled_total(&self) -> u64 {
        self.0.spilled_total.load(Ordering::Acquire)
    }
    /// Delivers `msg` once after `delay` on the run's clock (counted from the stage's start
    /// when it has not started), as `try_tell` would. The handle cancels it; it is cancelled
    /// when the actor's stage stops, and the message goes to dead letters at once when the
    /// actor stopped already.
    pub fn send_after(&self, msg: M, delay: Duration) -> ScheduleHandle {
        if self.0.is_closed() {
            let _ = self.0.offer(Envelope::plain(msg));
            return ScheduleHandle::cancelled();
        }
        let weak = Arc::downgrade(&self.0);
        let mut msg = Some(msg);
        let deliver = Box::new(move || match (weak.upgrade(), msg.take()) {
            (Some(m), Some(x)) => {
                let _ = m.offer(Envelope::plain(x));
                !m.is_closed()
            }
            _ => false,
        });
        self.0
            .stage
            .schedule(delay, None, deliver)
            .unwrap_or_else(ScheduleHandle::cancelled)
    }
    /// Delivers `make()` every `interval` on the run's clock (the first one interval from now),
    /// as `try_tell` would, until the handle cancels it, the actor stops or its stage stops.
    pub fn send_interval(
        &self,
        mut make: impl FnMut() -> M + Send + 'static,
        interval: Duration,
    ) -> ScheduleHandle {
        if self.0.is_closed() {
            return ScheduleHandle::cancelled();
        }
        let weak = Arc::downgrade(&self.0);
        let deliver = Box::new(move || match weak.upgrade() {
            Some(m) if !m.is_closed() => {
                let _ = m.offer(Envelope::plain(make()));
                !m.is_closed()
            }
            _ => false,
        });
        let interval = interval.max(Duration::from_nanos(1));
        self.0
            .stage
            .schedule(interval, Some(interval), deliver)
            .unwrap_or_else(ScheduleHandle::cancelled)
    }
}

/// An actor's reply address: its mailbox, held weakly, so a sender's address kept in an
/// envelope or in the actor's own state never counts as a ref to it (a `Source::actor` still
/// completes when the last real ref goes).
struct ReplyAddress<M> {
    mailbox: std::sync::Weak<Mailbox<M>>,
    path: Arc<str>,
}

impl<M: Send + 'static> AnyRef for ReplyAddress<M> {
    fn tell_any(&self, msg: Box<dyn Any + Send>) -> Result<(), Box<dyn Any + Send>> {
        let m = msg.downcast::<M>()?;
        match self.mailbox.upgrade() {
            // A reply that does not fit is dropped by the policy (to dead letters).
            Some(mb) => {
                let _ = mb.offer(Envelope::plain(*m));
            }
            None => tracing::debug!(actor = %self.path, "reply to an actor whose stage is gone"),
        }
        Ok(())
    }
    fn path(&self) -> &str {
        &self.path
    }
}

impl<M: Send + 'static> Mailbox<M> {
    /// The reply address of this mailbox's actor.
    pub(crate) fn reply_address(this: &Arc<Self>) -> Arc<dyn AnyRef> {
        Arc::new(ReplyAddress {
            mailbox: Arc::downgrade(this),
            path: Arc::clone(&this.path),
        })
    }
}
