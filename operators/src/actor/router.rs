//! Routers: an actor that spawns `n` copies of a routee from its props (its children, so their
//! failures are decided by the router's strategy) and routes every message to one of them, or
//! to all, by a [`Routing`]; resizable at run time with [`RouterMsg::Resize`].
//!
//! Messages are forwarded with their sender, so an `ask` through the router is answered by the
//! routee that handled it. Shrinking takes the last routees out of the rotation and stops each
//! once it handled what was queued for it (nothing accepted is lost); growing spawns new ones.
//! A routee stopped by the strategy leaves the pool (the router keeps routing to the others;
//! with none left, messages go to dead letters).
//!
//! A router's routees share one stage (one task). For a pool across cores, run the actor stage
//! itself at parallelism `n` behind a routing edge: `.partition_by_hash(key)` then
//! `Flow::actor(props).parallelism(n)` gives each copy its own keys (consistent hash over
//! subtasks), `.rebalance()` hands whole batches round robin; that pool resizes by restarting
//! the run at another parallelism.

use super::ctx::Ctx;
use super::mailbox::{ActorRef, Envelope, ReplyTo, dead_letter};
use super::props::{Actor, ActorId, Props};
use super::stage::actor_flow;
use super::supervisor::SupervisorStrategy;
use super::weighted::{RouteeWeights, WeightedPick};
use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use weir_graph::{Flow, Keep, StageError};

/// A message to a router: one to route, or a control message.
pub enum RouterMsg<M> {
    /// Routes `M` to a routee (or to every routee under broadcast).
    Route(M),
    /// Changes the pool to `n` routees (at least 1).
    Resize(usize),
    /// Replies (to an `ask`) with the number of routees in the rotation, as `usize`.
    Size,
}

impl<M> fmt::Debug for RouterMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Route(_) => f.write_str("Route(..)"),
            Self::Resize(n) => write!(f, "Resize({n})"),
            Self::Size => f.write_str("Size"),
        }
    }
}

enum Kind<M> {
    RoundRobin,
    Broadcast(Arc<dyn Fn(&M) -> M + Send + Sync>),
    ConsistentHash(Arc<dyn Fn(&M) -> u64 + Send + Sync>),
    SmallestMailbox,
    Weighted(Arc<dyn RouteeWeights>),
}

/// How a router picks the routee of a message.
pub struct Routing<M>(Kind<M>);

impl<M> Clone for Routing<M> {
    fn clone(&self) -> Self {
        Self(match &self.0 {
            Kind::RoundRobin => Kind::RoundRobin,
            Kind::Broadcast(c) => Kind::Broadcast(Arc::clone(c)),
            Kind::ConsistentHash(k) => Kind::ConsistentHash(Arc::clone(k)),
            Kind::SmallestMailbox => Kind::SmallestMailbox,
            Kind::Weighted(w) => Kind::Weighted(Arc::clone(w)),
        })
    }
}

impl<M> fmt::Debug for Routing<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self.0 {
            Kind::RoundRobin => "RoundRobin",
            Kind::Broadcast(_) => "Broadcast",
            Kind::ConsistentHash(_) => "ConsistentHash",
            Kind::SmallestMailbox => "SmallestMailbox",
            Kind::Weighted(_) => "Weighted",
        })
    }
}

impl<M: 'static> Routing<M> {
    /// Each message to the next routee in turn.
    pub fn round_robin() -> Self {
        Self(Kind::RoundRobin)
    }
    /// Each message to every routee (a clone each).
    pub fn broadcast() -> Self
    where
        M: Clone,
    {
        Self(Kind::Broadcast(Arc::new(M::clone)))
    }
    /// Each message to the routee owning its key: [`jump_hash`] of the key's
    /// `weir_graph::stable_hash_of` over the pool size, so a key always meets the same routee
    /// (across runs too) and resizing from `n` to `n + 1` moves only about `1/(n + 1)` of keys.
    pub fn consistent_hash<K: Hash>(key: impl Fn(&M) -> K + Send + Sync + 'static) -> Self {
        Self(Kind::ConsistentHash(Arc::new(move |m| {
            weir_graph::stable_hash_of(&key(m))
        })))
    }
    /// Each message to the routee with the fewest messages waiting in its mailbox (the first
    /// such one on a tie).
    pub fn smallest_mailbox() -> Self {
        Self(Kind::SmallestMailbox)
    }
    /// Each message to a routee in proportion to its weight from `weights` (smooth weighted
    /// round robin, [`super::WeightedRoundRobin`]), read again whenever their generation changes: a
    /// routee of weight 3 gets three messages for every one of a routee of weight 1. Cluster
    /// load metrics give such weights (`weir_cluster::load::AdaptiveWeights`).
    pub fn weighted(weights: Arc<dyn RouteeWeights>) -> Self {
        Self(Kind::Weighted(weights))
    }

    /// The per-router state of picking routees by this routing.
    pub(super) fn picker(&self) -> Picker<M> {
        Picker {
            weighted: match &self.0 {
                Kind::Weighted(w) => Some(WeightedPick::new(Arc::clone(w))),
                _ => None,
            },
            routing: self.clone(),
            next: 0,
        }
    }
}

