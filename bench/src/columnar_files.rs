//! `weir-bench columnar-files [--n ROWS] [--batch-rows R] [--repeat K]`: the
//! Parquet and Arrow IPC connectors over W3 events (`key, value, ts_ms` as Int64 columns), one
//! JSON line per variant (as `weir-bench` prints): `{format}_write` (the transactional sink, one
//! part), `{format}_read` (the source, the value column summed), and `{format}_write_direct` /
//! `{format}_read_direct`, the same work as a plain loop over the `parquet` / `arrow-ipc` crates
//! (the baseline each weir figure is compared with); each with its own peak RSS.

use crate::{peak_rss_mb, reset_peak_rss};
use arrow_array::{ArrayRef, Int64Array, RecordBatch};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;
use weir::operators::file::{FileSink, FileSource, Files, ParquetOptions};
use weir::prelude::*;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The flags of `columnar-files`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Rows to write and read; accepts `1e7`.
    #[arg(long, default_value = "1e7", value_parser = crate::parse_count)]
    n: u64,
    /// Rows per record batch.
    #[arg(long, default_value_t = 8192)]
    batch_rows: usize,
    /// Times each read variant runs (alternating).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
}

fn emit(variant: &str, n: u64, bytes: u64, secs: f64, checksum: i64) {
    println!(
        "{{\"workload\":\"columnar_files\",\"variant\":\"{variant}\",\"n\":{n},\"parallelism\":1,\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"file_mb\":{:.1},\"peak_rss_mb\":{:.1},\"checksum\":\"{checksum}\"}}",
        n as f64 / secs,
        bytes as f64 / 1e6,
        peak_rss_mb()
    );
}

/// The W3 events `from..to` as one batch.
fn events(from: u64, to: u64) -> RecordBatch {
    let col = |f: &dyn Fn(u64) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values((from..to).map(f)))
    };
    let key = col(&|i| (i * 31 % 1000) as i64);
    let value = col(&|i| (i % 100 + 1) as i64);
    let ts = col(&|i| (i / 10).saturating_sub(i * 7919 % 100) as i64);
    RecordBatch::try_from_iter([("key", key), ("value", value), ("ts_ms", ts)])
        .expect("three columns of one length")
}

fn batches(n: u64, rows: usize) -> impl Iterator<Item = RecordBatch> + Clone + Send + 'static {
    let rows = rows.max(1) as u64;
    (0..n.div_ceil(rows)).map(move |i| events(i * rows, ((i + 1) * rows).min(n)))
}

fn value_sum(b: &RecordBatch) -> i64 {
    b.column(1)
        .as_any()
        .downcast_ref::<Int64Array>()
        .map_or(0, |a| a.values().iter().sum())
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.len())
}

#[derive(Clone, Copy, PartialEq)]
enum Format {
    Parquet,
    Ipc,
}

fn weir_write(
    rt: &weir::engine::Runtime,
    f: Format,
    dir: &Path,
    a: &Args,
) -> Result<PathBuf, BoxError> {
    let n = a.n;
    let sink = FileSink::new(dir).max_part_bytes(u64::MAX);
    let sink = match f {
        Format::Parquet => sink.suffix(".parquet").parquet(ParquetOptions::default()),
        Format::Ipc => sink.suffix(".arrow").arrow_ipc(),
    };
    // Two record batches per engine batch: the generator holds about as much as the source does.
    let g = Source::from_iter(batches(n, a.batch_rows)).to_mat(sink, Keep::right);
    let files = rt.block_on(async {
        let (files, h) = weir::engine::Materializer::new()
            .with_batch_size(2)
            .materialize(&g)?;
        let files = files.await?;
        h.wait().await?;
        Ok::<_, BoxError>(files)
    })?;
    files
        .into_iter()
        .next()
        .ok_or_else(|| "nothing committed".into())
}

