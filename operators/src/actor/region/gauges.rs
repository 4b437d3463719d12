//! What a region's subtask publishes through its stage's gauges (`Ctx::stage_gauge`): live,
//! created and passivated entities, buffered messages, and messages per shard.

use crate::actor::ctx::Ctx;
use crate::actor::props::Actor;
use weir_graph::{Gauge, GaugeKind};

/// Entities alive in the subtask now.
pub const REGION_ENTITIES_ALIVE: &str = "weir_region_entities_alive";
/// Entities the subtask made (a counter).
pub const REGION_ENTITIES_CREATED: &str = "weir_region_entities_created";
/// Entities the subtask passivated (a counter).
pub const REGION_ENTITIES_PASSIVATED: &str = "weir_region_entities_passivated";
/// Messages the subtask buffers now (parked in shard buffers or held).
pub const REGION_BUFFERED: &str = "weir_region_buffered_messages";
/// Messages delivered to the entities of one shard (a counter, label `shard`).
pub const REGION_SHARD_MESSAGES: &str = "weir_region_shard_messages";

/// The handles of one region subtask.
pub(super) struct RegionGauges {
    pub(super) alive: Gauge,
    pub(super) created: Gauge,
    pub(super) passivated: Gauge,
    pub(super) buffered: Gauge,
    /// Per shard, made on its first message.
    shards: Vec<Option<Gauge>>,
}

impl RegionGauges {
    /// The handles of the region `ctx` runs in (`None` outside a run).
    pub(super) fn new<A: Actor>(ctx: &Ctx<'_, A>) -> Option<Self> {
        let g = |name: &str, help: &str, kind| ctx.stage_gauge(name, help, kind, &[]);
        Some(Self {
            alive: g(
                REGION_ENTITIES_ALIVE,
                "Entities alive in a region subtask",
                GaugeKind::Gauge,
            )?,
            created: g(
                REGION_ENTITIES_CREATED,
                "Entities a region subtask made",
                GaugeKind::Counter,
            )?,
            passivated: g(
                REGION_ENTITIES_PASSIVATED,
                "Entities a region subtask passivated",
                GaugeKind::Counter,
            )?,
            buffered: g(
                REGION_BUFFERED,
                "Messages a region subtask buffers behind full entity mailboxes",
                GaugeKind::Gauge,
            )?,
            shards: (0..weir_graph::MAX_KEY_GROUPS).map(|_| None).collect(),
        })
    }

    /// Counts a message delivered to an entity of `shard`.
    pub(super) fn delivered<A: Actor>(&mut self, ctx: &Ctx<'_, A>, shard: usize) {
        let Some(slot) = self.shards.get_mut(shard) else {
            return;
        };
        if slot.is_none() {
            *slot = ctx.stage_gauge(
                REGION_SHARD_MESSAGES,
                "Messages delivered to the entities of a shard",
                GaugeKind::Counter,
                &[("shard", shard.to_string())],
            );
        }
        if let Some(g) = slot {
            g.add(1);
        }
    }
}
