//! The checkpoint format of the joins: the watermark, the next key id and, per key group, the
//! keys with their id and buffered elements (window join: each open window's bounds with the
//! lefts and rights in it; interval join: the key's buffered lefts and rights). Pending
//! "timers" (window ends, interval expiries) are derived from the buffers on restore.
//!
//! The opt-in is the same as for keyed aggregates: [`SerdeState`] (serde keys and elements)
//! checkpoints, [`InMemoryOnly`] refuses a snapshot with the common `no_codec` error.

use crate::keyed::{InMemoryOnly, SerdeState, check_group, foreign_group, key_group_of};
use crate::time::Timestamped;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::hash::Hash;
use weir_graph::{KeyGroupRange, MAX_KEY_GROUPS, Snapshot, SnapshotError, StageError};

/// A join subtask's state: keys by group, each `(id, key, what the key holds)`.
#[derive(Serialize, Deserialize)]
pub(crate) struct Saved<K, E> {
    pub(crate) watermark: Option<i64>,
    pub(crate) next_id: u64,
    /// `(key group, keys)`, groups ascending, keys by id.
    pub(crate) groups: Vec<(u32, Vec<(u64, K, E)>)>,
}

/// A window join key's open windows as restored: `(start, end, lefts, rights)`.
pub(crate) type Slots<L, R> = Vec<(i64, i64, Vec<Timestamped<L>>, Vec<Timestamped<R>>)>;
/// A window join key's open windows, borrowed for encoding (the same bytes as [`Slots`]).
pub(crate) type SlotsRef<'a, L, R> = Vec<(i64, i64, &'a [Timestamped<L>], &'a [Timestamped<R>])>;
/// An interval join key's buffers as restored: `(lefts, rights)`.
pub(crate) type Buffered<L, R> = (Vec<Timestamped<L>>, Vec<Timestamped<R>>);
/// An interval join key's buffers, borrowed for encoding.
pub(crate) type BufferedRef<'a, L, R> = (&'a [Timestamped<L>], &'a [Timestamped<R>]);

/// Encodes and decodes the state of a join with keys `K`, lefts `L` and rights `R`.
pub struct JoinCodec<K, L, R> {
    window_enc: for<'a> fn(&Saved<&'a K, SlotsRef<'a, L, R>>) -> Result<Snapshot, SnapshotError>,
    window_dec: fn(&Snapshot) -> Result<Saved<K, Slots<L, R>>, SnapshotError>,
    interval_enc:
        for<'a> fn(&Saved<&'a K, BufferedRef<'a, L, R>>) -> Result<Snapshot, SnapshotError>,
    interval_dec: fn(&Snapshot) -> Result<Saved<K, Buffered<L, R>>, SnapshotError>,
}

impl<K, L, R> Clone for JoinCodec<K, L, R> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, L, R> Copy for JoinCodec<K, L, R> {}

impl<K, L, R> std::fmt::Debug for JoinCodec<K, L, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JoinCodec<{}>", std::any::type_name::<(K, L, R)>())
    }
}

impl<K, L, R> JoinCodec<K, L, R>
where
    K: Serialize + DeserializeOwned,
    L: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    /// The serde + postcard codec.
    pub fn serde() -> Self {
        Self {
            window_enc: |s| Snapshot::encode(s),
            window_dec: |s| s.decode(),
            interval_enc: |s| Snapshot::encode(s),
            interval_dec: |s| s.decode(),
        }
    }
}

impl<K, L, R> JoinCodec<K, L, R> {
    pub(crate) fn encode_window(
        &self,
        s: &Saved<&K, SlotsRef<'_, L, R>>,
    ) -> Result<Snapshot, SnapshotError> {
        (self.window_enc)(s)
    }
    pub(crate) fn decode_window(
        &self,
        s: &Snapshot,
    ) -> Result<Saved<K, Slots<L, R>>, SnapshotError> {
        (self.window_dec)(s)
    }
    pub(crate) fn encode_interval(
        &self,
        s: &Saved<&K, BufferedRef<'_, L, R>>,
    ) -> Result<Snapshot, SnapshotError> {
        (self.interval_enc)(s)
    }
    pub(crate) fn decode_interval(
        &self,
        s: &Snapshot,
    ) -> Result<Saved<K, Buffered<L, R>>, SnapshotError> {
        (self.interval_dec)(s)
    }
}

