//! weir state: where stages keep state that a checkpoint snapshots and a restore brings back.
//!
//! Stages see the [`StateBackend`] trait, never a storage engine: [`InMemoryBackend`] here, a
//! RocksDB backend later behind a feature. The backend stores bytes scoped by
//! `(key group, state id, key)`; the typed handles ([`ValueState`], [`MapState`], [`ListState`],
//! [`OperatorListState`]) encode keys and values with serde (postcard), add TTL on the run's
//! clock and pick the key group by the [`stable_hash`] of the encoded key, so state moves between
//! subtasks by key-group range when parallelism changes. A stage reaches its state through the
//! run's [`StateService`] (`Materializer::with_service`, `StageInfo::services`).

mod backend;
mod codec;
mod error;
mod hash;
mod keyed;
mod memory;
mod operator;
mod service;
mod snapshot;
mod ttl;

pub use backend::{SnapshotWriter, StateBackend, StateId};
pub use error::{SnapshotError, StateError};
pub use hash::{KeyGroupRange, key_group_of, stable_hash, stable_key_hash};
pub use keyed::{ListState, MapState, ValueState};
pub use memory::InMemoryBackend;
pub use operator::OperatorListState;
pub use service::{StateScope, StateService};
pub use ttl::{Ttl, TtlUpdate};
pub use weir_graph::MAX_KEY_GROUPS;
