//! An observed-remove set (add wins): each add is a fresh dot; a remove drops the dots it saw,
//! so an add concurrent with a remove survives it.

use super::dots::{CausalContext, Dot};
use super::{Crdt, ReplicaId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// An observed-remove set: an element is present while any add of it was not seen by a remove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Ord + DeserializeOwned"))]
pub struct ORSet<T: Ord> {
    entries: BTreeMap<T, BTreeSet<Dot>>,
    context: CausalContext,
}

impl<T: Ord> Default for ORSet<T> {
    fn default() -> Self {
        Self {
            entries: BTreeMap::new(),
            context: CausalContext::default(),
        }
    }
}

impl<T: Ord + Clone> ORSet<T> {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }
    /// Whether `x` is in the set.
    pub fn contains(&self, x: &T) -> bool {
        self.entries.contains_key(x)
    }
    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.entries.keys()
    }
    /// The number of elements.
    pub fn len(&self) -> usize {
        self.entries.len()
    }
    /// Whether the set has no elements.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
    /// Adds `x` on behalf of `replica`; returns the delta.
    pub fn add(&mut self, replica: ReplicaId, x: T) -> ORSet<T> {
        let d = self.context.next(replica);
        let old = self.entries.insert(x.clone(), BTreeSet::from([d]));
        let seen = old.into_iter().flatten().chain([d]);
        ORSet {
            entries: BTreeMap::from([(x, BTreeSet::from([d]))]),
            context: CausalContext::of(seen),
        }
    }
    /// Removes `x` (the adds this replica has seen); returns the delta (empty when absent).
    pub fn remove(&mut self, x: &T) -> ORSet<T> {
        match self.entries.remove(x) {
            Some(dots) => ORSet {
                entries: BTreeMap::new(),
                context: CausalContext::of(dots),
            },
            None => ORSet::new(),
        }
    }
    /// Removes every element; returns the delta.
    pub fn clear(&mut self) -> ORSet<T> {
        let entries = std::mem::take(&mut self.entries);
        ORSet {
            entries: BTreeMap::new(),
            context: CausalContext::of(entries.into_values().flatten()),
        }
    }
}

impl<T> Crdt for ORSet<T>
where
    T: Ord + Clone + Serialize + DeserializeOwned + Send + 'static,
{
    fn merge(&mut self, other: &Self) {
        // Per element: the dots both hold, plus those one holds that the other has not seen.
        let mut keys: BTreeSet<T> = self.entries.keys().cloned().collect();
        keys.extend(other.entries.keys().cloned());
        for k in keys {
            let empty = BTreeSet::new();
            let mine = self.entries.get(&k).unwrap_or(&empty);
            let theirs = other.entries.get(&k).unwrap_or(&empty);
            let kept: BTreeSet<Dot> = mine
                .iter()
                .filter(|d| theirs.contains(d) || !other.context.contains(d))
                .chain(theirs.iter().filter(|d| !self.context.contains(d)))
                .copied()
                .collect();
            if kept.is_empty() {
                self.entries.remove(&k);
            } else {
                self.entries.insert(k, kept);
            }
        }
        self.context.merge(&other.context);
    }
    fn is_bottom(&self) -> bool {
        self.entries.is_empty() && self.context.is_empty()
    }
}
