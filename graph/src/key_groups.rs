//! Key-group ranges: the key groups one subtask of a keyed stage owns.

use crate::MAX_KEY_GROUPS;
use std::fmt;
use std::ops::Range;

/// A half-open range of key groups, `start..end` within `0..MAX_KEY_GROUPS`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyGroupRange {
    start: usize,
    end: usize,
}

impl KeyGroupRange {
    /// Every key group.
    pub const ALL: KeyGroupRange = KeyGroupRange {
        start: 0,
        end: MAX_KEY_GROUPS,
    };

    /// The range `start..end`, clamped to `0..MAX_KEY_GROUPS` (empty when `end <= start`).
    pub fn new(start: usize, end: usize) -> Self {
        let end = end.min(MAX_KEY_GROUPS);
        Self {
            start: start.min(end),
            end,
        }
    }

    /// The key groups subtask `subtask` of `parallelism` owns (as [`crate::subtask_for_key_group`]).
    pub fn for_subtask(subtask: usize, parallelism: usize) -> Self {
        let p = parallelism.clamp(1, MAX_KEY_GROUPS);
        let first = |i: usize| (i * MAX_KEY_GROUPS).div_ceil(p);
        Self::new(first(subtask), first(subtask + 1))
    }

    /// First key group.
    pub fn start(&self) -> usize {
        self.start
    }

    /// One past the last key group.
    pub fn end(&self) -> usize {
        self.end
    }

    /// Whether `key_group` lies in the range.
    pub fn contains(&self, key_group: usize) -> bool {
        (self.start..self.end).contains(&key_group)
    }

    /// The key groups as a `Range`.
    pub fn iter(&self) -> Range<usize> {
        self.start..self.end
    }

    /// The key groups both ranges hold (empty when they do not overlap).
    pub fn intersect(&self, other: &KeyGroupRange) -> Self {
        Self::new(self.start.max(other.start), self.end.min(other.end))
    }

    /// Whether the range holds no key group.
    pub fn is_empty(&self) -> bool {
        self.start >= self.end
    }
}

/// One subtask's place among every subtask of a stage across the job's processes: the
/// `index`-th of `count`, numbered node by node (`node * parallelism + subtask`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Share {
    /// This subtask's place, `0..count`.
    pub index: usize,
    /// Subtasks of the stage across the job.
    pub count: usize,
}

impl Share {
    /// The share of subtask `subtask` of `parallelism` on node `node` of `nodes`.
    pub fn of(node: usize, nodes: usize, subtask: usize, parallelism: usize) -> Self {
        Self {
            index: node * parallelism + subtask,
            count: (nodes * parallelism).max(1),
        }
    }

    /// Whether item `i` of a list dealt round-robin over the shares falls to this one.
    pub fn owns(&self, i: usize) -> bool {
        i % self.count == self.index
    }
}

impl fmt::Display for Share {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "share {} of {}", self.index, self.count)
    }
}

impl fmt::Display for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "key groups {}..{}", self.start, self.end)
    }
}

impl fmt::Debug for KeyGroupRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyGroupRange({}..{})", self.start, self.end)
    }
}
