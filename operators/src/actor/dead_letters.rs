//! [`DeadLetters`]: what the actors of a run could not deliver, with the reason, as a stream.
//!
//! Make one with a capacity, put its [`DeadLetters::service`] on the materializer
//! (`Materializer::with_service`): every actor stage of that run then records its undelivered
//! messages in it, and [`DeadLetters::source`] (or `Source::dead_letters()` inside the same run)
//! emits them. The buffer is bounded: when it is full, a new record is dropped and counted
//! ([`DeadLetters::dropped`]); senders never wait for it.

use std::any::Any;
use std::collections::VecDeque;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use weir_graph::{DeadLetter, DeadLetterSink, Source, SourceLogic, StageCx, StageError, Step};

/// The reasons actor stages give for a dead letter.
pub mod reason {
    /// The actor stopped (or its stage ended) before the message was handled.
    pub const STOPPED: &str = "actor stopped";
    /// The mailbox was full under `Overflow::DropNew` (or `Redirect` to a full mailbox).
    pub const MAILBOX_FULL: &str = "mailbox full";
    /// The mailbox was full under `Overflow::DropOld`: this, its oldest message, made room.
    pub const DROPPED_OLDEST: &str = "mailbox full: dropped the oldest message";
    /// The mailbox was full under `Overflow::Fail` (the stage fails).
    pub const OVERFLOWED: &str = "mailbox overflowed";
    /// The mailbox's spill file was at its `max_bytes`.
    pub const SPILL_FULL: &str = "spill full";
    /// The message could not be written to (or read back from) the spill file.
    pub const SPILL_FAILED: &str = "spill failed";
    /// `ctx.reply` for a message that had no sender.
    pub const NO_SENDER: &str = "reply without a sender";
    /// `ctx.reply` with a value the sending actor does not take.
    pub const REPLY_TYPE: &str = "reply of another type than the sender's messages";
    /// `ctx.stash` with a full stash.
    pub const STASH_FULL: &str = "stash full";
}

/// One message that could not be delivered.
pub struct Undelivered {
    /// Path of the stage it was sent into.
    pub stage: String,
    /// Path of the actor it was for (empty for a stage's supervision dead letter).
    pub actor: String,
    /// Why it was not delivered (one of [`reason`], or a supervision error's message).
    pub reason: String,
    /// The message's `Debug` form, when its type renders.
    pub repr: Option<String>,
    /// The message itself, unless the stage's supervision dead-letter sink took it.
    pub message: Option<Box<dyn Any + Send>>,
}

impl Undelivered {
    /// The message as an `M`, when it is one and was kept.
    pub fn message_as<M: 'static>(&self) -> Option<&M> {
        self.message.as_deref().and_then(|m| m.downcast_ref::<M>())
    }
}

impl fmt::Debug for Undelivered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Undelivered")
            .field("stage", &self.stage)
            .field("actor", &self.actor)
            .field("reason", &self.reason)
            .field("repr", &self.repr)
            .finish()
    }
}

struct State {
    items: VecDeque<Undelivered>,
    capacity: usize,
    dropped: u64,
    closed: bool,
    consumers: Vec<Waker>,
}

impl State {
    fn wait(&mut self, cx: &Context<'_>) {
        if !self.consumers.iter().any(|w| w.will_wake(cx.waker())) {
            self.consumers.push(cx.waker().clone());
        }
    }
}

/// The buffer every handle and stage shares.
struct Letters(Mutex<State>);

impl Letters {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
    fn close(&self) {
        let mut st = self.lock();
        st.closed = true;
        st.consumers.drain(..).for_each(Waker::wake);
    }
}

/// The run service actor stages record their dead letters in (see [`DeadLetters::service`]).
pub struct DeadLetterService(Arc<Letters>);

impl fmt::Debug for DeadLetterService {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadLetterService")
    }
}

impl DeadLetterService {
    /// Records `u`, or counts it as dropped when the buffer is full or closed.
    pub fn record(&self, u: Undelivered) {
        let mut st = self.0.lock();
        if st.closed || st.items.len() >= st.capacity {
            st.dropped += 1;
            return;
        }
        st.items.push_back(u);
        st.consumers.drain(..).for_each(Waker::wake);
    }
}

/// Closes the buffer when the last user handle goes.
struct Open(Arc<Letters>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.close();
    }
}

