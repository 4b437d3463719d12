//! The logics behind keyed aggregation: key extraction before the hash edge, per-key state after.
//!
//! Per-key state is a [`KeyMap`]: [`Unordered`] (a plain hash map, the fastest) or
//! [`FirstSeen`] (insertion-ordered, so a subtask emits its keys in first-seen order, at some
//! cost per lookup). Each aggregating logic turns its `(key, value)` pairs into output elements
//! with `emit` when upstream completes (the pair itself for the Rust API, a host-language tuple
//! for bindings).

use super::codec::KeyedCodec;
use super::combine::Combiner;
use ahash::RandomState;
use indexmap::IndexMap;
use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use weir_graph::{
    Control, FlowLogic, KeyGroupRange, Snapshot, StageCx, StageError, StageInfo, consume,
    consume_ref,
};

/// The checkpoint side of a keyed aggregate: its codec (none: checkpoints are refused) and
/// the key groups its subtask owns.
pub(super) struct Checkpointing<K, V> {
    pub(super) codec: Option<KeyedCodec<K, V>>,
    pub(super) owned: KeyGroupRange,
    /// The operator named in a refusal.
    pub(super) operator: &'static str,
}

impl<K: Hash, V> Checkpointing<K, V> {
    /// For the subtask `info` describes.
    pub(super) fn new(
        codec: Option<KeyedCodec<K, V>>,
        info: &StageInfo,
        operator: &'static str,
    ) -> Self {
        Self {
            codec,
            owned: KeyGroupRange::for_subtask(info.subtask, info.parallelism),
            operator,
        }
    }

    fn codec(&self) -> Result<&KeyedCodec<K, V>, StageError> {
        self.codec
            .as_ref()
            .ok_or_else(|| super::codec::in_memory_only(self.operator))
    }

    /// The snapshot of `state`.
    pub(super) fn snapshot(
        &self,
        state: &impl KeyMap<K, V>,
    ) -> Result<Option<Snapshot>, StageError> {
        self.codec()?.snapshot(state.entries()).map(Some)
    }

    /// Restores `state` from this subtask's snapshot.
    pub(super) fn restore(
        &self,
        state: &mut impl KeyMap<K, V>,
        snapshot: &Snapshot,
    ) -> Result<(), StageError> {
        self.codec()?
            .restore(snapshot, self.owned, |k, v| state.put(k, v))
    }

    /// Restores `state` from every old subtask's snapshot, keeping the groups in `owned`.
    pub(super) fn restore_rescaled(
        &self,
        state: &mut impl KeyMap<K, V>,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.codec()?
            .restore_rescaled(snapshots, owned, |k, v| state.put(k, v))
    }
}

/// The snapshot hooks of a keyed logic (`snapshot`, `restore`, `restore_rescaled`) over its
/// per-key map `self.$state` through its [`Checkpointing`] `self.ck`. With `refuse S`, a logic
/// without a codec refuses a checkpoint naming its state type `S` (the fallible hooks).
macro_rules! keyed_snapshots {
    ($state:ident) => {
        fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
            self.ck.snapshot(&self.$state)
        }
        keyed_snapshots!(@restore $state);
    };
    ($state:ident, refuse $s:ty) => {
        /// Without a codec a checkpoint is refused rather than taken without the state.
        fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
            match self.ck.codec {
                Some(_) => self.ck.snapshot(&self.$state),
                None => Err(weir_graph::no_codec::<$s>("keyed aggregate")),
            }
        }
        keyed_snapshots!(@restore $state);
    };
    (@restore $state:ident) => {
        fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
            self.ck.restore(&mut self.$state, snapshot)
        }
        fn restore_rescaled(
            &mut self,
            snapshots: &[Snapshot],
            owned: KeyGroupRange,
        ) -> Result<(), StageError> {
            self.ck.restore_rescaled(&mut self.$state, snapshots, owned)
        }
    };
}
pub(super) use keyed_snapshots;

