//! `weir-bench w3-job`: W3 as a restartable job. The file source reads `key,value,ts_ms` lines
//! (CSV, byte-offset snapshots), `assign_timestamps` with 100 ms bounded out-of-orderness,
//! `window_by(key)` into 1 s tumbling event-time windows summed by the built-in `Sum`, and the
//! transactional file sink writes `key,window_start_ms,sum` lines into part files. With
//! `--checkpoint-interval-ms MS` above 0 the run checkpoints into the state directory every MS
//! and, started again on the same directory, resumes from the latest complete checkpoint.
//!
//! A run that restored prints `w3-job: restored checkpoint ID in MS ms` on stderr once started
//! (the time to read, verify and restore it), and `start_ms` in its JSON line.
//!
//! Throttled (`--rate`), the run's batches hold 10 ms of events (at most the engine's 1,024
//! rows), so a barrier queues behind a few batches rather than seconds of input.
//!
//! A late element (none in W3 input, whose events lag at most 99 ms) is written as a
//! `late,key,value,ts_ms` line, never dropped. Every stateful stage has a stable `.uid(..)`.

use super::events::{Event, push_int};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weir::engine::{CheckpointConfig, Checkpoints};
use weir::operators::file::{CsvOptions, CsvRecord, FileSink, FileSource, Files};
use weir::operators::time::{Timestamped, WatermarkStrategy};
use weir::operators::window::{Builtin, Num, WindowOutput, Windows};
use weir::prelude::*;

/// What the window stage emits.
pub type Output = WindowOutput<u32, Num, Event>;

/// Decodes one `key,value,ts_ms` record (exactly three integer fields).
pub fn decode(r: CsvRecord<'_>) -> Result<Event, String> {
    if r.len() != 3 {
        return Err(format!(
            "expected 3 fields key,value,ts_ms, got {}",
            r.len()
        ));
    }
    let f = |e: weir::operators::file::CsvFieldError| e.to_string();
    Ok(Event {
        key: r.int(0).map_err(f)?,
        value: r.int(1).map_err(f)?,
        ts: r.int(2).map_err(f)?,
    })
}

/// Writes one window result as `key,window_start_ms,sum` (a late element as
/// `late,key,value,ts_ms`).
pub fn encode(o: &Output, out: &mut Vec<u8>) {
    match o {
        WindowOutput::Fired { key, window, value } => {
            push_int(out, i128::from(*key));
            out.push(b',');
            push_int(out, i128::from(window.start));
            out.push(b',');
            match value {
                Num::Int(v) => push_int(out, *v),
                Num::Float(v) => out.extend_from_slice(v.to_string().as_bytes()),
            }
        }
        WindowOutput::Late { key, element } => {
            out.extend_from_slice(b"late,");
            push_int(out, i128::from(*key));
            out.push(b',');
            push_int(out, i128::from(element.value.value));
            out.push(b',');
            push_int(out, i128::from(element.ts));
        }
    }
}

/// Events -> timestamps and watermarks (100 ms bound) -> 1 s tumbling sums per key.
pub fn windows<M>(events: Source<Event, M>) -> Source<Output, M>
where
    M: Send + 'static,
{
    sums(timestamps(events))
}

/// Events -> timestamps and watermarks (100 ms bound).
pub fn timestamps<M>(events: Source<Event, M>) -> Source<Timestamped<Event>, M>
where
    M: Send + 'static,
{
    events
        .assign_timestamps(
            |e: &Event| e.ts,
            WatermarkStrategy::bounded_out_of_orderness(Duration::from_millis(100)),
        )
        .uid("w3-timestamps")
}

/// Timestamped events -> 1 s tumbling sums per key.
pub fn sums<M>(events: Source<Timestamped<Event>, M>) -> Source<Output, M>
where
    M: Send + 'static,
{
    events
        .window_by(
            |e: &Timestamped<Event>| e.value.key,
            Windows::tumbling(Duration::from_secs(1)),
        )
        .checkpointed()
        .aggregate(Builtin::Sum)
        .uid("w3-windows")
}

/// The job's graph: `input` through the windows into part files under `output`, the source
/// throttled to `rate` events per second when given.
pub fn graph(
    input: &Path,
    output: &Path,
    rate: Option<u64>,
) -> RunnableGraph<SinkFuture<Vec<PathBuf>>> {
    let src = FileSource::new(Files::path(input))
        .csv(CsvOptions::default(), decode)
        .uid("w3-source");
    let src = match rate {
        // Tokens every 1/rate s, bursts of 10 ms worth (whole batches move at a time).
        Some(r) => src
            .throttle(
                usize::try_from(r).unwrap_or(usize::MAX),
                Duration::from_secs(1),
                usize::try_from(r / 100).unwrap_or(usize::MAX).max(1),
            )
            .uid("w3-throttle"),
        None => src,
    };
    windows(src).to_mat(
        FileSink::new(output).lines(encode).uid("w3-sink"),
        Keep::right,
    )
}

