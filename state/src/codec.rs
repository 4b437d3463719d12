//! The serde codec of keys and values (postcard), with errors that name the state.

use crate::StateError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// Encodes `v` (the state's `what`) with postcard.
pub(crate) fn encode<T: Serialize + ?Sized>(
    state: &str,
    what: &'static str,
    v: &T,
) -> Result<Vec<u8>, StateError> {
    postcard::to_allocvec(v).map_err(|e| StateError::Encode {
        state: state.to_owned(),
        what,
        message: e.to_string(),
    })
}

/// Decodes `bytes` (the state's `what`) with postcard; all bytes must be used.
pub(crate) fn decode<T: DeserializeOwned>(
    state: &str,
    what: &'static str,
    bytes: &[u8],
) -> Result<T, StateError> {
    let err = |message: String| StateError::Decode {
        state: state.to_owned(),
        what,
        message,
    };
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| err(e.to_string()))?;
    if rest.is_empty() {
        Ok(v)
    } else {
        Err(err(format!("{} trailing bytes", rest.len())))
    }
}
