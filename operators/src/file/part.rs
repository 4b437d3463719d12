//! How a file sink writes one part file: the format's writer is made with the part's first
//! data, takes the rest, and is finished (trailer written, buffers flushed) when the part
//! closes. Lines are bytes; the columnar formats write record batches.

use super::error::FileError;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

/// A part file format, used on the sink's writer thread.
pub(crate) trait PartFormat: Send + Sync + 'static {
    /// What one piece of an encoded batch holds.
    type Data: Send + 'static;
    /// The open part's writer.
    type Writer: Send;
    /// The writer of a new part at `path` (created empty), with its first data written.
    fn create(
        &self,
        file: File,
        path: &Path,
        first: &Self::Data,
    ) -> Result<Self::Writer, FileError>;
    /// Writes `data` into the open part.
    fn write(&self, w: &mut Self::Writer, data: &Self::Data, path: &Path) -> Result<(), FileError>;
    /// Finishes the part (its trailer written, everything flushed) and hands back the file.
    fn finish(&self, w: Self::Writer, path: &Path) -> Result<File, FileError>;
}

/// Parts of lines: the encoded bytes, buffered.
pub(crate) struct LineParts;

impl PartFormat for LineParts {
    type Data = Vec<u8>;
    type Writer = BufWriter<File>;

    fn create(&self, file: File, path: &Path, first: &Vec<u8>) -> Result<Self::Writer, FileError> {
        let mut w = BufWriter::with_capacity(1 << 16, file);
        self.write(&mut w, first, path)?;
        Ok(w)
    }

    fn write(&self, w: &mut Self::Writer, data: &Vec<u8>, path: &Path) -> Result<(), FileError> {
        w.write_all(data)
            .map_err(|e| FileError::io("cannot write", path, e))
    }

    fn finish(&self, w: Self::Writer, path: &Path) -> Result<File, FileError> {
        w.into_inner()
            .map_err(|e| FileError::io("cannot write", path, e.into_error()))
    }
}
