//! Keyed aggregates whose state lives in the run's state backend (`key_by(..).in_backend()`):
//! each key's accumulator is stored through the raw [`StateBackend`] API of the run's
//! [`StateService`], addressed by the routing key group ([`key_group_of`], the function the
//! hash edge routes by) and the postcard bytes of the key, so state larger than memory
//! (RocksDB) works.
//!
//! A bounded write-back cache (at most `CACHE` keys, [`DEFAULT_CACHE`]) sits in front of the
//! backend: an element of a cached key costs a hash-map update, a miss reads the backend once;
//! the cache is written back when full and at every barrier. At a barrier the stage flushes,
//! then freezes the key groups it owns (`snapshot_state`: a RocksDB snapshot, O(1)) and hands
//! it to the checkpoint as a deferred [`Snapshot`], encoded by the checkpoint store off the
//! stage's path. Checkpoints are incremental: every value written back since the previous
//! barrier is also recorded in a [`ChangeLog`] (bounded; past its limit, or after a restore,
//! the next checkpoint is whole), offered as the snapshot's delta on top of the previous
//! barrier's, which the store writes when it holds that checkpoint. A restore (at the same or
//! another parallelism) imports only the key groups the subtask owns, from the base and then
//! each increment, reading the files in blocks. On completion every key of the owned groups is
//! emitted by a scan of the backend, and the stage's entries are removed.

use super::codec::StateChoice;
use super::{key_group_of, key_hash};
use ahash::RandomState;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};
use weir_graph::{
    Control, Flow, FlowLogic, KeyGroupRange, Snapshot, SnapshotError, StageCx, StageError,
    StageInfo,
};
use weir_state::{ChangeLog, StateBackend, StateError, StateId, StateService};

/// Keys the write-back cache of an [`InBackend`] stage holds by default.
pub const DEFAULT_CACHE: usize = 32_768;

/// Bytes the change log of one subtask holds between two barriers at most (entries and their
/// index); a barrier past it writes the whole state instead of a delta.
pub const CHANGELOG_LIMIT: usize = 32 << 20;

/// Keyed state kept in the run's state backend ([`StateService`]), behind a write-back cache
/// of at most `CACHE` keys; checkpointed by deferred backend snapshots. Keys and values must
/// be serde types. Windows after `in_backend()` keep their state in memory and checkpoint it
/// with serde, as after `checkpointed()`.
#[derive(Debug, Clone, Copy, Default)]
pub struct InBackend<const CACHE: usize = DEFAULT_CACHE>;

impl<K, V, const CACHE: usize> StateChoice<K, V> for InBackend<CACHE>
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn keyed() -> Option<super::KeyedCodec<K, V>> {
        Some(super::KeyedCodec::serde())
    }
    fn windows() -> Option<crate::window::WindowCodec<K, V>> {
        Some(crate::window::WindowCodec::serde())
    }
    fn backend() -> Option<BackendCodec<K, V>> {
        Some(BackendCodec::serde(CACHE))
    }
}

type EncodeFn<T> = fn(&T, Vec<u8>) -> Result<Vec<u8>, postcard::Error>;
type DecodeFn<T> = fn(&[u8]) -> Result<T, postcard::Error>;

/// How an in-backend keyed stage encodes its keys and values (postcard), and its cache size.
pub struct BackendCodec<K, V> {
    key: (EncodeFn<K>, DecodeFn<K>),
    value: (EncodeFn<V>, DecodeFn<V>),
    cache: usize,
}

impl<K, V> Clone for BackendCodec<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for BackendCodec<K, V> {}

impl<K, V> std::fmt::Debug for BackendCodec<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BackendCodec(cache {})", self.cache)
    }
}

