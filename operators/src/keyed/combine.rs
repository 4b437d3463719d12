//! The combiner before a keyed hash edge: partial aggregates per key, bounded in keys, and
//! bypassed once its input shows that it barely repeats keys.
//!
//! A combiner exists to send fewer rows over the exchange. With few distinct keys it sends one
//! partial per key and flush; with mostly distinct keys it would only hold every key a second
//! time (the aggregator after the edge holds them too) and pay a second map lookup per row. So
//! it holds at most [`MAX_KEYS`] keys, flushing its partials downstream when full, and a flush
//! that held more than [`PASS_PERMILLE`] thousandths of the rows it combined as distinct keys
//! turns combining off: every later row goes downstream as its own partial (the partial
//! aggregation skip of DataFusion and Spark), until [`REPROBE_ROWS`] rows later it combines again
//! to probe whether the input has changed. Either way each subtask's keys reach the aggregator
//! in first-seen order, and the totals are the same.

use super::logic::KeyMap;
use std::marker::PhantomData;

/// Keys a combiner holds before it flushes its partials downstream.
pub(super) const MAX_KEYS: usize = 1 << 18;

/// A flush whose distinct keys exceed this many thousandths of the rows combined since the
/// previous flush turns combining off.
pub(super) const PASS_PERMILLE: u64 = 800;

/// Rows passed through before combining is tried again.
pub(super) const REPROBE_ROWS: u64 = 16 * MAX_KEYS as u64;

/// Partial aggregates `A` per key `K` in the map `S`, bounded and self-bypassing.
pub(super) struct Combiner<S, K, A> {
    map: S,
    /// Rows combined since the last flush, or passed through since combining was turned off.
    rows: u64,
    /// Combining is off: each row goes downstream as its own partial.
    pass: bool,
    _kv: PhantomData<fn(K, A)>,
}

impl<S: Default, K, A> Default for Combiner<S, K, A> {
    fn default() -> Self {
        Self {
            map: S::default(),
            rows: 0,
            pass: false,
            _kv: PhantomData,
        }
    }
}

impl<S: KeyMap<K, A>, K, A> Combiner<S, K, A> {
    /// Adds each `(k, v)` of a batch to the partial of `k` (`create` makes a key's first
    /// partial, `add` adds a value to one), or sends `(k, partial of v)` straight to `out`
    /// while combining is off; then a full map flushes, a flush of mostly distinct keys turns
    /// combining off, and [`REPROBE_ROWS`] rows later it is on again.
    pub(super) fn add_batch<V>(
        &mut self,
        rows: impl Iterator<Item = (K, V)>,
        out: &mut Vec<(K, A)>,
        mut create: impl FnMut() -> A,
        mut add: impl FnMut(&mut A, V),
    ) {
        if self.pass {
            let before = out.len();
            out.extend(rows.map(|(k, v)| {
                let mut a = create();
                add(&mut a, v);
                (k, a)
            }));
            self.rows += (out.len() - before) as u64;
            if self.rows >= REPROBE_ROWS {
                self.pass = false;
                self.rows = 0;
            }
            return;
        }
        let map = &mut self.map;
        let mut n = 0u64;
        for (k, v) in rows {
            // A lookup first: most rows find their key, and `K` is dropped only then.
            match map.get_mut(&k) {
                Some(a) => add(a, v),
                None => {
                    let mut a = create();
                    add(&mut a, v);
                    map.put(k, a);
                }
            }
            n += 1;
        }
        self.rows += n;
        if self.map.size() < MAX_KEYS {
            return;
        }
        let keys = self.map.size() as u64;
        let distinct = keys.saturating_mul(1000) > self.rows.saturating_mul(PASS_PERMILLE);
        if distinct {
            tracing::debug!(
                keys,
                rows = self.rows,
                "keyed combiner: input keys barely repeat, combining turned off"
            );
        }
        self.flush(out);
        self.pass = distinct;
    }

    /// Sends every partial downstream (when full, at a barrier and at the end), emptying the
    /// map.
    pub(super) fn flush(&mut self, out: &mut Vec<(K, A)>) {
        out.extend(self.map.take_all());
        if !self.pass {
            self.rows = 0;
        }
    }

    /// Whether combining was turned off.
    #[cfg(test)]
    pub(super) fn passing(&self) -> bool {
        self.pass
    }
}
