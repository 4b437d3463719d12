//! The event-sourced stage: entities by persistence id, recovered on their first command, the
//! events of a batch appended atomically before the batch's replies go downstream.

use super::effect::{Effect, EventSourced};
use std::collections::HashMap;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use weir_graph::{Flow, FlowLogic, StageCx, StageError};
use weir_state::journal::{AtomicWrite, Journal, JournalError, NewEvent};

/// Entities kept in memory per subtask by default.
pub const DEFAULT_MAX_ENTITIES: usize = 100_000;

/// Events read per journal call while recovering an entity.
const RECOVERY_CHUNK: usize = 1024;

type Position<C> = Arc<dyn Fn(&C) -> Option<u64> + Send + Sync>;

/// How an event-sourced stage dedups commands and snapshots its entities.
pub struct EventSourcedSettings<C> {
    position: Option<Position<C>>,
    snapshot_every: Option<u64>,
    parallelism: usize,
    max_entities: usize,
}

impl<C> Clone for EventSourcedSettings<C> {
    fn clone(&self) -> Self {
        Self {
            position: self.position.clone(),
            snapshot_every: self.snapshot_every,
            parallelism: self.parallelism,
            max_entities: self.max_entities,
        }
    }
}

impl<C> Default for EventSourcedSettings<C> {
    fn default() -> Self {
        Self {
            position: None,
            snapshot_every: None,
            parallelism: 1,
            max_entities: DEFAULT_MAX_ENTITIES,
        }
    }
}

impl<C> fmt::Debug for EventSourcedSettings<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventSourcedSettings")
            .field("dedup", &self.position.is_some())
            .field("snapshot_every", &self.snapshot_every)
            .field("parallelism", &self.parallelism)
            .field("max_entities", &self.max_entities)
            .finish()
    }
}

impl<C> EventSourcedSettings<C> {
    /// Commands carry a position increasing per persistence id (a source offset, a command
    /// number); a command at or below the last one its entity applied is not applied again.
    pub fn command_position(
        mut self,
        f: impl Fn(&C) -> Option<u64> + Send + Sync + 'static,
    ) -> Self {
        self.position = Some(Arc::new(f));
        self
    }
    /// Runs the entities as `n` subtasks (at least 1) behind a hash edge on the persistence id
    /// (shards: each subtask owns the ids of its key groups). The stage keeps no state of its
    /// own, so a run restored at another parallelism simply routes the ids anew.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
    /// Keeps at most about `n` entities in memory per subtask; beyond it, entities the last
    /// batch did not touch are dropped (recovered from the journal on their next command).
    pub fn max_entities(mut self, n: usize) -> Self {
        self.max_entities = n.max(1);
        self
    }
    /// Saves an entity's snapshot every `n` events (recovery then replays at most `n - 1`).
    pub fn snapshot_every(mut self, n: u64) -> Self {
        self.snapshot_every = Some(n.max(1));
        self
    }
}

/// Runs the entities of `behavior`, one per persistence id, persisting their events to
/// `journal` (see the module docs).
///
/// - **emits when** the events of the commands of a batch are persisted: their replies, in
///   command order
/// - **backpressures when** downstream backpressures (a batch is persisted before its replies
///   are emitted)
/// - **completes when** upstream completes
/// - **cancels when** downstream cancels
/// - **fails when** the journal fails an append (the entities of that batch are recovered again
///   from the journal on their next command, so nothing half-written is applied; each command
///   of the batch that persisted events gets [`EventSourced::on_persist_failed`]'s reply) under
///   the stop supervision, or a command handler fails under the stop supervision; an entity whose recovery fails (a corrupt entry)
///   fails its commands with an error naming the persistence id and sequence number, under the
///   stage's supervision, while other entities go on
pub fn event_sourced<E: EventSourced>(
    behavior: E,
    journal: Arc<dyn Journal>,
    settings: EventSourcedSettings<E::Command>,
) -> Flow<E::Command, E::Reply> {
    let behavior = Arc::new(behavior);
    let parallelism = settings.parallelism;
    let route = Arc::clone(&behavior);
    let stage = Flow::from_logic("event-sourced", move |_| {
        Ok((
            EventSourcedLogic {
                behavior: Arc::clone(&behavior),
                journal: Arc::clone(&journal),
                settings: settings.clone(),
                entities: HashMap::new(),
                applying: None,
            },
            (),
        ))
    });
    if parallelism == 1 {
        return stage;
    }
    crate::simple::map(|c: E::Command| c)
        .partition_by_hash(move |c: &E::Command| {
            route
                .persistence_id(c)
                .map_or(0, |p| weir_graph::stable_hash_of(&p))
        })
        .via(stage.parallelism(parallelism))
}

