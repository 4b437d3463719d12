//! Shard regions: an actor stage whose root routes every message to the entity with its id, an
//! actor made on the entity's first message and passivated (stopped) after it was idle for a
//! while. See `docs/adr/0002-shard-regions-and-persistence.md`.
//!
//! [`sharded`] puts a hash edge on the entity id in front of the region, so at parallelism `n`
//! each subtask owns the entities whose key groups it owns. Entities are children of the
//! region's root: their failures are decided by the region's strategy, their messages keep
//! their order per entity, and what they emit goes downstream. A passivated entity's in-memory
//! state is gone, as in Akka: an event-sourced entity recovers it from its journal when its next
//! message recreates it; in a region made by [`sharded_checkpointed`] a `Props::checkpointed()`
//! entity's state is part of the region's checkpoints, by the entity's path.
//!
//! **Backpressure per shard.** A shard is a key group of entity ids (`stable_key_group(id)`,
//! one of `MAX_KEY_GROUPS`). Messages are never dropped for room:
//!
//! 1. A message for a shard with nothing parked goes to its entity's mailbox while that mailbox
//!    is below its capacity.
//! 2. Otherwise it is parked at the back of its shard's buffer, which holds at most
//!    [`RegionSettings::shard_buffer`] messages. A shard's buffer moves on, oldest first, as the
//!    entity at its front drains its mailbox; other shards keep flowing meanwhile.
//! 3. A message for a shard whose buffer is full is held: the region then takes no further
//!    stream input (head-of-line blocking of its one input, as Flink's) and every message after
//!    it waits behind it, until that shard's buffer has room again.
//!
//! So a slow entity holds back only its shard until the shard's buffer is full and the next
//! element for that shard reaches the region's input. One subtask buffers at most
//! `shards × shard_buffer` parked messages plus one input batch held behind a full shard;
//! [`RegionStats::buffered`] counts them. While it holds, messages told to the region's ref
//! stay in the ref's mailbox (bounded by its capacity: `tell` waits, `try_tell` meets the
//! overflow policy); only the entities' room notices go through, so what it buffers from its
//! ref is at most the one turn of messages (its throughput) it took before it held.
//!
//! **Remembered entities.** With [`RegionSettings::remember_entities`], a region made by
//! [`sharded_checkpointed`] records the ids of its live entities in each checkpoint; restored,
//! it makes those entities again when it starts, before any message (as Akka's
//! remember-entities), and each takes its checkpointed state by its path.
//!
//! **Metrics.** [`RegionStats`] sums live, created and passivated entities, messages (also per
//! shard), buffered messages and paused subtasks over the region's subtasks; each subtask also
//! publishes [`REGION_ENTITIES_ALIVE`], [`REGION_ENTITIES_CREATED`],
//! [`REGION_ENTITIES_PASSIVATED`], [`REGION_BUFFERED`] and [`REGION_SHARD_MESSAGES`] (label
//! `shard`) as stage gauges, read by `RunHandle::stage_gauges` and rendered by `/metrics`.

mod gauges;
mod saved;
mod settings;
mod shards;

use gauges::RegionGauges;
pub use gauges::{
    REGION_BUFFERED, REGION_ENTITIES_ALIVE, REGION_ENTITIES_CREATED, REGION_ENTITIES_PASSIVATED,
    REGION_SHARD_MESSAGES,
};
pub use settings::{DEFAULT_SHARD_BUFFER, RegionSettings, RegionStats};

use super::ctx::Ctx;
use super::mailbox::Envelope;
use super::props::{Actor, ActorId, Props};
use super::stage::actor_flow;
use super::supervisor::SupervisorStrategy;
use shards::{Parked, Shards};
type HashMap<K, V> = std::collections::HashMap<K, V, ahash::RandomState>;
use std::fmt::{self, Debug};
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use weir_graph::{Flow, Keep, StageError};

/// A message to a region: one for an entity, or one of the region's own notices.
pub enum RegionMsg<M> {
    /// Delivers `M` to the entity its id names.
    Deliver(M),
    /// Passivates the entities idle for the passivation timeout (sent by the region's timer).
    Passivate,
    /// Moves the messages parked for shard `n` on (sent when the mailbox of the entity at the
    /// front of the shard's buffer has room again).
    Room(usize),
}

impl<M> fmt::Debug for RegionMsg<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Deliver(_) => f.write_str("Deliver(..)"),
            Self::Passivate => f.write_str("Passivate"),
            Self::Room(n) => write!(f, "Room({n})"),
        }
    }
}

