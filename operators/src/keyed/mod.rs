//! Keyed aggregation: `key_by(key).fold(..)`, `.reduce(..)`, `.count()`.
//!
//! `key_by` appends a key-extraction stage (at the upstream stage's parallelism, so it fuses with
//! it) whose outlet is hash-partitioned by the key, then the aggregator; the key is computed
//! once. Each key's hash ([`key_hash`]: `weir_graph::stable_hash_of`, xxh3 with a fixed seed over
//! the bytes the key's `Hash` writes, the same in every process, build and machine) picks one of [`MAX_KEY_GROUPS`] key groups, and each key group belongs to exactly one subtask
//! of the aggregator, so `.count().parallelism(4)` runs four aggregators that each see every
//! element of the keys they own. Key groups, not subtasks, are the unit that scopes keyed state:
//! a later persistent (e.g. RocksDB) backend can store state per key group and redistribute
//! whole groups when the parallelism changes. State lives in memory and every aggregate is
//! emitted when the input completes (bounded streams); nothing is emitted before, in no
//! particular order. `count` pre-aggregates before the hash edge (a combiner fused with the key
//! stage, flushed when it holds `combine::MAX_KEYS` keys and ahead of every checkpoint barrier,
//! and bypassed while its input barely repeats keys), so few more rows than there are distinct
//! keys cross the exchange.
//!
//! `key_by(..).checkpointed()` checkpoints the aggregate with serde ([`SerdeState`]): its state
//! is saved by key group ([`KeyedCodec`]) and restored, also at another parallelism (each new
//! subtask keeps the groups it owns). Without it a checkpoint is refused ([`InMemoryOnly`]).
//! [`KeyedOps::count_by`] and [`KeyedOps::key_by_owned`] take each element by value, so an
//! owned key is moved into the state instead of cloned per element.
//! `key_by(..).in_backend()` keeps the state in the run's state backend instead (RocksDB:
//! larger than memory), behind a bounded write-back cache, checkpointed by deferred backend
//! snapshots ([`InBackend`], see `backend.rs`).
//!
//! [`staged`] holds the same aggregates after a caller-supplied key stage, with fallible
//! functions: the hooks for fallible or batch-wise key extraction (e.g. Python bindings).

mod backend;
mod codec;
mod combine;
mod logic;
mod owned;
pub mod staged;

use crate::Via;
pub use backend::{BackendCodec, DEFAULT_CACHE, InBackend};
pub use codec::{Groups, GroupsRef, InMemoryOnly, KeyedCodec, SerdeState, StateChoice};
pub(crate) use codec::{check_group, foreign_group, in_memory_only};
use logic::{Checkpointing, Emitting, FoldLogic, KeyPairs, KeysOnly, ReduceLogic, Unordered, pair};
pub use owned::KeyedOwned;
pub use staged::{
    First, Last, aggregate_pairs, count_keys, count_keys_with, try_fold_pairs, try_fold_pairs_with,
    try_reduce_pairs, try_reduce_pairs_with,
};
use std::hash::Hash;
use std::marker::PhantomData;
pub use weir_graph::MAX_KEY_GROUPS;
use weir_graph::{Flow, Module, Source};

/// The routing hash of `key`: [`weir_graph::stable_hash_of`] (fixed-seed xxh3 over the bytes
/// its `Hash` writes), stable across processes, builds and machines, so restored keyed state
/// and the router agree.
#[inline]
pub fn key_hash<K: Hash + ?Sized>(key: &K) -> u64 {
    weir_graph::stable_hash_of(key)
}

/// The key group (`0..MAX_KEY_GROUPS`) that owns `key`.
#[inline]
pub fn key_group_of<K: Hash + ?Sized>(key: &K) -> usize {
    weir_graph::key_group(key_hash(key))
}

/// Flow form of [`Keyed::fold`]: per-key fold, one `(key, acc)` pair per key on completion.
pub fn fold_by_key<T, K, A, F, G>(key: F, zero: A, f: G) -> Flow<T, (K, A)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    A: Clone + Send + Sync + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
    G: FnMut(A, T) -> A + Clone + Send + Sync + 'static,
{
    pairs(key, None).via(fold_stage(zero, f, None))
}

/// The per-key fold after the hash edge, over `(key, value)` pairs.
pub(crate) fn fold_stage<K, V, A, G>(
    zero: A,
    f: G,
    codec: Option<KeyedCodec<K, Option<A>>>,
) -> Flow<(K, V), (K, A)>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    A: Clone + Send + Sync + 'static,
    G: FnMut(A, V) -> A + Clone + Send + Sync + 'static,
{
    Flow::from_logic("keyed_fold", move |info| {
        let (zero, f) = (zero.clone(), f.clone());
        Ok((
            FoldLogic {
                zero,
                f,
                state: Unordered::default(),
                ck: Checkpointing::new(codec, info, "keyed fold"),
                rest: Emitting::default(),
            },
            (),
        ))
    })
}

