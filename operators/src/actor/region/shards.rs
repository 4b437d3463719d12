//! A region's shard buffers: per shard (key group) the messages parked while an entity of the
//! shard has a full mailbox, and the region's held queue of messages behind a full shard.

use crate::actor::mailbox::Envelope;
use std::collections::VecDeque;
use weir_graph::MAX_KEY_GROUPS;

/// A message the region could not hand to its entity yet.
pub(super) struct Parked<K, M> {
    pub(super) shard: usize,
    pub(super) key: K,
    pub(super) env: Envelope<M>,
}

/// Parked messages by shard, and the held queue (non-empty only while the region's input is
/// paused: its head is for a shard whose buffer is full).
pub(super) struct Shards<K, M> {
    queues: Vec<VecDeque<Parked<K, M>>>,
    held: VecDeque<Parked<K, M>>,
    parked: usize,
}

impl<K, M> Default for Shards<K, M> {
    fn default() -> Self {
        Self {
            queues: (0..MAX_KEY_GROUPS).map(|_| VecDeque::new()).collect(),
            held: VecDeque::new(),
            parked: 0,
        }
    }
}

impl<K, M> Shards<K, M> {
    /// Messages parked for `shard`.
    pub(super) fn parked_in(&self, shard: usize) -> usize {
        self.queues.get(shard).map_or(0, VecDeque::len)
    }
    /// Every message buffered (parked and held).
    pub(super) fn len(&self) -> usize {
        self.parked + self.held.len()
    }
    /// Whether messages are held behind a full shard.
    pub(super) fn holding(&self) -> bool {
        !self.held.is_empty()
    }
    /// Parks `p` at the back of its shard's buffer.
    pub(super) fn park(&mut self, p: Parked<K, M>) {
        if let Some(q) = self.queues.get_mut(p.shard) {
            q.push_back(p);
            self.parked += 1;
        }
    }
    /// The entity the oldest message parked for `shard` is for.
    pub(super) fn front(&self, shard: usize) -> Option<&K> {
        self.queues.get(shard)?.front().map(|p| &p.key)
    }
    /// Takes the oldest message parked for `shard`.
    pub(super) fn pop(&mut self, shard: usize) -> Option<Parked<K, M>> {
        let p = self.queues.get_mut(shard)?.pop_front()?;
        self.parked -= 1;
        Some(p)
    }
    /// Holds `p` behind every message held already.
    pub(super) fn hold(&mut self, p: Parked<K, M>) {
        self.held.push_back(p);
    }
    /// Puts `p` back at the head of the held queue.
    pub(super) fn hold_front(&mut self, p: Parked<K, M>) {
        self.held.push_front(p);
    }
    /// Takes the head of the held queue.
    pub(super) fn unhold(&mut self) -> Option<Parked<K, M>> {
        self.held.pop_front()
    }
    /// Every buffered message in the order the region must deliver it again: parked ones by
    /// shard (each shard in its order), then the held ones.
    pub(super) fn iter(&self) -> impl Iterator<Item = &Parked<K, M>> {
        self.queues.iter().flatten().chain(self.held.iter())
    }
    /// Takes every buffered message (in [`Shards::iter`]'s order).
    pub(super) fn take_all(&mut self) -> Vec<Parked<K, M>> {
        self.parked = 0;
        let mut all: Vec<Parked<K, M>> = self.queues.iter_mut().flat_map(|q| q.drain(..)).collect();
        all.extend(self.held.drain(..));
        all
    }
}
