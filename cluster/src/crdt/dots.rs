//! Dots (one event of one replica) and causal contexts (the set of dots a state has seen), kept
//! compact: a version vector plus the dots past it.

use super::ReplicaId;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// The `seq`-th event of `replica`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) struct Dot {
    pub(crate) replica: ReplicaId,
    pub(crate) seq: u64,
}

/// A set of dots: every `seq <= vv[replica]`, plus `cloud`. Always compact (no dot of the cloud
/// extends or sits under the vector), so equal sets have equal representations.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CausalContext {
    vv: BTreeMap<ReplicaId, u64>,
    cloud: BTreeSet<Dot>,
}

impl CausalContext {
    /// The context holding exactly `dots`.
    pub(crate) fn of(dots: impl IntoIterator<Item = Dot>) -> Self {
        let mut c = Self::default();
        c.cloud.extend(dots);
        c.compact();
        c
    }
    /// Whether `d` is in the set.
    pub(crate) fn contains(&self, d: &Dot) -> bool {
        self.vv.get(&d.replica).is_some_and(|&n| d.seq <= n) || self.cloud.contains(d)
    }
    /// A dot of `replica` not yet in the set (added to it).
    pub(crate) fn next(&mut self, replica: ReplicaId) -> Dot {
        let top = self.vv.get(&replica).copied().unwrap_or(0);
        let cloud_top = self
            .cloud
            .range(
                Dot { replica, seq: 0 }..=Dot {
                    replica,
                    seq: u64::MAX,
                },
            )
            .next_back()
            .map_or(0, |d| d.seq);
        let d = Dot {
            replica,
            seq: top.max(cloud_top).saturating_add(1),
        };
        self.cloud.insert(d);
        self.compact();
        d
    }
    /// Joins `other` into the set.
    pub(crate) fn merge(&mut self, other: &Self) {
        for (r, &n) in &other.vv {
            let e = self.vv.entry(*r).or_insert(0);
            *e = (*e).max(n);
        }
        self.cloud.extend(other.cloud.iter().copied());
        self.compact();
    }
    /// Whether the set is empty.
    pub(crate) fn is_empty(&self) -> bool {
        self.vv.is_empty() && self.cloud.is_empty()
    }
    /// Folds the cloud's dots that extend the vector into it and drops those under it.
    fn compact(&mut self) {
        let cloud = std::mem::take(&mut self.cloud);
        for d in cloud {
            // The cloud is ordered by (replica, seq): one pass folds every contiguous run.
            let n = self.vv.get(&d.replica).copied().unwrap_or(0);
            if d.seq <= n {
                continue;
            }
            if d.seq == n + 1 {
                self.vv.insert(d.replica, d.seq);
            } else {
                self.cloud.insert(d);
            }
        }
    }
}
