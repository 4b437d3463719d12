//! Split-brain resolution: given this node's membership view, decide whether its side of a
//! partition survives (and downs the members it lost) or downs itself.
//!
//! Failure detection cannot tell a crashed node from a partitioned one, so after a partition
//! each side sees the other as down. Each node runs the same [`SplitBrainResolver`] on its own
//! view; the strategies are chosen so that the sides' decisions never both keep:
//! - [`Strategy::KeepMajority`]: the side with more than half of the last agreed membership
//!   keeps; on an exact half the side holding the oldest member keeps;
//! - [`Strategy::StaticQuorum`]`(n)`: a side keeps only with at least `n` members (`n` must be
//!   more than half the cluster size for safety; both sides down when neither has `n`);
//! - [`Strategy::KeepOldest`]: the side holding the oldest member keeps.
//!
//! A decision is taken only once the view has been unchanged for `stable_after`, so a flapping
//! link (members going down and up again within the delay) decides nothing. After a keep, the
//! lost members are forgotten and the survivors form the new agreed membership. A down-self
//! decision is final: the node stops its subtasks and leaves.

use crate::membership::{MembershipView, NodeIdentity};
use std::collections::BTreeSet;
use std::time::Duration;

/// Which side of a partition survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strategy {
    /// The side with a majority of the agreed membership (the oldest member breaks a tie).
    KeepMajority,
    /// A side with at least this many members.
    StaticQuorum(usize),
    /// The side with the oldest member.
    KeepOldest,
}

/// What a resolver decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to decide (no member lost), or the view is not yet stable.
    Undecided,
    /// This side survives; these lost members are downed (forgotten by the membership).
    Keep {
        /// The members this side downs.
        downed: Vec<NodeIdentity>,
    },
    /// This side downs itself: stop every subtask and leave the cluster.
    DownSelf,
}

/// Decides, from one node's view over time, whether its side survives a partition.
#[derive(Debug, Clone)]
pub struct SplitBrainResolver {
    strategy: Strategy,
    stable_after: Duration,
    last_view: Option<(BTreeSet<NodeIdentity>, BTreeSet<NodeIdentity>)>,
    stable_since: Duration,
    downed_self: bool,
}

impl SplitBrainResolver {
    /// A resolver with this strategy, deciding only on a view unchanged for `stable_after`.
    pub fn new(strategy: Strategy, stable_after: Duration) -> Self {
        Self {
            strategy,
            stable_after,
            last_view: None,
            stable_since: Duration::ZERO,
            downed_self: false,
        }
    }

    /// The strategy.
    pub fn strategy(&self) -> Strategy {
        self.strategy
    }

    /// Whether this resolver decided [`Decision::DownSelf`] (final).
    pub fn downed_self(&self) -> bool {
        self.downed_self
    }

    /// Looks at the view at time `now` (any monotonic clock, the same on every call) and
    /// decides. A [`Decision::Keep`] is returned once per loss; the caller forgets the downed
    /// members, which changes the view.
    pub fn observe(&mut self, now: Duration, view: &MembershipView) -> Decision {
        if self.downed_self {
            return Decision::DownSelf;
        }
        let up: BTreeSet<NodeIdentity> = view.up.iter().cloned().collect();
        let down: BTreeSet<NodeIdentity> = view.down.iter().cloned().collect();
        let current = (up, down);
        if self.last_view.as_ref() != Some(&current) {
            self.last_view = Some(current);
            self.stable_since = now;
        }
        let Some((up, down)) = &self.last_view else {
            return Decision::Undecided;
        };
        if down.is_empty() || now.saturating_sub(self.stable_since) < self.stable_after {
            return Decision::Undecided;
        }
        if self.keeps(up, down) {
            let downed: Vec<NodeIdentity> = down.iter().cloned().collect();
            self.last_view = None;
            Decision::Keep { downed }
        } else {
            self.downed_self = true;
            tracing::warn!(
                strategy = ?self.strategy,
                reachable = up.len(),
                lost = down.len(),
                "split brain: this side downs itself"
            );
            Decision::DownSelf
        }
    }

    fn keeps(&self, up: &BTreeSet<NodeIdentity>, down: &BTreeSet<NodeIdentity>) -> bool {
        let oldest_is_up = || {
            let oldest = up.iter().chain(down.iter()).min_by(|a, b| a.age_cmp(b));
            oldest.is_some_and(|o| up.contains(o))
        };
        match self.strategy {
            Strategy::KeepMajority => {
                let total = up.len() + down.len();
                match (2 * up.len()).cmp(&total) {
                    std::cmp::Ordering::Greater => true,
                    std::cmp::Ordering::Equal => oldest_is_up(),
                    std::cmp::Ordering::Less => false,
                }
            }
            Strategy::StaticQuorum(n) => up.len() >= n,
            Strategy::KeepOldest => oldest_is_up(),
        }
    }
}
