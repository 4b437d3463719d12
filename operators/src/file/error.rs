//! Typed errors of the file connectors: each names the file and, for a bad line, its line
//! number and byte offset.

use std::path::PathBuf;

/// A failure of a file source or sink.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Reading, listing, writing or renaming a file failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`cannot read`, `cannot rename`, ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A line could not be decoded in the source's format.
    #[error("{path}:{line} (byte offset {offset}): {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// The line number (1-based).
        line: u64,
        /// The byte offset of the line's first byte in the file.
        offset: u64,
        /// What is wrong with the line.
        reason: String,
    },
    /// A line is longer than the source's limit (memory stays bounded).
    #[error("{path}:{line} (byte offset {offset}): line longer than {max} bytes")]
    LineTooLong {
        /// The file.
        path: PathBuf,
        /// The line number (1-based).
        line: u64,
        /// The byte offset of the line's first byte in the file.
        offset: u64,
        /// The limit.
        max: usize,
    },
    /// Following new files needs a directory or a glob pattern, not a single file.
    #[error("cannot follow {path} for new files: it is a file, not a directory")]
    FollowFile {
        /// The file.
        path: PathBuf,
    },
    /// The file a snapshot says to resume from is no longer among the source's files.
    #[error("cannot resume from {path} at byte offset {offset}: the file is gone")]
    ResumeFileGone {
        /// The file.
        path: PathBuf,
        /// The saved offset.
        offset: u64,
    },
    /// The file a snapshot says to resume from is shorter than the saved offset.
    #[error("cannot resume from {path} at byte offset {offset}: the file has only {len} bytes")]
    ResumeBeyondEnd {
        /// The file.
        path: PathBuf,
        /// The saved offset.
        offset: u64,
        /// The file's length now.
        len: u64,
    },
    /// The file a snapshot says to resume from has fewer rows than the saved row.
    #[error("cannot resume from {path} at row {row}: the file has only {rows} rows")]
    ResumeBeyondRows {
        /// The file.
        path: PathBuf,
        /// The saved row.
        row: u64,
        /// The file's rows now.
        rows: u64,
    },
    /// A columnar file cannot be read or written in its format.
    #[error("{path} ({format}): {reason}")]
    Format {
        /// The file.
        path: PathBuf,
        /// The format (`Parquet`, `Arrow IPC`).
        format: &'static str,
        /// What the format's reader or writer said.
        reason: String,
    },
    /// A column asked for is not in a file.
    #[error("{path} has no column {column:?} (its columns: {columns})")]
    UnknownColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The file's columns, comma-separated.
        columns: String,
    },
    /// A record batch for a columnar part has another schema than the part's first batch.
    #[error("a record batch for {path} has schema [{batch}], but the part's is [{part}]")]
    SchemaChanged {
        /// The part file.
        path: PathBuf,
        /// The part's schema.
        part: String,
        /// The batch's schema.
        batch: String,
    },
    /// A part file a restored checkpoint staged is neither uncommitted nor committed.
    #[error(
        "part {path} staged by checkpoint {checkpoint} is missing (neither it nor {committed} exists)"
    )]
    StagedPartMissing {
        /// The temporary part file.
        path: PathBuf,
        /// The committed name it was to get.
        committed: PathBuf,
        /// The checkpoint that staged it.
        checkpoint: u64,
    },
    /// The directory holds a part committed after the checkpoint being restored: restoring it
    /// would write that part's rows again.
    #[error(
        "{path} was committed after the checkpoint being restored (it staged parts up to sequence {next_seq}), so restoring it would write that part's rows again{skipped}; restore the newer checkpoint, or remove the parts from sequence {next_seq} on to replay them"
    )]
    CommittedAfterRestore {
        /// The first such committed part.
        path: PathBuf,
        /// The sequence number the restored snapshot continues at.
        next_seq: u64,
        /// What the run skipped to restore this checkpoint (`; skipped ...`), or empty.
        skipped: String,
    },
    /// The snapshot a file sink is restored from cannot be decoded.
    #[error("file sink: cannot restore its snapshot: {0}")]
    BadSnapshot(String),
    /// The sink's writer thread is gone (it panicked or could not start).
    #[error("the file sink's writer for {dir} is gone")]
    WriterGone {
        /// The sink's directory.
        dir: PathBuf,
    },
}

impl FileError {
    /// An IO error while doing `op` on `path`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<FileError> for weir_graph::StageError {
    fn from(e: FileError) -> Self {
        weir_graph::StageError::from_error(e)
    }
}
