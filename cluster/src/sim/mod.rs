//! A deterministic simulated network for testing cluster protocols in one process.
//!
//! Nodes are sans-IO state machines ([`SimNode`]): the simulator hands each one its inputs
//! (start, datagrams, ordered messages, timers) at virtual times and carries out what the node
//! asks for through its [`Outbox`]. Two kinds of traffic exist:
//! - **datagrams** (UDP-like): each may be lost, duplicated, delayed by latency plus jitter, or
//!   reordered ([`Faults`]); one sent across a partition, or arriving at a cut link, is dropped;
//! - **ordered messages** (TCP-like): delivered exactly once and in send order per link; across
//!   a partition they wait, and they are delivered in order after [`SimNet::heal`]. A crashed
//!   node's links are reset (queued messages to and from it are dropped).
//!
//! Everything random comes from one seeded generator (xoshiro256++, portable), events at the
//! same virtual time run in scheduling order, and every send, delivery, drop and timer is
//! recorded in a [`TraceEvent`] list: two runs with one seed give the same trace. Virtual time
//! only moves when the next event is due, so hours of protocol time cost milliseconds.
//!
//! The simulator is our own (about 300 lines) rather than `turmoil`: cluster protocols here are
//! written sans-IO, so a node trait with explicit inputs is all a test needs, and it keeps
//! partitions and fault injection under the test's exact control.

mod net;
mod trace;

pub use net::SimNet;
pub use trace::{DropReason, TraceEvent, TraceKind};

use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// The id of a node in a [`SimNet`] (its index, in the order nodes were added).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u32);

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{}", self.0)
    }
}

/// What the simulator hands a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// The node was added (or the run started); called once, first.
    Start,
    /// A datagram from `from`.
    Datagram {
        /// Sender.
        from: NodeId,
        /// Payload.
        data: &'a [u8],
    },
    /// An ordered message from `from`.
    Message {
        /// Sender.
        from: NodeId,
        /// Payload.
        data: &'a [u8],
    },
    /// A timer the node set with this token fired.
    Timer(u64),
}

/// A sans-IO node driven by the simulator.
pub trait SimNode {
    /// Handles one input at virtual time `now`, asking for effects through `out`.
    fn handle(&mut self, now: Duration, input: Input<'_>, out: &mut Outbox);
}

/// One effect a node asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    Datagram { to: NodeId, data: Vec<u8> },
    Message { to: NodeId, data: Vec<u8> },
    Timer { after: Duration, token: u64 },
}

/// The effects a node asks for while handling one input.
#[derive(Debug, Default)]
pub struct Outbox {
    pub(crate) actions: Vec<Action>,
}

impl Outbox {
    /// Sends a datagram (subject to loss, delay, duplication and reordering).
    pub fn send_datagram(&mut self, to: NodeId, data: impl Into<Vec<u8>>) {
        self.actions.push(Action::Datagram {
            to,
            data: data.into(),
        });
    }
    /// Sends an ordered, reliable message (delayed, held across partitions, never lost).
    pub fn send_message(&mut self, to: NodeId, data: impl Into<Vec<u8>>) {
        self.actions.push(Action::Message {
            to,
            data: data.into(),
        });
    }
    /// Fires [`Input::Timer`]`(token)` at this node after `after` of virtual time.
    pub fn set_timer(&mut self, after: Duration, token: u64) {
        self.actions.push(Action::Timer { after, token });
    }
}

/// Fault injection settings of a [`SimNet`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Faults {
    /// Base one-way delay of every datagram and message.
    pub latency: Duration,
    /// Extra delay drawn uniformly from `0..=jitter` per datagram and message.
    pub jitter: Duration,
    /// Probability that a datagram is lost.
    pub loss: f64,
    /// Probability that a datagram is delivered twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by an extra [`Faults::reorder_delay`], so later
    /// ones overtake it.
    pub reorder: f64,
    /// Extra delay of a reordered datagram.
    pub reorder_delay: Duration,
}

impl Faults {
    /// A perfect network: 1 ms latency, no jitter, loss, duplication or reordering.
    pub const NONE: Faults = Faults {
        latency: Duration::from_millis(1),
        jitter: Duration::ZERO,
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        reorder_delay: Duration::ZERO,
    };
}

impl Default for Faults {
    fn default() -> Self {
        Self::NONE
    }
}
