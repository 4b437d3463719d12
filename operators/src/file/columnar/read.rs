//! The blocking side of the columnar sources: opens each file of the walk in its format at a
//! row, projects the chosen columns and cuts record batches into slices of at most the
//! source's batch rows (zero-copy).

use super::super::error::FileError;
use super::super::reader::{FileWalk, Resume};
use super::Columnar;
use arrow_array::RecordBatch;
use arrow_ipc::reader::FileReader;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// What the reading thread hands to the source, in order.
pub(crate) enum Item {
    /// A file starts, at row `row`.
    Open { file: Arc<Path>, row: u64 },
    /// The next rows of the open file.
    Batch(RecordBatch),
}

type Batches = Box<dyn Iterator<Item = Result<RecordBatch, FileError>> + Send>;

/// Reads the walk's files in order as record batches.
pub(crate) struct BatchReader {
    walk: FileWalk,
    format: Columnar,
    batch_rows: usize,
    columns: Option<Arc<[String]>>,
    open: Option<Batches>,
    /// Rows of the open file still to skip (a resume inside a batch of an Arrow IPC file).
    skip: u64,
    /// The rest of a batch larger than the batch rows, handed out next.
    rest: Option<RecordBatch>,
}

impl BatchReader {
    /// A reader of the walk's files in `format`, `batch_rows` rows at most per batch.
    pub(crate) fn new(
        walk: FileWalk,
        format: Columnar,
        batch_rows: usize,
        columns: Option<Arc<[String]>>,
    ) -> Self {
        Self {
            walk,
            format,
            batch_rows: batch_rows.max(1),
            columns,
            open: None,
            skip: 0,
            rest: None,
        }
    }

    fn open_at(&mut self, path: PathBuf, resume: Option<Resume>) -> Result<Item, FileError> {
        let row = resume.map_or(0, |r| r.offset);
        let f = File::open(&path).map_err(|e| FileError::io("cannot open", &path, e))?;
        let (batches, skip) = match self.format {
            Columnar::ArrowIpc => open_ipc(f, &path, row, self.columns.clone())?,
            Columnar::Parquet => (
                open_parquet(f, &path, row, self.batch_rows, self.columns.as_deref())?,
                0,
            ),
        };
        self.open = Some(batches);
        self.skip = skip;
        Ok(Item::Open {
            file: Arc::from(path),
            row,
        })
    }
}

fn bad(path: &Path, format: Columnar, e: impl std::fmt::Display) -> FileError {
    FileError::Format {
        path: path.to_path_buf(),
        format: format.name(),
        reason: e.to_string(),
    }
}

