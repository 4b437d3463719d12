//! The interval join: pairs of equal key with `left.ts + lower <= right.ts <= left.ts + upper`.

use super::JoinOutput;
use super::snapshot::{self, BufferedRef, JoinCodec, Saved};
use super::stage::{JoinCore, Out};
use crate::time::Timestamped;
use ahash::RandomState;
use std::collections::{BTreeSet, HashMap};
use std::hash::Hash;
use weir_graph::{KeyGroupRange, Snapshot, StageError};

/// The buffered elements of one key, in arrival order.
struct Buffers<K, L, R> {
    key: K,
    lefts: Vec<Timestamped<L>>,
    rights: Vec<Timestamped<R>>,
}

/// Interval join state of one subtask.
pub(crate) struct IntervalJoin<K, L, R, F> {
    lower: i64,
    upper: i64,
    f: F,
    watermark: Option<i64>,
    ids: HashMap<K, u64, RandomState>,
    keys: HashMap<u64, Buffers<K, L, R>, RandomState>,
    next_id: u64,
    /// `(time, key id)`: once the watermark reaches the time, the key holds an element that
    /// can no longer join (its buffers are pruned then).
    expiries: BTreeSet<(i64, u64)>,
    /// How the state is checkpointed (none: a checkpoint is refused).
    codec: Option<JoinCodec<K, L, R>>,
}

impl<K, L, R, F> IntervalJoin<K, L, R, F> {
    /// An empty join on `[left.ts + lower, left.ts + upper]` combining pairs with `f`.
    pub(crate) fn new(lower: i64, upper: i64, f: F) -> Self {
        Self {
            lower,
            upper,
            f,
            watermark: None,
            ids: HashMap::default(),
            keys: HashMap::default(),
            next_id: 0,
            expiries: BTreeSet::new(),
            codec: None,
        }
    }

    /// Checkpoints with `codec` (none: refused).
    pub(crate) fn checkpointed(mut self, codec: Option<JoinCodec<K, L, R>>) -> Self {
        self.codec = codec;
        self
    }
}

impl<K, L, R, F> IntervalJoin<K, L, R, F>
where
    K: Hash + Eq + Clone,
{
    fn late(&self, ts: i64) -> bool {
        self.watermark.is_some_and(|wm| ts <= wm)
    }

    /// Drops every element the watermark `wm` took past the last timestamp it can join.
    fn prune(&mut self, wm: i64) {
        let (lower, upper) = (self.lower, self.upper);
        while let Some(&(t, kid)) = self.expiries.first() {
            if t > wm {
                break;
            }
            self.expiries.pop_first();
            let Some(b) = self.keys.get_mut(&kid) else {
                continue;
            };
            b.lefts.retain(|l| l.ts.saturating_add(upper) > wm);
            b.rights.retain(|r| r.ts.saturating_sub(lower) > wm);
            if b.lefts.is_empty()
                && b.rights.is_empty()
                && let Some(b) = self.keys.remove(&kid)
            {
                self.ids.remove(&b.key);
            }
        }
    }
}

