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
use super::combine::Combiner;
use super::logic::{
    Checkpointing, CountLogic, Emitting, FirstSeen, KeyMap, SumLogic, TryFoldLogic, TryReduceLogic,
    keyed_snapshots,
};
use super::{key_hash, outlet_parallelism};
use crate::window::AggregateFunction;
use std::hash::Hash;
use std::marker::PhantomData;
use weir_graph::{
    Control, Flow, FlowLogic, KeyGroupRange, Snapshot, StageCx, StageError, StageInfo, consume,
};

/// Per-key count of the keys `keys` emits; one `emit(key, count)` per key at the end.
/// Emits when: upstream completes (each subtask's keys in first-seen order).
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and every key is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream or the key stage fails, or `emit` fails.
///
/// A combiner counts each key-stage subtask's keys locally (fused with the key stage), so about
/// one partial count per key and subtask crosses the hash exchange to the summing stage (one
/// per flush of its bounded map; every key while its input barely repeats keys).
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

/// [`count_keys`] checkpointing the per-key counts with `codec` (by key group; restores also
/// at another parallelism). Emits, backpressures, completes, cancels and fails as
/// [`count_keys`], and fails when a count cannot be encoded at a checkpoint.
pub fn count_keys_with<T, K, O, M, E>(
    keys: Flow<T, K, M>,
    emit: E,
    codec: KeyedCodec<K, u64>,
) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    E: FnMut(K, u64) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    count_in::<FirstSeen<K, u64>, _, _, _, _, _>(keys, emit, Some(codec))
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
                counts: Combiner::<S, K, u64>::default(),
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
                rest: Emitting::default(),
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
    try_fold_pairs_with(pairs, zero, f, emit, None)
}