/// A bounded buffer of the dead letters of the runs it is a service of, readable as a stream.
/// Dropping every clone closes it (as [`DeadLetters::close`] does).
#[derive(Clone)]
pub struct DeadLetters(Arc<Open>);

impl fmt::Debug for DeadLetters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeadLetters({} buffered)", self.len())
    }
}

impl DeadLetters {
    /// A buffer of at most `capacity` dead letters (at least 1).
    pub fn new(capacity: usize) -> Self {
        Self(Arc::new(Open(Arc::new(Letters(Mutex::new(State {
            items: VecDeque::new(),
            capacity: capacity.max(1),
            dropped: 0,
            closed: false,
            consumers: Vec::new(),
        }))))))
    }
    fn letters(&self) -> &Arc<Letters> {
        &self.0.0
    }
    /// The run service for `Materializer::with_service`: the actor stages of the run record
    /// their dead letters here.
    pub fn service(&self) -> Arc<DeadLetterService> {
        Arc::new(DeadLetterService(Arc::clone(self.letters())))
    }
    /// A supervision dead-letter sink recording here (`Supervision::with_dead_letters`): the
    /// elements other stages drop, with the error's message as the reason.
    pub fn sink(&self) -> DeadLetterSink {
        let service = self.service();
        DeadLetterSink::new(move |d: DeadLetter| {
            service.record(Undelivered {
                stage: d.stage,
                actor: String::new(),
                reason: d.error.message().to_owned(),
                repr: d.repr,
                message: d.element,
            })
        })
    }
    /// Emits the dead letters recorded here, in order.
    ///
    /// - **emits when** a dead letter is buffered and downstream has room
    /// - **backpressures when** never: records beyond the capacity are dropped and counted
    /// - **completes when** the buffer was closed ([`DeadLetters::close`], or every handle
    ///   dropped) and everything buffered was emitted
    /// - **cancels when** downstream cancels (the buffer stays open for other readers)
    /// - **fails when** never
    pub fn source(&self) -> Source<Undelivered, ()> {
        dead_letter_source(Arc::clone(self.letters()))
    }
    /// Stops recording; the sources complete once they emitted what is buffered.
    pub fn close(&self) {
        self.letters().close();
    }
    /// Dead letters buffered and not emitted yet.
    pub fn len(&self) -> usize {
        self.letters().lock().items.len()
    }
    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Dead letters dropped because the buffer was full (or closed).
    pub fn dropped(&self) -> u64 {
        self.letters().lock().dropped
    }
}

fn dead_letter_source(letters: Arc<Letters>) -> Source<Undelivered, ()> {
    Source::from_logic("dead-letters", move |_| {
        Ok((LettersLogic(Arc::clone(&letters)), ()))
    })
}

/// `Source::dead_letters()`.
pub trait DeadLetterSources {
    /// Emits the dead letters of the run's [`DeadLetterService`] (see [`DeadLetters::source`]);
    /// fails to materialize when the run has none.
    fn dead_letters() -> Source<Undelivered, ()>;
}

impl DeadLetterSources for Source<(), ()> {
    fn dead_letters() -> Source<Undelivered, ()> {
        Source::from_logic("dead-letters", |info| {
            let service = info.services.get::<DeadLetterService>().ok_or_else(|| {
                StageError::user(format!(
                    "stage '{}': Source::dead_letters needs a DeadLetters service on the materializer (Materializer::with_service(dead_letters.service()))",
                    info.path
                ))
            })?;
            Ok((LettersLogic(Arc::clone(&service.0)), ()))
        })
    }
}

struct LettersLogic(Arc<Letters>);

impl SourceLogic<Undelivered> for LettersLogic {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<Undelivered>,
    ) -> Poll<Result<Step, StageError>> {
        let mut st = self.0.lock();
        let n = st.items.len().min(scx.batch_size().max(1));
        out.extend(st.items.drain(..n));
        if st.items.is_empty() && st.closed {
            return Poll::Ready(Ok(Step::Done));
        }
        if n > 0 {
            return Poll::Ready(Ok(Step::More));
        }
        st.wait(cx);
        Poll::Pending
    }

    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut st = self.0.lock();
        if st.closed && st.items.is_empty() {
            return Poll::Ready(());
        }
        st.wait(cx);
        Poll::Pending
    }
}
