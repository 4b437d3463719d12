//! Errors of encoding and decoding frames.

use super::EdgeId;

/// A frame that cannot be written or a byte stream that is not a valid frame sequence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The header names a format version this build does not speak.
    #[error("unknown frame version {got} (this build speaks {expected})")]
    UnknownVersion {
        /// The version in the header.
        got: u8,
        /// The version this build speaks.
        expected: u8,
    },
    /// The header names a frame kind this build does not know.
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    /// The header claims a payload longer than the limit (nothing was allocated for it).
    #[error("frame claims {claimed} payload bytes, more than max_frame_bytes {max}")]
    TooLarge {
        /// The claimed payload length.
        claimed: u64,
        /// The limit.
        max: usize,
    },
    /// A record (or a batch of one element) is larger than the frame limit.
    #[error("record exceeds max_frame_bytes {max} ({size} bytes)")]
    RecordTooLarge {
        /// The encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// A frame repeats a sequence number already seen on its stream.
    #[error("replayed frame on edge {edge}: sequence {got}, expected {expected}")]
    Replayed {
        /// The edge.
        edge: EdgeId,
        /// The next sequence number expected.
        expected: u64,
        /// The sequence number received.
        got: u64,
    },
    /// A frame skips ahead of the next sequence number of its stream.
    #[error("out-of-order frame on edge {edge}: sequence {got}, expected {expected}")]
    OutOfOrder {
        /// The edge.
        edge: EdgeId,
        /// The next sequence number expected.
        expected: u64,
        /// The sequence number received.
        got: u64,
    },
    /// A frame names another edge than the stream it arrived on.
    #[error("frame for edge {got} on the stream of edge {expected}")]
    WrongEdge {
        /// The stream's edge.
        expected: EdgeId,
        /// The edge in the frame.
        got: EdgeId,
    },
    /// A frame carries an older epoch than the stream's (a stale attempt).
    #[error("frame of stale epoch {got} on edge {edge} (stream epoch {current})")]
    StaleEpoch {
        /// The edge.
        edge: EdgeId,
        /// The stream's epoch.
        current: u64,
        /// The epoch in the frame.
        got: u64,
    },
    /// A payload does not have the shape its kind requires.
    #[error("malformed {kind} frame: {reason}")]
    Malformed {
        /// The frame kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame ({buffered} bytes buffered)")]
    Truncated {
        /// Bytes of the partial frame.
        buffered: usize,
    },
    /// A data payload could not be serialized or deserialized.
    #[error("data payload: {0}")]
    Codec(String),
}
