//! What an event-sourced behaviour is: a command handler returning effects and an event
//! handler folding events into state.

use serde::Serialize;
use serde::de::DeserializeOwned;
use weir_graph::StageError;

/// What handling one command does: events to persist (applied to the state in order once
/// persisted), a reply to emit downstream, and whether to snapshot the state after them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect<E, R> {
    /// Events to persist, in order.
    pub events: Vec<E>,
    /// The reply emitted downstream after the events are persisted.
    pub reply: Option<R>,
    /// Whether to save a snapshot of the state after the events.
    pub snapshot: bool,
    /// Whether the entity stops after this command (it leaves memory; its next command
    /// recovers it from the journal).
    pub stop: bool,
}

impl<E, R> Effect<E, R> {
    /// No event and no reply.
    pub fn none() -> Self {
        Self {
            events: Vec::new(),
            reply: None,
            snapshot: false,
            stop: false,
        }
    }
    /// Persists one event.
    pub fn persist(event: E) -> Self {
        Self::persist_all(vec![event])
    }
    /// Persists every event of `events`, atomically and in order.
    pub fn persist_all(events: Vec<E>) -> Self {
        Self {
            events,
            ..Self::none()
        }
    }
    /// Only a reply.
    pub fn reply(reply: R) -> Self {
        Self::none().then_reply(reply)
    }
    /// This effect, replying `reply` once its events are persisted.
    pub fn then_reply(mut self, reply: R) -> Self {
        self.reply = Some(reply);
        self
    }
    /// This effect, saving a snapshot after its events.
    pub fn then_snapshot(mut self) -> Self {
        self.snapshot = true;
        self
    }
    /// This effect, stopping the entity after it (see [`Effect::stop`]).
    pub fn then_stop(mut self) -> Self {
        self.stop = true;
        self
    }
}

/// An event-sourced behaviour: the same for every entity of a stage, with state per
/// persistence id.
pub trait EventSourced: Send + Sync + 'static {
    /// What the stage receives.
    type Command: Send + 'static;
    /// What it persists (serde: postcard in the journal; [`EventSourced::decode_event`] is the
    /// hook that upgrades old events).
    type Event: Serialize + DeserializeOwned + Send + 'static;
    /// An entity's state (serde for snapshots).
    type State: Default + Serialize + DeserializeOwned + Send + 'static;
    /// What it emits downstream.
    type Reply: Send + 'static;

    /// The persistence id a command is for (an error fails that command).
    fn persistence_id(&self, command: &Self::Command) -> Result<String, StageError>;
    /// Handles a command against its entity's state.
    fn command(
        &self,
        state: &Self::State,
        command: Self::Command,
    ) -> Result<Effect<Self::Event, Self::Reply>, StageError>;
    /// Folds one event into the state (an error fails the command, or the recovery, whose event
    /// it is; the entity is then recovered again from the journal).
    fn apply(&self, state: &mut Self::State, event: &Self::Event) -> Result<(), StageError>;
    /// Tags an event is indexed under (for `events_by_tag`); none by default.
    fn tags(&self, event: &Self::Event) -> Vec<String> {
        let _ = event;
        Vec::new()
    }
    /// Encodes an event for the journal (postcard by default; with [`EventSourced::decode_event`]
    /// the format the journal holds).
    fn encode_event(&self, event: &Self::Event) -> Result<Vec<u8>, String> {
        postcard::to_allocvec(event).map_err(|e| e.to_string())
    }
    /// Decodes a stored event; override to upgrade events written by an older version.
    fn decode_event(&self, bytes: &[u8]) -> Result<Self::Event, String> {
        postcard::from_bytes(bytes).map_err(|e| e.to_string())
    }
    /// Called once an entity is recovered, before its first command (may emit a reply); `seq`
    /// is its highest sequence number (0 for an entity without events).
    fn on_recovered(&self, pid: &str, state: &Self::State, seq: u64) -> Option<Self::Reply> {
        let _ = (pid, state, seq);
        None
    }
    /// The reply to a command whose events the journal refused (a full disk): nothing of its
    /// batch was written, the entity recovers from the journal, and the stage's supervision
    /// decides whether the stage goes on.
    fn on_persist_failed(&self, pid: &str, error: &StageError) -> Option<Self::Reply> {
        let _ = (pid, error);
        None
    }
    /// The reply to a command that was already applied before a restart (not applied again).
    fn on_duplicate(&self, state: &Self::State, command: &Self::Command) -> Option<Self::Reply> {
        let _ = (state, command);
        None
    }
}