/// Per-key state of one subtask.
pub(super) trait KeyMap<K, V>: Default + Send + 'static {
    /// Every entry by value, in the map's order.
    type Entries: ExactSizeIterator<Item = (K, V)> + Send + 'static;
    /// Every entry by value, leaving the map empty (its memory goes with the iterator).
    fn take_entries(&mut self) -> Self::Entries;
    /// The value of `k`.
    fn get(&self, k: &K) -> Option<&V>;
    /// The value of `k`, to update.
    fn get_mut(&mut self, k: &K) -> Option<&mut V>;
    /// Sets the value of `k` (a new key goes last).
    fn put(&mut self, k: K, v: V);
    /// The value of `k`, `init()` put first for a new key (one lookup).
    fn slot(&mut self, k: K, init: impl FnOnce() -> V) -> &mut V;
    /// Merges `v` into the value of `k` with `merge`, or puts `v` for a new key (one lookup).
    fn upsert(&mut self, k: K, v: V, merge: impl FnOnce(&mut V, V));
    /// How many keys.
    fn size(&self) -> usize;
    /// Whether some value satisfies `f`.
    fn any_value(&self, f: impl FnMut(&V) -> bool) -> bool;
    /// Every entry, emptying the map.
    fn take_all(&mut self) -> impl Iterator<Item = (K, V)> + '_;
    /// Every entry, borrowed.
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a;
}

/// Keyed state in no particular order.
pub(super) type Unordered<K, V> = HashMap<K, V, RandomState>;

/// Keyed state in first-seen key order.
pub(super) type FirstSeen<K, V> = IndexMap<K, V, RandomState>;

