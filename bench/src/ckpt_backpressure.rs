//! `weir-bench ckpt-backpressure`: checkpoints under sustained backpressure (RELIABILITY S7).
//! The W3 windows (generated events, 100 ms bounded out-of-orderness, 1 s tumbling sums per
//! key, checkpointed) run from an unthrottled source into a deliberately slow sink that takes
//! `--sink-rate` records per second, with a checkpoint every `--interval-ms` (1 s) into a fresh
//! directory, for `--ms` of wall time; then the run is cancelled. One JSON line: checkpoints
//! due, completed and failed, their duration (barrier trigger to completion) p50/p99/max from
//! `Checkpoints::durations()`, the events read and the records the sink took per second.
//!
//! `cargo run --release -p weir-bench -- ckpt-backpressure --ms 10000 --sink-rate 20000`

use crate::w3::{events, job};
use futures::FutureExt;
use futures::future::BoxFuture;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use weir::engine::CheckpointConfig;
use weir::graph::{AsyncIo, AsyncLogic, Control, Event, Signal, StageError};
use weir::prelude::*;

/// Command line of `weir-bench ckpt-backpressure`.
#[derive(clap::Args)]
#[command(about = "checkpoint durations of a W3 window job into a slow sink")]
pub struct Args {
    /// Wall time of the run in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    ms: u64,
    /// Records per second the sink takes; accepts `2e4`.
    #[arg(long, default_value_t = 20_000, value_parser = crate::parse_count)]
    sink_rate: u64,
    /// Time between checkpoints.
    #[arg(long, default_value_t = 1_000)]
    interval_ms: u64,
    /// Seeds the events.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The checkpoint directory, cleared first (default: a fresh one under the temporary
    /// directory, removed after).
    #[arg(long)]
    dir: Option<PathBuf>,
}

/// A sink that takes at most `rate` records per second: after each batch it waits until the
/// records so far are due at that rate, and acknowledges each barrier once it took every
/// record before it.
///
/// - **emits when** never (a sink); counts the records it took
/// - **backpressures when** the records it took are ahead of `rate`
/// - **completes when** upstream completes
/// - **cancels when** the run is cancelled
/// - **fails when** upstream fails
struct SlowSink {
    rate: u64,
    taken: Arc<AtomicU64>,
}

impl AsyncLogic for SlowSink {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<job::Output>(0)?;
            let ck = io.checkpoint.clone();
            let start = tokio::time::Instant::now();
            let mut taken = 0u64;
            loop {
                match input.recv_signal().await {
                    Signal::Event(Event::Batch(b)) => {
                        taken += b.len() as u64;
                        self.taken.store(taken, Ordering::Relaxed);
                        let due = Duration::from_secs_f64(taken as f64 / self.rate as f64);
                        tokio::time::sleep_until(start + due).await;
                    }
                    Signal::Control(Control::Barrier { id }) => {
                        if let Some(ck) = &ck {
                            ck.ack(id, None);
                        }
                    }
                    Signal::Control(_) => {}
                    Signal::Event(Event::End) => return Ok(()),
                    Signal::Event(Event::Error(e)) => return Err(e),
                }
            }
        }
        .boxed()
    }

    fn handles_control(&self) -> bool {
        true
    }
}

/// The `q` quantile of `sorted` (nearest rank), in milliseconds.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .map_or(0.0, |d| d.as_secs_f64() * 1e3)
}

/// Runs the measurement; the process's exit code.
pub fn main(args: Args) -> i32 {
    if args.sink_rate == 0 || args.interval_ms == 0 {
        eprintln!("ckpt-backpressure: --sink-rate and --interval-ms must be above 0");
        return 2;
    }
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ckpt-backpressure: runtime: {e}");
            return 1;
        }
    };
    let own_dir = args.dir.is_none();
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("weir-ckpt-bp-{}", std::process::id()))
    });
    let _ = std::fs::remove_dir_all(&dir);
    let read = Arc::new(AtomicU64::new(0));
    let taken = Arc::new(AtomicU64::new(0));
    let seed = args.seed;
    let r = Arc::clone(&read);
    let src = Source::range(0u64, u64::MAX)
        .map(move |i| {
            r.store(i + 1, Ordering::Relaxed);
            events::event(seed, i)
        })
        .uid("ckpt-bp-generator");
    let (rate, t) = (args.sink_rate, Arc::clone(&taken));
    let sink = Sink::from_async("slow_sink", move |_| {
        Ok((
            SlowSink {
                rate,
                taken: Arc::clone(&t),
            },
            (),
        ))
    });
    let g = job::windows(src).to_mat(sink, Keep::left);
    let interval = Duration::from_millis(args.interval_ms);
    let m = Materializer::new().with_checkpoints(CheckpointConfig::new(interval, &dir));
    crate::reset_peak_rss();
    let started = Instant::now();
    let outcome = rt.block_on(async {
        let ((), h) = m.materialize(&g).map_err(|e| e.to_string())?;
        let ran = tokio::time::timeout(Duration::from_millis(args.ms), h.wait()).await;
        if let Ok(r) = ran {
            return Err(format!("the run ended early: {r:?}"));
        }
        let secs = started.elapsed().as_secs_f64();
        h.cancel();
        let _ = h.wait().await;
        let ck = h.checkpoints().ok_or("the run has no checkpoints")?;
        Ok((secs, ck.durations(), ck.failed()))
    });
    if own_dir {
        let _ = std::fs::remove_dir_all(&dir);
    }
    let (secs, durations, failed) = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("ckpt-backpressure failed: {e}");
            return 1;
        }
    };
    let mut d: Vec<Duration> = durations.iter().map(|(_, d)| *d).collect();
    d.sort_unstable();
    let due = args.ms / args.interval_ms;
    let read = read.load(Ordering::Relaxed);
    let taken = taken.load(Ordering::Relaxed);
    println!(
        "{{\"workload\":\"ckpt_backpressure\",\"ms\":{},\"sink_rate\":{},\"interval_ms\":{},\"seconds\":{secs:.3},\"checkpoints_due\":{due},\"checkpoints_completed\":{},\"checkpoints_failed\":{},\"duration_p50_ms\":{:.1},\"duration_p99_ms\":{:.1},\"duration_max_ms\":{:.1},\"events_per_s\":{:.4e},\"sink_records_per_s\":{:.4e},\"peak_rss_mb\":{:.1}}}",
        args.ms,
        args.sink_rate,
        args.interval_ms,
        d.len(),
        failed.len(),
        quantile_ms(&d, 0.5),
        quantile_ms(&d, 0.99),
        quantile_ms(&d, 1.0),
        read as f64 / secs,
        taken as f64 / secs,
        crate::peak_rss_mb(),
    );
    0
}
