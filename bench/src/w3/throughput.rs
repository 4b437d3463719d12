//! `weir-bench w3`: W3 throughput in events/s, one JSON line per variant. The in-memory
//! generator (`range` mapped to the seeded events) and a CSV file (the job's file source), each
//! through 100 ms bounded out-of-orderness and 1 s tumbling sums per key, with checkpoints off
//! and every 1 s; the CSV job also into its transactional file sink; and hand-written loops
//! doing the same work (`baseline_loop`: generated events, `csv_baseline_loop`: `read_line`,
//! `split(',')`, `str::parse`), so variants compare as ratios measured in one run. Every
//! variant checks the same checksum of the fired windows; `csv_lines` and `csv_source` time the
//! CSV variant's source alone (cutting lines; cutting and decoding them), without windows.

use super::events::{self, Event, WINDOW_MS};
use super::job::{self, Output};
use std::collections::{BTreeMap, HashMap};
use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};
use weir::engine::CheckpointConfig;
use weir::operators::file::{CsvOptions, FileSource, Files};
use weir::operators::window::{Num, WindowOutput};
use weir::prelude::*;

/// The bound of the out-of-orderness, as the job's.
const BOUND_MS: i64 = 100;

/// Fired windows: how many, and an order-independent checksum of `(key, start, sum)`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Fired {
    windows: u64,
    checksum: u64,
}

impl Fired {
    fn add(mut self, key: u32, start: i64, sum: u64) -> Self {
        self.windows += 1;
        self.checksum = self.checksum.wrapping_add(events::mix(
            (u64::from(key) << 44) ^ (start as u64) << 8 ^ sum,
        ));
        self
    }
    fn add_output(self, o: Output) -> Self {
        match o {
            WindowOutput::Fired { key, window, value } => {
                let sum = match value {
                    Num::Int(v) => v as u64,
                    Num::Float(v) => v as u64,
                };
                self.add(key, window.start, sum)
            }
            // Counted apart so a late element changes the checksum.
            WindowOutput::Late { .. } => self.add(u32::MAX, 0, 0),
        }
    }
}

/// A hand-written tumbling-window loop: windows by start, each a key -> sum map, fired once
/// the watermark (highest timestamp - 101) reaches their last millisecond.
#[derive(Default)]
struct Loop {
    open: BTreeMap<i64, HashMap<u32, u64, ahash::RandomState>>,
    max_ts: i64,
    fired: Fired,
}

impl Loop {
    #[inline]
    fn on(&mut self, e: Event) {
        let start = events::window_start(e.ts);
        *self
            .open
            .entry(start)
            .or_default()
            .entry(e.key)
            .or_default() += u64::from(e.value);
        if e.ts > self.max_ts {
            self.max_ts = e.ts;
            let wm = self.max_ts - BOUND_MS - 1;
            while let Some(entry) = self.open.first_entry() {
                if *entry.key() + WINDOW_MS - 1 > wm {
                    break;
                }
                let (start, keys) = entry.remove_entry();
                self.fire(start, keys);
            }
        }
    }
    fn fire(&mut self, start: i64, keys: HashMap<u32, u64, ahash::RandomState>) {
        for (k, s) in keys {
            self.fired = self.fired.add(k, start, s);
        }
    }
    fn finish(mut self) -> Fired {
        while let Some((start, keys)) = self.open.pop_first() {
            self.fire(start, keys);
        }
        self.fired
    }
}

#[derive(Clone, Copy)]
struct Ctx<'a> {
    n: u64,
    file_mb: f64,
    expected: Option<Fired>,
    rt: &'a weir::engine::Runtime,
}

fn emit(variant: &str, ctx: Ctx<'_>, secs: f64, fired: Fired, extra: &str) {
    if ctx.expected.is_some_and(|e| e != fired) {
        eprintln!(
            "w3 {variant}: checksum mismatch ({fired:?} against {:?})",
            ctx.expected
        );
    }
    println!(
        "{{\"workload\":\"w3\",\"variant\":\"{variant}\",\"n\":{},\"parallelism\":1,\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"peak_rss_mb\":{:.1},\"windows\":{},\"checksum\":\"{:016x}\"{extra}}}",
        ctx.n,
        ctx.n as f64 / secs,
        peak_rss_mb(),
        fired.windows,
        fired.checksum
    );
}

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

fn materializer(checkpoint_dir: Option<&Path>) -> Materializer {
    let m = Materializer::new();
    match checkpoint_dir {
        Some(d) => {
            let _ = std::fs::remove_dir_all(d);
            m.with_checkpoints(CheckpointConfig::new(Duration::from_secs(1), d))
        }
        None => m,
    }
}

