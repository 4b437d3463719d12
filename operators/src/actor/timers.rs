//! Actor timers on the run's clock: one deadline heap per stage, entries checked against the
//! owning actor's current timer generation, so a cancelled or replaced timer never fires.

use super::props::ActorId;
use std::borrow::Cow;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::time::Duration;

/// Names a timer of one actor; scheduling a key again replaces its timer.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerKey(pub Cow<'static, str>);

impl fmt::Debug for TimerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TimerKey({})", self.0)
    }
}

impl From<&'static str> for TimerKey {
    fn from(s: &'static str) -> Self {
        Self(Cow::Borrowed(s))
    }
}

impl From<String> for TimerKey {
    fn from(s: String) -> Self {
        Self(Cow::Owned(s))
    }
}

/// What a due heap entry is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKind {
    /// A user timer of the actor.
    User(TimerKey),
    /// A restart delayed by the parent's backoff.
    Restart,
    /// The timeout of a selective receive.
    Receive,
}

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Entry {
    at: Duration,
    seq: u64,
    actor: ActorId,
    generation: u64,
    kind: TimerKind,
}

/// The deadlines of every timer of one stage.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<Entry>>,
    seq: u64,
}

/// A due timer.
#[derive(Debug)]
pub(crate) struct Due {
    pub(crate) actor: ActorId,
    pub(crate) generation: u64,
    pub(crate) kind: TimerKind,
    pub(crate) at: Duration,
}

impl Timers {
    /// A fresh generation number (timers of one actor compare theirs against it).
    pub(crate) fn next_generation(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }
    /// Adds a deadline.
    pub(crate) fn push(&mut self, at: Duration, actor: ActorId, generation: u64, kind: TimerKind) {
        self.seq += 1;
        self.heap.push(Reverse(Entry {
            at,
            seq: self.seq,
            actor,
            generation,
            kind,
        }));
    }
    /// The earliest deadline.
    pub(crate) fn next_at(&self) -> Option<Duration> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }
    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Duration) -> Option<Due> {
        if self.next_at()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(e)| Due {
            actor: e.actor,
            generation: e.generation,
            kind: e.kind,
            at: e.at,
        })
    }
    /// Whether a restart of some actor is pending.
    pub(crate) fn restart_pending(&self) -> bool {
        self.heap
            .iter()
            .any(|Reverse(e)| e.kind == TimerKind::Restart)
    }
}