/// Flow form of [`Keyed::reduce`]: per-key reduce, one `(key, result)` pair per key on completion.
pub fn reduce_by_key<T, K, F, G>(key: F, f: G) -> Flow<T, (K, T)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
    G: FnMut(T, T) -> T + Clone + Send + Sync + 'static,
{
    pairs(key, None).via(reduce_stage(f, None))
}

/// The per-key reduce after the hash edge, over `(key, value)` pairs.
pub(crate) fn reduce_stage<K, V, G>(
    f: G,
    codec: Option<KeyedCodec<K, Option<V>>>,
) -> Flow<(K, V), (K, V)>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    G: FnMut(V, V) -> V + Clone + Send + Sync + 'static,
{
    Flow::from_logic("keyed_reduce", move |info| {
        Ok((
            ReduceLogic {
                f: f.clone(),
                state: Unordered::default(),
                ck: Checkpointing::new(codec, info, "keyed reduce"),
                rest: Emitting::default(),
            },
            (),
        ))
    })
}

/// Flow form of [`Keyed::count`]: one `(key, count)` pair per key on completion.
pub fn count_by_key<T, K, F>(key: F) -> Flow<T, (K, u64)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
{
    count_with(key, None, None, None)
}

fn count_with<T, K, F>(
    key: F,
    par: Option<usize>,
    codec: Option<KeyedCodec<K, u64>>,
    backend: Option<BackendCodec<K, u64>>,
) -> Flow<T, (K, u64)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
{
    let keys = Flow::from_logic("key_by", move |_| Ok((KeysOnly { key: key.clone() }, ())));
    let keys = match par {
        Some(p) => keys.parallelism(p),
        None => keys,
    };
    match backend {
        Some(b) => backend::count_after(keys, b),
        None => staged::count_in::<Unordered<K, u64>, _, _, _, _, _>(keys, pair, codec),
    }
}

/// The key-extraction stage at parallelism `par`, hash-partitioned on its key.
pub(crate) fn pairs<T, K, F>(key: F, par: Option<usize>) -> Flow<T, (K, T)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&T) -> K + Clone + Send + Sync + 'static,
{
    let keys = Flow::from_logic("key_by", move |_| Ok((KeyPairs { key: key.clone() }, ())))
        .partition_by_hash(|p: &(K, T)| key_hash(&p.0));
    match par {
        Some(p) => keys.parallelism(p),
        None => keys,
    }
}

/// What `Keyed` needs from its upstream beyond [`Via`]: the parallelism of the stage feeding
/// the open outlet, so that key extraction runs (fused) at the same parallelism.
/// Implemented for `Source` and `Flow`; a candidate for a method on [`Via`] itself.
pub trait KeyedUpstream: Via {
    /// The parallelism set on the stage that feeds the open outlet, if any.
    fn outlet_parallelism(&self) -> Option<usize>;
}

fn outlet_parallelism(m: &Module) -> Option<usize> {
    let p = m.outlets.first()?;
    m.nodes.get(p.node)?.attrs.parallelism
}

impl<Out: Send + 'static, Mat: Send + 'static> KeyedUpstream for Source<Out, Mat> {
    fn outlet_parallelism(&self) -> Option<usize> {
        outlet_parallelism(self.module())
    }
}

impl<In: Send + 'static, Out: Send + 'static, Mat: Send + 'static> KeyedUpstream
    for Flow<In, Out, Mat>
{
    fn outlet_parallelism(&self) -> Option<usize> {
        outlet_parallelism(self.module())
    }
}

/// A stream whose elements are grouped by a key, awaiting an aggregate (`fold`, `reduce`,
/// `count`); `M` says whether the aggregate's state is checkpointed ([`StateChoice`]).
pub struct Keyed<S, K, F, M = InMemoryOnly> {
    upstream: S,
    key: F,
    _k: PhantomData<fn() -> (K, M)>,
}

impl<S, K, F> Keyed<S, K, F, InMemoryOnly> {
    /// Checkpoints the aggregate's state with serde: keys and accumulators must be serde types
    /// (without it, a checkpoint of the aggregate is refused). Restores rescale by key group.
    pub fn checkpointed(self) -> Keyed<S, K, F, SerdeState> {
        Keyed {
            upstream: self.upstream,
            key: self.key,
            _k: PhantomData,
        }
    }
}

impl<S, K, F> Keyed<S, K, F, InMemoryOnly> {
    /// Keeps the aggregate's state in the run's state backend (a `weir_state::StateService`,
    /// e.g. on RocksDB: state larger than memory), behind a write-back cache of
    /// [`DEFAULT_CACHE`] keys; checkpointed by deferred backend snapshots. Keys and
    /// accumulators must be serde types; materializing fails, naming the stage, when the run
    /// has no `StateService`.
    pub fn in_backend(self) -> Keyed<S, K, F, InBackend> {
        self.in_backend_cached::<DEFAULT_CACHE>()
    }

