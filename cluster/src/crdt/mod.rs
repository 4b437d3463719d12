//! Replicated state as delta-state CRDTs (the actor systems' "distributed data").
//!
//! Four types, each a join-semilattice whose mutators return a *delta* (a small state of the
//! same type) that is merged like a full state: [`GCounter`], [`PNCounter`], [`ORSet`]
//! (observed-remove, add wins) and [`LWWMap`] (last writer wins by `(timestamp, replica)`).
//! [`ReplicatedData`] holds any of them under one key space. The [`Replicator`] is the sans-IO
//! core one node runs: local updates become deltas addressed to peers, incoming deltas merge,
//! writes and reads complete at a consistency level ([`Consistency`]), and periodic digests heal
//! lost deltas. [`ReplicatorHandle`] shares one replicator with the stages of a run (a service
//! in the run's `Services`); [`ReplicatorNode`] drives one over a cluster transport.

mod codec;
mod data;
mod dots;
mod gcounter;
mod lwwmap;
pub mod net;
mod orset;
mod pncounter;
pub mod replicator;
mod service;

pub use codec::{from_bytes, to_bytes};
pub use data::{DataKind, ReplicatedData};
pub use gcounter::GCounter;
pub use lwwmap::LWWMap;
pub use net::{NetConfig, NetStats, ReplicatorNode};
pub use orset::ORSet;
pub use pncounter::PNCounter;
pub use replicator::{
    Consistency, Envelope, Message, Read, ReadId, ReadStatus, Replicator, Write, WriteId,
    WriteStatus,
};
pub use service::ReplicatorHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;

/// The identity of one replica (a node's replicator); unique in a cluster.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, serde::Deserialize,
)]
pub struct ReplicaId(pub u64);

impl std::fmt::Display for ReplicaId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "replica {}", self.0)
    }
}

/// A state-based CRDT: a join-semilattice whose deltas are states of the same type.
pub trait Crdt:
    Clone + Default + PartialEq + Serialize + DeserializeOwned + Send + 'static
{
    /// Joins `other` (a full state or a delta) into `self`: commutative, associative, idempotent.
    fn merge(&mut self, other: &Self);
    /// Whether this is the bottom element (merging it changes nothing).
    fn is_bottom(&self) -> bool;
}

/// Who writes and when: what a mutator needs besides the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Writer {
    /// The writing replica.
    pub replica: ReplicaId,
    /// The writer's clock in milliseconds (only [`LWWMap`] reads it).
    pub now_ms: u64,
}

/// Why a CRDT operation or a replicated read or write failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CrdtError {
    /// A counter would pass `u64::MAX`.
    #[error("counter overflow: {replica} would count past {max}", max = u64::MAX)]
    Overflow {
        /// The replica whose count overflowed.
        replica: ReplicaId,
    },
    /// The key holds another kind of data than the update expects.
    #[error("key '{key}' holds {}, not {}", found.a(), expected.a())]
    WrongKind {
        /// The key.
        key: String,
        /// What the key holds.
        found: DataKind,
        /// What the caller asked for.
        expected: DataKind,
    },
    /// Bytes that do not decode as the expected state.
    #[error("cannot decode bytes as {what}: {reason}")]
    Decode {
        /// What was decoded.
        what: &'static str,
        /// The decoder's reason.
        reason: String,
    },
    /// A state that cannot be encoded.
    #[error("cannot encode {what} as bytes: {reason}")]
    Encode {
        /// What was encoded.
        what: &'static str,
        /// The encoder's reason.
        reason: String,
    },
    /// An update function failed (its own message).
    #[error("update of key '{key}' failed: {reason}")]
    Update {
        /// The key.
        key: String,
        /// The reason.
        reason: String,
    },
    /// The replicator does not know this write or read (never issued, or already reported).
    #[error("no pending {what} with id {id}")]
    UnknownRequest {
        /// `"write"` or `"read"`.
        what: &'static str,
        /// The id.
        id: u64,
    },
}
