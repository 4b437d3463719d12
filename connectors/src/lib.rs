//! # weir connectors: TCP and stdio
//!
//! Sources and sinks that move a job's elements over sockets and pipes. They run as
//! asynchronous stages on the run's tokio runtime (they need tokio's `net` and `io-std`, which
//! `weir-operators` never sees) and cut the byte streams with the framing decoders of
//! [`weir_operators::framing`].
//!
//! | item | what |
//! |---|---|
//! | [`TcpSource`] | client or server mode, frames of every connection merged |
//! | [`TcpSink`] | client or server mode (first client), flushed per batch |
//! | [`stdio::stdin_lines`] / [`stdio::stdin_json_lines`] | stdin until EOF |
//! | [`stdio::stdout_lines`] / [`stdio::stdout_json_lines`] | stdout; a closed pipe is cancellation |
//! | [`Framing`] | newline-delimited or u32 big-endian length-prefixed frames |
//! | [`Envelope`] | the JSON wire envelope (docs/wire-format.md) |
//!
//! Bad frames (longer than the maximum, a payload that does not decode, truncated by the end of
//! the stream) fail the stage with a [`ConnectorError`] naming the stage, the peer and the
//! frame's byte offset, or go to dead letters under Resume.

mod error;
mod read;
mod retry;
mod sink;
mod source;
pub mod stdio;
mod wire;

pub use error::ConnectorError;
pub use read::ReadStats;
pub use retry::Retry;
pub use sink::{TcpSink, TcpSinkHandle};
pub use source::{TcpSource, TcpSourceHandle};
pub use wire::{DEFAULT_MAX_FRAME, Envelope, Framing};
