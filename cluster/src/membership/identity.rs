//! A member's identity: name, address, start time and incarnation.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::fmt;
use std::net::SocketAddr;

/// Who a member is: its name, the address it gossips on, when it started (milliseconds since
/// the Unix epoch, for keep-oldest and coordinator choice) and its incarnation (bumped when it
/// rejoins after being declared down, so the new identity wins over the old one).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeIdentity {
    /// Node name (unique in the cluster).
    pub name: String,
    /// Membership (gossip) address.
    pub addr: SocketAddr,
    /// Start time, milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// Incarnation: 0 at start, +1 at each automatic rejoin.
    pub incarnation: u32,
}

impl NodeIdentity {
    /// A first incarnation.
    pub fn new(name: impl Into<String>, addr: SocketAddr, started_ms: u64) -> Self {
        Self {
            name: name.into(),
            addr,
            started_ms,
            incarnation: 0,
        }
    }

    /// Orders by age: older (earlier start) first, then by name and address, so every node
    /// agrees on who is oldest.
    pub fn age_cmp(&self, other: &Self) -> Ordering {
        (self.started_ms, &self.name, self.addr).cmp(&(other.started_ms, &other.name, other.addr))
    }

    /// A placeholder for a seed address whose identity is not known yet (used to announce).
    pub(crate) fn seed(addr: SocketAddr) -> Self {
        Self::new(String::new(), addr, 0)
    }
}

impl fmt::Display for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}#{}", self.name, self.addr, self.incarnation)
    }
}

impl foca::Identity for NodeIdentity {
    type Addr = SocketAddr;

    fn renew(&self) -> Option<Self> {
        Some(Self {
            incarnation: self.incarnation.wrapping_add(1),
            ..self.clone()
        })
    }

    fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn win_addr_conflict(&self, adversary: &Self) -> bool {
        (self.started_ms, self.incarnation) > (adversary.started_ms, adversary.incarnation)
    }
}