    /// [`Self::in_backend`] with a write-back cache of `CACHE` keys.
    pub fn in_backend_cached<const CACHE: usize>(self) -> Keyed<S, K, F, InBackend<CACHE>> {
        Keyed {
            upstream: self.upstream,
            key: self.key,
            _k: PhantomData,
        }
    }
}

impl<S, K, F, M> Keyed<S, K, F, M>
where
    S: KeyedUpstream,
    K: Hash + Eq + Send + 'static,
    F: FnMut(&S::Out) -> K + Clone + Send + Sync + 'static,
{
    /// Folds each key's elements into a copy of `zero`; one `(key, acc)` per key at the end.
    /// Emits when: upstream completes (one pair per key seen, in no particular order).
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and every pair is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    pub fn fold<A, G>(self, zero: A, f: G) -> S::Next<(K, A)>
    where
        A: Clone + Send + Sync + 'static,
        G: FnMut(A, S::Out) -> A + Clone + Send + Sync + 'static,
        M: StateChoice<K, Option<A>>,
    {
        let par = self.upstream.outlet_parallelism();
        let agg = match M::backend() {
            Some(b) => backend::fold_stage(zero, f, b),
            None => fold_stage(zero, f, M::keyed()),
        };
        self.upstream.via_flow(pairs(self.key, par).via(agg))
    }

    /// Reduces each key's elements pairwise; one `(key, result)` per key at the end.
    /// Emits when: upstream completes (one pair per key seen, in no particular order).
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and every pair is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    pub fn reduce<G>(self, f: G) -> S::Next<(K, S::Out)>
    where
        G: FnMut(S::Out, S::Out) -> S::Out + Clone + Send + Sync + 'static,
        M: StateChoice<K, Option<S::Out>>,
    {
        let par = self.upstream.outlet_parallelism();
        let agg = match M::backend() {
            Some(b) => backend::reduce_stage(f, b),
            None => reduce_stage(f, M::keyed()),
        };
        self.upstream.via_flow(pairs(self.key, par).via(agg))
    }

    /// Counts each key's elements; one `(key, count)` per key at the end.
    /// Emits when: upstream completes (one pair per key seen, in no particular order).
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and every pair is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails.
    pub fn count(self) -> S::Next<(K, u64)>
    where
        M: StateChoice<K, u64>,
    {
        let par = self.upstream.outlet_parallelism();
        self.upstream
            .via_flow(count_with(self.key, par, M::keyed(), M::backend()))
    }
}

impl<S, K, F> Keyed<S, K, F> {
    /// The upstream and the key function (for keyed stages defined in other modules).
    pub(crate) fn into_parts(self) -> (S, F) {
        (self.upstream, self.key)
    }
}

/// `key_by` for every [`Via`] (`Source` and `Flow`).
pub trait KeyedOps: Via {
    /// Groups elements by `key` (the aggregate that follows runs per key, parallel by key group).
    fn key_by<K, F>(self, key: F) -> Keyed<Self, K, F>
    where
        K: Hash + Eq + Send + 'static,
        F: FnMut(&Self::Out) -> K + Clone + Send + Sync + 'static,
    {
        Keyed {
            upstream: self,
            key,
            _k: PhantomData,
        }
    }

    /// Groups elements by a key that `split` moves out of each element with a value: no
    /// clone of an owned key per element (`key_by_owned(|e: Event| (e.user, e.amount))`).
    fn key_by_owned<K, V, F>(self, split: F) -> KeyedOwned<Self, K, V, F>
    where
        K: Hash + Eq + Send + 'static,
        V: Send + 'static,
        F: FnMut(Self::Out) -> (K, V) + Clone + Send + Sync + 'static,
    {
        KeyedOwned {
            upstream: self,
            split,
            _k: PhantomData,
        }
    }

    /// Counts elements by the key `key` makes of each one, moving it (`count_by(|w: String| w)`
    /// counts words without cloning them); one `(key, count)` per key at the end.
    /// Emits when: upstream completes (one pair per key seen, in no particular order).
    /// Backpressures when: never before completion (it consumes everything).
    /// Completes when: upstream completes and every pair is emitted.
    /// Cancels when: downstream cancels.
    /// Fails when: upstream fails, or a checkpoint is taken (use
    /// `key_by_owned(..).checkpointed().count()` to checkpoint).
    fn count_by<K, F>(self, key: F) -> Self::Next<(K, u64)>
    where
        Self: KeyedUpstream,
        K: Hash + Eq + Send + 'static,
        F: FnMut(Self::Out) -> K + Clone + Send + Sync + 'static,
    {
        let par = self.outlet_parallelism();
        self.via_flow(owned::count_by_stage::<_, _, _, InMemoryOnly>(key, par))
    }
}

impl<S: Via> KeyedOps for S {}

#[cfg(test)]
mod tests;