/// The settings of one `w3-job` run.
#[derive(Debug, Clone)]
pub struct JobArgs {
    /// The events file.
    pub input: PathBuf,
    /// The part files' directory.
    pub output: PathBuf,
    /// The checkpoints' directory.
    pub state_dir: PathBuf,
    /// Time between checkpoints; 0: no checkpoints.
    pub checkpoint_interval_ms: u64,
    /// Events per second the source is throttled to.
    pub rate: Option<u64>,
}

/// What a completed run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    /// Events the source read in this run.
    pub events: u64,
    /// Part files committed in this run.
    pub committed_parts: usize,
    /// Complete checkpoints observed in this run.
    pub checkpoints_completed: u64,
    /// The newest checkpoint completed in this run.
    pub last_checkpoint: Option<u64>,
    /// The checkpoint this run restored from.
    pub restored_from: Option<u64>,
    /// How long starting the run took (reading, verifying and restoring its checkpoint).
    pub start_ms: f64,
}

/// Counts checkpoint completions until aborted.
async fn count_completions(ck: Arc<Checkpoints>, count: Arc<AtomicU64>) {
    let mut next = 1;
    loop {
        ck.wait_completed(next).await;
        count.fetch_add(1, Ordering::Relaxed);
        next = ck.latest_completed().unwrap_or(next) + 1;
    }
}

/// Runs the job to its end on `rt`.
pub fn run(rt: &weir::engine::Runtime, args: &JobArgs) -> Result<JobReport, String> {
    if !args.input.is_file() {
        return Err(format!(
            "--input {}: no such file",
            args.input.to_string_lossy()
        ));
    }
    let mut m = Materializer::new();
    if let Some(r) = args.rate {
        // Batches of 10 ms at the rate: a barrier waits behind a few of them, not seconds.
        m = m.with_batch_size(usize::try_from(r / 100).unwrap_or(1024).clamp(1, 1024));
    }
    if args.checkpoint_interval_ms > 0 {
        m = m.with_checkpoints(CheckpointConfig::new(
            Duration::from_millis(args.checkpoint_interval_ms),
            &args.state_dir,
        ));
    }
    let g = graph(&args.input, &args.output, args.rate);
    rt.block_on(async {
        let started = Instant::now();
        let (committed, h) = m.materialize(&g).map_err(|e| e.to_string())?;
        let start_ms = started.elapsed().as_secs_f64() * 1e3;
        if let Some(id) = h.checkpoints().and_then(|c| c.restored()) {
            // A killed run prints nothing else: the crash harness reads restore times here.
            eprintln!("w3-job: restored checkpoint {id} in {start_ms:.3} ms");
        }
        let completions = Arc::new(AtomicU64::new(0));
        let ck = h.checkpoints();
        let counter = ck
            .clone()
            .map(|c| tokio::spawn(count_completions(c, Arc::clone(&completions))));
        let result = committed.await;
        let waited = h.wait().await;
        if let Some(t) = counter {
            t.abort();
        }
        let committed = result.map_err(|e| e.to_string())?;
        waited.map_err(|e| e.to_string())?;
        let events = h
            .metrics()
            .iter()
            .filter(|s| s.path.starts_with("file_csv"))
            .map(|s| s.elements_out)
            .sum();
        Ok(JobReport {
            events,
            committed_parts: committed.len(),
            checkpoints_completed: completions.load(Ordering::Relaxed),
            last_checkpoint: ck.as_ref().and_then(|c| c.latest_completed()),
            restored_from: ck.as_ref().and_then(|c| c.restored()),
            start_ms,
        })
    })
}

fn opt(v: Option<u64>) -> String {
    v.map_or_else(|| "null".to_owned(), |v| v.to_string())
}

/// `w3-job`: runs the job, prints its JSON line; exit code 1 with the error on stderr.
pub fn main(args: &JobArgs) -> i32 {
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("w3-job: runtime: {e}");
            return 1;
        }
    };
    let t = Instant::now();
    match run(&rt, args) {
        Ok(r) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{{\"workload\":\"w3_job\",\"events\":{},\"seconds\":{secs:.6},\"events_per_s\":{:.4e},\"checkpoints_completed\":{},\"last_checkpoint\":{},\"restored_from\":{},\"start_ms\":{:.3},\"committed_parts\":{}}}",
                r.events,
                r.events as f64 / secs,
                r.checkpoints_completed,
                opt(r.last_checkpoint),
                opt(r.restored_from),
                r.start_ms,
                r.committed_parts
            );
            0
        }
        Err(e) => {
            eprintln!("w3-job failed: {e}");
            1
        }
    }
}
