//! The firing order of a window stage: open windows bucketed by their end, each bucket sorted
//! by (start, key id) only when it fires (touched once when a window opens, not per element).

use std::collections::BTreeMap;

/// An open window of one key as the firing order sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Due {
    /// The window's start (its end is the bucket's).
    pub(super) start: i64,
    /// The key's id (first-seen order).
    pub(super) id: u64,
    /// Where the key's state lives.
    pub(super) slot: u32,
}

/// Open windows by end; within an end, in (start, key id) order once [`Self::sorted`].
#[derive(Debug, Default)]
pub(super) struct FiringOrder {
    by_end: BTreeMap<i64, Vec<Due>>,
    /// Emptied buckets kept for the next ends (a bucket grows to the number of keys).
    spare: Vec<Vec<Due>>,
}

/// How many emptied buckets are kept for reuse.
const SPARE: usize = 4;

impl FiringOrder {
    /// A window ending at `end` opened.
    pub(super) fn insert(&mut self, end: i64, due: Due) {
        let spare = &mut self.spare;
        self.by_end
            .entry(end)
            .or_insert_with(|| spare.pop().unwrap_or_default())
            .push(due);
    }

    /// The window `[start, end)` of `slot` closed before its end expired (a merged session).
    pub(super) fn remove(&mut self, end: i64, start: i64, slot: u32) {
        if let Some(bucket) = self.by_end.get_mut(&end) {
            if let Some(i) = bucket
                .iter()
                .position(|d| d.start == start && d.slot == slot)
            {
                bucket.swap_remove(i);
            }
            if bucket.is_empty() {
                self.by_end.remove(&end);
            }
        }
    }

    /// The bucket of the smallest end above `after` (any end when `None`), sorted by (start,
    /// key id), if its last timestamp is at most `last_ts` (`None`: any).
    pub(super) fn sorted(
        &mut self,
        after: Option<i64>,
        last_ts: Option<i64>,
    ) -> Option<(i64, &[Due])> {
        let range = match after {
            None => self.by_end.range_mut(..),
            Some(a) if a == i64::MAX => return None,
            Some(a) => self.by_end.range_mut(a + 1..),
        };
        let (&end, bucket) = range.into_iter().next()?;
        if last_ts.is_some_and(|t| end.saturating_sub(1) > t) {
            return None;
        }
        bucket.sort_unstable_by_key(|d| (d.start, d.id));
        Some((end, bucket))
    }

    /// The ends of the open windows, smallest first.
    pub(super) fn ends(&self) -> impl Iterator<Item = i64> + '_ {
        self.by_end.keys().copied()
    }

    /// The smallest end, if any window is open.
    pub(super) fn first_end(&self) -> Option<i64> {
        self.by_end.keys().next().copied()
    }

    /// Removes and returns the bucket of the smallest end.
    pub(super) fn pop_first(&mut self) -> Option<(i64, Vec<Due>)> {
        self.by_end.pop_first()
    }

    /// Takes back a bucket [`Self::pop_first`] returned, for reuse.
    pub(super) fn recycle(&mut self, mut bucket: Vec<Due>) {
        if self.spare.len() < SPARE {
            bucket.clear();
            self.spare.push(bucket);
        }
    }

    /// Forgets every window.
    pub(super) fn clear(&mut self) {
        self.by_end.clear();
    }
}
