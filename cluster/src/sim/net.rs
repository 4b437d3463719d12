//! The simulator: an event queue over virtual time, links, partitions and crashes.

use super::trace::digest;
use super::{Action, DropReason, Faults, Input, NodeId, Outbox, SimNode, TraceEvent, TraceKind};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

enum Event {
    Start(NodeId),
    Datagram {
        from: NodeId,
        to: NodeId,
        data: Vec<u8>,
    },
    LinkWake {
        from: NodeId,
        to: NodeId,
    },
    Timer {
        node: NodeId,
        token: u64,
        life: u64,
    },
}

struct Slot<N> {
    node: N,
    side: u32,
    alive: bool,
    /// Bumped on crash, so timers set before it never fire.
    life: u64,
}

#[derive(Default)]
struct Link {
    queue: VecDeque<(Duration, Vec<u8>)>,
    last: Duration,
}

/// A deterministic network of sans-IO nodes over virtual time (see the [module docs](super)).
pub struct SimNet<N> {
    now: Duration,
    seq: u64,
    rng: Xoshiro256PlusPlus,
    faults: Faults,
    nodes: Vec<Slot<N>>,
    events: BTreeMap<(Duration, u64), Event>,
    links: BTreeMap<(NodeId, NodeId), Link>,
    trace: Vec<TraceEvent>,
}

impl<N> std::fmt::Debug for SimNet<N> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimNet")
            .field("now", &self.now)
            .field("nodes", &self.nodes.len())
            .field("pending", &self.events.len())
            .finish()
    }
}

impl<N: SimNode> SimNet<N> {
    /// An empty network whose every random choice derives from `seed`.
    pub fn new(seed: u64, faults: Faults) -> Self {
        Self {
            now: Duration::ZERO,
            seq: 0,
            rng: Xoshiro256PlusPlus::seed_from_u64(seed),
            faults,
            nodes: Vec::new(),
            events: BTreeMap::new(),
            links: BTreeMap::new(),
            trace: Vec::new(),
        }
    }

