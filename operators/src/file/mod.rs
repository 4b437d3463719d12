//! File connectors: streaming sources of text lines, CSV and JSON lines over a file, a directory
//! or a glob pattern, replayable by byte offset, and of Arrow IPC and Parquet record batches,
//! replayable by row; and a transactional file sink writing line, Arrow IPC or Parquet part
//! files committed by atomic rename.
//!
//! Sources read in blocks (64 KiB by default) on a thread of their own (the engine's
//! blocking-iterator source, two blocks ahead), so memory stays bounded whatever the file size
//! and no IO blocks a runtime worker; the stage cuts each block into lines on its own poll and
//! hands text and JSON lines out as `Bytes` slices of the block (no copy per line; a line
//! spanning two blocks is copied once); CSV cuts and splits a block's lines in one pass and
//! decodes each record where it lies. A source snapshots the file, byte offset and line number
//! of its next line and, restored from it, resumes there exactly. A bad line fails the source
//! with an error naming the file, line number and byte offset; under a Resume supervision it
//! goes to the dead letters (the raw line as `Bytes`) and the source goes on.

mod columnar;
mod csv;
mod error;
mod format;
mod part;
mod position;
mod reader;
mod sink;
mod source;

/// The element type of the columnar sources and sinks (re-exported from `arrow-array`).
pub use arrow_array::RecordBatch;
/// The line type of the text and JSON-lines sources (re-exported from `bytes`).
pub use bytes::Bytes;
pub use columnar::{ParquetCompression, ParquetOptions};
pub use csv::{CsvFieldError, CsvInt, CsvOptions, CsvRecord};
pub use error::FileError;
pub use format::{Line, LineFormat, Run, RunLimits, RunStop, decode_lines};
pub use reader::Files;
/// The Arrow crates the columnar connectors use (build batches with these versions).
pub use {arrow_array, arrow_schema};

use csv::Csv;
use format::{JsonBytes, JsonLines, TextLines};
use part::LineParts;
use sink::{FileSinkLogic, WriteConfig};
use source::{FileSourceLogic, ReadConfig};
use std::fmt::Display;
use std::path::PathBuf;
use std::sync::Arc;
use weir_graph::{Sink, SinkFuture, Source, at_least, positive, promise};

/// A file source under construction: which files, read in which blocks.
#[derive(Clone, Debug)]
pub struct FileSource {
    config: ReadConfig,
}

impl FileSource {
    /// A source over `files`, 64 KiB blocks, lines of at most 16 MiB.
    pub fn new(files: Files) -> Self {
        Self {
            config: ReadConfig {
                files,
                block_size: 64 * 1024,
                max_line: 16 * 1024 * 1024,
                follow: None,
                share: (0, 1),
                batch_rows: 8192,
                columns: None,
            },
        }
    }
    /// Reads only share `index` of `count` of the listed files: those at the positions `i`
    /// (in path order) with `i % count == index`, split again among the source's subtasks. A
    /// job running on `count` nodes gives node `index` this share of one input; restored
    /// onto another node count through a savepoint, each source takes its new share of the
    /// files with the positions the old sources saved (the listing must be unchanged).
    pub fn share(mut self, index: usize, count: usize) -> Self {
        self.config.share = (index, count);
        self
    }
    /// Reads `bytes` at a time (at least 1).
    pub fn block_size(mut self, bytes: usize) -> Self {
        self.config.block_size = bytes;
        self
    }
    /// Fails on a line longer than `bytes` (its terminator not counted).
    pub fn max_line(mut self, bytes: usize) -> Self {
        self.config.max_line = bytes;
        self
    }
    /// Keeps running once the listed files are read: lists the directory (or glob) again every
    /// `interval` of real time and reads each new file whose path sorts after the last one read,
    /// in path order; the source then completes only when cancelled. Files are read once, as
    /// they are when opened: write them elsewhere, or hidden (a leading `.`), and rename them
    /// into place when complete (a file sink's committed parts appear that way, in name order).
    /// A file that appears with a path sorting before the last one read is not read. The
    /// position (file, byte offset, line) is what a checkpoint saves, so a restored source
    /// continues with the files after it. A single file (not a directory) fails the source.
    pub fn follow(mut self, interval: std::time::Duration) -> Self {
        self.config.follow = Some(interval);
        self
    }

    /// Why the settings every format shares cannot be honoured, if they cannot.
    fn invalid(&self) -> Option<String> {
        let (index, count) = self.config.share;
        self.config
            .follow
            .and_then(|d| positive("file source: follow interval", d))
            .or_else(|| at_least("file source: share count", count, 1))
            .or_else(|| {
                (index >= count).then(|| {
                    format!("file source: share index {index} is not below its count {count}")
                })
            })
    }

