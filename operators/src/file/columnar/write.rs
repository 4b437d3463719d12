//! The columnar part formats of the file sink: an Arrow IPC file or a Parquet file per part,
//! written from record batches that all have the part's first batch's columns (names and
//! types; every column is nullable in the part); finishing a part writes its footer.

use super::super::error::FileError;
use super::super::part::PartFormat;
use super::{Columnar, ParquetCompression};
use arrow_array::{RecordBatch, RecordBatchOptions};
use arrow_ipc::writer::FileWriter;
use arrow_schema::{Field, Schema, SchemaRef};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use std::fs::File;
use std::io::BufWriter;
use std::path::Path;
use std::sync::Arc;

fn bad(path: &Path, format: Columnar, e: impl std::fmt::Display) -> FileError {
    FileError::Format {
        path: path.to_path_buf(),
        format: format.name(),
        reason: e.to_string(),
    }
}

/// The schema of a part whose first batch has `first`: the same columns, each nullable (so a
/// later batch with nulls in a column the first had none in still fits).
fn part_schema(first: &Schema) -> SchemaRef {
    let fields: Vec<Field> = first
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    Arc::new(Schema::new_with_metadata(fields, first.metadata().clone()))
}

/// `batch` under the part's schema: it must have the same column names and types (nullability
/// aside); otherwise the error names both schemas.
fn fit(path: &Path, schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, FileError> {
    let changed = || FileError::SchemaChanged {
        path: path.to_path_buf(),
        part: schema.to_string(),
        batch: batch.schema_ref().to_string(),
    };
    let theirs = batch.schema_ref().fields();
    let same = theirs.len() == schema.fields().len()
        && theirs
            .iter()
            .zip(schema.fields())
            .all(|(a, b)| a.name() == b.name() && a.data_type().equals_datatype(b.data_type()));
    if !same {
        return Err(changed());
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), batch.columns().to_vec(), &options)
        .map_err(|_| changed())
}

/// A columnar file writer: made for a part's schema, fed its batches, closed with its footer.
/// Errors are the format's own, named with the part by [`PartFormat`]'s impl below.
pub(crate) trait BatchFile: Send + Sync + 'static {
    /// The format's name in errors.
    const FORMAT: Columnar;
    /// The open writer.
    type Writer: Send;
    /// A writer of a part with `schema` into `file`.
    fn open(&self, file: File, schema: &SchemaRef) -> Result<Self::Writer, String>;
    /// Writes `batch` (of the part's schema).
    fn write(w: &mut Self::Writer, batch: &RecordBatch) -> Result<(), String>;
    /// Writes the footer and hands back the file.
    fn close(w: Self::Writer) -> Result<File, String>;
}

impl<B: BatchFile> PartFormat for B {
    type Data = RecordBatch;
    type Writer = (B::Writer, SchemaRef);

    fn create(
        &self,
        file: File,
        path: &Path,
        first: &RecordBatch,
    ) -> Result<Self::Writer, FileError> {
        let schema = part_schema(first.schema_ref());
        let w = self
            .open(file, &schema)
            .map_err(|e| bad(path, B::FORMAT, e))?;
        let mut w = (w, schema);
        PartFormat::write(self, &mut w, first, path)?;
        Ok(w)
    }

    fn write(
        &self,
        w: &mut Self::Writer,
        data: &RecordBatch,
        path: &Path,
    ) -> Result<(), FileError> {
        let data = fit(path, &w.1, data)?;
        B::write(&mut w.0, &data).map_err(|e| bad(path, B::FORMAT, e))
    }

    fn finish(&self, w: Self::Writer, path: &Path) -> Result<File, FileError> {
        B::close(w.0).map_err(|e| bad(path, B::FORMAT, e))
    }
}

/// Parts in the Arrow IPC file format.
pub(crate) struct IpcParts;

impl BatchFile for IpcParts {
    const FORMAT: Columnar = Columnar::ArrowIpc;
    type Writer = FileWriter<BufWriter<File>>;

    fn open(&self, file: File, schema: &SchemaRef) -> Result<Self::Writer, String> {
        FileWriter::try_new(BufWriter::with_capacity(1 << 16, file), schema)
            .map_err(|e| e.to_string())
    }

    fn write(w: &mut Self::Writer, batch: &RecordBatch) -> Result<(), String> {
        w.write(batch).map_err(|e| e.to_string())
    }

    fn close(mut w: Self::Writer) -> Result<File, String> {
        w.finish().map_err(|e| e.to_string())?;
        let buf = w.into_inner().map_err(|e| e.to_string())?;
        buf.into_inner().map_err(|e| e.into_error().to_string())
    }
}

/// Parts in the Parquet format.
pub(crate) struct ParquetParts {
    pub(crate) compression: ParquetCompression,
    pub(crate) row_group_rows: usize,
}

impl BatchFile for ParquetParts {
    const FORMAT: Columnar = Columnar::Parquet;
    type Writer = ArrowWriter<File>;

    fn open(&self, file: File, schema: &SchemaRef) -> Result<Self::Writer, String> {
        let compression = match self.compression {
            ParquetCompression::None => Compression::UNCOMPRESSED,
            ParquetCompression::Snappy => Compression::SNAPPY,
        };
        let props = WriterProperties::builder()
            .set_compression(compression)
            .set_max_row_group_row_count(Some(self.row_group_rows.max(1)))
            .build();
        ArrowWriter::try_new(file, Arc::clone(schema), Some(props)).map_err(|e| e.to_string())
    }

    fn write(w: &mut Self::Writer, batch: &RecordBatch) -> Result<(), String> {
        w.write(batch).map_err(|e| e.to_string())
    }

    fn close(w: Self::Writer) -> Result<File, String> {
        w.into_inner().map_err(|e| e.to_string())
    }
}