impl<K: Hash + Eq + Send + 'static, V: Send + 'static> KeyMap<K, V> for Unordered<K, V> {
    type Entries = std::collections::hash_map::IntoIter<K, V>;
    fn take_entries(&mut self) -> Self::Entries {
        std::mem::take(self).into_iter()
    }
    fn get(&self, k: &K) -> Option<&V> {
        HashMap::get(self, k)
    }
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        HashMap::get_mut(self, k)
    }
    fn put(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    fn slot(&mut self, k: K, init: impl FnOnce() -> V) -> &mut V {
        self.entry(k).or_insert_with(init)
    }
    fn upsert(&mut self, k: K, v: V, merge: impl FnOnce(&mut V, V)) {
        match self.entry(k) {
            Entry::Occupied(mut e) => merge(e.get_mut(), v),
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    fn size(&self) -> usize {
        self.len()
    }
    fn any_value(&self, f: impl FnMut(&V) -> bool) -> bool {
        self.values().any(f)
    }
    fn take_all(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.drain()
    }
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        self.iter()
    }
}

impl<K: Hash + Eq + Send + 'static, V: Send + 'static> KeyMap<K, V> for FirstSeen<K, V> {
    type Entries = indexmap::map::IntoIter<K, V>;
    fn take_entries(&mut self) -> Self::Entries {
        std::mem::take(self).into_iter()
    }
    fn get(&self, k: &K) -> Option<&V> {
        IndexMap::get(self, k)
    }
    fn get_mut(&mut self, k: &K) -> Option<&mut V> {
        IndexMap::get_mut(self, k)
    }
    fn put(&mut self, k: K, v: V) {
        self.insert(k, v);
    }
    fn slot(&mut self, k: K, init: impl FnOnce() -> V) -> &mut V {
        self.entry(k).or_insert_with(init)
    }
    fn upsert(&mut self, k: K, v: V, merge: impl FnOnce(&mut V, V)) {
        match self.entry(k) {
            indexmap::map::Entry::Occupied(mut e) => merge(e.get_mut(), v),
            indexmap::map::Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    fn size(&self) -> usize {
        self.len()
    }
    fn any_value(&self, f: impl FnMut(&V) -> bool) -> bool {
        self.values().any(f)
    }
    fn take_all(&mut self) -> impl Iterator<Item = (K, V)> + '_ {
        self.drain(..)
    }
    fn entries<'a>(&'a self) -> impl Iterator<Item = (&'a K, &'a V)> + 'a
    where
        K: 'a,
        V: 'a,
    {
        self.iter()
    }
}

/// The `emit` of the Rust API: the pair itself.
pub(super) fn pair<K, V>(k: K, v: V) -> Result<(K, V), StageError> {
    Ok((k, v))
}

/// Entries a keyed aggregate emits per `on_finish` call: the engine sends each chunk downstream
/// (waiting for credit) before it asks for the next, so the output never holds every key at once.
pub(super) const EMIT_CHUNK: usize = 65_536;

/// The entries of a finished keyed map not emitted yet (taken from the map at the first
/// `on_finish`, emitted [`EMIT_CHUNK`] at a time).
pub(super) struct Emitting<I>(Option<I>);

impl<I> Default for Emitting<I> {
    fn default() -> Self {
        Self(None)
    }
}

impl<I: ExactSizeIterator> Emitting<I> {
    /// Emits the next chunk of `state`'s entries through `emit`, in the map's order (the first
    /// call empties `state`).
    pub(super) fn chunk<K, V, O>(
        &mut self,
        state: &mut impl KeyMap<K, V, Entries = I>,
        out: &mut Vec<O>,
        emit: &mut impl FnMut(K, V) -> Result<O, StageError>,
    ) -> Result<(), StageError>
    where
        I: Iterator<Item = (K, V)>,
    {
        let rest = self.0.get_or_insert_with(|| state.take_entries());
        out.reserve(rest.len().min(EMIT_CHUNK));
        for (k, v) in rest.by_ref().take(EMIT_CHUNK) {
            out.push(emit(k, v)?);
        }
        Ok(())
    }

    /// Whether entries are left after the last chunk (`FlowLogic::finishing`).
    pub(super) fn more(&self) -> bool {
        self.0.as_ref().is_some_and(|r| r.len() > 0)
    }
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

/// Counts keys before the hash edge (a bounded, self-bypassing [`Combiner`]); emits the
/// partial `(key, count)` pairs when full, ahead of every barrier and on completion.
pub(super) struct CountLogic<S, K> {
    pub(super) counts: Combiner<S, K, u64>,
}

impl<K, S> FlowLogic<K, (K, u64)> for CountLogic<S, K>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, u64>,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<K>,
        out: &mut Vec<(K, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let rows = input.drain(..).map(|k| (k, ()));
        self.counts.add_batch(rows, out, || 0, |c, ()| *c += 1);
        Ok(())
    }

    fn on_finish(
        &mut self,
        out: &mut Vec<(K, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.counts.flush(out);
        Ok(())
    }

    /// A barrier flushes the partial counts ahead of it, so the combiner holds no state at a
    /// checkpoint (the summing stage after the hash edge does).
    fn on_control(
        &mut self,
        control: Control,
        out: &mut Vec<(K, u64)>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        if matches!(control, Control::Barrier { .. }) {
            self.counts.flush(out);
        }
        Ok(Some(control))
    }
}

/// Sums the partial `(key, count)` pairs of the combiners; emits `emit(key, total)` on completion.
pub(super) struct SumLogic<S: KeyMap<K, u64>, E, K> {
    pub(super) totals: S,
    pub(super) emit: E,
    pub(super) ck: Checkpointing<K, u64>,
    pub(super) rest: Emitting<<S as KeyMap<K, u64>>::Entries>,
}

impl<K, O, S, E> FlowLogic<(K, u64), O> for SumLogic<S, E, K>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, u64>,
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
            *self.totals.slot(k, || 0) += n;
        }
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.rest.chunk(&mut self.totals, out, &mut self.emit)
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(totals);
}

