//! The errors of starting and running the operations server.

use std::path::PathBuf;
use thiserror::Error;

/// Why the operations server could not start (or write its job file).
#[derive(Debug, Error)]
pub enum OpsError {
    /// A listener could not be bound.
    #[error("ops: cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The dedicated runtime could not be built.
    #[error("ops: cannot start the server's runtime: {0}")]
    Runtime(std::io::Error),
    /// No random token could be drawn from the operating system.
    #[error("ops: cannot draw a random token: {0}")]
    Random(String),
    /// A configured token is empty or holds characters an HTTP header cannot carry.
    #[error("ops: the configured token must be non-empty visible ASCII")]
    BadToken,
    /// The job file could not be written or read.
    #[error("ops: job file {path}: {source}")]
    JobFile {
        /// The file or folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Neither `WEIR_HOME`, `XDG_RUNTIME_DIR` nor `HOME` is set, so job files have no folder.
    #[error("ops: no folder for job files: set WEIR_HOME (or XDG_RUNTIME_DIR or HOME)")]
    NoHome,
}
