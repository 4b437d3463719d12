//! A last-writer-wins map: each key keeps the write with the greatest `(timestamp, replica)`.

use super::{Crdt, Writer};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One write of a key: a value, or a tombstone (`None`) for a removal. Ordered by timestamp,
/// then replica, then value: the deterministic tie-break every replica agrees on.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
struct Stamped<V> {
    ts: u64,
    replica: super::ReplicaId,
    value: Option<V>,
}

/// A map whose keys each hold the latest write by `(timestamp, replica id)`; removals are kept
/// as tombstones so an older write arriving later cannot resurrect a key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, V: Serialize",
    deserialize = "K: Ord + DeserializeOwned, V: DeserializeOwned"
))]
pub struct LWWMap<K: Ord, V> {
    entries: BTreeMap<K, Stamped<V>>,
}

impl<K: Ord, V> Default for LWWMap<K, V> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }
}

impl<K: Ord + Clone, V: Ord + Clone> LWWMap<K, V> {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }
    /// The value of `k`, if present.
    pub fn get(&self, k: &K) -> Option<&V> {
        self.entries.get(k).and_then(|s| s.value.as_ref())
    }
    /// The present entries, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries
            .iter()
            .filter_map(|(k, s)| s.value.as_ref().map(|v| (k, v)))
    }
    /// The number of present keys.
    pub fn len(&self) -> usize {
        self.iter().count()
    }
    /// Whether no key is present.
    pub fn is_empty(&self) -> bool {
        self.iter().next().is_none()
    }
    /// Sets `k` to `v` as `w` writes it; returns the delta.
    pub fn put(&mut self, w: Writer, k: K, v: V) -> LWWMap<K, V> {
        self.write(w, k, Some(v))
    }
    /// Removes `k` as `w` writes it (a tombstone); returns the delta.
    pub fn remove(&mut self, w: Writer, k: K) -> LWWMap<K, V> {
        self.write(w, k, None)
    }
    /// Writes at the writer's clock, or just after the key's current write when that is later
    /// (so a write always supersedes what its replica has seen).
    fn write(&mut self, w: Writer, k: K, value: Option<V>) -> LWWMap<K, V> {
        let ts = match self.entries.get(&k) {
            Some(s) if s.ts >= w.now_ms => s.ts.saturating_add(1),
            _ => w.now_ms,
        };
        let s = Stamped {
            ts,
            replica: w.replica,
            value,
        };
        self.entries.insert(k.clone(), s.clone());
        LWWMap {
            entries: BTreeMap::from([(k, s)]),
        }
    }
}

impl<K, V> Crdt for LWWMap<K, V>
where
    K: Ord + Clone + Serialize + DeserializeOwned + Send + 'static,
    V: Ord + Clone + Serialize + DeserializeOwned + Send + 'static,
{
    fn merge(&mut self, other: &Self) {
        for (k, s) in &other.entries {
            match self.entries.get_mut(k) {
                Some(mine) if *mine >= *s => {}
                Some(mine) => *mine = s.clone(),
                None => {
                    self.entries.insert(k.clone(), s.clone());
                }
            }
        }
    }
    fn is_bottom(&self) -> bool {
        self.entries.is_empty()
    }
}