struct Entity<S> {
    state: S,
    /// Highest sequence number persisted (or about to be, within a batch).
    seq: u64,
    applied: Option<u64>,
    /// Events since the last snapshot.
    since_snapshot: u64,
}

struct EventSourcedLogic<E: EventSourced> {
    behavior: Arc<E>,
    journal: Arc<dyn Journal>,
    settings: EventSourcedSettings<E::Command>,
    entities: HashMap<String, Entity<E::State>>,
    /// The entity whose events are being applied (dropped if the event handler panics).
    applying: Option<String>,
}

/// What handling the commands of one batch produced, persisted at its end.
struct Pending<R> {
    writes: Vec<AtomicWrite>,
    replies: Vec<R>,
    snapshots: Vec<String>,
    /// Entities to drop from memory once the batch is persisted.
    stops: Vec<String>,
}

impl<R> Default for Pending<R> {
    fn default() -> Self {
        Self {
            writes: Vec::new(),
            replies: Vec::new(),
            snapshots: Vec::new(),
            stops: Vec::new(),
        }
    }
}

fn journal_error(e: JournalError) -> StageError {
    StageError::from_error(e)
}

impl<E: EventSourced> EventSourcedLogic<E> {
    /// Loads the latest snapshot of `pid` and replays the events after it.
    fn recover(&self, pid: &str) -> Result<Entity<E::State>, StageError> {
        let j = &self.journal;
        let (mut state, mut seq) = match j.load_snapshot(pid).map_err(journal_error)? {
            Some(s) => {
                let state = postcard::from_bytes(&s.state).map_err(|e| {
                    journal_error(JournalError::Corrupt {
                        pid: pid.to_owned(),
                        seq: s.seq,
                        message: format!("snapshot does not decode: {e}"),
                    })
                })?;
                (state, s.seq)
            }
            None => (E::State::default(), 0),
        };
        let mut replayed = 0u64;
        loop {
            let chunk = j
                .read(pid, seq + 1, RECOVERY_CHUNK)
                .map_err(journal_error)?;
            let n = chunk.len();
            for entry in chunk {
                let event = self
                    .behavior
                    .decode_event(&entry.payload)
                    .map_err(|message| {
                        journal_error(JournalError::Corrupt {
                            pid: pid.to_owned(),
                            seq: entry.seq,
                            message: format!("event does not decode: {message}"),
                        })
                    })?;
                self.behavior.apply(&mut state, &event).map_err(|e| {
                    journal_error(JournalError::Corrupt {
                        pid: pid.to_owned(),
                        seq: entry.seq,
                        message: format!("the event handler failed on it: {}", e.message()),
                    })
                })?;
                seq = entry.seq;
                replayed += 1;
            }
            if n < RECOVERY_CHUNK {
                break;
            }
        }
        let highest = j.highest_seq(pid).map_err(journal_error)?;
        if seq != highest {
            return Err(journal_error(JournalError::Corrupt {
                pid: pid.to_owned(),
                seq: seq + 1,
                message: format!("missing: the journal's highest sequence is {highest}"),
            }));
        }
        Ok(Entity {
            state,
            seq,
            applied: j.last_applied(pid).map_err(journal_error)?,
            since_snapshot: replayed,
        })
    }

    /// Handles one command into `pending`.
    fn handle(
        &mut self,
        cmd: E::Command,
        pending: &mut Pending<E::Reply>,
    ) -> Result<(), StageError> {
        let pid = self.behavior.persistence_id(&cmd)?;
        if !self.entities.contains_key(&pid) {
            let e = self.recover(&pid)?;
            if let Some(r) = self.behavior.on_recovered(&pid, &e.state, e.seq) {
                pending.replies.push(r);
            }
            self.entities.insert(pid.clone(), e);
        }
        let position = self.settings.position.as_ref().and_then(|f| f(&cmd));
        let Some(entity) = self.entities.get_mut(&pid) else {
            return Ok(());
        };
        if let (Some(p), Some(a)) = (position, entity.applied)
            && p <= a
        {
            pending
                .replies
                .extend(self.behavior.on_duplicate(&entity.state, &cmd));
            return Ok(());
        }
        let Effect {
            events,
            reply,
            snapshot,
            stop,
        } = self.behavior.command(&entity.state, cmd)?;
        if stop {
            pending.stops.push(pid.clone());
        }
        let mut stored = Vec::with_capacity(events.len());
        for ev in &events {
            let payload = self.behavior.encode_event(ev).map_err(|e| {
                StageError::user(format!(
                    "persistence id '{pid}': cannot encode an event: {e}"
                ))
            })?;
            stored.push(NewEvent {
                payload,
                tags: self.behavior.tags(ev),
            });
        }
        let expected = entity.seq;
        self.applying = Some(pid.clone());
        for ev in &events {
            self.behavior.apply(&mut entity.state, ev)?;
        }
        self.applying = None;
        entity.seq += events.len() as u64;
        entity.since_snapshot += events.len() as u64;
        if position.is_some() {
            entity.applied = position;
        }
        if !stored.is_empty() || position.is_some() {
            pending.writes.push(AtomicWrite {
                pid: pid.clone(),
                expected_seq: expected,
                events: stored,
                applied: position,
            });
        }
        let due = self
            .settings
            .snapshot_every
            .is_some_and(|n| entity.since_snapshot >= n);
        if (snapshot || due) && !pending.snapshots.contains(&pid) {
            pending.snapshots.push(pid);
        }
        pending.replies.extend(reply);
        Ok(())
    }

