//! Journal entries, writes and errors, and the stored form of an entry: an xxh3 checksum over
//! the persistence id, the sequence number and the encoded entry, then the entry (postcard).

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// An event to persist, with the tags it is indexed under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Tags for [`super::Journal::events_by_tag`].
    pub tags: Vec<String>,
}

impl NewEvent {
    /// An untagged event.
    pub fn new(payload: Vec<u8>) -> Self {
        Self {
            payload,
            tags: Vec::new(),
        }
    }
    /// This event indexed under `tag` too.
    pub fn tagged(mut self, tag: &str) -> Self {
        self.tags.push(tag.to_owned());
        self
    }
}

/// The events one persistence id appends in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AtomicWrite {
    /// The persistence id.
    pub pid: String,
    /// The highest sequence number the writer saw (the first event gets `expected_seq + 1`).
    pub expected_seq: u64,
    /// The events, in order.
    pub events: Vec<NewEvent>,
    /// The position of the command these events came from, stored with them (dedup marker).
    pub applied: Option<u64>,
}

/// A persisted event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// Its persistence id.
    pub pid: String,
    /// Its sequence number (1, 2, ... without gaps).
    pub seq: u64,
    /// The encoded event.
    pub payload: Vec<u8>,
    /// Its tags.
    pub tags: Vec<String>,
}

/// An event found by tag, with its global offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedEntry {
    /// The tag index's offset (increasing over the whole journal).
    pub offset: u64,
    /// The event.
    pub entry: JournalEntry,
}

/// A saved snapshot of one persistence id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotEntry {
    /// The sequence number the state includes.
    pub seq: u64,
    /// The encoded state.
    pub state: Vec<u8>,
}

/// A failure of the journal.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum JournalError {
    /// Another writer appended to the persistence id since the writer read it.
    #[error(
        "journal: persistence id '{pid}' is at sequence {actual}, the write expected {expected}"
    )]
    SequenceConflict {
        /// The persistence id.
        pid: String,
        /// The sequence number the write expected.
        expected: u64,
        /// The persistence id's highest sequence number.
        actual: u64,
    },
    /// A stored entry does not match its checksum or does not decode.
    #[error("journal: entry {seq} of persistence id '{pid}' is corrupt: {message}")]
    Corrupt {
        /// The persistence id.
        pid: String,
        /// The entry's sequence number (0 for a snapshot or marker).
        seq: u64,
        /// What is wrong.
        message: String,
    },
    /// The storage failed (disk full, I/O error); nothing of the write was applied.
    #[error("journal at {path}: {operation} failed: {message}")]
    Storage {
        /// The journal's location.
        path: String,
        /// What was attempted.
        operation: &'static str,
        /// The storage engine's message.
        message: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Stored<'a> {
    #[serde(borrow)]
    payload: &'a [u8],
    tags: Vec<String>,
}

fn checksum(pid: &str, seq: u64, body: &[u8]) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(&(pid.len() as u64).to_le_bytes());
    h.update(pid.as_bytes());
    h.update(&seq.to_le_bytes());
    h.update(body);
    h.digest()
}

/// The stored bytes of event `seq` of `pid`.
pub fn encode_entry(pid: &str, seq: u64, event: &NewEvent) -> Result<Vec<u8>, JournalError> {
    let body = postcard::to_allocvec(&Stored {
        payload: &event.payload,
        tags: event.tags.clone(),
    })
    .map_err(|e| JournalError::Storage {
        path: pid.to_owned(),
        operation: "encode",
        message: e.to_string(),
    })?;
    let mut out = Vec::with_capacity(8 + body.len());
    out.extend_from_slice(&checksum(pid, seq, &body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes the stored bytes of event `seq` of `pid`, checking the checksum.
pub fn decode_entry(pid: &str, seq: u64, bytes: &[u8]) -> Result<JournalEntry, JournalError> {
    let corrupt = |message: &str| JournalError::Corrupt {
        pid: pid.to_owned(),
        seq,
        message: message.to_owned(),
    };
    let (sum, body) = bytes
        .split_first_chunk::<8>()
        .ok_or_else(|| corrupt("shorter than its checksum"))?;
    if u64::from_le_bytes(*sum) != checksum(pid, seq, body) {
        return Err(corrupt("checksum mismatch"));
    }
    let s: Stored<'_> = postcard::from_bytes(body).map_err(|e| corrupt(&e.to_string()))?;
    Ok(JournalEntry {
        pid: pid.to_owned(),
        seq,
        payload: s.payload.to_vec(),
        tags: s.tags,
    })
}