/// Whether a join checkpoints its state: [`SerdeState`] or [`InMemoryOnly`].
pub trait JoinChoice<K, L, R>: Send + Sync + 'static {
    /// The codec of the join's state, if any.
    fn codec() -> Option<JoinCodec<K, L, R>>;
}

impl<K, L, R> JoinChoice<K, L, R> for SerdeState
where
    K: Serialize + DeserializeOwned,
    L: Serialize + DeserializeOwned,
    R: Serialize + DeserializeOwned,
{
    fn codec() -> Option<JoinCodec<K, L, R>> {
        Some(JoinCodec::serde())
    }
}

impl<K, L, R> JoinChoice<K, L, R> for InMemoryOnly {
    fn codec() -> Option<JoinCodec<K, L, R>> {
        None
    }
}

/// Groups `(id, key, entry)` by the key group of each key, groups ascending, keys by id.
pub(crate) fn by_group<'a, K: Hash, E>(
    keys: impl Iterator<Item = (u64, &'a K, E)>,
) -> Vec<(u32, Vec<(u64, &'a K, E)>)> {
    let mut groups: Vec<Vec<(u64, &K, E)>> = Vec::new();
    groups.resize_with(MAX_KEY_GROUPS, Vec::new);
    for (id, k, e) in keys {
        groups[key_group_of(k)].push((id, k, e));
    }
    groups
        .into_iter()
        .enumerate()
        .filter(|(_, keys)| !keys.is_empty())
        .map(|(g, mut keys)| {
            keys.sort_by_key(|k| k.0);
            (g as u32, keys)
        })
        .collect()
}

/// The state to install from decoded snapshots.
pub(crate) struct Restored<K, E> {
    pub(crate) watermark: Option<i64>,
    pub(crate) next_id: u64,
    /// `(id, key, entry)`.
    pub(crate) keys: Vec<(u64, K, E)>,
}

/// Keeps the keys of the groups in `owned` from `states` (one per old subtask, in subtask
/// order). The same subtask's own state (`rescaled` false) must hold only owned groups and keeps
/// its ids; rescaled states are renumbered in (old id, old subtask) order, and the watermark is
/// the smallest of the old subtasks' (they agree at an aligned barrier).
pub(crate) fn restore<K: Hash, E>(
    states: Vec<Saved<K, E>>,
    owned: KeyGroupRange,
    rescaled: bool,
) -> Result<Restored<K, E>, StageError> {
    let mut watermark: Option<Option<i64>> = None;
    let mut next_id = 0;
    let mut keys: Vec<(u64, usize, K, E)> = Vec::new();
    for (sub, state) in states.into_iter().enumerate() {
        watermark = Some(match watermark {
            None => state.watermark,
            Some(w) => w.min(state.watermark),
        });
        next_id = next_id.max(state.next_id);
        for (g, group) in state.groups {
            let g = g as usize;
            if !owned.contains(g) {
                if rescaled {
                    continue;
                }
                return Err(foreign_group(g, owned));
            }
            for (id, key, e) in group {
                check_group(&key, g)?;
                keys.push((id, sub, key, e));
            }
        }
    }
    if !rescaled {
        let keys = keys.into_iter().map(|(id, _, k, e)| (id, k, e)).collect();
        return Ok(Restored {
            watermark: watermark.flatten(),
            next_id,
            keys,
        });
    }
    keys.sort_by_key(|(id, sub, _, _)| (*id, *sub));
    let n = keys.len() as u64;
    let keys = (0..)
        .zip(keys)
        .map(|(new, (_, _, k, e))| (new, k, e))
        .collect();
    Ok(Restored {
        watermark: watermark.flatten(),
        next_id: n,
        keys,
    })
}
