//! Shard regions: an actor stage whose root routes every message to the entity with its id, an
//! actor made on the entity's first message and passivated (stopped) after it was idle for a
//! while. See `docs/adr/0002-shard-regions-and-persistence.md`.
//!
//! [`sharded`] puts a hash edge on the entity id in front of the region, so at parallelism `n`
//! each subtask owns the entities whose key groups it owns. Entities are children of the
//! region's root: their failures are decided by the region's strategy, their messages keep
//! their order per entity, and what they emit goes downstream. Sends to an entity never drop:
//! an entity's mailbox over its capacity holds the region's input back (region-wide). A
//! passivated entity's in-memory state is gone, as in Akka: an event-sourced entity recovers it
//! from its journal when its next message recreates it; a `Props::checkpointed()` entity's state
//! is part of the region's checkpoints, by the entity's path.

use super::ctx::Ctx;
use super::props::{Actor, ActorId, Props};
use super::stage::actor_flow;
use super::supervisor::SupervisorStrategy;
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_graph::{Flow, Keep, StageError};

/// A message to a region: one for an entity, or the region's own passivation tick.
pub enum RegionMsg<M> {
    /// Delivers `M` to the entity its id names.
    Deliver(M),
    /// Passivates the entities idle for the passivation timeout (sent by the region's timer).
    Passivate,
}

impl<M> fmt::Debug for RegionMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deliver(_) => f.write_str("Deliver(..)"),
            Self::Passivate => f.write_str("Passivate"),
        }
    }
}

/// Counters of a region, summed over its subtasks.
#[derive(Debug, Default)]
pub struct RegionStats {
    alive: AtomicU64,
    created: AtomicU64,
    passivated: AtomicU64,
    messages: AtomicU64,
}

impl RegionStats {
    /// Entities alive now.
    pub fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }
    /// Entities made so far (a passivated entity made again counts again).
    pub fn created(&self) -> u64 {
        self.created.load(Ordering::Relaxed)
    }
    /// Entities passivated so far.
    pub fn passivated(&self) -> u64 {
        self.passivated.load(Ordering::Relaxed)
    }
    /// Messages delivered to entities so far.
    pub fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }
}

/// How a region runs: its parallelism, passivation timeout, strategy and counters.
#[derive(Clone, Debug)]
pub struct RegionSettings {
    parallelism: usize,
    passivate_after: Option<Duration>,
    strategy: SupervisorStrategy,
    stats: Arc<RegionStats>,
}

impl Default for RegionSettings {
    fn default() -> Self {
        Self {
            parallelism: 1,
            passivate_after: None,
            strategy: SupervisorStrategy::default(),
            stats: Arc::new(RegionStats::default()),
        }
    }
}

impl RegionSettings {
    /// Runs the region as `n` subtasks (at least 1), each owning the entities of its key groups.
    pub fn parallelism(mut self, n: usize) -> Self {
        self.parallelism = n.max(1);
        self
    }
    /// Passivates an entity once it handled nothing for `d` (on the run's clock) and its
    /// mailbox is empty.
    pub fn passivate_after(mut self, d: Duration) -> Self {
        self.passivate_after = Some(d.max(Duration::from_millis(1)));
        self
    }
    /// How the region supervises its entities (default: restart).
    pub fn strategy(mut self, strategy: SupervisorStrategy) -> Self {
        self.strategy = strategy;
        self
    }
    /// The region's counters (shared by every materialization of these settings).
    pub fn stats(&self) -> Arc<RegionStats> {
        Arc::clone(&self.stats)
    }
}

type EntityProps<K, E> = Arc<dyn Fn(&K) -> Props<E> + Send + Sync>;
type EntityId<K, M> = Arc<dyn Fn(&M) -> Result<K, StageError> + Send + Sync>;

struct Entry<M> {
    r: super::mailbox::ActorRef<M>,
    last: Duration,
}

/// The root of a region: entities by id.
struct Region<E: Actor, K> {
    entity: EntityProps<K, E>,
    id_of: EntityId<K, E::Msg>,
    settings: RegionSettings,
    entities: HashMap<K, Entry<E::Msg>>,
    by_actor: HashMap<ActorId, K>,
    ticking: bool,
}

const TICK: &str = "region-passivate";

