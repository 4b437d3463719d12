//! Snapshots: the saved state of one running stage instance, as bytes a state backend can
//! persist (serde + postcard), taken and restored through the logic traits' hooks.

use crate::StageError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The state of one stage instance, encoded; stateless stages have none.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Snapshot(Vec<u8>);

/// A snapshot that could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// The state could not be encoded.
    #[error("cannot encode the stage state: {0}")]
    Encode(String),
    /// The bytes do not hold a state of the expected type.
    #[error("cannot decode the stage state as {ty}: {reason}")]
    Decode {
        /// The type the stage expected.
        ty: &'static str,
        /// What the decoder said.
        reason: String,
    },
}

impl From<SnapshotError> for StageError {
    fn from(e: SnapshotError) -> Self {
        StageError::internal(e.to_string())
    }
}

impl Snapshot {
    /// Encodes `state`.
    pub fn encode<S: Serialize + ?Sized>(state: &S) -> Result<Self, SnapshotError> {
        postcard::to_allocvec(state)
            .map(Self)
            .map_err(|e| SnapshotError::Encode(e.to_string()))
    }
    /// Decodes the state as an `S`; the whole snapshot must be used.
    pub fn decode<S: DeserializeOwned>(&self) -> Result<S, SnapshotError> {
        let err = |reason: String| SnapshotError::Decode {
            ty: std::any::type_name::<S>(),
            reason,
        };
        match postcard::take_from_bytes::<S>(&self.0) {
            Ok((s, [])) => Ok(s),
            Ok((_, rest)) => Err(err(format!("{} bytes left over", rest.len()))),
            Err(e) => Err(err(e.to_string())),
        }
    }
    /// A snapshot from bytes a backend stored.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }
    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// How a stage whose state type is generic encodes it: present when the type is serde-capable
/// (built with [`StateCodec::serde`]), so a generic operator snapshots only where it can.
pub struct StateCodec<S> {
    encode: fn(&S) -> Result<Snapshot, SnapshotError>,
    decode: fn(&Snapshot) -> Result<S, SnapshotError>,
}

impl<S> Clone for StateCodec<S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S> Copy for StateCodec<S> {}

impl<S> std::fmt::Debug for StateCodec<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StateCodec<{}>", std::any::type_name::<S>())
    }
}

impl<S: Serialize + DeserializeOwned> StateCodec<S> {
    /// The serde + postcard codec of `S`.
    pub fn serde() -> Self {
        Self {
            encode: |s| Snapshot::encode(s),
            decode: |b| b.decode(),
        }
    }
}

impl<S> StateCodec<S> {
    /// Encodes a state.
    pub fn encode(&self, state: &S) -> Result<Snapshot, SnapshotError> {
        (self.encode)(state)
    }
    /// Decodes a state.
    pub fn decode(&self, snapshot: &Snapshot) -> Result<S, SnapshotError> {
        (self.decode)(snapshot)
    }
}

/// The error a stateful stage without a codec for its state type returns when asked for a
/// snapshot: checkpointing it would lose its state.
pub fn no_codec<S>(operator: &str) -> StageError {
    StageError::internal(format!(
        "{operator} keeps a {} it cannot snapshot: build it with a state codec",
        std::any::type_name::<S>()
    ))
}

/// The error a stage whose state is not keyed returns when its parallelism changed since the
/// checkpoint (it cannot split its state over the new subtasks).
pub(crate) fn not_rescalable() -> StageError {
    StageError::internal(
        "its state is not keyed, so it cannot be restored at a parallelism other than the \
         checkpoint's: run it at the checkpoint's parallelism",
    )
}

/// The error a stage that keeps no state returns when offered a snapshot.
pub(crate) fn stateless() -> StageError {
    StageError::internal("the stage keeps no state, but a snapshot was offered to it")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_round_trips_and_a_wrong_type_is_a_typed_error() {
        let s = Snapshot::encode(&(7u64, String::from("ab"))).unwrap();
        assert_eq!(s.decode::<(u64, String)>().unwrap(), (7, "ab".to_owned()));
        let e = Snapshot::from_bytes(vec![0xff])
            .decode::<u64>()
            .unwrap_err();
        assert!(matches!(e, SnapshotError::Decode { ty: "u64", .. }), "{e}");
        let e = Snapshot::encode(&(1u8, 2u8))
            .unwrap()
            .decode::<u8>()
            .unwrap_err();
        assert_eq!(
            e,
            SnapshotError::Decode {
                ty: "u8",
                reason: "1 bytes left over".into()
            }
        );
    }
}
