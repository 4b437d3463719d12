//! [`RegionSettings`] (parallelism, passivation, shard buffers, remembered entities) and the
//! counters a region keeps in [`RegionStats`].

use crate::actor::supervisor::SupervisorStrategy;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use weir_graph::MAX_KEY_GROUPS;

/// Default number of messages a shard parks while one of its entities' mailboxes is full.
pub const DEFAULT_SHARD_BUFFER: usize = 256;

/// Counters of a region, summed over its subtasks.
#[derive(Debug)]
pub struct RegionStats {
    pub(super) alive: AtomicU64,
    pub(super) created: AtomicU64,
    pub(super) passivated: AtomicU64,
    pub(super) messages: AtomicU64,
    pub(super) buffered: AtomicU64,
    pub(super) peak_buffered: AtomicU64,
    pub(super) paused: AtomicU64,
    pub(super) shard_messages: Box<[AtomicU64]>,
}

impl Default for RegionStats {
    fn default() -> Self {
        Self {
            alive: AtomicU64::new(0),
            created: AtomicU64::new(0),
            passivated: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            buffered: AtomicU64::new(0),
            peak_buffered: AtomicU64::new(0),
            paused: AtomicU64::new(0),
            shard_messages: (0..MAX_KEY_GROUPS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl RegionStats {
    /// Entities alive now.
    pub fn alive(&self) -> u64 {
        self.alive.load(Ordering::Relaxed)
    }
    /// Entities made so far (a passivated entity made again counts again, and so does an
    /// entity a restored region remembered).
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
    /// Messages delivered so far to the entities of shard `shard` (a key group; 0 beyond them).
    pub fn shard_messages(&self, shard: usize) -> u64 {
        self.shard_messages
            .get(shard)
            .map_or(0, |c| c.load(Ordering::Relaxed))
    }
    /// `(shard, messages)` for every shard that got a message, by shard.
    pub fn messages_per_shard(&self) -> Vec<(usize, u64)> {
        self.shard_messages
            .iter()
            .enumerate()
            .map(|(s, c)| (s, c.load(Ordering::Relaxed)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }
    /// Messages the region buffers now: parked in shard buffers or held behind a full shard.
    pub fn buffered(&self) -> u64 {
        self.buffered.load(Ordering::Relaxed)
    }
    /// The most messages one subtask of the region buffered at once.
    pub fn peak_buffered(&self) -> u64 {
        self.peak_buffered.load(Ordering::Relaxed)
    }
    /// Subtasks whose input is held back now (the element at their head is for a full shard).
    pub fn paused(&self) -> u64 {
        self.paused.load(Ordering::Relaxed)
    }
    pub(super) fn count_delivery(&self, shard: usize) {
        self.messages.fetch_add(1, Ordering::Relaxed);
        if let Some(c) = self.shard_messages.get(shard) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }
    /// Moves the buffered gauge from one subtask's `before` to its `now`.
    pub(super) fn rebuffer(&self, before: usize, now: usize) {
        if now > before {
            self.buffered
                .fetch_add((now - before) as u64, Ordering::Relaxed);
        } else if before > now {
            self.buffered
                .fetch_sub((before - now) as u64, Ordering::Relaxed);
        }
        self.peak_buffered.fetch_max(now as u64, Ordering::Relaxed);
    }
}

/// How a region runs: its parallelism, passivation timeout, strategy, shard buffers,
/// remembered entities and counters.
#[derive(Clone, Debug)]
pub struct RegionSettings {
    pub(super) parallelism: usize,
    pub(super) passivate_after: Option<Duration>,
    pub(super) strategy: SupervisorStrategy,
    pub(super) shard_buffer: usize,
    pub(super) remember_entities: bool,
    pub(super) stats: Arc<RegionStats>,
}

impl Default for RegionSettings {
    fn default() -> Self {
        Self {
            parallelism: 1,
            passivate_after: None,
            strategy: SupervisorStrategy::default(),
            shard_buffer: DEFAULT_SHARD_BUFFER,
            remember_entities: false,
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
    /// Parks at most `n` messages (at least 1) per shard while an entity of the shard has a
    /// full mailbox (default [`DEFAULT_SHARD_BUFFER`]); see the module docs for what happens
    /// when a shard's buffer is full.
    pub fn shard_buffer(mut self, n: usize) -> Self {
        self.shard_buffer = n.max(1);
        self
    }
    /// Records the ids of live entities in the region's checkpoints, so a region restored from
    /// one makes those entities again when it starts, before any message (a region made by
    /// [`sharded_checkpointed`](super::sharded_checkpointed); other regions take no checkpoint).
    pub fn remember_entities(mut self, on: bool) -> Self {
        self.remember_entities = on;
        self
    }
    /// The region's counters (shared by every materialization of these settings).
    pub fn stats(&self) -> Arc<RegionStats> {
        Arc::clone(&self.stats)
    }
}