impl<K, L, R, O, F> JoinCore<K, L, R, O> for IntervalJoin<K, L, R, F>
where
    K: Hash + Eq + Clone + Send + 'static,
    L: Clone + Send + 'static,
    R: Clone + Send + 'static,
    O: Send + 'static,
    F: FnMut(&L, &R) -> O + Send + 'static,
{
    fn on_left(&mut self, key: K, element: Timestamped<L>, out: &mut Out<K, O, L, R>) {
        if self.late(element.ts) {
            out.push(JoinOutput::LateLeft { key, element });
            return;
        }
        let (lo, hi) = (
            element.ts.saturating_add(self.lower),
            element.ts.saturating_add(self.upper),
        );
        let f = &mut self.f;
        let (id, b) = Self::buffers_of(&mut self.ids, &mut self.keys, &mut self.next_id, key);
        for r in b.rights.iter().filter(|r| lo <= r.ts && r.ts <= hi) {
            let ts = element.ts.max(r.ts);
            out.push(JoinOutput::Joined(Timestamped::new(
                ts,
                f(&element.value, &r.value),
            )));
        }
        b.lefts.push(element);
        self.expiries.insert((hi, id));
    }

    fn on_right(&mut self, key: K, element: Timestamped<R>, out: &mut Out<K, O, L, R>) {
        if self.late(element.ts) {
            out.push(JoinOutput::LateRight { key, element });
            return;
        }
        let (lo, hi) = (
            element.ts.saturating_sub(self.upper),
            element.ts.saturating_sub(self.lower),
        );
        let f = &mut self.f;
        let (id, b) = Self::buffers_of(&mut self.ids, &mut self.keys, &mut self.next_id, key);
        for l in b.lefts.iter().filter(|l| lo <= l.ts && l.ts <= hi) {
            let ts = element.ts.max(l.ts);
            out.push(JoinOutput::Joined(Timestamped::new(
                ts,
                f(&l.value, &element.value),
            )));
        }
        b.rights.push(element);
        self.expiries.insert((hi, id));
    }

    fn on_watermark(&mut self, ms: i64, _out: &mut Out<K, O, L, R>) {
        if self.watermark.is_some_and(|w| w >= ms) {
            return;
        }
        self.watermark = Some(ms);
        self.prune(ms);
    }

    fn on_finish(&mut self, _out: &mut Out<K, O, L, R>) {
        self.keys.clear();
        self.ids.clear();
        self.expiries.clear();
    }

    fn save(&self) -> Result<Snapshot, StageError> {
        let codec = self
            .codec
            .ok_or_else(|| crate::keyed::in_memory_only("interval_join"))?;
        let keys = self.keys.iter().map(|(&id, b)| {
            let e: BufferedRef<'_, L, R> = (b.lefts.as_slice(), b.rights.as_slice());
            (id, &b.key, e)
        });
        let state = Saved {
            watermark: self.watermark,
            next_id: self.next_id,
            groups: snapshot::by_group(keys),
        };
        Ok(codec.encode_interval(&state)?)
    }

    fn load(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
        rescaled: bool,
    ) -> Result<(), StageError> {
        let codec = self
            .codec
            .ok_or_else(|| crate::keyed::in_memory_only("interval_join"))?;
        let states = snapshots
            .iter()
            .map(|s| codec.decode_interval(s))
            .collect::<Result<Vec<_>, _>>()?;
        let restored = snapshot::restore(states, owned, rescaled)?;
        for (id, key, (lefts, rights)) in restored.keys {
            // The expiries are those the elements set when they arrived.
            for l in &lefts {
                self.expiries.insert((l.ts.saturating_add(self.upper), id));
            }
            for r in &rights {
                self.expiries.insert((r.ts.saturating_sub(self.lower), id));
            }
            self.ids.insert(key.clone(), id);
            self.keys.insert(id, Buffers { key, lefts, rights });
        }
        self.watermark = restored.watermark;
        self.next_id = restored.next_id;
        Ok(())
    }
}

impl<K, L, R, F> IntervalJoin<K, L, R, F>
where
    K: Hash + Eq + Clone,
{
    /// The buffers of `key` (created if new), borrowing only the maps.
    fn buffers_of<'a>(
        ids: &mut HashMap<K, u64, RandomState>,
        keys: &'a mut HashMap<u64, Buffers<K, L, R>, RandomState>,
        next_id: &mut u64,
        key: K,
    ) -> (u64, &'a mut Buffers<K, L, R>) {
        let id = match ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = *next_id;
                *next_id += 1;
                ids.insert(key.clone(), id);
                id
            }
        };
        let b = keys.entry(id).or_insert_with(|| Buffers {
            key,
            lefts: Vec::new(),
            rights: Vec::new(),
        });
        (id, b)
    }
}

#[cfg(test)]
impl<K, L, R, F> IntervalJoin<K, L, R, F> {
    /// How many elements are buffered (both sides).
    pub(crate) fn held(&self) -> usize {
        self.keys
            .values()
            .map(|b| b.lefts.len() + b.rights.len())
            .sum()
    }
}
