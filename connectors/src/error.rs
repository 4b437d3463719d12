//! Why a connector could not read, decode, encode or write.

use weir_operators::framing::FramingError;

/// A connector failure; every variant names the peer (`host:port`, `stdin`, `stdout`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// A frame could not be cut out of the byte stream (too long, truncated at the end).
    #[error("bad frame from {peer}: {source}")]
    BadFrame {
        /// Where the bytes came from.
        peer: String,
        /// The framing failure, with the frame's byte offset in the connection's stream.
        #[source]
        source: FramingError,
    },
    /// A frame was cut but its payload does not decode (invalid JSON or UTF-8).
    #[error("bad frame from {peer} at byte {offset}: {reason}")]
    BadPayload {
        /// Where the frame came from.
        peer: String,
        /// Byte offset of the frame in the connection's stream.
        offset: u64,
        /// Why it does not decode.
        reason: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Accepting a connection failed.
    #[error("accepting a connection on {addr} failed: {source}")]
    Accept {
        /// The listening address.
        addr: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Connecting failed (after every attempt the retry policy allows).
    #[error("cannot connect to {addr} after {attempts} attempt(s): {source}")]
    Connect {
        /// The address asked for.
        addr: String,
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading from a peer failed.
    #[error("reading from {peer} failed: {source}")]
    Read {
        /// The peer.
        peer: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// Writing to a peer failed (for TCP, the peer closed or reset the connection).
    #[error("writing to {peer} failed: {source}")]
    Write {
        /// The peer.
        peer: String,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// The peer closed (or reset) the connection while the sink still had elements to write.
    #[error("peer {peer} closed the connection")]
    PeerClosed {
        /// The peer.
        peer: String,
    },
    /// An element cannot be framed or encoded for the wire.
    #[error("element {index} for {peer} cannot be sent: {reason}")]
    Encode {
        /// The peer.
        peer: String,
        /// Position of the element in the stream (from 0).
        index: u64,
        /// Why.
        reason: String,
    },
    /// A setting is invalid (rejected when the stage is built).
    #[error("invalid connector setting: {0}")]
    InvalidSetting(String),
}
