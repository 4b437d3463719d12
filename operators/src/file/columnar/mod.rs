//! Columnar file connectors: Arrow IPC files and Parquet files read as record batches
//! (replayable by file and row, like the line sources by byte offset) and written by the
//! transactional file sink, one IPC or Parquet file per part.
//!
//! A source emits `RecordBatch` elements of at most [`FileSource::batch_rows`] rows, cut from
//! the file's own batches (IPC) or read that many at a time (Parquet), zero-copy; with
//! [`FileSource::columns`] only those columns, in that order (Parquet reads no other column's
//! pages). Restored, it resumes at the saved row: a Parquet source skips whole row groups
//! without reading them, an IPC source reads the batches before the row again and drops them.
//!
//! The sink takes `RecordBatch` elements; every batch of a part has the part's first batch's
//! schema (another schema fails the sink, naming both), and a part closes (its footer written)
//! when it is rolled, at a checkpoint's pre-commit and at the end, as for line parts.

mod read;
mod source;
mod write;

use super::source::ReadConfig;
use super::{FileSink, FileSource};
use arrow_array::RecordBatch;
use source::ColumnarSourceLogic;
use std::path::PathBuf;
use std::sync::Arc;
use weir_graph::{Sink, SinkFuture, Source, at_least};
use write::{IpcParts, ParquetParts};

/// A columnar file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Columnar {
    /// The Arrow IPC file format (`.arrow`, Feather v2).
    ArrowIpc,
    /// Apache Parquet.
    Parquet,
}

impl Columnar {
    /// The format's name in errors.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::ArrowIpc => "Arrow IPC",
            Self::Parquet => "Parquet",
        }
    }
}

/// How a Parquet sink compresses its column chunks.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ParquetCompression {
    /// Stored as encoded.
    None,
    /// Snappy (what pyarrow and Spark write by default).
    #[default]
    Snappy,
}

/// How a Parquet sink writes its parts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParquetOptions {
    /// The column chunks' compression.
    pub compression: ParquetCompression,
    /// Rows per row group at most (a part's rows are buffered up to this many).
    pub row_group_rows: usize,
}

impl Default for ParquetOptions {
    /// Snappy, row groups of at most 1,048,576 rows.
    fn default() -> Self {
        Self {
            compression: ParquetCompression::Snappy,
            row_group_rows: 1 << 20,
        }
    }
}

impl FileSource {
    /// Hands out record batches of at most `rows` rows (at least 1; 8,192 by default) from the
    /// columnar sources.
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.config.batch_rows = rows;
        self
    }

    /// Reads only the named columns, in this order, in the columnar sources (a name that is
    /// not in a file fails the source, naming the file and the columns it has).
    pub fn columns<S: Into<String>>(mut self, names: impl IntoIterator<Item = S>) -> Self {
        self.config.columns = Some(names.into_iter().map(Into::into).collect());
        self
    }

    fn columnar(self, name: &str, format: Columnar) -> Source<RecordBatch> {
        let invalid = at_least("file source: batch_rows", self.config.batch_rows, 1);
        let invalid = invalid.or_else(|| self.invalid());
        let config: Arc<ReadConfig> = Arc::new(self.config);
        Source::from_logic(name, move |info| {
            Ok((
                ColumnarSourceLogic::new(
                    Arc::clone(&config),
                    format,
                    info.subtask,
                    info.parallelism,
                ),
                (),
            ))
        })
        .reject(invalid)
    }

    /// The record batches of Arrow IPC files (the file format, as `pyarrow.feather` and
    /// `RecordBatchFileWriter` write it).
    /// Emits when: a batch was read and downstream has demand.
    /// Backpressures when: never (the reading thread stops two batches ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read or is not an Arrow IPC file, a chosen column is
    /// missing, or a restored position is gone or beyond the file's rows (the error names the
    /// file).
    pub fn arrow_ipc(self) -> Source<RecordBatch> {
        self.columnar("file_arrow_ipc", Columnar::ArrowIpc)
    }

    /// The record batches of Parquet files (plain, dictionary and Snappy-compressed pages).
    /// Emits when: a batch was read and downstream has demand.
    /// Backpressures when: never (the reading thread stops two batches ahead).
    /// Completes when: the last file was read to its end.
    /// Cancels when: never: a source has no upstream (it stops when downstream cancels).
    /// Fails when: a file cannot be read or is not a readable Parquet file, a chosen column is
    /// missing, or a restored position is gone or beyond the file's rows (the error names the
    /// file).
    pub fn parquet(self) -> Source<RecordBatch> {
        self.columnar("file_parquet", Columnar::Parquet)
    }
}

/// The part size a batch counts for when rolling: its buffers' size in memory.
fn batch_bytes(b: &RecordBatch) -> u64 {
    b.get_array_memory_size() as u64
}

/// Pieces of record batches, rolling before a batch that would take the open part past `max`
/// bytes in memory (a part holds at least one batch); empty batches are dropped.
fn batch_pieces(
    batch: &[RecordBatch],
    max: u64,
    part_bytes: &mut u64,
) -> Vec<super::sink::Piece<RecordBatch>> {
    use super::sink::Piece;
    let mut pieces = Vec::with_capacity(batch.len());
    for b in batch.iter().filter(|b| b.num_rows() > 0) {
        let len = batch_bytes(b);
        if *part_bytes > 0 && *part_bytes + len > max {
            pieces.push(Piece::Roll);
            *part_bytes = 0;
        }
        *part_bytes += len;
        pieces.push(Piece::Data(b.clone()));
    }
    pieces
}

impl FileSink {
    /// Writes record batches into Arrow IPC part files (transactional as [`FileSink::lines`]:
    /// exactly-once with checkpoints), rolled when their batches' size in memory would pass
    /// `max_part_bytes`. Materializes the committed files, in order.
    /// Emits when: never (a sink).
    /// Backpressures when: the writer thread is writing, syncing or renaming the last batch.
    /// Completes when: upstream completed and its last batches were committed.
    /// Cancels when: never (it consumes everything); it stops when the stream fails.
    /// Fails when: a part file cannot be created, written, synced or renamed, a batch's schema
    /// differs from its part's (both named), or upstream fails; uncommitted parts are removed.
    pub fn arrow_ipc(self) -> Sink<RecordBatch, SinkFuture<Vec<PathBuf>>> {
        let encode = Arc::new(batch_pieces);
        self.build_sink("file_sink_arrow_ipc", Arc::new(IpcParts), encode)
    }

    /// Writes record batches into Parquet part files (transactional as [`FileSink::lines`]:
    /// exactly-once with checkpoints), rolled when their batches' size in memory would pass
    /// `max_part_bytes`; a part's rows are buffered up to a row group. Materializes the
    /// committed files, in order.
    /// Emits when: never (a sink).
    /// Backpressures when: the writer thread is writing, syncing or renaming the last batch.
    /// Completes when: upstream completed and its last batches were committed.
    /// Cancels when: never (it consumes everything); it stops when the stream fails.
    /// Fails when: a part file cannot be created, written, synced or renamed, a batch's schema
    /// differs from its part's (both named), or upstream fails; uncommitted parts are removed.
    pub fn parquet(self, options: ParquetOptions) -> Sink<RecordBatch, SinkFuture<Vec<PathBuf>>> {
        let encode = Arc::new(batch_pieces);
        let invalid = at_least(
            "file sink: parquet row_group_rows",
            options.row_group_rows,
            1,
        );
        let format = ParquetParts {
            compression: options.compression,
            row_group_rows: options.row_group_rows,
        };
        self.build_sink("file_sink_parquet", Arc::new(format), encode)
            .reject(invalid)
    }
}
