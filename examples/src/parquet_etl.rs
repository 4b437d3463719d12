//! Parquet ETL: CSV events `key,value,ts_ms` converted into Parquet part files (bad lines sent
//! to dead letters), then the Parquet read back with only the `key` and `value` columns and
//! summed per key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use weir::operators::file::arrow_array::{ArrayRef, Int64Array, UInt32Array};
use weir::operators::file::arrow_schema::ArrowError;
use weir::operators::file::{
    CsvOptions, CsvRecord, FileSink, FileSource, Files, ParquetOptions, RecordBatch,
};
use weir::prelude::*;

fn event(r: CsvRecord<'_>) -> Result<(u32, u64, u64), weir::operators::file::CsvFieldError> {
    Ok((r.parse(0)?, r.parse(1)?, r.parse(2)?))
}

/// A group of events as one record batch (`key` u32, `value` and `ts_ms` i64).
fn batch(events: &[(u32, u64, u64)]) -> Result<RecordBatch, ArrowError> {
    let key: ArrayRef = Arc::new(UInt32Array::from_iter_values(events.iter().map(|e| e.0)));
    let value: ArrayRef = Arc::new(Int64Array::from_iter_values(
        events.iter().map(|e| e.1 as i64),
    ));
    let ts: ArrayRef = Arc::new(Int64Array::from_iter_values(
        events.iter().map(|e| e.2 as i64),
    ));
    RecordBatch::try_from_iter([("key", key), ("value", value), ("ts_ms", ts)])
}

/// What one conversion did: the committed Parquet parts and the bad lines skipped.
#[derive(Debug)]
pub struct Report {
    /// The committed part files, in commit order.
    pub parts: Vec<PathBuf>,
    /// Bad lines, as the dead letters rendered them.
    pub bad_lines: Vec<String>,
}

/// Converts every `*.csv` file of `input` (each with a header line) into Parquet parts under
/// `output`: `rows` events per record batch, rolled at `part_bytes` bytes of batches.
pub async fn convert(
    input: &Path,
    output: &Path,
    rows: usize,
    part_bytes: u64,
) -> Result<Report, crate::ExampleError> {
    let (dead, letters) = DeadLetterSink::collector();
    let parts = FileSource::new(Files::glob(input.join("*.csv")))
        .csv(CsvOptions::with_header(), event)
        .with_supervision(Supervision::resume().with_dead_letters(dead))
        .grouped(rows)
        .try_map(|g: &Vec<_>| batch(g))
        .run_with(
            FileSink::new(output)
                .suffix(".parquet")
                .max_part_bytes(part_bytes)
                .parquet(ParquetOptions::default()),
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

/// The sum of `value` per `key` over the Parquet files of `dir`, reading only those columns.
pub async fn sums(dir: &Path) -> Result<BTreeMap<u32, i64>, crate::ExampleError> {
    let fold = |mut acc: BTreeMap<u32, i64>, b: RecordBatch| {
        let keys = b.column(0).as_any().downcast_ref::<UInt32Array>();
        let values = b.column(1).as_any().downcast_ref::<Int64Array>();
        if let (Some(k), Some(v)) = (keys, values) {
            for (k, v) in k.values().iter().zip(v.values()) {
                *acc.entry(*k).or_default() += v;
            }
        }
        acc
    };
    let sums = FileSource::new(Files::glob(dir.join("*.parquet")))
        .columns(["key", "value"])
        .parquet()
        .run_with(Sink::fold(BTreeMap::new(), fold))?
        .await?;
    Ok(sums)
}
