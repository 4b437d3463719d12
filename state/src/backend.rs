//! The storage interface stages see: bytes scoped by key group, state id and key.

use crate::{KeyGroupRange, StateError};
use std::fmt;
use xxhash_rust::xxh3::Xxh3;

/// A stable identifier of one state of one stage (xxh3 of the stage id and the state's name).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StateId(pub u64);

impl StateId {
    /// The id of the state `name` of stage `stage`.
    pub fn new(stage: weir_graph::StageId, name: &str) -> Self {
        let mut h = Xxh3::new();
        h.update(b"state\0");
        h.update(&stage.0.to_le_bytes());
        h.update(name.as_bytes());
        Self(h.digest())
    }
}

impl fmt::Display for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for StateId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StateId({self})")
    }
}

/// The frozen contents of a backend, written out off the stage's path (the asynchronous part
/// of a checkpoint): the stage pays only for taking it.
pub trait SnapshotWriter: Send {
    /// Writes the snapshot (header with checksum, then payload) to `out`; returns the bytes written.
    fn write_to(self: Box<Self>, out: &mut dyn std::io::Write) -> Result<u64, StateError>;

    /// The snapshot as bytes.
    fn into_bytes(self: Box<Self>) -> Result<Vec<u8>, StateError> {
        let mut v = Vec::new();
        self.write_to(&mut v)?;
        Ok(v)
    }
}

/// Where state lives. Keyed entries are addressed by `(key group, state, key)`; a key group is
/// the unit that moves between subtasks. Operator (non-keyed) entries are addressed by
/// `(state, subtask)`. Implementations are shared by every subtask of a run and must let
/// subtasks that own different key groups work without contending.
pub trait StateBackend: Send + Sync + 'static {
    /// The key groups this backend holds (writes outside fail with `KeyGroupOutOfRange`).
    fn key_groups(&self) -> KeyGroupRange;
    /// The value stored under `key`.
    fn get(&self, kg: usize, state: StateId, key: &[u8]) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores `value` under `key`, replacing any value.
    fn put(&self, kg: usize, state: StateId, key: &[u8], value: &[u8]) -> Result<(), StateError>;
    /// Appends `value` to the bytes stored under `key` (RocksDB: a merge operand).
    fn append(&self, kg: usize, state: StateId, key: &[u8], value: &[u8])
    -> Result<(), StateError>;
    /// Removes `key`.
    fn delete(&self, kg: usize, state: StateId, key: &[u8]) -> Result<(), StateError>;
    /// Calls `f` with every entry of `state` in `kg` whose key starts with `prefix`, in key order.
    fn scan(
        &self,
        kg: usize,
        state: StateId,
        prefix: &[u8],
        f: &mut dyn FnMut(&[u8], &[u8]),
    ) -> Result<(), StateError>;
    /// Removes every entry of `state` in `kg` whose key starts with `prefix`.
    fn delete_prefix(&self, kg: usize, state: StateId, prefix: &[u8]) -> Result<(), StateError>;
    /// The operator state of `state` for `subtask`.
    fn operator_get(&self, state: StateId, subtask: u32) -> Result<Option<Vec<u8>>, StateError>;
    /// Stores the operator state of `state` for `subtask`.
    fn operator_put(&self, state: StateId, subtask: u32, value: &[u8]) -> Result<(), StateError>;
    /// The operator state of `state` for every subtask that stored some, by subtask.
    fn operator_all(&self, state: StateId) -> Result<Vec<(u32, Vec<u8>)>, StateError>;
    /// Freezes the keyed state of `range` and all operator state. Only the copy happens here;
    /// encoding and the checksum happen in [`SnapshotWriter::write_to`]. The copy is a
    /// consistent cut of the key groups whose only writer is the caller (a subtask at its
    /// barrier snapshots the key groups it owns).
    fn snapshot(&self, range: KeyGroupRange) -> Result<Box<dyn SnapshotWriter>, StateError>;
    /// Adds the entries of a snapshot that fall in this backend's key groups (and its operator
    /// state), replacing entries with equal keys; returns the keyed entries taken. The snapshot
    /// is verified whole before anything is applied.
    fn import(&self, snapshot: &[u8]) -> Result<usize, StateError>;
    /// Freezes the keyed entries of `state` in `range` only (no other state, no operator
    /// state), as [`StateBackend::snapshot`] does: what one keyed stage subtask checkpoints.
    fn snapshot_state(
        &self,
        range: KeyGroupRange,
        state: StateId,
    ) -> Result<Box<dyn SnapshotWriter>, StateError>;
    /// Adds the keyed entries of a snapshot whose key group is in `range` (and this backend's),
    /// replacing entries with equal keys, and no operator state: a restored subtask takes the
    /// key groups it owns. Returns the entries taken; the snapshot is verified whole first.
    fn import_key_groups(&self, snapshot: &[u8], range: KeyGroupRange)
    -> Result<usize, StateError>;
    /// [`StateBackend::import_key_groups`] of the snapshot in the file at `path`. Backends
    /// that keep state outside memory read it in blocks (memory bounded whatever its size);
    /// the default reads the file whole.
    fn import_key_groups_file(
        &self,
        path: &std::path::Path,
        range: KeyGroupRange,
    ) -> Result<usize, StateError> {
        let bytes = std::fs::read(path)?;
        self.import_key_groups(&bytes, range)
    }
    /// Removes all keyed state of `range`.
    fn clear_key_groups(&self, range: KeyGroupRange) -> Result<(), StateError>;
    /// Replaces all contents by a snapshot's (keyed state of this backend's key groups and all
    /// operator state); returns the keyed entries taken. Nothing changes when the snapshot is
    /// corrupt.
    fn restore(&self, snapshot: &[u8]) -> Result<usize, StateError>;
}