fn encode<T: Serialize>(t: &T, buf: Vec<u8>) -> Result<Vec<u8>, postcard::Error> {
    postcard::to_extend(t, buf)
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, postcard::Error> {
    postcard::from_bytes(b)
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> BackendCodec<K, V> {
    /// The postcard codec, with a cache of `cache` keys (at least 1).
    pub fn serde(cache: usize) -> Self {
        Self {
            key: (encode::<K>, decode::<K>),
            value: (encode::<V>, decode::<V>),
            cache: cache.max(1),
        }
    }
}

/// A cached accumulator: its key group, and the value (`None` while the function runs: one
/// that panicked lost it).
struct Slot<V> {
    kg: u16,
    value: Option<V>,
}

/// The per-key aggregate on the backend: `split` turns an input into `(key, x)`, `update`
/// folds `x` into the key's value (`None`: the key is new), `emit` makes the output of a key
/// and its value on completion.
pub(super) struct BackendAgg<K, V, S, U, E> {
    codec: BackendCodec<K, V>,
    backend: Arc<dyn StateBackend>,
    state: StateId,
    owned: KeyGroupRange,
    path: String,
    cache: HashMap<K, Slot<V>, RandomState>,
    /// Clones a value before `update` under supervision, so a panic keeps it (fold).
    copy: Option<fn(&V) -> V>,
    split: S,
    update: U,
    emit: E,
    key_buf: Vec<u8>,
    /// Keys stored (restored plus first seen), so completion reserves its output once.
    keys: usize,
    /// On completion: the next key group to emit (keys leave in chunks of key groups).
    emit_next: Option<usize>,
    finished: bool,
    /// The values written back since the last barrier (incomplete until the first barrier,
    /// and after a restore).
    changes: ChangeLog,
    /// The last barrier the stage passed.
    last_barrier: Option<u64>,
    /// What the barrier just passed hands its snapshot: the barrier before it, when the log
    /// holds every change since, and the log.
    at_barrier: Mutex<Option<(Option<u64>, ChangeLog)>>,
}

/// Keys emitted per `on_finish` call at most (whole key groups; at least one group), so the
/// output of a large state leaves in chunks instead of one batch of every key.
const EMIT_CHUNK: usize = 65_536;

/// The error of a run without a state service.
fn no_service(info: &StageInfo) -> StageError {
    StageError::internal(
        "it keeps its keyed state in the run's state backend (in_backend()), but the run has \
         no StateService: register one with Materializer::with_service",
    )
    .with_stage(&info.path)
}

impl<K, V, S, U, E> BackendAgg<K, V, S, U, E>
where
    K: Hash + Eq,
{
    /// The aggregate of the subtask `info` describes; its keyed state starts empty (a restore
    /// then imports the checkpoint's).
    fn new(
        info: &StageInfo,
        codec: BackendCodec<K, V>,
        copy: Option<fn(&V) -> V>,
        split: S,
        update: U,
        emit: E,
    ) -> Result<Self, StageError> {
        let service = info
            .services
            .get::<StateService>()
            .ok_or_else(|| no_service(info))?;
        let mut agg = Self {
            codec,
            backend: Arc::clone(service.backend()),
            state: StateId::new(info.id, "keyed"),
            owned: KeyGroupRange::for_subtask(info.subtask, info.parallelism),
            path: info.path.clone(),
            cache: HashMap::with_capacity_and_hasher(codec.cache, RandomState::new()),
            copy,
            split,
            update,
            emit,
            key_buf: Vec::new(),
            keys: 0,
            emit_next: None,
            finished: false,
            changes: ChangeLog::new(StateId::new(info.id, "keyed"), CHANGELOG_LIMIT),
            last_barrier: None,
            at_barrier: Mutex::new(None),
        };
        // Nothing is recorded until the first barrier (a run without checkpoints keeps none).
        agg.changes.invalidate();
        agg.clear()?;
        Ok(agg)
    }

    fn storage(&self, e: StateError) -> StageError {
        StageError::from_error(e).with_stage(&self.path)
    }

    fn codec_error(&self, what: &str, e: postcard::Error) -> StageError {
        StageError::internal(format!("stage '{}': cannot {what}: {e}", self.path))
    }

    /// Removes this stage's entries in the owned key groups.
    fn clear(&self) -> Result<(), StageError> {
        for kg in self.owned.iter() {
            self.backend
                .delete_prefix(kg, self.state, b"")
                .map_err(|e| self.storage(e))?;
        }
        Ok(())
    }

    /// Writes every cached value back to the backend, in stored-key order (key group, then
    /// key bytes: RocksDB inserts ascending keys into its memtable at a cached position), and
    /// empties the cache.
    fn flush(&mut self) -> Result<(), StageError> {
        let Self {
            cache,
            backend,
            state,
            codec,
            path,
            changes,
            ..
        } = self;
        let bad = |what: &str, e: postcard::Error| {
            StageError::internal(format!("stage '{path}': cannot {what}: {e}"))
        };
        let mut lost = false;
        let mut rows = Vec::with_capacity(cache.len());
        for (k, slot) in cache.drain() {
            let Some(v) = slot.value else {
                lost = true;
                continue;
            };
            let key = (codec.key.0)(&k, Vec::new()).map_err(|e| bad("encode a key", e))?;
            let value = (codec.value.0)(&v, Vec::new()).map_err(|e| bad("encode a value", e))?;
            rows.push((slot.kg, key, value));
        }
        rows.sort_unstable_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (kg, key, value) in &rows {
            backend
                .put(usize::from(*kg), *state, key, value)
                .map_err(|e| StageError::from_error(e).with_stage(path))?;
            changes.record(usize::from(*kg), key, value);
        }
        if lost {
            return Err(StageError::user(
                "the accumulator of a key was lost when the function panicked",
            ));
        }
        Ok(())
    }

    /// The stored value of `k` in key group `kg`.
    fn load(&mut self, k: &K, kg: usize) -> Result<Option<V>, StageError> {
        self.key_buf.clear();
        let buf = std::mem::take(&mut self.key_buf);
        self.key_buf =
            (self.codec.key.0)(k, buf).map_err(|e| self.codec_error("encode a key", e))?;
        let Some(bytes) = self
            .backend
            .get(kg, self.state, &self.key_buf)
            .map_err(|e| self.storage(e))?
        else {
            return Ok(None);
        };
        (self.codec.value.1)(&bytes)
            .map(Some)
            .map_err(|e| self.codec_error("decode a stored value", e))
    }

    /// Imports the owned key groups of `snapshots` (each a base and its increments, in
    /// order), replacing this stage's entries.
    fn import(&mut self, snapshots: &[Snapshot], owned: KeyGroupRange) -> Result<(), StageError> {
        self.cache.clear();
        self.owned = owned;
        self.clear()?;
        self.changes.invalidate();
        self.keys = 0;
        for s in snapshots {
            let taken = match s.parts() {
                Some(parts) => {
                    let mut taken = 0;
                    for p in parts {
                        taken += self
                            .backend
                            .import_key_groups_file(p, owned)
                            .map_err(|e| self.storage(e))?;
                    }
                    taken
                }
                None => self
                    .backend
                    .import_key_groups(s.as_bytes(), owned)
                    .map_err(|e| self.storage(e))?,
            };
            // An increment's keys are counted again: an upper bound, for reserving output.
            self.keys += taken;
        }
        Ok(())
    }
}

impl<I, K, X, V, O, S, U, E> FlowLogic<I, O> for BackendAgg<K, V, S, U, E>
where
    I: Send + 'static,
    K: Hash + Eq + Send + 'static,
    X: Send + 'static,
    V: Send + 'static,
    O: Send + 'static,
    S: FnMut(I) -> (K, X) + Send + 'static,
    U: FnMut(Option<V>, X) -> V + Send + 'static,
    E: FnMut(K, V) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        _out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let copy = if scx.supervised() { self.copy } else { None };
        for item in input.drain(..) {
            let (k, x) = (self.split)(item);
            if let Some(slot) = self.cache.get_mut(&k) {
                let old = match (&slot.value, copy) {
                    (Some(v), Some(c)) => Some(c(v)),
                    _ => slot.value.take(),
                };
                if old.is_some() {
                    slot.value = Some((self.update)(old, x));
                }
                continue;
            }
            if self.cache.len() >= self.codec.cache {
                self.flush()?;
            }
            let kg = key_group_of(&k);
            let old = self.load(&k, kg)?;
            self.keys += usize::from(old.is_none());
            let slot = self.cache.entry(k).or_insert(Slot {
                kg: kg as u16,
                value: None,
            });
            slot.value = Some((self.update)(old, x));
        }
        Ok(())
    }

    fn on_finish(&mut self, out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        if self.emit_next.is_none() {
            self.flush()?;
            out.reserve(self.keys.min(EMIT_CHUNK));
        }
        let (dec_key, dec_value) = (self.codec.key.1, self.codec.value.1);
        let mut kg = self.emit_next.unwrap_or(self.owned.start());
        let first = out.len();
        while kg < self.owned.end() && out.len() - first < EMIT_CHUNK {
            let mut failed = None;
            let mut entries = Vec::new();
            self.backend
                .scan(kg, self.state, b"", &mut |k, v| {
                    if failed.is_some() {
                        return;
                    }
                    match (dec_key(k), dec_value(v)) {
                        (Ok(k), Ok(v)) => entries.push((k, v)),
                        (Err(e), _) | (_, Err(e)) => failed = Some(e),
                    }
                })
                .map_err(|e| self.storage(e))?;
            if let Some(e) = failed {
                return Err(self.codec_error("decode a stored entry", e));
            }
            for (k, v) in entries {
                out.push((self.emit)(k, v)?);
            }
            kg += 1;
        }
        self.emit_next = Some(kg);
        if kg >= self.owned.end() {
            self.clear()?;
            self.finished = true;
        }
        Ok(())
    }

    fn finishing(&self) -> bool {
        self.emit_next.is_some() && !self.finished
    }

    /// A barrier writes the cache back first, so the snapshot that follows holds every key,
    /// and takes the change log since the previous barrier for it.
    fn on_control(
        &mut self,
        control: Control,
        _out: &mut Vec<O>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        if let Control::Barrier { id } = control {
            self.flush()?;
            let log = self.changes.take();
            let since = self.last_barrier.filter(|_| log.is_complete());
            *self
                .at_barrier
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some((since, log));
            self.last_barrier = Some(id);
        }
        Ok(Some(control))
    }

    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        if !self.cache.is_empty() {
            return Err(StageError::internal(format!(
                "stage '{}': snapshot with {} keys not written back",
                self.path,
                self.cache.len()
            )));
        }
        let frozen = self
            .backend
            .snapshot_state(self.owned, self.state)
            .map_err(|e| self.storage(e))?;
        if self.finished {
            // The final (empty) state: small, kept as bytes.
            return frozen
                .into_bytes()
                .map(|b| Some(Snapshot::from_bytes(b)))
                .map_err(|e| self.storage(e));
        }
        let whole = Snapshot::deferred(move |out| {
            frozen
                .write_to(out)
                .map_err(|e| SnapshotError::Write(e.to_string()))
        });
        let at_barrier = self
            .at_barrier
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        Ok(Some(match at_barrier {
            Some((Some(since), log)) => {
                let delta = log.into_writer();
                whole.with_delta(since, move |out| {
                    delta
                        .write_to(out)
                        .map_err(|e| SnapshotError::Write(e.to_string()))
                })
            }
            Some((None, _)) => whole.incremental(),
            None => whole,
        }))
    }

    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let owned = self.owned;
        self.import(std::slice::from_ref(snapshot), owned)
    }

    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
    ) -> Result<(), StageError> {
        self.import(snapshots, owned)
    }
}

