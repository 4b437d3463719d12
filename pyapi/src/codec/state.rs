//! Python state values in snapshots: [`PyObj`](crate::PyObj) is checkpointed with the built-in
//! value codec, [`PyState`] (a stage built with `key_codec="pickle"`) pickles what that codec
//! cannot encode. Stages are generic over [`StateVal`] to keep either.

use super::{Codec, decode, encode, note_refusal};
use crate::obj::PyObj;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A Python object kept as stage state, checkpointed through one of the value codecs.
pub trait StateVal: Clone + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// Wraps `o`.
    fn wrap(o: PyObj) -> Self;
    /// The object.
    fn obj(&self) -> &PyObj;
    /// The object, unwrapped.
    fn into_obj(self) -> PyObj;
}

impl StateVal for PyObj {
    fn wrap(o: PyObj) -> Self {
        o
    }
    fn obj(&self) -> &PyObj {
        self
    }
    fn into_obj(self) -> PyObj {
        self
    }
}

/// A state value checkpointed with the value codec, or as its pickle when it has no encoding
/// (opted into with `key_codec="pickle"`).
#[derive(Clone)]
pub struct PyState(pub PyObj);

impl StateVal for PyState {
    fn wrap(o: PyObj) -> Self {
        Self(o)
    }
    fn obj(&self) -> &PyObj {
        &self.0
    }
    fn into_obj(self) -> PyObj {
        self.0
    }
}

impl serde::Serialize for PyState {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        Encoded(&self.0, true).serialize(s)
    }
}

/// A borrowed object serialized with the value codec, falling back to a pickle when the flag
/// says so (what [`PyState`] is in a snapshot, for state that keeps the flag beside the object).
pub struct Encoded<'a>(pub &'a PyObj, pub bool);

impl serde::Serialize for Encoded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let codec = if self.1 {
            Codec::PickleValue
        } else {
            Codec::Value
        };
        match crate::gil::with(|py| encode(self.0.0.bind(py), codec)) {
            Ok(b) => s.serialize_bytes(&b),
            Err(e) => {
                let msg = format!("cannot checkpoint a value: {e}");
                note_refusal(&msg);
                Err(serde::ser::Error::custom(msg))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for PyState {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = d.deserialize_bytes(super::BytesVisitor)?;
        crate::gil::with(|py| {
            decode(py, &b)
                .map(|o| PyState(PyObj::from_bound(o)))
                .map_err(|e| serde::de::Error::custom(format!("cannot restore a value: {e}")))
        })
    }
}
