//! Membership and failure detection: SWIM through `foca`, sans-IO, with adapters for the
//! simulated network ([`SimMember`]) and a UDP socket ([`UdpMembership`]).
//!
//! [`Membership`] feeds foca datagrams and timer events and collects what foca asks for
//! ([`Output`]: datagrams to send, timers to set) and what it tells ([`MembershipEvent`]). A
//! node joins by announcing itself to its [`Seeds`] (a static list, or a DNS name such as a
//! Kubernetes headless service, looked up again at each attempt), repeated while it is alone; its [`NodeIdentity`] carries name, address, start time and incarnation. An optional
//! [`crate::split_brain::SplitBrainResolver`] runs on each [`Membership::tick`].

mod identity;
mod protocol;
mod seeds;
mod sim;
mod udp;

pub use identity::NodeIdentity;
pub use protocol::{Membership, MembershipEvent, MembershipTimer, Output};
pub use seeds::{Seeds, follow, lookup};
pub use sim::{SimMember, sim_addr, sim_node_of};
pub use udp::UdpMembership;

use std::num::{NonZeroU32, NonZeroUsize};
use std::time::Duration;

/// Errors of the membership layer.
#[derive(Debug, thiserror::Error)]
pub enum MembershipError {
    /// foca refused a datagram or timer (malformed, not for us, from ourselves...).
    #[error("membership protocol: {0}")]
    Protocol(#[from] foca::Error),
    /// This node left the cluster or downed itself.
    #[error("this node left the cluster")]
    Left,
    /// The UDP socket failed.
    #[error("membership socket: {0}")]
    Io(#[from] std::io::Error),
}

/// Settings of a [`Membership`].
#[derive(Debug, Clone)]
pub struct MembershipConfig {
    /// foca's SWIM settings (probe period, suspicion timeout, gossip...).
    pub swim: foca::Config,
    /// How often [`Membership::tick`] runs in the adapters (re-announce while alone, split
    /// brain).
    pub tick: Duration,
}

impl MembershipConfig {
    /// foca's LAN defaults for a cluster of about `cluster_size` nodes (1 s probes).
    pub fn lan(cluster_size: u32) -> Self {
        Self {
            swim: foca::Config::new_lan(
                NonZeroU32::new(cluster_size.max(1)).unwrap_or(NonZeroU32::MIN),
            ),
            tick: Duration::from_millis(500),
        }
    }

    /// Fast detection for tests and loopback clusters: 100 ms probes, a member is down 600 ms
    /// after it stops answering.
    pub fn fast(cluster_size: u32) -> Self {
        let mut swim = Self::lan(cluster_size).swim;
        swim.probe_period = Duration::from_millis(100);
        swim.probe_rtt = Duration::from_millis(40);
        swim.suspect_to_down_after = Duration::from_millis(600);
        swim.remove_down_after = Some(Duration::from_secs(60));
        swim.periodic_gossip = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(50),
            num_members: NonZeroUsize::new(3).unwrap_or(NonZeroUsize::MIN),
        });
        swim.periodic_announce = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(500),
            num_members: NonZeroUsize::MIN,
        });
        swim.periodic_announce_to_down_members = Some(foca::PeriodicParams {
            frequency: Duration::from_millis(700),
            num_members: NonZeroUsize::new(2).unwrap_or(NonZeroUsize::MIN),
        });
        Self {
            swim,
            tick: Duration::from_millis(50),
        }
    }
}

/// One node's view of the cluster: live members (itself included, oldest first) and members
/// it saw go down and has not forgotten.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MembershipView {
    /// This node.
    pub me: NodeIdentity,
    /// Live members, oldest first (this node included unless it left).
    pub up: Vec<NodeIdentity>,
    /// Members declared down, oldest first.
    pub down: Vec<NodeIdentity>,
}

impl MembershipView {
    /// The oldest live member (the coordinator's seat, see [`crate::placement`]).
    pub fn oldest(&self) -> Option<&NodeIdentity> {
        self.up.first()
    }

    /// The members: live ones and lost ones not yet downed (by a split-brain decision), oldest
    /// first. Placement and the coordinator role act on these, so a partition moves nothing
    /// until one side has downed the other.
    pub fn members(&self) -> Vec<NodeIdentity> {
        let mut all: Vec<NodeIdentity> = self.up.iter().chain(&self.down).cloned().collect();
        all.sort_by(|a, b| a.age_cmp(b));
        all
    }

    /// Names of the live members, oldest first.
    pub fn up_names(&self) -> Vec<&str> {
        self.up.iter().map(|m| m.name.as_str()).collect()
    }
}
