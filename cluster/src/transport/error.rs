//! Errors of transports.

use crate::frame::FrameError;

/// A transport failure: I/O, a refused peer, or a bad frame.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The peer sent bytes that are not a valid frame sequence.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// Reading or writing the stream failed.
    #[error("stream i/o: {0}")]
    Io(String),
    /// The stream or connection was closed.
    #[error("stream closed")]
    Closed,
    /// No address is known for this node.
    #[error("unknown peer node '{0}'")]
    UnknownPeer(String),
    /// The connection to a peer could not be made.
    #[error("cannot connect to '{peer}': {reason}")]
    Connect {
        /// The peer node.
        peer: String,
        /// Why.
        reason: String,
    },
    /// The endpoint could not be set up (bind, TLS configuration).
    #[error("endpoint setup: {0}")]
    Setup(String),
    /// The edge handshake failed.
    #[error("edge handshake: {0}")]
    Handshake(String),
    /// Too many streams wait for an edge nobody accepts.
    #[error("too many pending streams ({0})")]
    TooManyPending(usize),
}
