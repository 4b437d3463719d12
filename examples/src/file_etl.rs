//! File ETL: CSV events `key,value,ts_ms` read from a directory of files, bad lines sent to
//! dead letters, the kept events written as `key,value` lines into committed part files.

use std::path::{Path, PathBuf};
use weir::operators::file::{CsvOptions, CsvRecord, FileSink, FileSource, Files};
use weir::prelude::*;

/// One event of the input.
fn event(r: CsvRecord<'_>) -> Result<(u32, u64, u64), weir::operators::file::CsvFieldError> {
    Ok((r.parse(0)?, r.parse(1)?, r.parse(2)?))
}

/// What one run did: the committed part files and the bad lines skipped.
#[derive(Debug)]
pub struct Report {
    /// The committed part files, in commit order.
    pub parts: Vec<PathBuf>,
    /// Bad lines, as the dead letters rendered them.
    pub bad_lines: Vec<String>,
}

/// Reads every `*.csv` file of `input` (each with a header line), keeps events with a value
/// of at least `min_value`, and writes them as `key,value` lines into parts of at most
/// `part_bytes` bytes under `output`.
pub async fn run(
    input: &Path,
    output: &Path,
    min_value: u64,
    part_bytes: u64,
) -> Result<Report, crate::ExampleError> {
    let (dead, letters) = DeadLetterSink::collector();
    let parts = FileSource::new(Files::glob(input.join("*.csv")))
        .csv(CsvOptions::with_header(), event)
        .with_supervision(Supervision::resume().with_dead_letters(dead))
        .filter(move |e: &(u32, u64, u64)| e.1 >= min_value)
        .run_with(
            FileSink::new(output)
                .suffix(".csv")
                .max_part_bytes(part_bytes)
                .lines(|e: &(u32, u64, u64), out: &mut Vec<u8>| {
                    out.extend_from_slice(format!("{},{}", e.0, e.1).as_bytes());
                }),
        )?
        .await?;
    let bad_lines = letters
        .lock()
        .map_err(|_| "dead letters poisoned")?
        .iter()
        .map(|d| d.error.message().to_owned())
        .collect();
    Ok(Report { parts, bad_lines })
}