/// One router's choice of routees: its routing and what the routing remembers.
pub(super) struct Picker<M> {
    routing: Routing<M>,
    next: usize,
    weighted: Option<WeightedPick>,
}

impl<M> Clone for Picker<M> {
    fn clone(&self) -> Self {
        Self {
            routing: self.routing.clone(),
            next: self.next,
            weighted: self.weighted.clone(),
        }
    }
}

/// Where a message goes.
pub(super) enum Choice {
    /// To the routee at this position.
    One(usize),
    /// To every routee (copies from [`Picker::copy`]).
    Every,
}

impl<M: Send + 'static> Picker<M> {
    /// The routee (or routees) of `msg` among `routees` (not empty).
    pub(super) fn choose(&mut self, msg: &M, routees: &[ActorRef<M>]) -> Choice {
        let n = routees.len().max(1);
        Choice::One(match &self.routing.0 {
            Kind::RoundRobin => {
                let i = self.next % n;
                self.next = self.next.wrapping_add(1);
                i
            }
            Kind::ConsistentHash(key) => jump_hash(key(msg), n),
            Kind::SmallestMailbox => routees
                .iter()
                .enumerate()
                .min_by_key(|(_, r)| r.len())
                .map_or(0, |(i, _)| i),
            Kind::Weighted(_) => self.weighted.as_mut().map_or(0, |w| w.pick(n)),
            Kind::Broadcast(_) => return Choice::Every,
        })
    }

    /// A copy of `msg` for one more routee of a broadcast.
    pub(super) fn copy(&self, msg: &M) -> Option<M> {
        match &self.routing.0 {
            Kind::Broadcast(clone) => Some(clone(msg)),
            _ => None,
        }
    }

    /// Sends `msg` to the routee (or routees) it picks among `routees`, forwarded with its
    /// sender; dead letters when there are none.
    pub(super) fn route<A: Actor>(
        &mut self,
        ctx: &mut Ctx<'_, A>,
        routees: &[ActorRef<M>],
        msg: M,
    ) {
        let Some(last) = routees.last() else {
            dead_letter(ctx.sys.shared(), ctx.path(), msg, "router has no routees");
            return;
        };
        let to = match self.choose(&msg, routees) {
            Choice::One(i) => &routees[i],
            Choice::Every => {
                for r in &routees[..routees.len() - 1] {
                    let Some(copy) = self.copy(&msg) else { break };
                    // Copies keep an actor sender; an ask is answered by the last routee.
                    let reply = match &ctx.reply {
                        Some(ReplyTo::Actor(a)) => Some(ReplyTo::Actor(Arc::clone(a))),
                        _ => None,
                    };
                    // Never dropped for room (a full mailbox takes it over its capacity).
                    let _ = r.0.offer_within(Envelope { msg: copy, reply });
                }
                last
            }
        };
        // A full routee mailbox holds the router's stream input back (nothing is dropped).
        let _ = ctx.forward(to, msg);
    }
}

/// Jump consistent hash (Lamping and Veach): the bucket in `0..buckets` of `hash`; growing
/// `buckets` by one moves only the hashes that land in the new bucket.
pub fn jump_hash(hash: u64, buckets: usize) -> usize {
    let n = i64::try_from(buckets.max(1)).unwrap_or(i64::MAX);
    let (mut key, mut b, mut j) = (hash, -1i64, 0i64);
    while j < n {
        b = j;
        key = key.wrapping_mul(2_862_933_555_777_941_757).wrapping_add(1);
        j = ((b + 1) as f64 * ((1u64 << 31) as f64 / ((key >> 33) + 1) as f64)) as i64;
    }
    usize::try_from(b).unwrap_or(0)
}

/// A pool of routees made from one props, routing by a [`Routing`].
pub struct Router<C: Actor> {
    routee: Props<C>,
    size: usize,
    strategy: SupervisorStrategy,
    routees: Vec<ActorRef<C::Msg>>,
    picker: Picker<C::Msg>,
    spawned: usize,
}

