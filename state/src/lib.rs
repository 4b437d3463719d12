//! weir state: where stages keep state that a checkpoint snapshots and a restore brings back.
//!
//! Stages see the [`StateBackend`] trait, never a storage engine: [`InMemoryBackend`] here, a
//! `RocksDbBackend` in the
//! `weir-state-rocksdb` crate (the engine never depends on it). The backend stores bytes scoped by
//! `(key group, state id, key)`; the typed handles ([`ValueState`], [`MapState`], [`ListState`],
//! [`OperatorListState`]) encode keys and values with serde (postcard), add TTL on the run's
//! clock and pick the key group by the [`stable_hash`] of the encoded key, so state moves between
//! subtasks by key-group range when parallelism changes. A stage reaches its state through the
//! run's [`StateService`] (`Materializer::with_service`, `StageInfo::services`).
//! Incremental checkpoints: a [`ChangeLog`] records the entries a stage wrote since its last
//! barrier and writes them as a delta snapshot, applied on top of the previous state by
//! `import_key_groups`; [`StateBackend::import_key_groups_file`] imports a snapshot file read
//! in blocks (RocksDB), so a restore never holds a large snapshot in memory.
//!
//! ```
//! use std::sync::Arc;
//! use weir_graph::StageId;
//! use weir_state::{InMemoryBackend, KeyGroupRange, StateBackend, StateService};
//!
//! let backend = Arc::new(InMemoryBackend::new());
//! let state = StateService::new(backend.clone(), Arc::new(weir_engine::VirtualClock::new()));
//! let counts = state.scope_of(StageId::of_uid("count"), 0).value::<String, u64>("n", None);
//! counts.set(&"word".to_string(), &3).unwrap();
//! let snapshot = backend.snapshot(KeyGroupRange::ALL).unwrap().into_bytes().unwrap();
//!
//! let restored = Arc::new(InMemoryBackend::new());
//! restored.restore(&snapshot).unwrap();
//! let state = StateService::new(restored, Arc::new(weir_engine::VirtualClock::new()));
//! let counts = state.scope_of(StageId::of_uid("count"), 0).value::<String, u64>("n", None);
//! assert_eq!(counts.get(&"word".to_string()).unwrap(), Some(3));
//! ```

mod backend;
mod changelog;
mod codec;
mod error;
mod hash;
pub mod journal;
mod keyed;
mod memory;
mod operator;
pub mod portable;
mod service;
mod snapshot;
mod stream;
mod ttl;

pub use backend::{SnapshotWriter, StateBackend, StateId};
pub use changelog::ChangeLog;
pub use error::{SnapshotError, StateError};
pub use hash::{KeyGroupRange, key_group_of, stable_hash, stable_key_hash};
pub use journal::{InMemoryJournal, Journal, JournalError};
pub use keyed::{ListState, MapState, ValueState};
pub use memory::InMemoryBackend;
pub use operator::OperatorListState;
pub use service::{StateScope, StateService};
pub use ttl::{Ttl, TtlUpdate};
pub use weir_graph::MAX_KEY_GROUPS;