/// The per-key fold after the hash edge, its state in the backend.
pub(super) fn fold_stage<K, X, A, G>(
    zero: A,
    f: G,
    codec: BackendCodec<K, Option<A>>,
) -> Flow<(K, X), (K, A)>
where
    K: Hash + Eq + Send + 'static,
    X: Send + 'static,
    A: Clone + Send + Sync + 'static,
    G: FnMut(A, X) -> A + Clone + Send + Sync + 'static,
{
    Flow::from_logic("keyed_fold", move |info| {
        let (z, mut f) = (zero.clone(), f.clone());
        let z2 = zero.clone();
        let update = move |old: Option<Option<A>>, x: X| {
            Some(f(old.flatten().unwrap_or_else(|| z.clone()), x))
        };
        let emit = move |k: K, a: Option<A>| Ok((k, a.unwrap_or_else(|| z2.clone())));
        let agg = BackendAgg::new(info, codec, Some(Clone::clone), pair_split, update, emit)?;
        Ok((agg, ()))
    })
}

/// The per-key reduce after the hash edge, its state in the backend.
pub(super) fn reduce_stage<K, X, G>(f: G, codec: BackendCodec<K, Option<X>>) -> Flow<(K, X), (K, X)>
where
    K: Hash + Eq + Send + 'static,
    X: Send + 'static,
    G: FnMut(X, X) -> X + Clone + Send + Sync + 'static,
{
    Flow::from_logic("keyed_reduce", move |info| {
        let mut f = f.clone();
        let update = move |old: Option<Option<X>>, x: X| {
            Some(match old.flatten() {
                Some(acc) => f(acc, x),
                None => x,
            })
        };
        let emit = |k: K, v: Option<X>| {
            v.map(|v| (k, v)).ok_or_else(|| {
                StageError::user(
                    "reduce: the accumulator of a key was lost when the function panicked",
                )
            })
        };
        let agg = BackendAgg::new(info, codec, None, pair_split, update, emit)?;
        Ok((agg, ()))
    })
}

/// The per-key count of keys after the hash edge (no combiner before it: its memory would grow
/// with the distinct keys), its state in the backend.
pub(super) fn count_stage<K>(codec: BackendCodec<K, u64>) -> Flow<K, (K, u64)>
where
    K: Hash + Eq + Send + 'static,
{
    Flow::from_logic("keyed_count", move |info| {
        let update = |old: Option<u64>, (): ()| old.unwrap_or(0) + 1;
        let emit = |k: K, n: u64| Ok((k, n));
        let agg = BackendAgg::new(info, codec, None, key_split, update, emit)?;
        Ok((agg, ()))
    })
}

fn pair_split<K, X>(p: (K, X)) -> (K, X) {
    p
}

fn key_split<K>(k: K) -> (K, ()) {
    (k, ())
}

/// The counting of `count()` in the backend after a key stage `keys`, hash-partitioned on the
/// key.
pub(super) fn count_after<T, K>(keys: Flow<T, K>, codec: BackendCodec<K, u64>) -> Flow<T, (K, u64)>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
{
    keys.partition_by_hash(|k: &K| key_hash(k))
        .via(count_stage(codec))
}