impl<C: Actor> Router<C> {
    /// Props of a router over `n` (at least 1) copies of `routee`, named `<name>-<i>` in spawn
    /// order, supervised one-for-one with restarts.
    pub fn pool(routee: Props<C>, n: usize, routing: Routing<C::Msg>) -> Props<Self> {
        Self::pool_with(routee, n, routing, SupervisorStrategy::default())
    }
    /// [`Router::pool`] whose routees are supervised by `strategy`.
    pub fn pool_with(
        routee: Props<C>,
        n: usize,
        routing: Routing<C::Msg>,
        strategy: SupervisorStrategy,
    ) -> Props<Self> {
        let name = format!("{}-router", routee.name());
        Props::new(move || Router {
            routee: routee.clone(),
            picker: routing.picker(),
            size: n.max(1),
            strategy: strategy.clone(),
            routees: Vec::new(),
            spawned: 0,
        })
        .with_name(&name)
    }

    fn grow(&mut self, ctx: &mut Ctx<'_, Self>, to: usize) -> Result<(), StageError> {
        while self.routees.len() < to {
            let name = format!("{}-{}", self.routee.name(), self.spawned);
            let r = ctx.spawn(self.routee.clone().with_name(&name))?;
            self.spawned += 1;
            ctx.watch(r.id());
            self.routees.push(r);
        }
        Ok(())
    }

    fn resize(&mut self, ctx: &mut Ctx<'_, Self>, n: usize) -> Result<(), StageError> {
        let n = n.max(1);
        self.size = n;
        while self.routees.len() > n {
            if let Some(r) = self.routees.pop() {
                ctx.unwatch(r.id());
                ctx.stop_child_when_idle(r.id());
            }
        }
        self.grow(ctx, n)
    }

    fn route(&mut self, ctx: &mut Ctx<'_, Self>, msg: C::Msg) {
        self.picker.route(ctx, &self.routees, msg);
    }
}

impl<C: Actor> Actor for Router<C> {
    type Msg = RouterMsg<C::Msg>;
    type Out = C::Out;

    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        let n = self.size;
        self.grow(ctx, n)
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) -> Result<(), StageError> {
        match msg {
            RouterMsg::Route(m) => self.route(ctx, m),
            RouterMsg::Resize(n) => self.resize(ctx, n)?,
            RouterMsg::Size => {
                ctx.reply(self.routees.len());
            }
        }
        Ok(())
    }

    fn on_terminated(&mut self, _ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        self.routees.retain(|r| r.id() != who);
        Ok(())
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}

/// A flow routing each element to a pool of `n` copies of the actor `routee` makes, by
/// `routing`; what the routees emit goes downstream. Materializes the router's ref (send
/// [`RouterMsg::Resize`] to it to resize the pool).
///
/// - **emits when** a routee emits and downstream has room
/// - **backpressures when** the router has not handled the previous batch, a routee's mailbox
///   is over its capacity (nothing is dropped: the router's stream input waits until it
///   drained), or downstream backpressures
/// - **completes when** upstream completes and every routee handled its messages
/// - **cancels when** downstream cancels (every routee stops)
/// - **fails when** upstream fails, or a routee's failure escalates past the router and the
///   stage's supervision says stop
pub fn actor_router<C: Actor>(
    routee: Props<C>,
    n: usize,
    routing: Routing<C::Msg>,
) -> Flow<C::Msg, C::Out, ActorRef<RouterMsg<C::Msg>>> {
    crate::simple::map(RouterMsg::Route)
        .parallelism(1)
        .via_mat(actor_flow(Router::pool(routee, n, routing)), Keep::right)
}

/// `Flow::actor_router(props, n, routing)`.
pub trait ActorRouters {
    /// See [`actor_router`].
    fn actor_router<C: Actor>(
        routee: Props<C>,
        n: usize,
        routing: Routing<C::Msg>,
    ) -> Flow<C::Msg, C::Out, ActorRef<RouterMsg<C::Msg>>>;
}

impl ActorRouters for Flow<(), ()> {
    fn actor_router<C: Actor>(
        routee: Props<C>,
        n: usize,
        routing: Routing<C::Msg>,
    ) -> Flow<C::Msg, C::Out, ActorRef<RouterMsg<C::Msg>>> {
        actor_router(routee, n, routing)
    }
}

#[cfg(test)]
mod tests {
    use super::jump_hash;

    #[test]
    fn jump_hash_moves_only_keys_landing_in_the_new_bucket() {
        let keys: Vec<u64> = (0..10_000u64)
            .map(|k| weir_graph::stable_hash_of(&k))
            .collect();
        for n in [1usize, 3, 10] {
            let mut moved = 0;
            for &k in &keys {
                let (a, b) = (jump_hash(k, n), jump_hash(k, n + 1));
                assert!(a < n && b <= n);
                if a != b {
                    assert_eq!(b, n, "a moved key goes to the new bucket");
                    moved += 1;
                }
            }
            let expected = keys.len() / (n + 1);
            assert!(
                moved > expected * 8 / 10 && moved < expected * 12 / 10,
                "{n} -> {}: moved {moved}, expected about {expected}",
                n + 1
            );
        }
        assert_eq!(jump_hash(42, 0), 0);
    }
}
