//! Membership on the simulated network: one [`SimMember`] per simulated node.

use super::{Membership, MembershipConfig, MembershipEvent, MembershipTimer, NodeIdentity, Output};
use crate::sim::{Input, NodeId, Outbox, SimNode};
use crate::split_brain::SplitBrainResolver;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

const PORT: u16 = 7946;
const TICK: u64 = 0;

/// The address a simulated node gossips on (`10.x.y.z:7946` from its id).
pub fn sim_addr(id: NodeId) -> SocketAddr {
    let [_, a, b, c] = id.0.to_be_bytes();
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(10, a, b, c), PORT))
}

/// The simulated node at a [`sim_addr`] address.
pub fn sim_node_of(addr: SocketAddr) -> Option<NodeId> {
    match addr {
        SocketAddr::V4(v4) if v4.port() == PORT => {
            let [ten, a, b, c] = v4.ip().octets();
            (ten == 10).then(|| NodeId(u32::from_be_bytes([0, a, b, c])))
        }
        _ => None,
    }
}

/// A simulated node that runs a [`Membership`]: joins its seeds at start (again on every tick
/// while alone), ticks the split-brain resolver, and records every event with its virtual time.
pub struct SimMember {
    membership: Membership,
    seeds: Vec<SocketAddr>,
    tick: Duration,
    timers: HashMap<u64, MembershipTimer>,
    next_token: u64,
    events: Vec<(Duration, MembershipEvent)>,
    errors: usize,
}

impl std::fmt::Debug for SimMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimMember")
            .field("membership", &self.membership)
            .finish()
    }
}

impl SimMember {
    /// Node `id` named `name`, started at `started_ms`, joining through `seeds` (node ids).
    pub fn new(
        id: NodeId,
        name: impl Into<String>,
        started_ms: u64,
        seeds: &[NodeId],
        config: &MembershipConfig,
        seed: u64,
    ) -> Self {
        let me = NodeIdentity::new(name, sim_addr(id), started_ms);
        Self {
            membership: Membership::new(me, config, seed),
            seeds: seeds.iter().map(|s| sim_addr(*s)).collect(),
            tick: config.tick,
            timers: HashMap::new(),
            next_token: TICK + 1,
            events: Vec::new(),
            errors: 0,
        }
    }

    /// Runs this split-brain resolver on every tick.
    pub fn with_split_brain(mut self, resolver: SplitBrainResolver) -> Self {
        self.membership = self.membership.with_split_brain(resolver);
        self
    }

    /// The membership core.
    pub fn membership(&self) -> &Membership {
        &self.membership
    }

    /// Every event so far, with the virtual time it happened.
    pub fn events(&self) -> &[(Duration, MembershipEvent)] {
        &self.events
    }

    /// How many datagrams or timers foca refused (a lossy, duplicating network causes some).
    pub fn errors(&self) -> usize {
        self.errors
    }

    fn flush(&mut self, now: Duration, out: &mut Outbox) {
        for o in self.membership.drain_outputs() {
            match o {
                Output::Send { to, data } => match sim_node_of(to) {
                    Some(node) => out.send_datagram(node, data),
                    None => tracing::debug!(%to, "no simulated node at this address"),
                },
                Output::Timer { after, timer } => {
                    let token = self.next_token;
                    self.next_token += 1;
                    self.timers.insert(token, timer);
                    out.set_timer(after, token);
                }
            }
        }
        for e in self.membership.drain_events() {
            self.events.push((now, e));
        }
    }
}

impl SimNode for SimMember {
    fn handle(&mut self, now: Duration, input: Input<'_>, out: &mut Outbox) {
        if self.membership.has_left() {
            return;
        }
        let res = match input {
            Input::Start => {
                out.set_timer(self.tick, TICK);
                self.membership.join(&self.seeds)
            }
            Input::Datagram { data, .. } | Input::Message { data, .. } => {
                self.membership.handle_datagram(data)
            }
            Input::Timer(TICK) => {
                out.set_timer(self.tick, TICK);
                self.membership.tick(now);
                if self.membership.is_alone() && !self.membership.has_left() {
                    self.membership.join(&self.seeds)
                } else {
                    Ok(())
                }
            }
            Input::Timer(token) => match self.timers.remove(&token) {
                Some(timer) => self.membership.handle_timer(timer),
                None => Ok(()),
            },
        };
        if let Err(e) = res {
            self.errors += 1;
            tracing::debug!(error = %e, "membership input refused");
        }
        self.flush(now, out);
    }
}
