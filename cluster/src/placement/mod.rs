//! Placement: which node runs every subtask (and owns its key groups), and which node is the
//! coordinator.
//!
//! [`place`] is a pure function of the job's shape ([`JobShape`], from a
//! [`weir_engine::plan::PhysicalPlan`]), the live members and, optionally, the previous
//! placement:
//! - **balanced**: every island's subtasks are spread so no two nodes differ by more than one;
//!   the nodes that take one more are the least loaded overall, so a fresh placement's totals
//!   also differ by at most one;
//! - **deterministic**: the same inputs (members in any order) give the same placement; ties
//!   break by a stable hash of island and node name (rendezvous hashing);
//! - **stable**: with the previous placement given, a subtask stays where it was unless its
//!   node left or must shed load for a newcomer: when a node leaves only its subtasks move, and
//!   when one joins only the subtasks it takes over move.
//!
//! A keyed subtask (an island fed by a hash edge) owns the key groups
//! [`weir_graph::KeyGroupRange::for_subtask`] gives it, so its state moves with it.
//!
//! The coordinator is a fixed role ([`CoordinatorRole`]): the oldest live member. When it is
//! lost the next oldest takes over with the job's epoch plus one, and restarts the job from the
//! latest complete checkpoint under that epoch; a member that joins later never takes the role
//! over while the coordinator lives. Both act on [`crate::membership::MembershipView::members`]
//! (live members and lost ones not yet downed): during a partition nothing moves and nobody
//! takes over until the split-brain resolver has downed the other side, so the old
//! coordinator has stopped (or is fenced) before the new one starts. A node takes the role only
//! once it has joined (a node still alone sees itself as the oldest).

mod assign;
mod coordinator;

pub use assign::place;
pub use coordinator::{CoordinatorRole, CoordinatorSeat};

use std::collections::BTreeMap;
use weir_engine::plan::{Endpoint, PhysicalPlan};
use weir_graph::{EdgeKind, KeyGroupRange};

/// One island as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IslandSpec {
    /// Island index in the plan.
    pub island: usize,
    /// Number of subtasks.
    pub parallelism: usize,
    /// Whether a hash edge feeds it (its subtasks own key groups).
    pub keyed: bool,
}

/// The part of a physical plan placement needs: islands and their parallelism.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JobShape {
    /// Every island, in plan order.
    pub islands: Vec<IslandSpec>,
}

impl JobShape {
    /// The shape of a physical plan.
    pub fn from_plan(plan: &PhysicalPlan) -> Self {
        let islands = plan
            .islands
            .iter()
            .map(|i| IslandSpec {
                island: i.id,
                parallelism: i.parallelism,
                keyed: plan.edges.iter().any(|e| {
                    e.kind == EdgeKind::Hash
                        && matches!(e.to, Endpoint::Island { island, .. } if island == i.id)
                }),
            })
            .collect();
        Self { islands }
    }

    /// Total number of subtasks.
    pub fn subtasks(&self) -> usize {
        self.islands.iter().map(|i| i.parallelism).sum()
    }
}

/// One subtask of an island.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubtaskId {
    /// Island index.
    pub island: usize,
    /// Subtask index in `0..parallelism`.
    pub subtask: usize,
}

/// Where one subtask runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The node's name.
    pub node: String,
    /// The key groups it owns (keyed islands only).
    pub key_groups: Option<KeyGroupRange>,
}

/// Errors of placement.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    /// No live member to place on.
    #[error("no live member to place the job's {subtasks} subtasks on")]
    NoMembers {
        /// Subtasks to place.
        subtasks: usize,
    },
}

/// Every subtask's node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    assignments: BTreeMap<SubtaskId, Assignment>,
}

impl Placement {
    /// Where `subtask` runs.
    pub fn get(&self, subtask: SubtaskId) -> Option<&Assignment> {
        self.assignments.get(&subtask)
    }

    /// The node running `subtask`.
    pub fn node_of(&self, subtask: SubtaskId) -> Option<&str> {
        self.get(subtask).map(|a| a.node.as_str())
    }

    /// Every assignment, by subtask.
    pub fn iter(&self) -> impl Iterator<Item = (&SubtaskId, &Assignment)> {
        self.assignments.iter()
    }

    /// Number of subtasks placed.
    pub fn len(&self) -> usize {
        self.assignments.len()
    }

    /// Whether nothing is placed.
    pub fn is_empty(&self) -> bool {
        self.assignments.is_empty()
    }

    /// The subtasks a node runs, in order.
    pub fn on_node(&self, node: &str) -> Vec<SubtaskId> {
        self.assignments
            .iter()
            .filter(|(_, a)| a.node == node)
            .map(|(s, _)| *s)
            .collect()
    }

    /// Subtasks per node (nodes with none are absent).
    pub fn load(&self) -> BTreeMap<&str, usize> {
        let mut load = BTreeMap::new();
        for a in self.assignments.values() {
            *load.entry(a.node.as_str()).or_insert(0) += 1;
        }
        load
    }

    /// The subtasks whose node differs from `before` (or that `before` did not place).
    pub fn moved_since(&self, before: &Placement) -> Vec<SubtaskId> {
        self.assignments
            .iter()
            .filter(|(s, a)| before.node_of(**s) != Some(a.node.as_str()))
            .map(|(s, _)| *s)
            .collect()
    }
}
