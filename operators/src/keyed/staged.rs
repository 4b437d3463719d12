//! Keyed aggregation after a caller-supplied key stage: the hooks for key extraction that is
//! fallible or works a batch at a time (a host-language binding computing keys in its own
//! loop, [`try_map`](crate::simple::try_map) as a supervised key function), with fallible
//! per-key functions and an `emit` that turns each `(key, value)` into the output element.
//!
//! The key stage keeps its parallelism (so it fuses with its upstream); the stage after the
//! hash edge is the aggregator, the one a following `.parallelism(n)` applies to. Keys come
//! out in first-seen order per subtask (the closure-based [`Keyed`](super::Keyed) API keeps
//! its state unordered, which is faster).

use super::codec::KeyedCodec;
use super::logic::{
    Checkpointing, CountLogic, FirstSeen, KeyMap, SumLogic, TryFoldLogic, TryReduceLogic,
};
use super::{key_hash, outlet_parallelism};
use std::hash::Hash;
use weir_graph::{Flow, StageError};

/// Per-key count of the keys `keys` emits; one `emit(key, count)` per key at the end.
/// Emits when: upstream completes (each subtask's keys in first-seen order).
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and every key is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream or the key stage fails, or `emit` fails.
///
/// A combiner counts each key-stage subtask's keys locally (fused with the key stage), so only
/// one partial count per key and subtask crosses the hash exchange to the summing stage.
pub fn count_keys<T, K, O, M, E>(keys: Flow<T, K, M>, emit: E) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    E: FnMut(K, u64) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    count_in::<FirstSeen<K, u64>, _, _, _, _, _>(keys, emit, None)
}

/// [`count_keys`] with per-key state `S` (first-seen or unordered), checkpointed with `codec`.
pub(super) fn count_in<S, T, K, O, M, E>(
    keys: Flow<T, K, M>,
    emit: E,
    codec: Option<KeyedCodec<K, u64>>,
) -> Flow<T, O, M>
where
    S: KeyMap<K, u64>,
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    E: FnMut(K, u64) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let combiner = Flow::from_logic("count_combiner", |_| {
        Ok((
            CountLogic {
                counts: S::default(),
            },
            (),
        ))
    })
    .partition_by_hash(|kc: &(K, u64)| key_hash(&kc.0));
    let combiner = match outlet_parallelism(keys.module()) {
        Some(p) => combiner.parallelism(p),
        None => combiner,
    };
    let sum = Flow::from_logic("keyed_count", move |info| {
        let emit = emit.clone();
        Ok((
            SumLogic {
                totals: S::default(),
                emit,
                ck: Checkpointing::new(codec, info, "keyed count"),
            },
            (),
        ))
    });
    keys.via(combiner).via(sum)
}

/// Per-key fold of the `(key, element)` pairs `pairs` emits: `f(&acc, &x)` from `zero()`; one
/// `emit(key, acc)` per key at the end.
/// Emits when: upstream completes (each subtask's keys in first-seen order).
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and every key is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream fails, `emit` fails, or `f` fails under Stop (under Resume the element is
/// dead-lettered and the key keeps its accumulator; a key first seen on a failing element keeps
/// `zero()`; Restart starts every key afresh).
pub fn try_fold_pairs<T, K, A, O, M, Z, G, E>(
    pairs: Flow<T, (K, T), M>,
    zero: Z,
    f: G,
    emit: E,
) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    A: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    Z: FnMut() -> A + Clone + Send + Sync + 'static,
    G: FnMut(&A, &T) -> Result<A, StageError> + Clone + Send + Sync + 'static,
    E: FnMut(K, A) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let agg = Flow::from_logic("keyed_fold", move |_| {
        let (zero, f, emit) = (zero.clone(), f.clone(), emit.clone());
        Ok((
            TryFoldLogic {
                zero,
                f,
                emit,
                state: FirstSeen::<K, A>::default(),
            },
            (),
        ))
    });
    pairs
        .partition_by_hash(|p: &(K, T)| key_hash(&p.0))
        .via(agg)
}

/// Per-key reduce of the `(key, element)` pairs `pairs` emits with `f(&acc, &x)` (a key's first
/// element is its accumulator); one `emit(key, acc)` per key at the end.
/// Emits when: upstream completes (each subtask's keys in first-seen order).
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and every key is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream fails, `emit` fails, or `f` fails under Stop (under Resume the element is
/// dead-lettered and the key keeps its accumulator; Restart starts every key afresh).
pub fn try_reduce_pairs<T, K, O, M, G, E>(pairs: Flow<T, (K, T), M>, f: G, emit: E) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    G: FnMut(&T, &T) -> Result<T, StageError> + Clone + Send + Sync + 'static,
    E: FnMut(K, T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let agg = Flow::from_logic("keyed_reduce", move |_| {
        let (f, emit) = (f.clone(), emit.clone());
        Ok((
            TryReduceLogic {
                f,
                emit,
                state: FirstSeen::<K, T>::default(),
            },
            (),
        ))
    });
    pairs
        .partition_by_hash(|p: &(K, T)| key_hash(&p.0))
        .via(agg)
}
