//! A counter that counts up and down: two grow-only counters.

use super::{Crdt, CrdtError, GCounter, ReplicaId};
use serde::{Deserialize, Serialize};

/// A counter incremented and decremented by any replica: increments minus decrements.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PNCounter {
    up: GCounter,
    down: GCounter,
}

impl PNCounter {
    /// An empty counter (value 0).
    pub fn new() -> Self {
        Self::default()
    }
    /// Every increment minus every decrement.
    pub fn value(&self) -> i128 {
        // Each side is at most u64::MAX per replica; the difference of two sums fits i128 for
        // any realistic replica count.
        self.up.value() as i128 - self.down.value() as i128
    }
    /// Adds `n` on behalf of `replica`; returns the delta.
    pub fn increment(&mut self, replica: ReplicaId, n: u64) -> Result<PNCounter, CrdtError> {
        Ok(PNCounter {
            up: self.up.increment(replica, n)?,
            down: GCounter::new(),
        })
    }
    /// Subtracts `n` on behalf of `replica`; returns the delta.
    pub fn decrement(&mut self, replica: ReplicaId, n: u64) -> Result<PNCounter, CrdtError> {
        Ok(PNCounter {
            up: GCounter::new(),
            down: self.down.increment(replica, n)?,
        })
    }
    /// Adds `n` (negative: subtracts) on behalf of `replica`; returns the delta.
    pub fn add(&mut self, replica: ReplicaId, n: i64) -> Result<PNCounter, CrdtError> {
        if n >= 0 {
            self.increment(replica, n.unsigned_abs())
        } else {
            self.decrement(replica, n.unsigned_abs())
        }
    }
}

impl Crdt for PNCounter {
    fn merge(&mut self, other: &Self) {
        self.up.merge(&other.up);
        self.down.merge(&other.down);
    }
    fn is_bottom(&self) -> bool {
        self.up.is_bottom() && self.down.is_bottom()
    }
}
