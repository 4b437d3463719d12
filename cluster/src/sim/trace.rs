//! The record of a simulated run: what was sent, delivered, dropped and fired, and when.

use super::NodeId;
use std::time::Duration;

/// Why the simulator dropped a datagram or message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// Random loss ([`super::Faults::loss`]).
    Lost,
    /// Sender and receiver were on different sides of a partition.
    Partitioned,
    /// The receiver (or sender, for a reset link) had crashed.
    Crashed,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceKind {
    /// A node sent a datagram (`ordered: false`) or a message (`ordered: true`).
    Sent {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Datagram or message.
        ordered: bool,
        /// Digest of the payload (FNV-1a).
        digest: u64,
    },
    /// A datagram or message reached its receiver.
    Delivered {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Datagram or message.
        ordered: bool,
        /// Digest of the payload.
        digest: u64,
    },
    /// A datagram was scheduled a second time.
    Duplicated {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Digest of the payload.
        digest: u64,
    },
    /// A datagram or message was dropped.
    Dropped {
        /// Sender.
        from: NodeId,
        /// Receiver.
        to: NodeId,
        /// Why.
        reason: DropReason,
    },
    /// A node's timer fired.
    Timer {
        /// The node.
        node: NodeId,
        /// Its token.
        token: u64,
    },
    /// The network was partitioned into these sides (nodes not listed form one more side).
    Partition(Vec<Vec<NodeId>>),
    /// Every partition was healed.
    Healed,
    /// A node crashed.
    Crashed(NodeId),
}

/// One entry of the trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceEvent {
    /// Virtual time.
    pub at: Duration,
    /// What happened.
    pub kind: TraceKind,
}

/// FNV-1a over a payload: a cheap, stable digest for traces.
pub(crate) fn digest(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}
