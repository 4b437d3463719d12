//! Event-sourced entities as a stage, and journal queries as sources.
//!
//! An [`EventSourced`] behaviour turns a command into an [`Effect`] (persist events, reply,
//! snapshot) against its entity's state, and folds events into state. [`event_sourced`] runs
//! many entities (one per persistence id) in one stage: every command of an input batch is
//! handled, the events of the whole batch are appended to the [`Journal`] in one atomic batch,
//! and only then do the replies go downstream. An entity is recovered on its first command
//! (latest snapshot, then the later events, then [`EventSourced::on_recovered`]).
//!
//! Commands reach the stage at least once (a replayable source replays those after the last
//! checkpoint); each carries a position ([`EventSourcedSettings::command_position`], increasing
//! per persistence id), stored with its events in the same atomic batch, and a command at or
//! below the stored position is not applied again: events are persisted exactly once. The
//! journal is the state's source of truth, so the stage's checkpoint holds nothing.
//!
//! [`events_by_persistence_id`] and [`events_by_tag`] read the journal as sources, current
//! (complete at the end) or live (woken by appends), resuming from their checkpointed position.

mod effect;
mod query;
mod stage;

pub use effect::{Effect, EventSourced};
pub use query::{Liveness, events_by_persistence_id, events_by_tag};
pub use stage::{EventSourcedSettings, event_sourced};
pub use weir_state::journal::Journal;