fn direct_write(f: Format, path: &Path, a: &Args) -> Result<(), BoxError> {
    let n = a.n;
    let file = std::fs::File::create(path)?;
    let schema = events(0, 1).schema();
    match f {
        Format::Parquet => {
            let props = parquet::file::properties::WriterProperties::builder()
                .set_compression(parquet::basic::Compression::SNAPPY)
                .set_max_row_group_row_count(Some(1 << 20))
                .build();
            let mut w = parquet::arrow::ArrowWriter::try_new(file, schema, Some(props))?;
            for b in batches(n, a.batch_rows) {
                w.write(&b)?;
            }
            w.into_inner()?.sync_all()?;
        }
        Format::Ipc => {
            let mut w =
                arrow_ipc::writer::FileWriter::try_new(std::io::BufWriter::new(file), &schema)?;
            for b in batches(n, a.batch_rows) {
                w.write(&b)?;
            }
            w.finish()?;
            w.into_inner()?
                .into_inner()
                .map_err(|e| e.into_error())?
                .sync_all()?;
        }
    }
    Ok(())
}

fn weir_read(
    rt: &weir::engine::Runtime,
    f: Format,
    path: &Path,
    a: &Args,
) -> Result<i64, BoxError> {
    let s = FileSource::new(Files::path(path)).batch_rows(a.batch_rows);
    let src = match f {
        Format::Parquet => s.parquet(),
        Format::Ipc => s.arrow_ipc(),
    };
    rt.block_on(async {
        src.run_with(Sink::fold(0i64, |s, b: RecordBatch| s + value_sum(&b)))?
            .await
            .map_err(BoxError::from)
    })
}

fn direct_read(f: Format, path: &Path, a: &Args) -> Result<i64, BoxError> {
    let file = std::fs::File::open(path)?;
    let mut sum = 0;
    match f {
        Format::Parquet => {
            let r = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?
                .with_batch_size(a.batch_rows)
                .build()?;
            for b in r {
                sum += value_sum(&b?);
            }
        }
        Format::Ipc => {
            let r = arrow_ipc::reader::FileReader::try_new(std::io::BufReader::new(file), None)?;
            for b in r {
                sum += value_sum(&b?);
            }
        }
    }
    Ok(sum)
}

/// Runs the measurement; the process's exit code.
pub fn main(a: Args) -> i32 {
    match run(&a) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("columnar-files: {e}");
            1
        }
    }
}

fn run(a: &Args) -> Result<(), BoxError> {
    let n = a.n;
    let dir = std::env::temp_dir().join(format!("weir-columnar-files-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let rt = weir::engine::Runtime::new()?;
    for (f, name) in [(Format::Parquet, "parquet"), (Format::Ipc, "ipc")] {
        let out = dir.join(name);
        reset_peak_rss();
        let t = Instant::now();
        let part = weir_write(&rt, f, &out, a)?;
        emit(
            &format!("{name}_write"),
            n,
            size(&part),
            t.elapsed().as_secs_f64(),
            0,
        );

        let direct = dir.join(format!("direct.{name}"));
        reset_peak_rss();
        let t = Instant::now();
        direct_write(f, &direct, a)?;
        emit(
            &format!("{name}_write_direct"),
            n,
            size(&direct),
            t.elapsed().as_secs_f64(),
            0,
        );

        // Reads alternate, `--repeat` times each, so neither side gets the warmer cache.
        for _ in 0..a.repeat {
            reset_peak_rss();
            let t = Instant::now();
            let sum = weir_read(&rt, f, &part, a)?;
            emit(
                &format!("{name}_read"),
                n,
                size(&part),
                t.elapsed().as_secs_f64(),
                sum,
            );

            reset_peak_rss();
            let t = Instant::now();
            let want = direct_read(f, &direct, a)?;
            emit(
                &format!("{name}_read_direct"),
                n,
                size(&direct),
                t.elapsed().as_secs_f64(),
                want,
            );
            if sum != want {
                return Err(format!("{name}: weir read {sum}, the direct loop {want}").into());
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