    fn build<F>(self, name: &str, format: F) -> Source<F::Out>
    where
        F: LineFormat + Clone + Sync,
    {
        let invalid = at_least("file source: block_size", self.config.block_size, 1)
            .or_else(|| self.invalid());
        let config = Arc::new(self.config);
        Source::from_logic(name, move |info| {
            Ok((
                FileSourceLogic::new(
                    Arc::clone(&config),
                    format.clone(),
                    info.subtask,
                    info.parallelism,
                ),
                (),
            ))
        })
        .reject(invalid)
    }

    /// The lines of the files decoded by a [`LineFormat`] of the caller's, named `name`.
    /// Emits when: a line was decoded and downstream has demand.
    /// Backpressures when: never (the reading thread stops two blocks ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read, a line is longer than `max_line` or `format` rejects
    /// it (the error names file, line number and byte offset; the line goes to the dead letters
    /// under Resume).
    pub fn with_format<F>(self, name: &str, format: F) -> Source<F::Out>
    where
        F: LineFormat + Clone + Sync,
    {
        self.build(name, format)
    }

    /// The lines of the files (without `\n` or `\r\n`), each a `Bytes` slice checked to be
    /// UTF-8; a last line without a terminator counts.
    /// Emits when: a line was read and downstream has demand.
    /// Backpressures when: never (the reading thread stops two blocks ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be listed, opened or read, a line is not UTF-8 or is longer
    /// than `max_line` (the error names file, line number and byte offset; a bad line goes to
    /// the dead letters under Resume), or a restored position no longer exists.
    pub fn lines(self) -> Source<Bytes> {
        self.build("file_lines", TextLines)
    }

