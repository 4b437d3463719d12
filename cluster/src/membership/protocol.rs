//! The sans-IO membership core over foca.

use super::{MembershipConfig, MembershipError, MembershipView, NodeIdentity};
use crate::split_brain::{Decision, SplitBrainResolver};
use foca::{Foca, NoCustomBroadcast, Notification, PostcardCodec};
use rand::SeedableRng;
use rand::rngs::Xoshiro256PlusPlus;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What the membership core asks its driver to do.
#[derive(Debug, Clone)]
pub enum Output {
    /// Send this datagram to `to`.
    Send {
        /// Destination address.
        to: SocketAddr,
        /// Payload.
        data: Vec<u8>,
    },
    /// Call [`Membership::handle_timer`] with `timer` after `after`.
    Timer {
        /// Delay.
        after: Duration,
        /// The timer to hand back.
        timer: MembershipTimer,
    },
}

/// A timer event foca asked for (opaque; hand it back to [`Membership::handle_timer`]).
#[derive(Debug, Clone)]
pub struct MembershipTimer(foca::Timer<NodeIdentity>);

/// A change in the cluster as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipEvent {
    /// A member became live.
    Up(NodeIdentity),
    /// A member was declared down (or left).
    Down(NodeIdentity),
    /// A member at a known address is now known by a newer identity.
    Renamed {
        /// The old identity.
        from: NodeIdentity,
        /// The new one.
        to: NodeIdentity,
    },
    /// Some live member knows this node: it joined.
    Joined,
    /// Every other member left or is down.
    Idle,
    /// This node was declared down and rejoined with a new incarnation.
    Rejoined(NodeIdentity),
    /// This node was declared down and cannot rejoin.
    Defunct,
    /// The split-brain resolver decided.
    SplitBrain(Decision),
}

#[derive(Default)]
struct Effects {
    outputs: Vec<Output>,
    events: Vec<MembershipEvent>,
}

impl foca::Runtime<NodeIdentity> for Effects {
    fn notify(&mut self, notification: Notification<'_, NodeIdentity>) {
        #[allow(unreachable_patterns, reason = "foca's unstable notifications are off")]
        let event = match notification {
            Notification::MemberUp(m) => MembershipEvent::Up(m.clone()),
            Notification::MemberDown(m) => MembershipEvent::Down(m.clone()),
            Notification::Rename(a, b) => MembershipEvent::Renamed {
                from: a.clone(),
                to: b.clone(),
            },
            Notification::Active => MembershipEvent::Joined,
            Notification::Idle => MembershipEvent::Idle,
            Notification::Defunct => MembershipEvent::Defunct,
            Notification::Rejoin(me) => MembershipEvent::Rejoined(me.clone()),
            _ => return,
        };
        self.events.push(event);
    }

    fn send_to(&mut self, to: NodeIdentity, data: &[u8]) {
        self.outputs.push(Output::Send {
            to: to.addr,
            data: data.to_vec(),
        });
    }

    fn submit_after(&mut self, event: foca::Timer<NodeIdentity>, after: Duration) {
        self.outputs.push(Output::Timer {
            after,
            timer: MembershipTimer(event),
        });
    }
}

/// One node's membership: SWIM failure detection, seed join, the live/down view and an
/// optional split-brain resolver. Sans-IO: drive it with datagrams, timers and ticks, and carry
/// out [`Membership::drain_outputs`].
pub struct Membership {
    foca: Foca<NodeIdentity, PostcardCodec, Xoshiro256PlusPlus, NoCustomBroadcast>,
    fx: Effects,
    seen: usize,
    up: BTreeMap<SocketAddr, NodeIdentity>,
    down: BTreeMap<SocketAddr, NodeIdentity>,
    resolver: Option<SplitBrainResolver>,
    left: bool,
}

impl std::fmt::Debug for Membership {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Membership")
            .field("me", self.foca.identity())
            .field("up", &self.up.len())
            .field("down", &self.down.len())
            .field("left", &self.left)
            .finish()
    }
}

impl Membership {
    /// A node with this identity; `seed` drives foca's random member choice.
    pub fn new(me: NodeIdentity, config: &MembershipConfig, seed: u64) -> Self {
        let foca = Foca::new(
            me,
            config.swim.clone(),
            Xoshiro256PlusPlus::seed_from_u64(seed),
            PostcardCodec,
        );
        Self {
            foca,
            fx: Effects::default(),
            seen: 0,
            up: BTreeMap::new(),
            down: BTreeMap::new(),
            resolver: None,
            left: false,
        }
    }

    /// Runs this split-brain resolver on every [`Membership::tick`].
    pub fn with_split_brain(mut self, resolver: SplitBrainResolver) -> Self {
        self.resolver = Some(resolver);
        self
    }