/// [`try_fold_pairs`] checkpointing each key's accumulator with `codec` (none: a checkpoint is
/// refused). Emits, backpressures, completes, cancels and fails as [`try_fold_pairs`], and fails
/// when an accumulator cannot be encoded at a checkpoint.
pub fn try_fold_pairs_with<T, K, A, O, M, Z, G, E>(
    pairs: Flow<T, (K, T), M>,
    zero: Z,
    f: G,
    emit: E,
    codec: Option<KeyedCodec<K, A>>,
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
    let agg = Flow::from_logic("keyed_fold", move |info| {
        let (zero, f, emit) = (zero.clone(), f.clone(), emit.clone());
        Ok((
            TryFoldLogic {
                zero,
                f,
                emit,
                state: FirstSeen::<K, A>::default(),
                ck: Checkpointing::new(codec, info, "keyed fold"),
                rest: Emitting::default(),
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
    try_reduce_pairs_with(pairs, f, emit, None)
}

/// [`try_reduce_pairs`] checkpointing each key's accumulator with `codec` (none: a checkpoint
/// is refused). Emits, backpressures, completes, cancels and fails as [`try_reduce_pairs`], and
/// fails when an accumulator cannot be encoded at a checkpoint.
pub fn try_reduce_pairs_with<T, K, O, M, G, E>(
    pairs: Flow<T, (K, T), M>,
    f: G,
    emit: E,
    codec: Option<KeyedCodec<K, T>>,
) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    G: FnMut(&T, &T) -> Result<T, StageError> + Clone + Send + Sync + 'static,
    E: FnMut(K, T) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let agg = Flow::from_logic("keyed_reduce", move |info| {
        let (f, emit) = (f.clone(), emit.clone());
        Ok((
            TryReduceLogic {
                f,
                emit,
                state: FirstSeen::<K, T>::default(),
                ck: Checkpointing::new(codec, info, "keyed reduce"),
                rest: Emitting::default(),
            },
            (),
        ))
    });
    pairs
        .partition_by_hash(|p: &(K, T)| key_hash(&p.0))
        .via(agg)
}

/// Per-key built-in aggregate of the `(key, value)` pairs `pairs` emits: `agg` (a window
/// built-in such as [`Builtin`](crate::window::Builtin), or [`First`] / [`Last`]) accumulates
/// each key's values without user code; one `emit(key, result)` per key at the end. A combiner
/// fused with the pair stage (at its parallelism) accumulates each subtask's keys locally, so
/// about one partial accumulator per key crosses the hash exchange (flushed when its bounded
/// map is full and ahead of every barrier, bypassed while keys barely repeat),
/// and the stage after it merges them. The accumulators checkpoint with `codec` by key group
/// (none: a checkpoint is refused).
/// Emits when: upstream completes (each subtask's keys in first-seen order).
/// Backpressures when: never before completion (it consumes everything).
/// Completes when: upstream completes and every key is emitted.
/// Cancels when: downstream cancels.
/// Fails when: upstream or the pair stage fails, `emit` fails, or an accumulator cannot be
/// encoded at a checkpoint.
pub fn aggregate_pairs<T, K, V, A, O, M, E>(
    pairs: Flow<T, (K, V), M>,
    agg: A,
    emit: E,
    codec: Option<KeyedCodec<K, A::Acc>>,
) -> Flow<T, O, M>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    A: AggregateFunction<V>,
    O: Send + 'static,
    M: Send + 'static,
    E: FnMut(K, A::Out) -> Result<O, StageError> + Clone + Send + Sync + 'static,
{
    let a = agg.clone();
    let combiner = Flow::from_logic("aggregate_combiner", move |_| {
        Ok((
            CombineLogic {
                agg: a.clone(),
                state: Combiner::default(),
                _v: PhantomData::<fn(V)>,
            },
            (),
        ))
    })
    .partition_by_hash(|p: &(K, A::Acc)| key_hash(&p.0));
    let combiner = match outlet_parallelism(pairs.module()) {
        Some(p) => combiner.parallelism(p),
        None => combiner,
    };
    let stage = Flow::from_logic("keyed_aggregate", move |info: &StageInfo| {
        Ok((
            AggregateLogic {
                agg: agg.clone(),
                emit: emit.clone(),
                state: FirstSeen::<K, A::Acc>::default(),
                ck: Checkpointing::new(codec, info, "keyed aggregate"),
                rest: Emitting::default(),
                _v: PhantomData::<fn(V)>,
            },
            (),
        ))
    });
    pairs.via(combiner).via(stage)
}

/// Adds each `(key, value)` to the key's local accumulator (a bounded, self-bypassing
/// [`Combiner`]); emits the partial `(key, accumulator)` pairs when full, ahead of every barrier
/// (so it holds no state at a checkpoint) and at the end.
struct CombineLogic<A: AggregateFunction<V>, K, V> {
    agg: A,
    state: Combiner<FirstSeen<K, A::Acc>, K, A::Acc>,
    _v: PhantomData<fn(V)>,
}

impl<K, V, A> FlowLogic<(K, V), (K, A::Acc)> for CombineLogic<A, K, V>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    A: AggregateFunction<V>,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, V)>,
        out: &mut Vec<(K, A::Acc)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (agg, state) = (&self.agg, &mut self.state);
        consume(input, |it| {
            state.add_batch(it, out, || agg.create(), |acc, v| agg.add(acc, v));
        });
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<(K, A::Acc)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.state.flush(out);
        Ok(())
    }

    fn on_control(
        &mut self,
        control: Control,
        out: &mut Vec<(K, A::Acc)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        if matches!(control, Control::Barrier { .. }) {
            self.state.flush(out);
        }
        Ok(Some(control))
    }
}

/// Merges the combiners' partial accumulators per key; emits `emit(key, result)` at the end.
struct AggregateLogic<A: AggregateFunction<V>, E, K, V> {
    agg: A,
    emit: E,
    state: FirstSeen<K, A::Acc>,
    ck: Checkpointing<K, A::Acc>,
    rest: Emitting<indexmap::map::IntoIter<K, A::Acc>>,
    _v: PhantomData<fn(V)>,
}

impl<K, V, A, O, E> FlowLogic<(K, A::Acc), O> for AggregateLogic<A, E, K, V>
where
    K: Hash + Eq + Send + 'static,
    V: Send + 'static,
    A: AggregateFunction<V>,
    O: Send + 'static,
    E: FnMut(K, A::Out) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<(K, A::Acc)>,
        _out: &mut Vec<O>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (agg, state) = (&self.agg, &mut self.state);
        consume(input, |it| {
            for (k, partial) in it {
                state.upsert(k, partial, |acc, p| agg.merge(acc, p));
            }
        });
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let (agg, emit) = (&self.agg, &mut self.emit);
        self.rest.chunk(&mut self.state, out, &mut |k, acc| {
            emit(k, agg.result(&acc))
        })
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(state);
}

/// The first value of each key (an [`AggregateFunction`] for [`aggregate_pairs`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct First;

/// The last value of each key (an [`AggregateFunction`] for [`aggregate_pairs`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Last;

impl<V: Clone + Send + 'static> AggregateFunction<V> for First {
    type Acc = Option<V>;
    type Out = Option<V>;
    fn create(&self) -> Option<V> {
        None
    }
    fn add(&self, acc: &mut Option<V>, value: V) {
        if acc.is_none() {
            *acc = Some(value);
        }
    }
    fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
        if acc.is_none() {
            *acc = other;
        }
    }
    fn result(&self, acc: &Option<V>) -> Option<V> {
        acc.clone()
    }
}

impl<V: Clone + Send + 'static> AggregateFunction<V> for Last {
    type Acc = Option<V>;
    type Out = Option<V>;
    fn create(&self) -> Option<V> {
        None
    }
    fn add(&self, acc: &mut Option<V>, value: V) {
        *acc = Some(value);
    }
    fn merge(&self, acc: &mut Option<V>, other: Option<V>) {
        if other.is_some() {
            *acc = other;
        }
    }
    fn result(&self, acc: &Option<V>) -> Option<V> {
        acc.clone()
    }
}
