//! How keyed state is checkpointed: the portable format (per key group, its entries), the serde
//! codecs of keys and values, and the choice between checkpointing with serde ([`SerdeState`])
//! and keeping state in memory only ([`InMemoryOnly`], whose stages refuse a checkpoint).
//!
//! A keyed snapshot is the postcard encoding of `Vec<(key group, Vec<(key, value)>)>`, groups in
//! ascending order. Restoring checks every key against the group it was saved under (the
//! routing hash is stable, so a mismatch is an error, never state on the wrong subtask) and
//! keeps the groups the subtask owns: all of them at the checkpoint's parallelism (a group it
//! does not own is an error there), those of its [`KeyGroupRange`] when rescaled.

use super::key_group_of;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::hash::Hash;
use weir_graph::{KeyGroupRange, Snapshot, SnapshotError, StageError};

/// Groups of `(key, value)` entries as restored: `(key group, entries)`.
pub type Groups<K, V> = Vec<(u32, Vec<(K, V)>)>;

/// Groups of borrowed entries, as a snapshot encodes them (the same bytes as [`Groups`]).
pub type GroupsRef<'a, K, V> = Vec<(u32, Vec<(&'a K, &'a V)>)>;

/// Encodes and decodes the keyed state of one stage subtask.
pub struct KeyedCodec<K, V> {
    encode: for<'a> fn(&GroupsRef<'a, K, V>) -> Result<Snapshot, SnapshotError>,
    decode: fn(&Snapshot) -> Result<Groups<K, V>, SnapshotError>,
}

impl<K, V> Clone for KeyedCodec<K, V> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, V> Copy for KeyedCodec<K, V> {}

impl<K, V> std::fmt::Debug for KeyedCodec<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "KeyedCodec<{}, {}>",
            std::any::type_name::<K>(),
            std::any::type_name::<V>()
        )
    }
}

impl<K: Serialize + DeserializeOwned, V: Serialize + DeserializeOwned> KeyedCodec<K, V> {
    /// The serde + postcard codec.
    pub fn serde() -> Self {
        Self {
            encode: |g| Snapshot::encode(g),
            decode: |s| s.decode(),
        }
    }
}

impl<K, V> KeyedCodec<K, V> {
    /// Encodes the entries of `entries`, grouped by the key group of each key.
    pub fn snapshot<'a>(
        &self,
        entries: impl Iterator<Item = (&'a K, &'a V)>,
    ) -> Result<Snapshot, StageError>
    where
        K: Hash + 'a,
        V: 'a,
    {
        let mut by_group: Vec<Vec<(&K, &V)>> = Vec::new();
        by_group.resize_with(weir_graph::MAX_KEY_GROUPS, Vec::new);
        for (k, v) in entries {
            by_group[key_group_of(k)].push((k, v));
        }
        let groups: GroupsRef<'_, K, V> = by_group
            .into_iter()
            .enumerate()
            .filter(|(_, e)| !e.is_empty())
            .map(|(g, e)| (g as u32, e))
            .collect();
        Ok((self.encode)(&groups)?)
    }

    /// Restores from the snapshot of the same subtask (same parallelism): every key must belong
    /// to `owned`; each entry goes to `put`.
    pub fn restore(
        &self,
        snapshot: &Snapshot,
        owned: KeyGroupRange,
        put: impl FnMut(K, V),
    ) -> Result<(), StageError>
    where
        K: Hash,
    {
        self.restore_from(std::slice::from_ref(snapshot), owned, true, put)
    }

    /// Restores after a change of parallelism: the entries of the groups in `owned` from every
    /// old subtask's snapshot go to `put`, the rest is left to the other subtasks.
    pub fn restore_rescaled(
        &self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
        put: impl FnMut(K, V),
    ) -> Result<(), StageError>
    where
        K: Hash,
    {
        self.restore_from(snapshots, owned, false, put)
    }

    fn restore_from(
        &self,
        snapshots: &[Snapshot],
        owned: KeyGroupRange,
        strict: bool,
        mut put: impl FnMut(K, V),
    ) -> Result<(), StageError>
    where
        K: Hash,
    {
        for snapshot in snapshots {
            for (g, entries) in (self.decode)(snapshot)? {
                let g = g as usize;
                if !owned.contains(g) {
                    if strict {
                        return Err(foreign_group(g, owned));
                    }
                    continue;
                }
                for (k, v) in entries {
                    check_group(&k, g)?;
                    put(k, v);
                }
            }
        }
        Ok(())
    }
}

/// The error a keyed stage without a codec returns when asked for a snapshot.
pub(crate) fn in_memory_only(operator: &str) -> StageError {
    StageError::internal(format!(
        "{operator} keeps its state in memory only and cannot snapshot it: build it with \
         `.checkpointed()` (serde keys and values) to checkpoint it"
    ))
}

/// The error of a snapshot holding key group `g` on a subtask that owns `owned`.
pub(crate) fn foreign_group(g: usize, owned: KeyGroupRange) -> StageError {
    StageError::internal(format!(
        "the snapshot holds key group {g}, but this subtask owns {owned}: it was taken by \
         another subtask or at another parallelism"
    ))
}

/// Checks that `key` still hashes to the group `g` it was saved under.
pub(crate) fn check_group<K: Hash>(key: &K, g: usize) -> Result<(), StageError> {
    let now = key_group_of(key);
    if now == g {
        Ok(())
    } else {
        Err(StageError::internal(format!(
            "a restored key was saved under key group {g} but hashes to {now}: the key's Hash \
             changed since the checkpoint, so its state would go to the wrong subtask"
        )))
    }
}

/// Whether and how a keyed stage checkpoints its `(K, V)` state: [`SerdeState`] or
/// [`InMemoryOnly`].
pub trait StateChoice<K, V>: Send + Sync + 'static {
    /// The codec of keyed aggregates' state, if any.
    fn keyed() -> Option<KeyedCodec<K, V>>;
    /// The codec of keyed windows' state, if any.
    fn windows() -> Option<crate::window::WindowCodec<K, V>>;
    /// The codec of keyed aggregates whose state lives in the run's state backend, if so
    /// ([`super::InBackend`]).
    fn backend() -> Option<super::BackendCodec<K, V>> {
        None
    }
}

/// Keyed state checkpointed with serde (postcard): keys and values must be serde types.
#[derive(Debug, Clone, Copy, Default)]
pub struct SerdeState;

/// Keyed state kept in memory only: a checkpoint of the stage is refused (`no_codec`), never
/// taken without its state.
#[derive(Debug, Clone, Copy, Default)]
pub struct InMemoryOnly;

impl<K, V> StateChoice<K, V> for SerdeState
where
    K: Serialize + DeserializeOwned,
    V: Serialize + DeserializeOwned,
{
    fn keyed() -> Option<KeyedCodec<K, V>> {
        Some(KeyedCodec::serde())
    }
    fn windows() -> Option<crate::window::WindowCodec<K, V>> {
        Some(crate::window::WindowCodec::serde())
    }
}

impl<K, V> StateChoice<K, V> for InMemoryOnly {
    fn keyed() -> Option<KeyedCodec<K, V>> {
        None
    }
    fn windows() -> Option<crate::window::WindowCodec<K, V>> {
        None
    }
}
