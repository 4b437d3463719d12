//! The logics behind keyed aggregation: key extraction before the hash edge, per-key state after.

use ahash::AHashMap;
use std::hash::Hash;
use weir_graph::{FlowLogic, StageCx, StageError, consume};

/// Pairs each element with its key (runs upstream of the hash edge).
pub(super) struct KeyPairs<F> {
    pub(super) key: F,
}

impl<T, K, F> FlowLogic<T, (K, T)> for KeyPairs<F>
where
    T: Send + 'static,
    K: Send + 'static,
    F: FnMut(&T) -> K + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<(K, T)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let key = &mut self.key;
        consume(input, |it| out.extend(it.map(|x| (key(&x), x))));
        Ok(())
    }
}

/// Replaces each element by its key (for `count`, which needs nothing else).
pub(super) struct KeysOnly<F> {
    pub(super) key: F,
}

impl<T, K, F> FlowLogic<T, K> for KeysOnly<F>
where
    T: Send + 'static,
    K: Send + 'static,
    F: FnMut(&T) -> K + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<K>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let key = &mut self.key;
        consume(input, |it| out.extend(it.map(|x| key(&x))));
        Ok(())
    }
}

/// Counts keys; emits `(key, count)` pairs on completion.
pub(super) struct CountLogic<K> {
    pub(super) counts: AHashMap<K, u64>,
}

impl<K: Hash + Eq + Send + 'static> FlowLogic<K, (K, u64)> for CountLogic<K> {
    fn on_batch(
        &mut self,
        input: &mut Vec<K>,
        _out: &mut Vec<(K, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for k in input.drain(..) {
            if let Some(c) = self.counts.get_mut(&k) {
                *c += 1;
            } else {
                self.counts.insert(k, 1);
            }
        }
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<(K, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.extend(self.counts.drain());
        Ok(())
    }
}

/// Folds each key's elements into a copy of `zero`; emits `(key, acc)` pairs on completion.
/// The slot is an `Option` so the accumulator can be moved into `f` without cloning it.
pub(super) struct FoldLogic<K, A, F> {
    pub(super) zero: A,
    pub(super) f: F,
    pub(super) state: AHashMap<K, Option<A>>,
}

impl<K, T, A, F> FlowLogic<(K, T), (K, A)> for FoldLogic<K, A, F>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    A: Clone + Send + 'static,
    F: FnMut(A, T) -> A + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, T)>,
        _out: &mut Vec<(K, A)>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // Under supervision `f` gets a copy, so a panic leaves the key's accumulator in place.
        let copy = scx.supervised();
        let (zero, f, state) = (&self.zero, &mut self.f, &mut self.state);
        consume(input, |it| {
            for (k, x) in it {
                if let Some(slot) = state.get_mut(&k) {
                    let acc = match slot {
                        Some(a) if copy => a.clone(),
                        _ => slot.take().unwrap_or_else(|| zero.clone()),
                    };
                    *slot = Some(f(acc, x));
                } else {
                    let acc = f(zero.clone(), x);
                    state.insert(k, Some(acc));
                }
            }
        });
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<(K, A)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let zero = &self.zero;
        out.extend(
            self.state
                .drain()
                .map(|(k, a)| (k, a.unwrap_or_else(|| zero.clone()))),
        );
        Ok(())
    }
}

/// Reduces each key's elements pairwise; emits `(key, result)` pairs on completion.
pub(super) struct ReduceLogic<K, T, F> {
    pub(super) f: F,
    pub(super) state: AHashMap<K, Option<T>>,
}

impl<K, T, F> FlowLogic<(K, T), (K, T)> for ReduceLogic<K, T, F>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    F: FnMut(T, T) -> T + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, T)>,
        _out: &mut Vec<(K, T)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (f, state) = (&mut self.f, &mut self.state);
        consume(input, |it| {
            for (k, x) in it {
                if let Some(slot) = state.get_mut(&k) {
                    // An empty slot lost its accumulator to a panic in `f`: it stays empty (and
                    // the stage fails on completion) rather than silently start a new total.
                    if let Some(acc) = slot.take() {
                        *slot = Some(f(acc, x));
                    }
                } else {
                    state.insert(k, Some(x));
                }
            }
        });
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<(K, T)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.state.values().any(Option::is_none) {
            return Err(StageError::user(
                "reduce: the accumulator of a key was lost when the function panicked",
            ));
        }
        out.extend(self.state.drain().filter_map(|(k, v)| v.map(|v| (k, v))));
        Ok(())
    }
}