/// Runs `g`, timing it; the checkpoints it completed as an extra JSON field.
fn time_run<M: Send + 'static, R>(
    ctx: Ctx<'_>,
    variant: &str,
    m: &Materializer,
    g: &RunnableGraph<M>,
    result: impl FnOnce(M) -> futures::future::BoxFuture<'static, Result<R, StageError>>,
) -> Result<(f64, R, String), String> {
    reset_peak_rss();
    let t = Instant::now();
    ctx.rt.block_on(async {
        let (mat, h) = m.materialize(g).map_err(|e| e.to_string())?;
        let r = result(mat).await.map_err(|e| e.to_string())?;
        h.wait().await.map_err(|e| e.to_string())?;
        let secs = t.elapsed().as_secs_f64();
        let ck = match h.checkpoints() {
            None => String::new(),
            Some(c) => {
                // The directory starts empty: the newest id is how many completed.
                let done = c.latest_completed().unwrap_or(0);
                if done == 0 {
                    eprintln!(
                        "w3 {variant}: no checkpoint completed (the run took under 1 s): raise --n to measure their cost"
                    );
                }
                format!(",\"checkpoints_completed\":{done}")
            }
        };
        Ok((secs, r, ck))
    })
}

fn fold_sink() -> Sink<Output, SinkFuture<Fired>> {
    Sink::fold(Fired::default(), Fired::add_output)
}

fn generator(ctx: Ctx<'_>, seed: u64, checkpoints: Option<&Path>) -> Result<(), String> {
    let variant = if checkpoints.is_some() {
        "generator_checkpoints_1s"
    } else {
        "generator"
    };
    let src = Source::range(0u64, ctx.n)
        .map(move |i| events::event(seed, i))
        .uid("w3-generator");
    let g = job::windows(src).to_mat(fold_sink(), Keep::right);
    let m = materializer(checkpoints);
    let (secs, fired, ck) = time_run(ctx, variant, &m, &g, |f| Box::pin(f))
        .map_err(|e| format!("w3 {variant} failed: {e}"))?;
    emit(variant, ctx, secs, fired, &ck);
    Ok(())
}

fn csv(ctx: Ctx<'_>, input: &Path, checkpoints: Option<&Path>) -> Result<(), String> {
    let variant = if checkpoints.is_some() {
        "csv_checkpoints_1s"
    } else {
        "csv"
    };
    let src = FileSource::new(Files::path(input))
        .csv(CsvOptions::default(), job::decode)
        .uid("w3-source");
    let g = job::windows(src).to_mat(fold_sink(), Keep::right);
    let m = materializer(checkpoints);
    let (secs, fired, ck) = time_run(ctx, variant, &m, &g, |f| Box::pin(f))
        .map_err(|e| format!("w3 {variant} failed: {e}"))?;
    let mb = format!(",\"mb_per_s\":{:.1}{ck}", ctx.file_mb / secs);
    emit(variant, ctx, secs, fired, &mb);
    Ok(())
}

/// The parts of the CSV variant alone, so the figures say where its time goes: `csv_lines`
/// (reading and cutting lines, `FileSource::lines`) and `csv_source` (the same decoded into
/// events by the job's decoder), each into a fold that counts the lines and sums their lengths
/// (`csv_lines`: the file's size less its newlines) or the events' fields (`csv_source`: as the
/// generator's events of `seed`).
fn csv_part(
    ctx: Ctx<'_>,
    input: &Path,
    file_bytes: u64,
    seed: u64,
    variant: &str,
) -> Result<(), String> {
    let files = FileSource::new(Files::path(input));
    let m = Materializer::new();
    let run = |g: RunnableGraph<SinkFuture<(u64, u64)>>| {
        time_run(ctx, variant, &m, &g, |f| Box::pin(f))
            .map_err(|e| format!("w3 {variant} failed: {e}"))
    };
    let (secs, (count, sum), _) = if variant == "csv_lines" {
        run(files.lines().to_mat(
            Sink::fold((0u64, 0u64), |(n, b), l: weir::operators::file::Bytes| {
                (n + 1, b + l.len() as u64)
            }),
            Keep::right,
        ))?
    } else {
        run(files.csv(CsvOptions::default(), job::decode).to_mat(
            Sink::fold((0u64, 0u64), |(n, s), e: Event| {
                let f = u64::from(e.key) + u64::from(e.value) + e.ts as u64;
                (n + 1, s.wrapping_add(f))
            }),
            Keep::right,
        ))?
    };
    let want = if variant == "csv_lines" {
        file_bytes - ctx.n
    } else {
        (0..ctx.n)
            .map(|i| events::event(seed, i))
            .fold(0u64, |s, e| {
                s.wrapping_add(u64::from(e.key) + u64::from(e.value) + e.ts as u64)
            })
    };
    if (count, sum) != (ctx.n, want) {
        return Err(format!(
            "w3 {variant}: {count} events summing to {sum}, not {} summing to {want}",
            ctx.n
        ));
    }
    println!(
        "{{\"workload\":\"w3\",\"variant\":\"{variant}\",\"n\":{},\"parallelism\":1,\"seconds\":{secs:.6},\"elements_per_s\":{:.4e},\"peak_rss_mb\":{:.1},\"mb_per_s\":{:.1},\"sum\":{sum}}}",
        ctx.n,
        ctx.n as f64 / secs,
        peak_rss_mb(),
        ctx.file_mb / secs
    );
    Ok(())
}

