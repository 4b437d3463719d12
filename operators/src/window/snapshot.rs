//! The checkpoint format of a window stage: its watermark, the next key id, and per key group
//! the keys with their open windows (bounds, whether fired, accumulator). A key keeps its id,
//! so results leave in the same order after a restore at the same parallelism.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use weir_graph::{Snapshot, SnapshotError};

/// One open window of a key, as restored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct SavedWindow<A> {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) fired: bool,
    pub(crate) acc: A,
}

/// One open window of a key, borrowed for encoding (the same bytes as [`SavedWindow`]).
#[derive(Serialize)]
pub(crate) struct SavedWindowRef<'a, A> {
    pub(crate) start: i64,
    pub(crate) end: i64,
    pub(crate) fired: bool,
    pub(crate) acc: &'a A,
}

/// A key with its id (its place in the firing order) and open windows, as restored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct SavedKey<K, A> {
    pub(crate) id: u64,
    pub(crate) key: K,
    pub(crate) windows: Vec<SavedWindow<A>>,
}

/// A key with its windows, borrowed for encoding.
#[derive(Serialize)]
pub(crate) struct SavedKeyRef<'a, K, A> {
    pub(crate) id: u64,
    pub(crate) key: &'a K,
    pub(crate) windows: Vec<SavedWindowRef<'a, A>>,
}

/// A window stage subtask's state, as restored.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct WindowState<K, A> {
    pub(crate) watermark: Option<i64>,
    pub(crate) next_id: u64,
    /// `(key group, keys)`, groups ascending.
    pub(crate) groups: Vec<(u32, Vec<SavedKey<K, A>>)>,
}

/// A window stage subtask's state, borrowed for encoding.
#[derive(Serialize)]
pub(crate) struct WindowStateRef<'a, K, A> {
    pub(crate) watermark: Option<i64>,
    pub(crate) next_id: u64,
    pub(crate) groups: Vec<(u32, Vec<SavedKeyRef<'a, K, A>>)>,
}

/// Encodes and decodes a window stage's state with keys `K` and accumulators `A`.
pub struct WindowCodec<K, A> {
    encode: for<'a> fn(&WindowStateRef<'a, K, A>) -> Result<Snapshot, SnapshotError>,
    decode: fn(&Snapshot) -> Result<WindowState<K, A>, SnapshotError>,
}

impl<K, A> Clone for WindowCodec<K, A> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K, A> Copy for WindowCodec<K, A> {}

impl<K, A> std::fmt::Debug for WindowCodec<K, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WindowCodec<{}, {}>",
            std::any::type_name::<K>(),
            std::any::type_name::<A>()
        )
    }
}

impl<K: Serialize + DeserializeOwned, A: Serialize + DeserializeOwned> WindowCodec<K, A> {
    /// The serde + postcard codec.
    pub fn serde() -> Self {
        Self {
            encode: |s| Snapshot::encode(s),
            decode: |s| s.decode(),
        }
    }
}

impl<K, A> WindowCodec<K, A> {
    pub(crate) fn encode(
        &self,
        state: &WindowStateRef<'_, K, A>,
    ) -> Result<Snapshot, SnapshotError> {
        (self.encode)(state)
    }

    pub(crate) fn decode(&self, snapshot: &Snapshot) -> Result<WindowState<K, A>, SnapshotError> {
        (self.decode)(snapshot)
    }
}