    /// The records of CSV files, each line split at the byte level (quoted fields and doubled
    /// quotes understood; a record is one line) and decoded by `decode` from a borrowed
    /// [`CsvRecord`]; empty lines are skipped, a header line too when `options.header`.
    /// Emits when: a record was decoded and downstream has demand.
    /// Backpressures when: never (the reading thread stops two blocks ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read, a line does not split (an unclosed quote) or
    /// `decode` returns `Err` (the error names file, line number and byte offset; the line goes
    /// to the dead letters under Resume).
    pub fn csv<T, E, F>(self, options: CsvOptions, decode: F) -> Source<T>
    where
        T: Send + 'static,
        E: Display,
        F: FnMut(CsvRecord<'_>) -> Result<T, E> + Clone + Send + Sync + 'static,
    {
        self.build("file_csv", Csv::new(options, decode))
    }

    /// The values of JSON-lines files, one per non-blank line, each checked to be exactly one
    /// JSON value and handed out as its `Bytes` slice.
    /// Emits when: a line was checked and downstream has demand.
    /// Backpressures when: never (the reading thread stops two blocks ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read or a line is not one JSON value (the error names file,
    /// line number, byte offset and column; the line goes to the dead letters under Resume).
    pub fn json_lines(self) -> Source<Bytes> {
        self.build("file_json_lines", JsonBytes)
    }

    /// [`FileSource::json_lines`] with each checked line's bytes decoded by `decode`.
    /// Emits when: a line was decoded and downstream has demand.
    /// Backpressures when: never (the reading thread stops two blocks ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read, a line is not one JSON value or `decode` returns
    /// `Err` (named as for `json_lines`; the line goes to the dead letters under Resume).
    pub fn json_lines_with<T, E, F>(self, decode: F) -> Source<T>
    where
        T: Send + 'static,
        E: Display,
        F: FnMut(&[u8]) -> Result<T, E> + Clone + Send + Sync + 'static,
    {
        self.build("file_json_lines", JsonLines { decode })
    }
}

/// A transactional file sink under construction: its directory, part names and rolling size.
#[derive(Clone, Debug)]
pub struct FileSink {
    config: WriteConfig,
}

impl FileSink {
    /// A sink writing into `dir` (created if missing), parts named `part-<seq>` with no
    /// suffix, rolled at 128 MiB. One sink owns a directory and prefix: a starting sink removes
    /// the temporary parts it finds there.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self {
            config: WriteConfig {
                dir: dir.into(),
                prefix: "part".to_owned(),
                suffix: String::new(),
                max_part_bytes: 128 * 1024 * 1024,
                max_part_age: None,
            },
        }
    }
    /// Names committed parts `<prefix>-<seq>` (temporary ones `.<prefix>-...inprogress`).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.config.prefix = prefix.into();
        self
    }
    /// Appends `suffix` (e.g. `".csv"`) to committed part names.
    pub fn suffix(mut self, suffix: impl Into<String>) -> Self {
        self.config.suffix = suffix.into();
        self
    }
    /// Starts a new part before a record that would take the open one past `bytes` (a part
    /// holds at least one record).
    pub fn max_part_bytes(mut self, bytes: u64) -> Self {
        self.config.max_part_bytes = bytes;
        self
    }

    /// Starts a new part before the first record that arrives once the open one has been open
    /// for `age` on the run's clock, and closes an open part when it reaches that age while no
    /// records arrive. A closed part is committed with the next commit (checkpoint, marker or
    /// end), like one rolled by size. A zero age is rejected when the graph is built.
    pub fn max_part_age(mut self, age: std::time::Duration) -> Self {
        self.config.max_part_age = Some(age);
        self
    }

    /// The committed part files in `dir`, in commit order (their names sort that way).
    pub fn committed(&self) -> Result<Vec<PathBuf>, FileError> {
        let dir = &self.config.dir;
        let mut files: Vec<(u64, PathBuf)> = Vec::new();
        let rd = std::fs::read_dir(dir).map_err(|e| FileError::io("cannot list", dir, e))?;
        for entry in rd {
            let entry = entry.map_err(|e| FileError::io("cannot list", dir, e))?;
            if let Some(seq) = entry
                .file_name()
                .to_str()
                .and_then(|n| self.config.committed_seq(n))
            {
                files.push((seq, entry.path()));
            }
        }
        files.sort();
        Ok(files.into_iter().map(|(_, p)| p).collect())
    }

    /// Writes each element as one line (`encode` appends its bytes, the sink the `\n`) into
    /// temporary part files, committed by renaming them, in order, to names sorting after every
    /// committed part already there. Without checkpoints a commit happens when a `Control`
    /// marker reaches the sink and at the end of the stream; temporary parts left by a run that
    /// stopped before its commit are removed when the sink starts, and a failed or cancelled
    /// stream removes its own. With checkpoints it is exactly-once: a barrier pre-commits
    /// (parts synced and staged in the snapshot), the completed checkpoint commits, a restored
    /// sink finishes its snapshot's commit and removes every other uncommitted part, and the
    /// end commits through the run's final checkpoint. Materializes the committed files, in
    /// order.
    /// Emits when: never (a sink).
    /// Backpressures when: the writer thread is writing, syncing or renaming the last batch.
    /// Completes when: upstream completed and its last records were committed (with
    /// checkpoints: once the run's final checkpoint is written).
    /// Cancels when: never (it consumes everything); it stops when the stream fails.
    /// Fails when: the directory or a part file cannot be created, written, synced or renamed
    /// (the error names the file), or upstream fails; uncommitted parts are removed.
    pub fn lines<T, F>(self, encode: F) -> Sink<T, SinkFuture<Vec<PathBuf>>>
    where
        T: Send + 'static,
        F: Fn(&T, &mut Vec<u8>) + Send + Sync + 'static,
    {
        let encode: Arc<sink::Encode<T>> = Arc::new(encode);
        let batch: Arc<sink::EncodeBatch<T, Vec<u8>>> =
            Arc::new(move |b: &[T], max: u64, part: &mut u64| {
                sink::encode_batch(b, &*encode, max, part)
            });
        self.build_sink("file_sink", Arc::new(LineParts), batch)
    }

    /// The sink of `format`'s parts with elements turned into its pieces by `encode`.
    fn build_sink<T, P>(
        self,
        name: &str,
        format: Arc<P>,
        encode: Arc<sink::EncodeBatch<T, P::Data>>,
    ) -> Sink<T, SinkFuture<Vec<PathBuf>>>
    where
        T: Send + 'static,
        P: part::PartFormat,
    {
        let invalid = at_least(
            "file sink: max_part_bytes",
            usize::try_from(self.config.max_part_bytes).unwrap_or(usize::MAX),
            1,
        );
        let invalid = invalid.or_else(|| {
            self.config
                .max_part_age
                .and_then(|d| positive("file sink: max_part_age", d))
        });
        let config = self.config;
        Sink::from_async(name, move |info| {
            let (promise, future) = promise();
            Ok((
                FileSinkLogic {
                    config: config.clone(),
                    format: Arc::clone(&format),
                    encode: Arc::clone(&encode),
                    promise,
                    path: info.path.clone(),
                    restored: None,
                    foreign: Vec::new(),
                },
                future,
            ))
        })
        .reject(invalid)
    }

    /// [`FileSink::lines`] for elements that are their own bytes (e.g. the lines of a
    /// [`FileSource`]).
    /// Emits when: never (a sink).
    /// Backpressures when: the writer thread is writing, syncing or renaming the last batch.
    /// Completes when: upstream completed and its last records were committed.
    /// Cancels when: never (it consumes everything); it stops when the stream fails.
    /// Fails when: a part file cannot be created, written, synced or renamed, or upstream fails.
    pub fn bytes<T>(self) -> Sink<T, SinkFuture<Vec<PathBuf>>>
    where
        T: AsRef<[u8]> + Send + 'static,
    {
        self.lines(|x: &T, out: &mut Vec<u8>| out.extend_from_slice(x.as_ref()))
    }
}