/// The job itself (file source to file sink); the committed parts are checked once.
fn csv_job(
    ctx: Ctx<'_>,
    input: &Path,
    out: &Path,
    checkpoints: Option<&Path>,
) -> Result<(), String> {
    let variant = if checkpoints.is_some() {
        "csv_job_checkpoints_1s"
    } else {
        "csv_job"
    };
    let _ = std::fs::remove_dir_all(out);
    let g = job::graph(input, out, None);
    let m = materializer(checkpoints);
    let (secs, parts, ck) = time_run(ctx, variant, &m, &g, |f| Box::pin(f))
        .map_err(|e| format!("w3 {variant} failed: {e}"))?;
    let mut fired = Fired::default();
    for p in &parts {
        let text = std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?;
        for l in text.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let mut it = l.split(|&b| b == b',').map(|f| {
                std::str::from_utf8(f)
                    .ok()
                    .and_then(|s| s.parse::<i64>().ok())
                    .unwrap_or(-1)
            });
            let (k, s, v) = (
                it.next().unwrap_or(-1),
                it.next().unwrap_or(-1),
                it.next().unwrap_or(-1),
            );
            fired = fired.add(k as u32, s, v as u64);
        }
    }
    let mb = format!(",\"mb_per_s\":{:.1}{ck}", ctx.file_mb / secs);
    emit(variant, ctx, secs, fired, &mb);
    Ok(())
}

fn csv_loop(input: &Path) -> std::io::Result<Fired> {
    let mut r = std::io::BufReader::with_capacity(1 << 16, std::fs::File::open(input)?);
    let mut lp = Loop::default();
    let mut buf = String::new();
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    while r.read_line(&mut buf)? > 0 {
        let mut it = buf.trim_end().split(',');
        let key: u32 = it
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("key"))?;
        let value: u32 = it
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("value"))?;
        let ts: i64 = it
            .next()
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| bad("ts"))?;
        lp.on(Event { key, value, ts });
        buf.clear();
    }
    Ok(lp.finish())
}

/// `w3`: every variant (or those in `only`) over `n` events of `seed`; 0 unless one failed.
pub fn main(n: u64, seed: u64, only: &[String]) -> i32 {
    let want = |v: &str| only.is_empty() || only.iter().any(|o| o == v);
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w3: runtime: {e}");
            return 1;
        }
    };
    let dir = std::env::temp_dir().join(format!("weir-w3-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("w3: cannot create {}: {e}", dir.display());
        return 1;
    }
    let mut ctx = Ctx {
        n,
        file_mb: 0.0,
        expected: None,
        rt: &rt,
    };
    let mut failed = false;
    let mut report = |r: Result<(), String>| {
        if let Err(e) = r {
            eprintln!("{e}");
            failed = true;
        }
    };

    reset_peak_rss();
    let t = Instant::now();
    let mut lp = Loop::default();
    for i in 0..std::hint::black_box(n) {
        lp.on(events::event(seed, i));
    }
    let fired = lp.finish();
    emit("baseline_loop", ctx, t.elapsed().as_secs_f64(), fired, "");
    ctx.expected = Some(fired);
    let ck = dir.join("checkpoints");
    if want("generator") {
        report(generator(ctx, seed, None));
    }
    if want("generator_checkpoints_1s") {
        report(generator(ctx, seed, Some(&ck)));
    }

    let input = dir.join("events.csv");
    match events::write_file(&input, seed, n) {
        Ok(bytes) => {
            ctx.file_mb = bytes as f64 / 1e6;
            reset_peak_rss();
            let t = Instant::now();
            match csv_loop(&input) {
                Ok(fired) => {
                    let secs = t.elapsed().as_secs_f64();
                    let mb = format!(",\"mb_per_s\":{:.1}", ctx.file_mb / secs);
                    emit("csv_baseline_loop", ctx, secs, fired, &mb);
                }
                Err(e) => report(Err(format!("w3 csv_baseline_loop failed: {e}"))),
            }
            for variant in ["csv_lines", "csv_source"] {
                if want(variant) {
                    report(csv_part(ctx, &input, bytes, seed, variant));
                }
            }
            let out = dir.join("output");
            for (variant, ckpt) in [("csv", None), ("csv_checkpoints_1s", Some(&*ck))] {
                if want(variant) {
                    report(csv(ctx, &input, ckpt));
                }
            }
            for (variant, ckpt) in [("csv_job", None), ("csv_job_checkpoints_1s", Some(&*ck))] {
                if want(variant) {
                    report(csv_job(ctx, &input, &out, ckpt));
                }
            }
        }
        Err(e) => report(Err(format!("w3: cannot write {}: {e}", input.display()))),
    }
    let _ = std::fs::remove_dir_all(&dir);
    i32::from(failed)
}
