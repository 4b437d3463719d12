//! Errors of remote edges.

use crate::credit::CreditError;
use crate::frame::EdgeId;
use crate::transport::TransportError;

/// Why a remote edge stage failed.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The transport failed (connect, I/O, or a bad frame from the peer).
    #[error("edge {edge} with node '{peer}': {source}")]
    Transport {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
        /// The transport error.
        source: TransportError,
    },
    /// The peer broke the credit protocol.
    #[error("edge {edge} with node '{peer}': {source}")]
    Credit {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
        /// The credit error.
        source: CreditError,
    },
    /// The sending side failed; its message.
    #[error("edge {edge}: upstream on node '{peer}' failed: {message}")]
    RemoteFailed {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
        /// The remote failure.
        message: String,
    },
    /// The peer closed the stream before the edge ended.
    #[error("edge {edge}: node '{peer}' closed the stream before the end")]
    PeerClosed {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
    },
    /// One element does not fit in a frame.
    #[error("edge {edge}: element {index} exceeds max_frame_bytes {max} ({size} bytes)")]
    RecordTooLarge {
        /// The edge.
        edge: EdgeId,
        /// Index of the element in the stream.
        index: u64,
        /// Its encoded size.
        size: usize,
        /// The limit.
        max: usize,
    },
    /// An element could not be serialized or a batch deserialized.
    #[error("edge {edge} with node '{peer}': frame {seq}: {reason}")]
    Codec {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
        /// The data frame's sequence number (sink: the element index).
        seq: u64,
        /// What failed.
        reason: String,
    },
    /// The peer sent a frame that makes no sense at this point.
    #[error("edge {edge} with node '{peer}': unexpected {what}")]
    Protocol {
        /// The edge.
        edge: EdgeId,
        /// The peer node.
        peer: String,
        /// What arrived.
        what: String,
    },
}