/// The indices of `columns` in `schema` (in the order asked), or the error naming the one
/// that is not there.
fn column_indices(
    path: &Path,
    schema: &arrow_schema::Schema,
    columns: &[String],
) -> Result<Vec<usize>, FileError> {
    columns
        .iter()
        .map(|c| {
            schema.index_of(c).map_err(|_| FileError::UnknownColumn {
                path: path.to_path_buf(),
                column: c.clone(),
                columns: schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
        })
        .collect()
}

/// An Arrow IPC file's batches from `row` on: the batches before it are skipped by the row
/// counts in their message headers (their bodies are neither read nor decoded); the rows to
/// skip in the first batch kept are returned with it.
fn open_ipc(
    mut f: File,
    path: &Path,
    row: u64,
    columns: Option<Arc<[String]>>,
) -> Result<(Batches, u64), FileError> {
    let format = Columnar::ArrowIpc;
    let counts = if row > 0 {
        ipc_batch_rows(&mut f).map_err(|e| bad(path, format, e))?
    } else {
        Vec::new()
    };
    let mut reader =
        FileReader::try_new(BufReader::new(f), None).map_err(|e| bad(path, format, e))?;
    let indices = match &columns {
        Some(c) => Some(column_indices(path, &reader.schema(), c)?),
        None => None,
    };
    // Whole batches before the row: counted, not read.
    let (mut skipped, mut first) = (0u64, 0usize);
    while first < counts.len() && skipped + counts[first] <= row {
        skipped += counts[first];
        first += 1;
    }
    if skipped < row && first == counts.len() {
        return Err(FileError::ResumeBeyondRows {
            path: path.to_path_buf(),
            row,
            rows: skipped,
        });
    }
    let p = path.to_path_buf();
    let all: Batches = if first < reader.num_batches() {
        reader.set_index(first).map_err(|e| bad(path, format, e))?;
        Box::new(reader.map(move |r| r.map_err(|e| bad(&p, format, e))))
    } else {
        Box::new(std::iter::empty())
    };
    let batches: Batches = match indices {
        Some(ix) => {
            let p = path.to_path_buf();
            Box::new(
                all.map(move |r| r.and_then(|b| b.project(&ix).map_err(|e| bad(&p, format, e)))),
            )
        }
        None => all,
    };
    Ok((batches, row - skipped))
}

/// The row count of every record batch of an Arrow IPC file, in file order, from the footer's
/// blocks and each batch's message header (a few hundred bytes per batch).
fn ipc_batch_rows(f: &mut File) -> Result<Vec<u64>, String> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| e.to_string();
    let mut tail = [0u8; 10];
    f.seek(SeekFrom::End(-10)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    let footer_len = arrow_ipc::reader::read_footer_length(tail).map_err(|e| e.to_string())?;
    let mut footer = vec![0u8; footer_len];
    f.seek(SeekFrom::End(-10 - footer_len as i64)).map_err(io)?;
    f.read_exact(&mut footer).map_err(io)?;
    let footer = arrow_ipc::root_as_footer(&footer).map_err(|e| e.to_string())?;
    let blocks = footer
        .recordBatches()
        .map(|b| b.iter().copied().collect::<Vec<_>>());
    let mut rows = Vec::new();
    let mut meta = Vec::new();
    for b in blocks.unwrap_or_default() {
        let len = usize::try_from(b.metaDataLength()).map_err(|e| e.to_string())?;
        let at = u64::try_from(b.offset()).map_err(|e| e.to_string())?;
        meta.resize(len, 0);
        f.seek(SeekFrom::Start(at)).map_err(io)?;
        f.read_exact(&mut meta).map_err(io)?;
        // A message is prefixed by its length, after a continuation marker since format 0.15.
        let start = if meta.get(..4) == Some(&[0xff; 4]) {
            8
        } else {
            4
        };
        let message = meta
            .get(start..)
            .ok_or_else(|| format!("a record batch's metadata of {len} bytes"))
            .and_then(|m| arrow_ipc::root_as_message(m).map_err(|e| e.to_string()))?;
        let batch = message
            .header_as_record_batch()
            .ok_or_else(|| format!("the block at byte {at} is not a record batch"))?;
        rows.push(u64::try_from(batch.length()).map_err(|e| e.to_string())?);
    }
    f.seek(SeekFrom::Start(0)).map_err(io)?;
    Ok(rows)
}

/// A Parquet file's batches from `row` on (row groups before it are not read).
fn open_parquet(
    f: File,
    path: &Path,
    row: u64,
    batch_rows: usize,
    columns: Option<&[String]>,
) -> Result<Batches, FileError> {
    let format = Columnar::Parquet;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f).map_err(|e| bad(path, format, e))?;
    let groups: Vec<u64> = builder
        .metadata()
        .row_groups()
        .iter()
        .map(|g| g.num_rows().max(0) as u64)
        .collect();
    let total: u64 = groups.iter().sum();
    if row > total {
        return Err(FileError::ResumeBeyondRows {
            path: path.to_path_buf(),
            row,
            rows: total,
        });
    }
    let (mut first, mut left) = (0, row);
    while first < groups.len() && left >= groups[first] {
        left -= groups[first];
        first += 1;
    }
    let mut order = None;
    let builder = match columns {
        Some(c) => {
            let schema = Arc::clone(builder.schema());
            let ix = column_indices(path, &schema, c)?;
            let mut roots = ix.clone();
            roots.sort_unstable();
            roots.dedup();
            // The projected batch holds the columns in file order: put them in the order asked.
            order = Some(
                ix.iter()
                    .map(|i| roots.iter().position(|r| r == i).unwrap_or(0))
                    .collect::<Vec<usize>>(),
            );
            let mask = ProjectionMask::roots(builder.parquet_schema(), roots);
            builder.with_projection(mask)
        }
        None => builder,
    };
    let reader = builder
        .with_row_groups((first..groups.len()).collect())
        .with_offset(usize::try_from(left).unwrap_or(usize::MAX))
        .with_batch_size(batch_rows)
        .build()
        .map_err(|e| bad(path, format, e))?;
    let p = path.to_path_buf();
    Ok(Box::new(reader.map(move |r| {
        let b = r.map_err(|e| bad(&p, format, e))?;
        match &order {
            Some(o) => b.project(o).map_err(|e| bad(&p, format, e)),
            None => Ok(b),
        }
    })))
}

impl BatchReader {
    /// `b` as it goes out: at most the batch rows (the rest is kept for the next call).
    fn cut(&mut self, b: RecordBatch) -> RecordBatch {
        if b.num_rows() <= self.batch_rows {
            return b;
        }
        self.rest = Some(b.slice(self.batch_rows, b.num_rows() - self.batch_rows));
        b.slice(0, self.batch_rows)
    }
}

impl Iterator for BatchReader {
    type Item = Result<Item, FileError>;

    fn next(&mut self) -> Option<Self::Item> {
        if let Some(b) = self.rest.take() {
            return Some(Ok(Item::Batch(self.cut(b))));
        }
        loop {
            let Some(batches) = &mut self.open else {
                return Some(
                    self.walk
                        .next_file()?
                        .and_then(|(path, resume)| self.open_at(path, resume)),
                );
            };
            match batches.next() {
                None => self.open = None,
                Some(Err(e)) => {
                    self.open = None;
                    self.walk.clear();
                    return Some(Err(e));
                }
                Some(Ok(b)) => {
                    let skip = usize::try_from(std::mem::take(&mut self.skip))
                        .unwrap_or(usize::MAX)
                        .min(b.num_rows());
                    let b = b.slice(skip, b.num_rows() - skip);
                    if b.num_rows() > 0 {
                        return Some(Ok(Item::Batch(self.cut(b))));
                    }
                }
            }
        }
    }
}
