//! A grow-only counter: one count per replica, merged by maximum.

use super::{Crdt, CrdtError, ReplicaId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A grow-only counter: its value is the sum of every replica's increments.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GCounter {
    counts: BTreeMap<ReplicaId, u64>,
}

impl GCounter {
    /// An empty counter (value 0).
    pub fn new() -> Self {
        Self::default()
    }
    /// The sum of every replica's count.
    pub fn value(&self) -> u128 {
        self.counts.values().map(|&c| u128::from(c)).sum()
    }
    /// The count `replica` contributed.
    pub fn count_of(&self, replica: ReplicaId) -> u64 {
        self.counts.get(&replica).copied().unwrap_or(0)
    }
    /// Adds `n` on behalf of `replica`; returns the delta (empty for `n == 0`).
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> Result<GCounter, CrdtError> {
        if n == 0 {
            return Ok(GCounter::new());
        }
        let c = self
            .count_of(replica)
            .checked_add(n)
            .ok_or(CrdtError::Overflow { replica })?;
        self.counts.insert(replica, c);
        Ok(GCounter {
            counts: BTreeMap::from([(replica, c)]),
        })
    }
}

impl Crdt for GCounter {
    fn merge(&mut self, other: &Self) {
        for (r, &c) in &other.counts {
            let e = self.counts.entry(*r).or_insert(0);
            *e = (*e).max(c);
        }
    }
    fn is_bottom(&self) -> bool {
        self.counts.is_empty()
    }
}
