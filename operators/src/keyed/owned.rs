//! Keyed aggregation that moves each element into its key: `key_by_owned(|x| (key, value))`
//! and `count_by(|x| key)` take the element by value, so an owned key (a `String` word) is
//! never cloned per element, as `key_by(|w: &String| w.clone())` must.

use super::backend::{DEFAULT_CACHE, InBackend};
use super::codec::{InMemoryOnly, SerdeState, StateChoice};
use super::logic::{Unordered, pair};
use super::{KeyedUpstream, fold_stage, key_hash, reduce_stage, staged};
use std::hash::Hash;
use std::marker::PhantomData;
use weir_graph::{Flow, FlowLogic, StageCx, StageError, consume};

/// Splits each element into `(key, value)`, moving it (runs upstream of the hash edge).
pub(super) struct Split<F> {
    pub(super) split: F,
}

impl<T, K, V, F> FlowLogic<T, (K, V)> for Split<F>
where
    T: Send + 'static,
    K: Send + 'static,
    V: Send + 'static,
    F: FnMut(T) -> (K, V) + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<(K, V)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let split = &mut self.split;
        consume(input, |it| out.extend(it.map(split)));
        Ok(())
    }
}

/// Turns each element into its key, moving it (for `count_by`).
pub(super) struct IntoKey<F> {
    pub(super) key: F,
}

impl<T, K, F> FlowLogic<T, K> for IntoKey<F>
where
    T: Send + 'static,
    K: Send + 'static,
    F: FnMut(T) -> K + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<T>,
        out: &mut Vec<K>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let key = &mut self.key;
        consume(input, |it| out.extend(it.map(key)));
        Ok(())
    }
}

/// The split stage at parallelism `par`, hash-partitioned on the key.
fn split_pairs<T, K, V, F>(split: F, par: Option<usize>) -> Flow<T, (K, V)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    F: FnMut(T) -> (K, V) + Clone + Send + Sync + 'static,
{
    let s = Flow::from_logic("key_by", move |_| {
        Ok((
            Split {
                split: split.clone(),
            },
            (),
        ))
    })
    .partition_by_hash(|p: &(K, V)| key_hash(&p.0));
    match par {
        Some(p) => s.parallelism(p),
        None => s,
    }
}

/// The counting of `count_by(key)`: keys computed by moving the element, counted locally
/// before the hash edge, summed after it.
pub(super) fn count_by_stage<T, K, F, M>(key: F, par: Option<usize>) -> Flow<T, (K, u64)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(T) -> K + Clone + Send + Sync + 'static,
    M: StateChoice<K, u64>,
{
    let keys = Flow::from_logic("key_by", move |_| Ok((IntoKey { key: key.clone() }, ())));
    let keys = match par {
        Some(p) => keys.parallelism(p),
        None => keys,
    };
    match M::backend() {
        Some(b) => super::backend::count_after(keys, b),
        None => staged::count_in::<Unordered<K, u64>, _, _, _, _, _>(keys, pair, M::keyed()),
    }
}

/// A stream split into `(key, value)` by a function that takes each element by value,
/// awaiting an aggregate over the values; `M` says whether its state is checkpointed.
pub struct KeyedOwned<S, K, V, F, M = InMemoryOnly> {
    pub(super) upstream: S,
    pub(super) split: F,
    pub(super) _k: PhantomData<fn() -> (K, V, M)>,
}

impl<S, K, V, F> KeyedOwned<S, K, V, F, InMemoryOnly> {
    /// Checkpoints the aggregate's state with serde (see [`super::Keyed::checkpointed`]).
    pub fn checkpointed(self) -> KeyedOwned<S, K, V, F, SerdeState> {
        KeyedOwned {
            upstream: self.upstream,
            split: self.split,
            _k: PhantomData,
        }
    }
}

impl<S, K, V, F> KeyedOwned<S, K, V, F, InMemoryOnly> {
    /// Keeps the aggregate's state in the run's state backend (see
    /// [`super::Keyed::in_backend`]).
    pub fn in_backend(self) -> KeyedOwned<S, K, V, F, InBackend> {
        self.in_backend_cached::<DEFAULT_CACHE>()
    }

    /// [`Self::in_backend`] with a write-back cache of `CACHE` keys.
    pub fn in_backend_cached<const CACHE: usize>(self) -> KeyedOwned<S, K, V, F, InBackend<CACHE>> {
        KeyedOwned {
            upstream: self.upstream,
            split: self.split,
            _k: PhantomData,
        }
    }
}

impl<S, K, V, F, M> KeyedOwned<S, K, V, F, M>
where
    S: KeyedUpstream,
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    F: FnMut(S::Out) -> (K, V) + Clone + Send + Sync + 'static,
{
    /// Folds each key's values into a copy of `zero`; one `(key, acc)` per key at the end.
    /// Emits when: upstream completes (one pair per key seen, in no particular order).
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and every pair is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails, or a checkpoint is taken of state kept in memory only.
    pub fn fold<A, G>(self, zero: A, f: G) -> S::Next<(K, A)>
    where
        A: Clone + Send + Sync + 'static,
        G: FnMut(A, V) -> A + Clone + Send + Sync + 'static,
        M: StateChoice<K, Option<A>>,
    {
        let par = self.upstream.outlet_parallelism();
        let agg = match M::backend() {
            Some(b) => super::backend::fold_stage(zero, f, b),
            None => fold_stage(zero, f, M::keyed()),
        };
        self.upstream
            .via_flow(split_pairs(self.split, par).via(agg))
    }

    /// Reduces each key's values pairwise; one `(key, result)` per key at the end.
    /// Emits, backpressures, completes, cancels and fails as [`Self::fold`].
    pub fn reduce<G>(self, f: G) -> S::Next<(K, V)>
    where
        G: FnMut(V, V) -> V + Clone + Send + Sync + 'static,
        M: StateChoice<K, Option<V>>,
    {
        let par = self.upstream.outlet_parallelism();
        let agg = match M::backend() {
            Some(b) => super::backend::reduce_stage(f, b),
            None => reduce_stage(f, M::keyed()),
        };
        self.upstream
            .via_flow(split_pairs(self.split, par).via(agg))
    }

    /// Counts each key's elements (the values are dropped before the hash edge); one
    /// `(key, count)` per key at the end.
    /// Emits, backpressures, completes, cancels and fails as [`Self::fold`].
    pub fn count(self) -> S::Next<(K, u64)>
    where
        M: StateChoice<K, u64>,
    {
        let par = self.upstream.outlet_parallelism();
        let mut split = self.split;
        let key = move |x| split(x).0;
        self.upstream
            .via_flow(count_by_stage::<_, _, _, M>(key, par))
    }
}
