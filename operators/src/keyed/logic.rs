//! The logics behind keyed aggregation: key extraction before the hash edge, per-key state after.
//!
//! Per-key state is an insertion-ordered map, so a subtask emits its keys in first-seen order.
//! Each aggregating logic turns its `(key, value)` pairs into output elements with `emit` when
//! upstream completes (the identity pair for the Rust API, a host-language tuple for bindings).

use indexmap::IndexMap;
use std::hash::Hash;
use weir_graph::{FlowLogic, StageCx, StageError, consume, consume_ref};

/// Per-key state of one subtask, in first-seen key order.
pub(super) type State<K, V> = IndexMap<K, V, ahash::RandomState>;

/// An empty [`State`].
pub(super) fn state<K, V>() -> State<K, V> {
    IndexMap::with_hasher(ahash::RandomState::new())
}

/// The `emit` of the Rust API: the pair itself.
pub(super) fn pair<K, V>(k: K, v: V) -> Result<(K, V), StageError> {
    Ok((k, v))
}

/// Emits every entry of `state` through `emit`, in first-seen order, emptying it.
fn emit_all<K, V, O>(
    state: &mut State<K, V>,
    out: &mut Vec<O>,
    emit: &mut impl FnMut(K, V) -> Result<O, StageError>,
) -> Result<(), StageError> {
    out.reserve(state.len());
    for (k, v) in state.drain(..) {
        out.push(emit(k, v)?);
    }
    Ok(())
}

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

/// Counts keys; emits `(key, count)` pairs on completion (the combiner before the hash edge).
pub(super) struct CountLogic<K> {
    pub(super) counts: State<K, u64>,
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
        out.extend(self.counts.drain(..));
        Ok(())
    }
}

/// Sums the partial `(key, count)` pairs of the combiners; emits `emit(key, total)` on completion.
pub(super) struct SumLogic<K, E> {
    pub(super) totals: State<K, u64>,
    pub(super) emit: E,
}

impl<K, O, E> FlowLogic<(K, u64), O> for SumLogic<K, E>
where
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    E: FnMut(K, u64) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, u64)>,
        _out: &mut Vec<O>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for (k, n) in input.drain(..) {
            *self.totals.entry(k).or_insert(0) += n;
        }
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        emit_all(&mut self.totals, out, &mut self.emit)
    }
}

/// Folds each key's elements into a copy of `zero`; emits `(key, acc)` pairs on completion.
/// The slot is an `Option` so the accumulator can be moved into `f` without cloning it.
pub(super) struct FoldLogic<K, A, F> {
    pub(super) zero: A,
    pub(super) f: F,
    pub(super) state: State<K, Option<A>>,
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
                .drain(..)
                .map(|(k, a)| (k, a.unwrap_or_else(|| zero.clone()))),
        );
        Ok(())
    }
}

/// Reduces each key's elements pairwise; emits `(key, result)` pairs on completion.
pub(super) struct ReduceLogic<K, T, F> {
    pub(super) f: F,
    pub(super) state: State<K, Option<T>>,
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
        out.extend(self.state.drain(..).filter_map(|(k, v)| v.map(|v| (k, v))));
        Ok(())
    }
}

/// Folds each key's elements with a fallible `f(&acc, &x)`, starting from `zero()`; a failed
/// call leaves the key's accumulator as it was and goes through supervision with the element.
/// Emits `emit(key, acc)` on completion.
pub(super) struct TryFoldLogic<K, A, Z, G, E> {
    pub(super) zero: Z,
    pub(super) f: G,
    pub(super) emit: E,
    pub(super) state: State<K, A>,
}

impl<K, T, A, O, Z, G, E> FlowLogic<(K, T), O> for TryFoldLogic<K, A, Z, G, E>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    A: Send + 'static,
    O: Send + 'static,
    Z: FnMut() -> A + Send + 'static,
    G: FnMut(&A, &T) -> Result<A, StageError> + Send + 'static,
    E: FnMut(K, A) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, T)>,
        _out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (zero, f, state) = (&mut self.zero, &mut self.f, &mut self.state);
        consume_ref(input, |it| {
            while let Some((k, x)) = it.as_slice().first() {
                let mut fresh = None;
                let r = match state.get(k) {
                    Some(acc) => f(acc, x),
                    None => {
                        let z = zero();
                        let r = f(&z, x);
                        fresh = Some(z);
                        r
                    }
                };
                let Some((k, x)) = it.next() else { break };
                match r {
                    Ok(a) => {
                        state.insert(k, a);
                    }
                    Err(e) => {
                        // A key seen for the first time keeps its zero.
                        if let Some(z) = fresh {
                            state.insert(k, z);
                        }
                        scx.element_failed(e, Some(Box::new(x)), None)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        emit_all(&mut self.state, out, &mut self.emit)
    }
}

/// Reduces each key's elements with a fallible `f(&acc, &x)` (the first element of a key is its
/// accumulator); a failed call leaves the accumulator as it was and goes through supervision
/// with the element. Emits `emit(key, acc)` on completion.
pub(super) struct TryReduceLogic<K, T, G, E> {
    pub(super) f: G,
    pub(super) emit: E,
    pub(super) state: State<K, T>,
}

impl<K, T, O, G, E> FlowLogic<(K, T), O> for TryReduceLogic<K, T, G, E>
where
    K: Hash + Eq + Send + 'static,
    T: Send + 'static,
    O: Send + 'static,
    G: FnMut(&T, &T) -> Result<T, StageError> + Send + 'static,
    E: FnMut(K, T) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, T)>,
        _out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (f, state) = (&mut self.f, &mut self.state);
        consume_ref(input, |it| {
            while let Some((k, x)) = it.as_slice().first() {
                let r = state.get(k).map(|acc| f(acc, x));
                let Some((k, x)) = it.next() else { break };
                match r {
                    None => {
                        state.insert(k, x);
                    }
                    Some(Ok(a)) => {
                        state.insert(k, a);
                    }
                    Some(Err(e)) => scx.element_failed(e, Some(Box::new(x)), None)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        emit_all(&mut self.state, out, &mut self.emit)
    }
}