    /// This node's current identity.
    pub fn me(&self) -> &NodeIdentity {
        self.foca.identity()
    }

    /// Whether this node left the cluster or downed itself.
    pub fn has_left(&self) -> bool {
        self.left
    }

    /// Whether this node knows no live member but itself.
    pub fn is_alone(&self) -> bool {
        self.up.is_empty()
    }

    /// Announces this node to every seed address but its own.
    pub fn join(&mut self, seeds: &[SocketAddr]) -> Result<(), MembershipError> {
        self.live()?;
        let mine = self.me().addr;
        for seed in seeds.iter().filter(|s| **s != mine) {
            self.foca
                .announce(NodeIdentity::seed(*seed), &mut self.fx)?;
        }
        self.absorb();
        Ok(())
    }

    /// Feeds one received datagram.
    pub fn handle_datagram(&mut self, data: &[u8]) -> Result<(), MembershipError> {
        self.live()?;
        let res = self.foca.handle_data(data, &mut self.fx);
        self.absorb();
        Ok(res?)
    }

    /// Feeds a timer that fired.
    pub fn handle_timer(&mut self, timer: MembershipTimer) -> Result<(), MembershipError> {
        self.live()?;
        let res = self.foca.handle_timer(timer.0, &mut self.fx);
        self.absorb();
        Ok(res?)
    }

    /// Runs the split-brain resolver at time `now` (a monotonic clock): on a keep the lost
    /// members are forgotten, on a down-self the node leaves. Returns the decision when one was
    /// taken.
    pub fn tick(&mut self, now: Duration) -> Option<Decision> {
        if self.left {
            return None;
        }
        let view = self.view();
        let resolver = self.resolver.as_mut()?;
        let decision = resolver.observe(now, &view);
        match &decision {
            Decision::Undecided => return None,
            Decision::Keep { downed } => {
                tracing::info!(me = %view.me, downed = downed.len(), "split brain: this side keeps");
                for m in downed {
                    if self.down.get(&m.addr) == Some(m) {
                        self.down.remove(&m.addr);
                    }
                }
            }
            Decision::DownSelf => {
                // Leaving only tells the others sooner; the decision stands either way.
                if let Err(e) = self.leave() {
                    tracing::debug!(error = %e, "leave after downing self");
                }
            }
        }
        self.fx
            .events
            .push(MembershipEvent::SplitBrain(decision.clone()));
        self.seen = self.fx.events.len();
        Some(decision)
    }

    /// Leaves the cluster gracefully (the others see this node down at once).
    pub fn leave(&mut self) -> Result<(), MembershipError> {
        self.live()?;
        self.left = true;
        let res = self.foca.leave_cluster(&mut self.fx);
        self.absorb();
        Ok(res?)
    }

    /// What foca asked for since the last call.
    pub fn drain_outputs(&mut self) -> std::vec::Drain<'_, Output> {
        self.fx.outputs.drain(..)
    }

    /// What changed since the last call.
    pub fn drain_events(&mut self) -> Vec<MembershipEvent> {
        self.seen = 0;
        std::mem::take(&mut self.fx.events)
    }

    /// The current view.
    pub fn view(&self) -> MembershipView {
        let mut up: Vec<NodeIdentity> = self.up.values().cloned().collect();
        if !self.left {
            up.push(self.me().clone());
        }
        up.sort_by(|a, b| a.age_cmp(b));
        let mut down: Vec<NodeIdentity> = self.down.values().cloned().collect();
        down.sort_by(|a, b| a.age_cmp(b));
        MembershipView {
            me: self.me().clone(),
            up,
            down,
        }
    }

    fn live(&self) -> Result<(), MembershipError> {
        if self.left {
            Err(MembershipError::Left)
        } else {
            Ok(())
        }
    }

    /// Applies the notifications foca emitted since the last call to the live/down maps.
    fn absorb(&mut self) {
        for event in &self.fx.events[self.seen..] {
            match event {
                MembershipEvent::Up(m) => {
                    self.down.remove(&m.addr);
                    self.up.insert(m.addr, m.clone());
                }
                MembershipEvent::Down(m) => {
                    if self.up.get(&m.addr) == Some(m) {
                        self.up.remove(&m.addr);
                    }
                    self.down.insert(m.addr, m.clone());
                }
                MembershipEvent::Renamed { from, to } => {
                    if self.up.get(&from.addr) == Some(from) {
                        self.up.insert(to.addr, to.clone());
                    }
                    if self.down.get(&from.addr) == Some(from) {
                        self.down.insert(to.addr, to.clone());
                    }
                }
                _ => {}
            }
        }
        self.seen = self.fx.events.len();
    }
}