    /// Appends what `pending` holds and emits its replies; on a failed append the entities it
    /// touched are dropped (recovered from the journal on their next command).
    fn persist(
        &mut self,
        pending: Pending<E::Reply>,
        out: &mut Vec<E::Reply>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if !pending.writes.is_empty()
            && let Err(e) = self.journal.append(&pending.writes)
        {
            let e = journal_error(e);
            for w in &pending.writes {
                self.entities.remove(&w.pid);
                if !w.events.is_empty() {
                    out.extend(self.behavior.on_persist_failed(&w.pid, &e));
                }
            }
            // Nothing of the batch was written: its replies are not sent, the entities it
            // touched recover from the journal, and the stage's supervision decides.
            return scx.element_failed(e, None, None);
        }
        for pid in pending.snapshots {
            if let Some(e) = self.entities.get_mut(&pid) {
                let bytes = postcard::to_allocvec(&e.state).map_err(|err| {
                    StageError::user(format!(
                        "persistence id '{pid}': cannot encode its state: {err}"
                    ))
                })?;
                self.journal
                    .save_snapshot(&pid, e.seq, &bytes)
                    .map_err(journal_error)?;
                e.since_snapshot = 0;
            }
        }
        out.extend(pending.replies);
        for pid in &pending.stops {
            self.entities.remove(pid);
        }
        if self.entities.len() > self.settings.max_entities {
            // Keep the entities this batch touched; the others recover from the journal.
            let keep: std::collections::HashSet<&str> =
                pending.writes.iter().map(|w| w.pid.as_str()).collect();
            let target = self.settings.max_entities * 3 / 4;
            let drop: Vec<String> = self
                .entities
                .keys()
                .filter(|p| !keep.contains(p.as_str()))
                .take(self.entities.len().saturating_sub(target))
                .cloned()
                .collect();
            for p in drop {
                self.entities.remove(&p);
            }
        }
        Ok(())
    }
}

impl<E: EventSourced> FlowLogic<E::Command, E::Reply> for EventSourcedLogic<E> {
    fn on_batch(
        &mut self,
        input: &mut Vec<E::Command>,
        out: &mut Vec<E::Reply>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let mut pending = Pending::default();
        let mut rest = std::mem::take(input).into_iter();
        while let Some(cmd) = rest.next() {
            let r = catch_unwind(AssertUnwindSafe(|| self.handle(cmd, &mut pending)))
                .unwrap_or_else(|p| {
                    Err(StageError::user(format!(
                        "event handler panicked: {}",
                        weir_graph::panic_message(&*p)
                    )))
                });
            match r {
                Ok(()) if !pending.stops.is_empty() => {
                    // A stopped entity leaves memory now: what the batch did so far is persisted
                    // first, so its next command recovers all of it.
                    self.persist(std::mem::take(&mut pending), out, scx)?;
                }
                Ok(()) => {}
                Err(e) => {
                    // An event handler that panicked half-way moved its entity's state: drop
                    // the entity and persist what came before, so its next command recovers
                    // exactly what was written.
                    if let Some(pid) = self.applying.take() {
                        self.entities.remove(&pid);
                        self.persist(std::mem::take(&mut pending), out, scx)?;
                    }
                    if let Err(e) = scx.element_failed(e, None, None) {
                        input.extend(rest);
                        self.persist(pending, out, scx)?;
                        return Err(e);
                    }
                }
            }
        }
        self.persist(pending, out, scx)
    }
}