/// Folds each key's elements into a copy of `zero`; emits `(key, acc)` pairs on completion.
/// The slot is an `Option` so the accumulator can be moved into `f` without cloning it.
pub(super) struct FoldLogic<S: KeyMap<K, Option<A>>, A, F, K> {
    pub(super) zero: A,
    pub(super) f: F,
    pub(super) state: S,
    pub(super) ck: Checkpointing<K, Option<A>>,
    pub(super) rest: Emitting<<S as KeyMap<K, Option<A>>>::Entries>,
}

impl<K, T, A, S, F> FlowLogic<(K, T), (K, A)> for FoldLogic<S, A, F, K>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, Option<A>>,
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
                    state.put(k, Some(acc));
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
        self.rest.chunk(&mut self.state, out, &mut |k, a| {
            Ok((k, a.unwrap_or_else(|| zero.clone())))
        })
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(state);
}

/// Reduces each key's elements pairwise; emits `(key, result)` pairs on completion.
pub(super) struct ReduceLogic<S: KeyMap<K, Option<T>>, F, K, T> {
    pub(super) f: F,
    pub(super) state: S,
    pub(super) ck: Checkpointing<K, Option<T>>,
    pub(super) rest: Emitting<<S as KeyMap<K, Option<T>>>::Entries>,
}

impl<K, T, S, F> FlowLogic<(K, T), (K, T)> for ReduceLogic<S, F, K, T>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, Option<T>>,
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
                    state.put(k, Some(x));
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
        if self.state.any_value(Option::is_none) {
            return Err(StageError::user(
                "reduce: the accumulator of a key was lost when the function panicked",
            ));
        }
        self.rest.chunk(&mut self.state, out, &mut |k, v| {
            v.map(|v| (k, v))
                .ok_or_else(|| StageError::internal("reduce: a key without a value"))
        })
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(state);
}

/// Folds each key's elements with a fallible `f(&acc, &x)`, starting from `zero()`; a failed
/// call leaves the key's accumulator as it was and goes through supervision with the element.
/// Emits `emit(key, acc)` on completion.
pub(super) struct TryFoldLogic<S: KeyMap<K, A>, Z, G, E, K, A> {
    pub(super) zero: Z,
    pub(super) f: G,
    pub(super) emit: E,
    pub(super) state: S,
    pub(super) ck: Checkpointing<K, A>,
    pub(super) rest: Emitting<<S as KeyMap<K, A>>::Entries>,
}

impl<K, T, A, O, S, Z, G, E> FlowLogic<(K, T), O> for TryFoldLogic<S, Z, G, E, K, A>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, A>,
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
                    Ok(a) => state.put(k, a),
                    Err(e) => {
                        // A key seen for the first time keeps its zero.
                        if let Some(z) = fresh {
                            state.put(k, z);
                        }
                        scx.element_failed(e, Some(Box::new(x)), None)?;
                    }
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.rest.chunk(&mut self.state, out, &mut self.emit)
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(state, refuse S);
}

/// Reduces each key's elements with a fallible `f(&acc, &x)` (the first element of a key is its
/// accumulator); a failed call leaves the accumulator as it was and goes through supervision
/// with the element. Emits `emit(key, acc)` on completion.
pub(super) struct TryReduceLogic<S: KeyMap<K, T>, G, E, K, T> {
    pub(super) f: G,
    pub(super) emit: E,
    pub(super) state: S,
    pub(super) ck: Checkpointing<K, T>,
    pub(super) rest: Emitting<<S as KeyMap<K, T>>::Entries>,
}

impl<K, T, O, S, G, E> FlowLogic<(K, T), O> for TryReduceLogic<S, G, E, K, T>
where
    K: Hash + Eq + Send + 'static,
    S: KeyMap<K, T>,
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
                    None => state.put(k, x),
                    Some(Ok(a)) => state.put(k, a),
                    Some(Err(e)) => scx.element_failed(e, Some(Box::new(x)), None)?,
                }
            }
            Ok(())
        })
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.rest.chunk(&mut self.state, out, &mut self.emit)
    }

    fn finishing(&self) -> bool {
        self.rest.more()
    }

    keyed_snapshots!(state, refuse S);
}