    /// Adds a node; it gets [`Input::Start`] at the current virtual time.
    pub fn add_node(&mut self, node: N) -> NodeId {
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Slot {
            node,
            side: 0,
            alive: true,
            life: 0,
        });
        self.schedule(self.now, Event::Start(id));
        id
    }

    /// The current virtual time.
    pub fn now(&self) -> Duration {
        self.now
    }

    /// Number of nodes added.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Whether no node was added.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// The ids of every node added.
    pub fn ids(&self) -> impl Iterator<Item = NodeId> + use<N> {
        (0..self.nodes.len() as u32).map(NodeId)
    }

    /// The node with this id.
    ///
    /// # Panics
    /// If no node has this id (a test bug).
    pub fn node(&self, id: NodeId) -> &N {
        &self.nodes[id.0 as usize].node
    }

    /// The node with this id, mutably (to drive it from the test between events).
    ///
    /// # Panics
    /// If no node has this id (a test bug).
    pub fn node_mut(&mut self, id: NodeId) -> &mut N {
        &mut self.nodes[id.0 as usize].node
    }

    /// Runs `f` on a live node at the current virtual time and carries out what it asks for
    /// (to make a node act from the test, between events). Does nothing for a crashed node.
    pub fn act(&mut self, id: NodeId, f: impl FnOnce(&mut N, Duration, &mut Outbox)) {
        let Some(slot) = self.nodes.get_mut(id.0 as usize) else {
            return;
        };
        if !slot.alive {
            return;
        }
        let mut out = Outbox::default();
        f(&mut slot.node, self.now, &mut out);
        for action in out.actions {
            self.apply(id, action);
        }
    }

    /// Replaces the fault settings for traffic sent from now on.
    pub fn set_faults(&mut self, faults: Faults) {
        self.faults = faults;
    }

    /// Cuts the network into `sides` (and one more side of every node not listed): traffic
    /// between sides is dropped (datagrams) or held (messages) until [`SimNet::heal`].
    pub fn partition(&mut self, sides: &[&[NodeId]]) {
        for slot in &mut self.nodes {
            slot.side = 0;
        }
        for (i, side) in sides.iter().enumerate() {
            for id in *side {
                if let Some(slot) = self.nodes.get_mut(id.0 as usize) {
                    slot.side = i as u32 + 1;
                }
            }
        }
        let sides = sides.iter().map(|s| s.to_vec()).collect();
        self.record(TraceKind::Partition(sides));
    }

    /// Heals every partition; held messages are delivered in order.
    pub fn heal(&mut self) {
        for slot in &mut self.nodes {
            slot.side = 0;
        }
        self.record(TraceKind::Healed);
        let earliest = self.now + self.faults.latency;
        let mut wakes = Vec::new();
        for (&(from, to), link) in &mut self.links {
            for entry in &mut link.queue {
                entry.0 = entry.0.max(earliest);
                wakes.push((entry.0, from, to));
            }
            link.last = link.last.max(earliest);
        }
        for (at, from, to) in wakes {
            self.schedule(at, Event::LinkWake { from, to });
        }
    }

    /// Whether `a` and `b` can reach each other now (both alive, same side).
    pub fn connected(&self, a: NodeId, b: NodeId) -> bool {
        match (self.nodes.get(a.0 as usize), self.nodes.get(b.0 as usize)) {
            (Some(x), Some(y)) => x.alive && y.alive && x.side == y.side,
            _ => false,
        }
    }

    /// Crashes a node: it gets no more input, its timers never fire, its links are reset.
    pub fn crash(&mut self, id: NodeId) {
        let Some(slot) = self.nodes.get_mut(id.0 as usize) else {
            return;
        };
        slot.alive = false;
        slot.life += 1;
        self.record(TraceKind::Crashed(id));
        let reset: Vec<(NodeId, NodeId)> = self
            .links
            .keys()
            .filter(|(f, t)| *f == id || *t == id)
            .copied()
            .collect();
        for key in reset {
            if let Some(link) = self.links.remove(&key) {
                for _ in link.queue {
                    self.record(TraceKind::Dropped {
                        from: key.0,
                        to: key.1,
                        reason: DropReason::Crashed,
                    });
                }
            }
        }
    }

    /// Whether the node has not crashed.
    pub fn is_alive(&self, id: NodeId) -> bool {
        self.nodes.get(id.0 as usize).is_some_and(|s| s.alive)
    }

    /// Every event recorded so far.
    pub fn trace(&self) -> &[TraceEvent] {
        &self.trace
    }

    /// Runs the next due event; `false` when none is pending.
    pub fn step(&mut self) -> bool {
        let Some(((at, _), event)) = self.events.pop_first() else {
            return false;
        };
        self.now = self.now.max(at);
        match event {
            Event::Start(id) => self.dispatch(id, Input::Start),
            Event::Datagram { from, to, data } => {
                if !self.is_alive(to) {
                    self.drop_traffic(from, to, DropReason::Crashed);
                } else if !self.connected(from, to) {
                    self.drop_traffic(from, to, DropReason::Partitioned);
                } else {
                    self.record(TraceKind::Delivered {
                        from,
                        to,
                        ordered: false,
                        digest: digest(&data),
                    });
                    self.dispatch(to, Input::Datagram { from, data: &data });
                }
            }
            Event::LinkWake { from, to } => self.wake_link(from, to),
            Event::Timer { node, token, life } => {
                let live = self
                    .nodes
                    .get(node.0 as usize)
                    .is_some_and(|s| s.alive && s.life == life);
                if live {
                    self.record(TraceKind::Timer { node, token });
                    self.dispatch(node, Input::Timer(token));
                }
            }
        }
        true
    }

    /// Runs every event due at or before `t`, then sets the clock to `t`.
    pub fn run_until(&mut self, t: Duration) {
        while let Some((&(at, _), _)) = self.events.first_key_value() {
            if at > t {
                break;
            }
            self.step();
        }
        self.now = self.now.max(t);
    }

    /// Runs for `d` of virtual time.
    pub fn run_for(&mut self, d: Duration) {
        self.run_until(self.now + d);
    }

    fn wake_link(&mut self, from: NodeId, to: NodeId) {
        if !self.connected(from, to) {
            return;
        }
        loop {
            let Some(link) = self.links.get_mut(&(from, to)) else {
                return;
            };
            match link.queue.front() {
                Some((at, _)) if *at <= self.now => {}
                _ => return,
            }
            let Some((_, data)) = link.queue.pop_front() else {
                return;
            };
            self.record(TraceKind::Delivered {
                from,
                to,
                ordered: true,
                digest: digest(&data),
            });
            self.dispatch(to, Input::Message { from, data: &data });
            if !self.connected(from, to) {
                return;
            }
        }
    }

    fn dispatch(&mut self, id: NodeId, input: Input<'_>) {
        let Some(slot) = self.nodes.get_mut(id.0 as usize) else {
            return;
        };
        if !slot.alive {
            return;
        }
        let mut out = Outbox::default();
        slot.node.handle(self.now, input, &mut out);
        for action in out.actions {
            self.apply(id, action);
        }
    }

    fn apply(&mut self, from: NodeId, action: Action) {
        match action {
            Action::Timer { after, token } => {
                let life = self.nodes[from.0 as usize].life;
                self.schedule(
                    self.now + after,
                    Event::Timer {
                        node: from,
                        token,
                        life,
                    },
                );
            }
            Action::Datagram { to, data } => {
                let d = digest(&data);
                self.record(TraceKind::Sent {
                    from,
                    to,
                    ordered: false,
                    digest: d,
                });
                if !self.is_alive(to) {
                    return self.drop_traffic(from, to, DropReason::Crashed);
                }
                if !self.connected(from, to) {
                    return self.drop_traffic(from, to, DropReason::Partitioned);
                }
                let f = self.faults;
                if self.rng.random::<f64>() < f.loss {
                    return self.drop_traffic(from, to, DropReason::Lost);
                }
                let mut delay = self.delay();
                if self.rng.random::<f64>() < f.reorder {
                    delay += f.reorder_delay;
                }
                let twice = self.rng.random::<f64>() < f.duplicate;
                if twice {
                    self.record(TraceKind::Duplicated {
                        from,
                        to,
                        digest: d,
                    });
                    let again = self.delay();
                    let copy = data.clone();
                    self.schedule(
                        self.now + again,
                        Event::Datagram {
                            from,
                            to,
                            data: copy,
                        },
                    );
                }
                self.schedule(self.now + delay, Event::Datagram { from, to, data });
            }
            Action::Message { to, data } => {
                self.record(TraceKind::Sent {
                    from,
                    to,
                    ordered: true,
                    digest: digest(&data),
                });
                if !self.is_alive(to) {
                    return self.drop_traffic(from, to, DropReason::Crashed);
                }
                let at = self.now + self.delay();
                let link = self.links.entry((from, to)).or_default();
                let at = at.max(link.last);
                link.last = at;
                link.queue.push_back((at, data));
                self.schedule(at, Event::LinkWake { from, to });
            }
        }
    }

    fn delay(&mut self) -> Duration {
        let jitter = self.faults.jitter.as_nanos() as u64;
        let extra = if jitter == 0 {
            0
        } else {
            self.rng.random_range(0..=jitter)
        };
        self.faults.latency + Duration::from_nanos(extra)
    }

    fn drop_traffic(&mut self, from: NodeId, to: NodeId, reason: DropReason) {
        self.record(TraceKind::Dropped { from, to, reason });
    }

    fn schedule(&mut self, at: Duration, event: Event) {
        self.seq += 1;
        self.events.insert((at, self.seq), event);
    }

    fn record(&mut self, kind: TraceKind) {
        self.trace.push(TraceEvent { at: self.now, kind });
    }
}
