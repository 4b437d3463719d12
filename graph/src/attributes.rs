//! Stage attributes (name, async boundary, parallelism, buffer, supervision, parameter
//! validity) and supervision types.

use crate::StageError;
use std::any::Any;
use std::fmt;
use std::sync::{Arc, Mutex};

/// What to do when a stage's user code fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Directive {
    /// Fail the stage (and the run, unless recovered downstream). The default.
    Stop,
    /// Drop the failing element (to the dead-letter sink) and go on.
    Resume,
    /// Drop the failing element, reset the stage's state and go on.
    Restart,
}

/// An element that a stage dropped under `Resume`/`Restart`, with the error and the stage path.
pub struct DeadLetter {
    /// Path of the stage that failed.
    pub stage: String,
    /// The error user code raised.
    pub error: StageError,
    /// The element itself, when the stage could keep it.
    pub element: Option<Box<dyn Any + Send>>,
    /// A printable form of the element, when known.
    pub repr: Option<String>,
}

impl fmt::Debug for DeadLetter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadLetter")
            .field("stage", &self.stage)
            .field("error", &self.error)
            .field("repr", &self.repr)
            .finish()
    }
}

/// Where dead letters go: a callback shared by every stage that uses it.
#[derive(Clone)]
pub struct DeadLetterSink(Arc<dyn Fn(DeadLetter) + Send + Sync>);

impl DeadLetterSink {
    /// A sink that calls `f` for every dead letter.
    pub fn new(f: impl Fn(DeadLetter) + Send + Sync + 'static) -> Self {
        Self(Arc::new(f))
    }

    /// A sink that collects dead letters into a shared vector.
    pub fn collector() -> (Self, Arc<Mutex<Vec<DeadLetter>>>) {
        let store = Arc::new(Mutex::new(Vec::new()));
        let s2 = Arc::clone(&store);
        let sink = Self::new(move |d| {
            if let Ok(mut v) = s2.lock() {
                v.push(d);
            }
        });
        (sink, store)
    }

    /// Delivers one dead letter.
    pub fn send(&self, d: DeadLetter) {
        (self.0)(d)
    }
}

impl fmt::Debug for DeadLetterSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DeadLetterSink")
    }
}

/// A supervision policy: a decider from error to directive plus an optional dead-letter sink.
#[derive(Clone)]
pub struct Supervision {
    decider: Arc<dyn Fn(&StageError) -> Directive + Send + Sync>,
    dead_letters: Option<DeadLetterSink>,
}

impl Supervision {
    /// A policy deciding with `decider`.
    pub fn new(decider: impl Fn(&StageError) -> Directive + Send + Sync + 'static) -> Self {
        Self {
            decider: Arc::new(decider),
            dead_letters: None,
        }
    }
    /// Always stop (the default).
    pub fn stop() -> Self {
        Self::new(|_| Directive::Stop)
    }
    /// Always resume.
    pub fn resume() -> Self {
        Self::new(|_| Directive::Resume)
    }
    /// Always restart.
    pub fn restart() -> Self {
        Self::new(|_| Directive::Restart)
    }
    /// Sends dropped elements to `sink`.
    pub fn with_dead_letters(mut self, sink: DeadLetterSink) -> Self {
        self.dead_letters = Some(sink);
        self
    }
    /// Decides what to do about `err`.
    pub fn decide(&self, err: &StageError) -> Directive {
        (self.decider)(err)
    }
    /// The dead-letter sink, if any.
    pub fn dead_letters(&self) -> Option<&DeadLetterSink> {
        self.dead_letters.as_ref()
    }
}

impl fmt::Debug for Supervision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Supervision")
            .field("dead_letters", &self.dead_letters.is_some())
            .finish()
    }
}

/// Attributes of one stage in a blueprint.
#[derive(Clone, Debug, Default)]
pub struct Attributes {
    /// Display name (overrides the operator's name).
    pub name: Option<String>,
    /// Explicit stable id (unique in the graph): keys the stage's state across changes of the
    /// graph, instead of the id derived from its upstream topology.
    pub uid: Option<String>,
    /// The edge leaving this stage starts a new island.
    pub async_boundary: bool,
    /// Number of parallel subtasks (default 1).
    pub parallelism: Option<usize>,
    /// Capacity in rows of the channel feeding this stage's island.
    pub buffer_rows: Option<usize>,
    /// Target rows per batch emitted by this stage.
    pub batch_size: Option<usize>,
    /// Supervision policy for the stage's user code.
    pub supervision: Option<Supervision>,
    /// Why a parameter of the stage is out of range (the first one found), reported as
    /// [`GraphError::InvalidParameter`](crate::GraphError::InvalidParameter) when the graph is
    /// validated.
    pub invalid: Option<String>,
    /// The executor the stage's island runs on (`None`: the run's default, normally tokio);
    /// only stages on the same executor fuse.
    pub executor: Option<crate::ExecutorId>,
}

impl Attributes {
    /// Records `reason` as the stage's invalid parameter unless one is already recorded.
    pub fn reject(&mut self, reason: Option<String>) {
        if self.invalid.is_none() {
            self.invalid = reason;
        }
    }
}

/// `Some("{what} must be at least {min}, got {value}")` when `value < min`: the reason a
/// constructor or attribute setter records for an out-of-range size.
pub fn at_least(what: &str, value: usize, min: usize) -> Option<String> {
    (value < min).then(|| format!("{what} must be at least {min}, got {value}"))
}

/// `Some("{what} must be positive, got 0s")` when `value` is zero: the reason a constructor
/// records for a period or window that must be longer than nothing.
pub fn positive(what: &str, value: std::time::Duration) -> Option<String> {
    value
        .is_zero()
        .then(|| format!("{what} must be positive, got {}s", value.as_secs_f64()))
}
