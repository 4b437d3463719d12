//! Typed errors of state access, codecs and snapshots.

use thiserror::Error;

/// A failure reading or writing state.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StateError {
    /// A key or value could not be encoded.
    #[error("state '{state}': cannot encode {what}: {message}")]
    Encode {
        /// The state's name.
        state: String,
        /// What was encoded ("key", "value", "user key").
        what: &'static str,
        /// The codec's message.
        message: String,
    },
    /// Stored bytes could not be decoded as the state's type (a changed type or corrupt bytes).
    #[error("state '{state}': cannot decode {what}: {message}")]
    Decode {
        /// The state's name.
        state: String,
        /// What was decoded ("key", "value", "list element").
        what: &'static str,
        /// The codec's message.
        message: String,
    },
    /// A key group outside `0..MAX_KEY_GROUPS`, or outside the range a backend holds.
    #[error("key group {key_group} is outside {range}")]
    KeyGroupOutOfRange {
        /// The key group asked for.
        key_group: usize,
        /// The range it should have been in.
        range: String,
    },
    /// A snapshot could not be read.
    #[error("state snapshot: {0}")]
    Snapshot(#[from] SnapshotError),
    /// Writing a snapshot out failed.
    #[error("state snapshot: write failed: {0}")]
    Io(#[from] std::io::Error),
    /// The storage engine behind a backend failed an operation.
    #[error("state backend at {path}: {operation} failed: {message}")]
    Storage {
        /// The backend's location (a directory).
        path: String,
        /// What was attempted ("open", "get", "put", "snapshot", ...).
        operation: &'static str,
        /// The storage engine's message.
        message: String,
    },
    /// A backend's directory is in use by another process (or another backend in this one).
    #[error("state backend at {path} is locked by another process: {message}")]
    Locked {
        /// The backend's directory.
        path: String,
        /// The storage engine's message.
        message: String,
    },
}

/// What is wrong with snapshot bytes; a corrupt snapshot never restores as empty state.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Fewer bytes than the header.
    #[error("too short for a header: {len} bytes, need {need}")]
    TooShort {
        /// Bytes present.
        len: usize,
        /// Header size.
        need: usize,
    },
    /// The bytes do not start with the snapshot magic.
    #[error("not a weir state snapshot (bad magic {found:02x?})")]
    BadMagic {
        /// The first bytes found.
        found: [u8; 8],
    },
    /// A format version this build cannot read.
    #[error("unsupported format version {found} (this build reads {supported})")]
    UnsupportedVersion {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The payload is shorter than the header says (a partial write).
    #[error("truncated: header says {expected} payload bytes, found {found}")]
    Truncated {
        /// Payload length in the header.
        expected: u64,
        /// Payload bytes present.
        found: u64,
    },
    /// Bytes after the payload.
    #[error("{extra} unexpected bytes after the payload")]
    TrailingBytes {
        /// How many.
        extra: u64,
    },
    /// The payload's checksum does not match the header (corrupted bytes).
    #[error("checksum mismatch: header {expected:016x}, payload {actual:016x}")]
    ChecksumMismatch {
        /// Checksum in the header.
        expected: u64,
        /// Checksum of the payload found.
        actual: u64,
    },
    /// The checksum matched but the payload does not decode (a writer bug).
    #[error("malformed payload: {0}")]
    Malformed(String),
    /// The payload names a key group outside `0..MAX_KEY_GROUPS`.
    #[error("payload names key group {0}, outside 0..{max}", max = weir_graph::MAX_KEY_GROUPS)]
    BadKeyGroup(u32),
}
