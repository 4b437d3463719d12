//! Remote edges as stages: [`remote_sink`] sends a stream of serde elements to a stage on
//! another node, [`remote_source`] emits it there. Batches travel as postcard data frames;
//! end of stream, failures, cancellation, watermarks, markers and barriers travel in band, in
//! order with the data; credit granted by the receiver as it hands rows downstream bounds what
//! is in flight, so a slow consumer stops the producer and memory stays bounded.

mod error;
mod sink;
mod source;

pub use error::EdgeError;
pub use sink::{RemoteSinkHandle, remote_sink};
pub use source::{RemoteSourceHandle, exchange_source, remote_source, remote_source_with};

use std::sync::atomic::{AtomicU64, Ordering};
use weir_graph::{ErrorKind, StageError};

/// Settings of the receiving side of a remote edge: its buffer (credit window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EdgeConfig {
    /// Rows the receiver lets be in flight (at least 1).
    pub window_rows: u64,
    /// Payload bytes the receiver lets be in flight (at least 1; a frame is never larger).
    pub window_bytes: u64,
}

impl Default for EdgeConfig {
    /// 8192 rows and 8 MiB in flight.
    fn default() -> Self {
        Self {
            window_rows: 8192,
            window_bytes: 8 << 20,
        }
    }
}

/// Counters of one side of a remote edge.
#[derive(Debug, Default)]
pub struct EdgeStats {
    rows: AtomicU64,
    frames: AtomicU64,
    bytes: AtomicU64,
}

impl EdgeStats {
    /// Rows sent (sink) or received and emitted (source).
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
    /// Data frames sent or received.
    pub fn frames(&self) -> u64 {
        self.frames.load(Ordering::Relaxed)
    }
    /// Data payload bytes sent or received.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    fn add(&self, rows: u64, bytes: u64) {
        self.rows.fetch_add(rows, Ordering::Relaxed);
        self.frames.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
    }
}

fn external(e: EdgeError, stage: &str) -> StageError {
    StageError::from_boxed(ErrorKind::External, Box::new(e)).with_stage(stage)
}
