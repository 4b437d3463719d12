//! `cargo run --release -p weir-bench --bin file-read -- [--n EVENTS]`: the file sources over a
//! W3 events file (`key,value,ts_ms`), one JSON line per variant (as `weir-bench` prints): text
//! lines counted, CSV records parsed and summed, and a hand-written `BufRead` loop doing the
//! same parsing (`baseline_loop`); each with its own peak RSS.

use std::io::{BufRead, Write};
use std::time::Instant;
use weir::operators::file::{Bytes, CsvOptions, CsvRecord, FileSource, Files};
use weir::prelude::*;

fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

fn emit(variant: &str, n: u64, bytes: u64, secs: f64, checksum: u64) {
    println!(
        "{{\"workload\":\"file_read\",\"variant\":\"{variant}\",\"n\":{n},\"parallelism\":1,\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"mb_per_s\":{:.1},\"file_mb\":{:.1},\"peak_rss_mb\":{:.1},\"checksum\":\"{checksum}\"}}",
        n as f64 / secs,
        bytes as f64 / secs / 1e6,
        bytes as f64 / 1e6,
        peak_rss_mb()
    );
}

/// Writes `n` W3 events (10 per event-time ms, up to 99 ms late); returns the file's size.
fn write_events(path: &std::path::Path, n: u64) -> std::io::Result<u64> {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut size = 0u64;
    let mut line = String::new();
    for i in 0..n {
        line.clear();
        let ts = (i / 10).saturating_sub(i * 7919 % 100);
        use std::fmt::Write as _;
        let _ = writeln!(line, "{},{},{ts}", i * 31 % 1000, i % 100 + 1);
        f.write_all(line.as_bytes())?;
        size += line.len() as u64;
    }
    f.flush()?;
    Ok(size)
}

fn event(r: CsvRecord<'_>) -> Result<(u32, u64, u64), weir::operators::file::CsvFieldError> {
    Ok((r.int(0)?, r.int(1)?, r.int(2)?))
}

fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let mut args = std::env::args().skip(1);
    let mut n = 5_000_000u64;
    while let Some(a) = args.next() {
        if a == "--n" {
            let v: f64 = args.next().ok_or("--n needs a value")?.parse()?;
            n = v as u64;
        } else {
            return Err(format!("unknown argument {a:?}").into());
        }
    }
    let dir = std::env::temp_dir().join(format!("weir-file-read-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("events.csv");
    let bytes = write_events(&path, n)?;
    let rt = weir::engine::Runtime::new()?;

    reset_peak_rss();
    let t = Instant::now();
    let lines = rt.block_on(async {
        FileSource::new(Files::path(&path))
            .lines()
            .run_with(Sink::fold(0u64, |c, _l: Bytes| c + 1))?
            .await
            .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    })?;
    emit("lines", n, bytes, t.elapsed().as_secs_f64(), lines);

    reset_peak_rss();
    let t = Instant::now();
    let sum = rt.block_on(async {
        FileSource::new(Files::path(&path))
            .csv(CsvOptions::default(), event)
            .run_with(Sink::fold(0u64, |s, e: (u32, u64, u64)| s + e.1))?
            .await
            .map_err(Box::<dyn std::error::Error + Send + Sync>::from)
    })?;
    emit("csv", n, bytes, t.elapsed().as_secs_f64(), sum);

    reset_peak_rss();
    let t = Instant::now();
    let mut r = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(&path)?);
    let (mut buf, mut s) = (String::new(), 0u64);
    while r.read_line(&mut buf)? > 0 {
        let mut it = buf.trim_end().split(',');
        let _k: u32 = it.next().ok_or("key")?.parse()?;
        let v: u64 = it.next().ok_or("value")?.parse()?;
        let _ts: u64 = it.next().ok_or("ts")?.parse()?;
        s += v;
        buf.clear();
    }
    emit("baseline_loop", n, bytes, t.elapsed().as_secs_f64(), s);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