impl<E, K> Region<E, K>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    fn arm(&mut self, ctx: &mut Ctx<'_, Self>) {
        if let Some(d) = self.settings.passivate_after
            && !self.ticking
            && !self.entities.is_empty()
        {
            self.ticking = true;
            ctx.schedule_once(
                TICK,
                (d / 2).max(Duration::from_millis(1)),
                RegionMsg::Passivate,
            );
        }
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_, Self>, msg: E::Msg) -> Result<(), StageError> {
        // A message whose id cannot be computed fails the region's turn (its supervision).
        let k = (self.id_of)(&msg)?;
        // The clock is read only when passivation needs the time of last use.
        let now = if self.settings.passivate_after.is_some() {
            ctx.now()
        } else {
            Duration::ZERO
        };
        if let Some(e) = self.entities.get_mut(&k) {
            e.last = now;
            self.settings.stats.messages.fetch_add(1, Ordering::Relaxed);
            let _ = ctx.forward(&e.r, msg);
            return Ok(());
        }
        let props = (self.entity)(&k).with_name(&format!("entity-{k:?}"));
        let r = ctx.spawn(props)?;
        ctx.watch(r.id());
        let s = &self.settings.stats;
        s.created.fetch_add(1, Ordering::Relaxed);
        s.alive.fetch_add(1, Ordering::Relaxed);
        s.messages.fetch_add(1, Ordering::Relaxed);
        let _ = ctx.forward(&r, msg);
        self.by_actor.insert(r.id(), k.clone());
        self.entities.insert(k, Entry { r, last: now });
        self.arm(ctx);
        Ok(())
    }

    fn passivate(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.ticking = false;
        let Some(d) = self.settings.passivate_after else {
            return;
        };
        let now = ctx.now();
        let idle: Vec<K> = self
            .entities
            .iter()
            .filter(|(_, e)| now.saturating_sub(e.last) >= d && e.r.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        for k in idle {
            if let Some(e) = self.entities.remove(&k) {
                self.by_actor.remove(&e.r.id());
                ctx.stop_child(e.r.id());
                let s = &self.settings.stats;
                s.passivated.fetch_add(1, Ordering::Relaxed);
                s.alive.fetch_sub(1, Ordering::Relaxed);
            }
        }
        self.arm(ctx);
    }
}

impl<E, K> Actor for Region<E, K>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    type Msg = RegionMsg<E::Msg>;
    type Out = E::Out;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) -> Result<(), StageError> {
        match msg {
            RegionMsg::Deliver(m) => self.deliver(ctx, m),
            RegionMsg::Passivate => {
                self.passivate(ctx);
                Ok(())
            }
        }
    }

    fn on_terminated(&mut self, _ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        // An entity its supervision stopped: the next message for it makes a new one.
        if let Some(k) = self.by_actor.remove(&who) {
            self.entities.remove(&k);
            self.settings.stats.alive.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn post_stop(&mut self, _ctx: &mut Ctx<'_, Self>) {
        let n = self.entities.len() as u64;
        self.settings.stats.alive.fetch_sub(n, Ordering::Relaxed);
        self.entities.clear();
        self.by_actor.clear();
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.settings.strategy.clone()
    }
}

/// A shard region: every element goes to the entity `entity_id` names, an actor `entity(&id)`
/// makes on its first message (see the module docs). Materializes the root's ref of the first
/// subtask (tell it `RegionMsg::Deliver(m)` from outside).
///
/// - **emits when** an entity emits and downstream has room
/// - **backpressures when** the region has not handled the previous batch, an entity's mailbox
///   is over its capacity (region-wide), or downstream backpressures
/// - **completes when** upstream completes and every entity handled its messages
/// - **cancels when** downstream cancels (every entity stops)
/// - **fails when** upstream fails, or an entity's failure escalates past the region and the
///   stage's supervision says stop
pub fn sharded<E, K>(
    entity: impl Fn(&K) -> Props<E> + Send + Sync + 'static,
    entity_id: impl Fn(&E::Msg) -> K + Send + Sync + 'static,
    settings: RegionSettings,
) -> Flow<E::Msg, E::Out, super::mailbox::ActorRef<RegionMsg<E::Msg>>>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    try_sharded(entity, move |m: &E::Msg| Ok(entity_id(m)), settings)
}

/// [`sharded`] with an entity id that may fail: a message whose id fails fails the region's
/// root (the stage's supervision decides; under resume the message is dropped).
pub fn try_sharded<E, K>(
    entity: impl Fn(&K) -> Props<E> + Send + Sync + 'static,
    entity_id: impl Fn(&E::Msg) -> Result<K, StageError> + Send + Sync + 'static,
    settings: RegionSettings,
) -> Flow<E::Msg, E::Out, super::mailbox::ActorRef<RegionMsg<E::Msg>>>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    let entity: EntityProps<K, E> = Arc::new(entity);
    let id_of: EntityId<K, E::Msg> = Arc::new(entity_id);
    let route = Arc::clone(&id_of);
    let parallelism = settings.parallelism;
    let props = Props::new(move || Region {
        entity: Arc::clone(&entity),
        id_of: Arc::clone(&id_of),
        settings: settings.clone(),
        entities: HashMap::default(),
        by_actor: HashMap::default(),
        ticking: false,
    })
    .with_name("region");
    crate::simple::map(RegionMsg::Deliver)
        .partition_by_hash(move |m: &RegionMsg<E::Msg>| match m {
            RegionMsg::Deliver(x) => route(x).map_or(0, |k| weir_graph::stable_hash_of(&k)),
            RegionMsg::Passivate => 0,
        })
        .via_mat(actor_flow(props).parallelism(parallelism), Keep::right)
}
