//! The snapshot format: a fixed header (magic, version, payload length, xxh3 checksum of the
//! payload) followed by the postcard-encoded payload.

use crate::{SnapshotError, StateError, stable_hash};
use serde::{Deserialize, Serialize};
use weir_graph::MAX_KEY_GROUPS;

/// First bytes of every snapshot.
const MAGIC: [u8; 8] = *b"WEIRSNAP";
/// The format version this build writes and reads.
const VERSION: u32 = 1;
/// Magic, version, payload length, checksum.
pub(crate) const HEADER: usize = 8 + 4 + 8 + 8;

/// The entries of one state in one key group, in key order.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct StateEntries {
    pub state: u64,
    pub entries: Vec<(Vec<u8>, Vec<u8>)>,
}

/// The keyed state of one key group.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct GroupEntries {
    pub key_group: u32,
    pub states: Vec<StateEntries>,
}

/// The operator state of one state and subtask.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub(crate) struct OperatorEntry {
    pub state: u64,
    pub subtask: u32,
    pub value: Vec<u8>,
}

/// What a snapshot holds.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Payload {
    pub groups: Vec<GroupEntries>,
    pub operator: Vec<OperatorEntry>,
}

/// Writes `payload` behind its header to `out`; returns the bytes written.
pub(crate) fn write(payload: &Payload, out: &mut dyn std::io::Write) -> Result<u64, StateError> {
    let body = postcard::to_allocvec(payload)
        .map_err(|e| SnapshotError::Malformed(format!("cannot encode: {e}")))?;
    out.write_all(&header(body.len() as u64, stable_hash(&body)))?;
    out.write_all(&body)?;
    out.flush()?;
    Ok((HEADER + body.len()) as u64)
}

/// The header of a payload of `len` bytes whose [`stable_hash`] is `checksum`.
pub(crate) fn header(len: u64, checksum: u64) -> [u8; HEADER] {
    let mut head = [0u8; HEADER];
    head[..8].copy_from_slice(&MAGIC);
    head[8..12].copy_from_slice(&VERSION.to_le_bytes());
    head[12..20].copy_from_slice(&len.to_le_bytes());
    head[20..28].copy_from_slice(&checksum.to_le_bytes());
    head
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Verifies and decodes snapshot bytes.
pub(crate) fn read(bytes: &[u8]) -> Result<Payload, SnapshotError> {
    let body = verify(bytes)?;
    let payload: Payload =
        postcard::from_bytes(body).map_err(|e| SnapshotError::Malformed(e.to_string()))?;
    if let Some(g) = payload
        .groups
        .iter()
        .find(|g| g.key_group as usize >= MAX_KEY_GROUPS)
    {
        return Err(SnapshotError::BadKeyGroup(g.key_group));
    }
    Ok(payload)
}

/// Verifies a snapshot's header (magic, version) given its first `HEADER` bytes (or fewer:
/// the whole snapshot); returns the payload length and checksum it records.
pub(crate) fn verify_header(bytes: &[u8]) -> Result<(u64, u64), SnapshotError> {
    if bytes.len() < HEADER {
        return Err(SnapshotError::TooShort {
            len: bytes.len(),
            need: HEADER,
        });
    }
    let mut magic = [0u8; 8];
    magic.copy_from_slice(&bytes[..8]);
    if magic != MAGIC {
        return Err(SnapshotError::BadMagic { found: magic });
    }
    let mut v = [0u8; 4];
    v.copy_from_slice(&bytes[8..12]);
    let version = u32::from_le_bytes(v);
    if version != VERSION {
        return Err(SnapshotError::UnsupportedVersion {
            found: version,
            supported: VERSION,
        });
    }
    Ok((u64_at(bytes, 12), u64_at(bytes, 20)))
}

/// Verifies snapshot bytes (header, length, checksum); returns the payload.
pub(crate) fn verify(bytes: &[u8]) -> Result<&[u8], SnapshotError> {
    let (len, expected) = verify_header(bytes)?;
    let body = &bytes[HEADER..];
    let found = body.len() as u64;
    if found < len {
        return Err(SnapshotError::Truncated {
            expected: len,
            found,
        });
    }
    if found > len {
        return Err(SnapshotError::TrailingBytes { extra: found - len });
    }
    let actual = stable_hash(body);
    if actual != expected {
        return Err(SnapshotError::ChecksumMismatch { expected, actual });
    }
    Ok(body)
}
