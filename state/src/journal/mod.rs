//! The event journal of event-sourced entities: per persistence id, gapless sequence numbers
//! written in atomic batches with a checksum per entry, snapshots, a tag index with a global
//! offset, and the position of the last command each persistence id applied (so a command
//! replayed after a crash is recognised and not persisted twice). See
//! `docs/adr/0002-shard-regions-and-persistence.md`.
//!
//! [`InMemoryJournal`] is here; `weir-state-rocksdb` has the RocksDB journal. Both pass the
//! shared conformance suite (`state/tests/journal_suite`).

mod entry;
mod memory;
mod watch;

pub use entry::{
    AtomicWrite, JournalEntry, JournalError, NewEvent, SnapshotEntry, TaggedEntry, decode_entry,
    encode_entry,
};
pub use memory::InMemoryJournal;
pub use watch::JournalWatch;

/// Where event-sourced entities persist their events.
pub trait Journal: Send + Sync {
    /// Writes every write of `writes` in one atomic batch: all of them or none. Each write's
    /// events get the sequence numbers after its `expected_seq`, which must be the persistence
    /// id's highest sequence number now (else [`JournalError::SequenceConflict`]).
    fn append(&self, writes: &[AtomicWrite]) -> Result<(), JournalError>;
    /// The highest sequence number of `pid` (0 when it has no event).
    fn highest_seq(&self, pid: &str) -> Result<u64, JournalError>;
    /// At most `max` events of `pid` with `from_seq <= seq`, in order; a corrupt entry fails
    /// with [`JournalError::Corrupt`] naming the persistence id and sequence number.
    fn read(&self, pid: &str, from_seq: u64, max: usize)
    -> Result<Vec<JournalEntry>, JournalError>;
    /// Saves the state of `pid` as of sequence number `seq` (replacing an older snapshot).
    fn save_snapshot(&self, pid: &str, seq: u64, state: &[u8]) -> Result<(), JournalError>;
    /// The latest snapshot of `pid`.
    fn load_snapshot(&self, pid: &str) -> Result<Option<SnapshotEntry>, JournalError>;
    /// The command position `pid` applied last (written with its events, see
    /// [`AtomicWrite::applied`]).
    fn last_applied(&self, pid: &str) -> Result<Option<u64>, JournalError>;
    /// At most `max` events tagged `tag` with a global offset `>= from_offset`, in offset order.
    fn events_by_tag(
        &self,
        tag: &str,
        from_offset: u64,
        max: usize,
    ) -> Result<Vec<TaggedEntry>, JournalError>;
    /// Deletes the events of `pid` up to and including `seq` (after a snapshot covers them); the
    /// highest sequence number is kept.
    fn delete_up_to(&self, pid: &str, seq: u64) -> Result<(), JournalError>;
    /// Wakes live queries after every append.
    fn watch(&self) -> &JournalWatch;
}