type EntityProps<K, E> = Arc<dyn Fn(&K) -> Props<E> + Send + Sync>;
type EntityId<K, M> = Arc<dyn Fn(&M) -> Result<K, StageError> + Send + Sync>;

struct Entry<M> {
    r: super::mailbox::ActorRef<M>,
    last: Duration,
}

/// The root of a region: entities by id and the shard buffers.
struct Region<E: Actor, K> {
    entity: EntityProps<K, E>,
    id_of: EntityId<K, E::Msg>,
    settings: RegionSettings,
    entities: HashMap<K, Entry<E::Msg>>,
    by_actor: HashMap<ActorId, K>,
    ticking: bool,
    shards: Shards<K, E::Msg>,
    /// Entities a restored checkpoint remembered: made again by `pre_start`.
    remembered: Vec<K>,
    /// Buffered messages last published to the stats.
    published: usize,
    /// This subtask's stage gauges (set by `pre_start` in a run).
    gauges: Option<RegionGauges>,
}

const TICK: &str = "region-passivate";

impl<E, K> Region<E, K>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    fn new(
        entity: EntityProps<K, E>,
        id_of: EntityId<K, E::Msg>,
        settings: RegionSettings,
    ) -> Self {
        Self {
            entity,
            id_of,
            settings,
            entities: HashMap::default(),
            by_actor: HashMap::default(),
            ticking: false,
            shards: Shards::default(),
            remembered: Vec::new(),
            published: 0,
            gauges: None,
        }
    }

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

    /// The run's clock when passivation needs the time of last use.
    fn now(&self, ctx: &Ctx<'_, Self>) -> Duration {
        if self.settings.passivate_after.is_some() {
            ctx.now()
        } else {
            Duration::ZERO
        }
    }

    /// Makes the entity `k` (no message yet).
    fn spawn(&mut self, ctx: &mut Ctx<'_, Self>, k: &K) -> Result<(), StageError> {
        let props = (self.entity)(k).with_name(&format!("entity-{k:?}"));
        let r = ctx.spawn(props)?;
        ctx.watch(r.id());
        let s = &self.settings.stats;
        s.created.fetch_add(1, Ordering::Relaxed);
        s.alive.fetch_add(1, Ordering::Relaxed);
        if let Some(g) = &self.gauges {
            g.created.add(1);
            g.alive.add(1);
        }
        self.by_actor.insert(r.id(), k.clone());
        let last = self.now(ctx);
        self.entities.insert(k.clone(), Entry { r, last });
        self.arm(ctx);
        Ok(())
    }

    /// Whether a message for `k` may go to its mailbox now (absent entities are made).
    fn has_room(&self, k: &K) -> bool {
        self.entities
            .get(k)
            .is_none_or(|e| e.r.len() < e.r.capacity())
    }

    /// Hands `p` to its entity (made first when absent).
    fn send(&mut self, ctx: &mut Ctx<'_, Self>, p: Parked<K, E::Msg>) -> Result<(), StageError> {
        if !self.entities.contains_key(&p.key) {
            self.spawn(ctx, &p.key)?;
        }
        let now = self.now(ctx);
        if let Some(e) = self.entities.get_mut(&p.key) {
            e.last = now;
            self.settings.stats.count_delivery(p.shard);
            if let Some(g) = self.gauges.as_mut() {
                g.delivered(ctx, p.shard);
            }
            let _ = ctx.send(&e.r, p.env);
        }
        Ok(())
    }

    /// Asks for a `Room(shard)` notice once `k`'s mailbox has room again.
    fn notify_room(&self, ctx: &Ctx<'_, Self>, k: &K, shard: usize) {
        if let Some(e) = self.entities.get(k) {
            let me = Arc::downgrade(ctx.mailbox);
            e.r.0.on_room(Box::new(move || {
                if let Some(m) = me.upgrade() {
                    m.offer_notice(RegionMsg::Room(shard));
                }
            }));
        }
    }

    /// Sends or parks `p`; gives it back when its shard's buffer is full.
    fn place(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        p: Parked<K, E::Msg>,
    ) -> Result<Option<Parked<K, E::Msg>>, StageError> {
        let parked = self.shards.parked_in(p.shard);
        if parked == 0 {
            if self.has_room(&p.key) {
                self.send(ctx, p)?;
                return Ok(None);
            }
            self.notify_room(ctx, &p.key, p.shard);
        }
        if parked < self.settings.shard_buffer {
            self.shards.park(p);
            return Ok(None);
        }
        Ok(Some(p))
    }

    fn deliver(&mut self, ctx: &mut Ctx<'_, Self>, msg: E::Msg) -> Result<(), StageError> {
        // A message whose id cannot be computed fails the region's turn (its supervision).
        let key = (self.id_of)(&msg)?;
        let shard = weir_graph::stable_key_group(&key);
        let env = Envelope {
            msg,
            reply: ctx.take_reply(),
        };
        // The common case in one map lookup: a live entity with room, nothing parked before.
        if !self.shards.holding() && self.shards.parked_in(shard) == 0 {
            let now = self.now(ctx);
            if let Some(e) = self.entities.get_mut(&key)
                && e.r.len() < e.r.capacity()
            {
                e.last = now;
                self.settings.stats.count_delivery(shard);
                if let Some(g) = self.gauges.as_mut() {
                    g.delivered(ctx, shard);
                }
                let _ = ctx.send(&e.r, env);
                return Ok(());
            }
        }
        let p = Parked { shard, key, env };
        if self.shards.holding() {
            self.shards.hold(p);
        } else if let Some(p) = self.place(ctx, p)? {
            self.shards.hold(p);
            self.pause(ctx);
        }
        self.publish();
        Ok(())
    }

    /// Holds the stream input and the messages told to the region's ref (they stay in its
    /// mailbox, so outside senders wait once it is full); room notices still arrive.
    fn pause(&mut self, ctx: &mut Ctx<'_, Self>) {
        if !ctx.input_paused() {
            ctx.pause_input();
            ctx.pause_mailbox();
            self.settings.stats.paused.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn resume(&mut self, ctx: &mut Ctx<'_, Self>) {
        if ctx.input_paused() {
            ctx.resume_input();
            ctx.resume_mailbox();
            self.settings.stats.paused.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Moves shard `shard`'s buffer on while the entity at its front has room, then the held
    /// messages while their shards take them.
    fn drain(&mut self, ctx: &mut Ctx<'_, Self>, shard: usize) -> Result<(), StageError> {
        while let Some(k) = self.shards.front(shard) {
            if !self.has_room(k) {
                let k = k.clone();
                self.notify_room(ctx, &k, shard);
                break;
            }
            let Some(p) = self.shards.pop(shard) else {
                break;
            };
            self.send(ctx, p)?;
        }
        self.release(ctx)?;
        self.publish();
        Ok(())
    }

    /// Places the held messages in order until one finds its shard full again.
    fn release(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        while let Some(p) = self.shards.unhold() {
            if let Some(p) = self.place(ctx, p)? {
                self.shards.hold_front(p);
                self.pause(ctx);
                return Ok(());
            }
        }
        self.resume(ctx);
        Ok(())
    }

    /// Publishes the number of buffered messages.
    fn publish(&mut self) {
        let now = self.shards.len();
        if now != self.published {
            self.settings.stats.rebuffer(self.published, now);
            self.published = now;
            if let Some(g) = &self.gauges {
                g.buffered.set(now as i64);
            }
        }
    }

    /// Drops the entity bookkeeping (they stopped with the region), counting them as gone.
    fn forget_entities(&mut self) {
        let n = self.entities.len();
        self.settings
            .stats
            .alive
            .fetch_sub(n as u64, Ordering::Relaxed);
        if let Some(g) = &self.gauges {
            g.alive.add(-(n as i64));
        }
        self.entities.clear();
        self.by_actor.clear();
    }

    /// Sends what the region buffers to dead letters with `reason` (it stops or restarts).
    fn drop_buffered(&mut self, ctx: &mut Ctx<'_, Self>, reason: &str) {
        for p in self.shards.take_all() {
            ctx.dead_letter(p.env.msg, reason);
        }
        self.publish();
        self.resume(ctx);
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
                if let Some(g) = &self.gauges {
                    g.passivated.add(1);
                    g.alive.add(-1);
                }
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

    /// Makes the entities a restored checkpoint remembered, then delivers what it had buffered.
    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        self.gauges = RegionGauges::new(ctx);
        if let Some(g) = &self.gauges {
            g.buffered.set(self.shards.len() as i64);
        }
        for k in std::mem::take(&mut self.remembered) {
            if !self.entities.contains_key(&k) {
                self.spawn(ctx, &k)?;
            }
        }
        self.release(ctx)?;
        self.publish();
        Ok(())
    }

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: Self::Msg) -> Result<(), StageError> {
        match msg {
            RegionMsg::Deliver(m) => self.deliver(ctx, m),
            RegionMsg::Passivate => {
                self.passivate(ctx);
                Ok(())
            }
            RegionMsg::Room(shard) => self.drain(ctx, shard),
        }
    }

    fn on_terminated(&mut self, ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        // An entity its supervision stopped: the next message for it makes a new one.
        if let Some(k) = self.by_actor.remove(&who) {
            self.entities.remove(&k);
            self.settings.stats.alive.fetch_sub(1, Ordering::Relaxed);
            if let Some(g) = &self.gauges {
                g.alive.add(-1);
            }
            let shard = weir_graph::stable_key_group(&k);
            if self.shards.parked_in(shard) > 0 {
                self.drain(ctx, shard)?;
            }
        }
        Ok(())
    }

    fn pre_restart(&mut self, ctx: &mut Ctx<'_, Self>, _error: &StageError) {
        // The entities were stopped with the region's children.
        self.forget_entities();
        self.drop_buffered(ctx, "region restarted");
    }

    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.forget_entities();
        self.drop_buffered(ctx, "region stopped");
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
/// - **backpressures when** the region has not handled the previous batch, the element at its
///   head is for a shard whose buffer is full (see the module docs), or downstream
///   backpressures
/// - **completes when** upstream completes and every entity handled its messages
/// - **cancels when** downstream cancels (every entity stops)
/// - **fails when** upstream fails, or an entity's failure escalates past the region and the
///   stage's supervision says stop, or the run checkpoints (use [`sharded_checkpointed`])
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
    region_flow(Arc::new(entity), Arc::new(entity_id), settings, |p| p)
}

/// [`sharded`] taking part in checkpoints: at a barrier the region saves what it buffers (and,
/// with [`RegionSettings::remember_entities`], the ids of its live entities) beside each
/// entity's state (every entity's props must be `Props::checkpointed()`); a restored region
/// delivers the buffered messages again and makes the remembered entities when it starts,
/// before any message.
pub fn sharded_checkpointed<E, K>(
    entity: impl Fn(&K) -> Props<E> + Send + Sync + 'static,
    entity_id: impl Fn(&E::Msg) -> K + Send + Sync + 'static,
    settings: RegionSettings,
) -> Flow<E::Msg, E::Out, super::mailbox::ActorRef<RegionMsg<E::Msg>>>
where
    E: Actor,
    E::Msg: serde::Serialize + serde::de::DeserializeOwned,
    K: Hash + Eq + Clone + Debug + Send + serde::Serialize + serde::de::DeserializeOwned + 'static,
{
    let entity: EntityProps<K, E> = Arc::new(entity);
    let id_of: EntityId<K, E::Msg> = Arc::new(move |m: &E::Msg| Ok(entity_id(m)));
    let (e, i, s) = (Arc::clone(&entity), Arc::clone(&id_of), settings.clone());
    region_flow(entity, id_of, settings, move |p| {
        p.with_codec(saved::codec(e.clone(), i.clone(), s.clone()))
    })
}

/// The hash edge on the entity id and the region stage; `props` finishes the root's props.
fn region_flow<E, K>(
    entity: EntityProps<K, E>,
    id_of: EntityId<K, E::Msg>,
    settings: RegionSettings,
    props: impl FnOnce(Props<Region<E, K>>) -> Props<Region<E, K>>,
) -> Flow<E::Msg, E::Out, super::mailbox::ActorRef<RegionMsg<E::Msg>>>
where
    E: Actor,
    K: Hash + Eq + Clone + Debug + Send + 'static,
{
    let route = Arc::clone(&id_of);
    let parallelism = settings.parallelism;
    let root =
        Props::new(move || Region::new(Arc::clone(&entity), Arc::clone(&id_of), settings.clone()))
            .with_name("region");
    let root = props(root);
    crate::simple::map(RegionMsg::Deliver)
        .partition_by_hash(move |m: &RegionMsg<E::Msg>| match m {
            RegionMsg::Deliver(x) => route(x).map_or(0, |k| weir_graph::stable_hash_of(&k)),
            RegionMsg::Passivate | RegionMsg::Room(_) => 0,
        })
        .via_mat(actor_flow(root).parallelism(parallelism), Keep::right)
}
