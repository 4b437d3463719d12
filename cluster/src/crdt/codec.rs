//! Postcard encoding of CRDT states and replicator messages.

use super::CrdtError;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The postcard encoding of `value` (`what` names it in errors).
pub fn to_bytes<T: Serialize>(value: &T, what: &'static str) -> Result<Vec<u8>, CrdtError> {
    postcard::to_allocvec(value).map_err(|e| CrdtError::Encode {
        what,
        reason: e.to_string(),
    })
}

/// The value `bytes` encode (`what` names it in errors); trailing bytes are refused.
pub fn from_bytes<T: DeserializeOwned>(bytes: &[u8], what: &'static str) -> Result<T, CrdtError> {
    let (v, rest) = postcard::take_from_bytes(bytes).map_err(|e| CrdtError::Decode {
        what,
        reason: e.to_string(),
    })?;
    if !rest.is_empty() {
        return Err(CrdtError::Decode {
            what,
            reason: format!("{} trailing bytes", rest.len()),
        });
    }
    Ok(v)
}

/// A stable 64-bit FNV-1a hash of `bytes` (anti-entropy digests; the same in every process).
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}
