//! The built-in Rust jobs of `weir run --example NAME` and `weir visualize --example NAME`.

use super::exit::Exit;
use super::job::Job;
use crate::prelude::*;
use crate::viz::{self, Format};
use std::sync::Arc;
use std::time::Duration;

/// A built-in job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Example {
    /// The word count of `weir demo`: a generated corpus split, counted by key in RocksDB and
    /// ranked; finishes and prints its report.
    Demo,
    /// Ticks through a map into a sink until cancelled (for the UI and tests).
    Ticker,
}

/// What the examples take from the command line.
#[derive(Debug, Clone, Copy)]
pub struct ExampleOptions {
    /// Lines of the demo's corpus.
    pub lines: usize,
    /// Ticks per second of the ticker.
    pub rate: usize,
    /// Subtasks of the demo's split and count stages, of the ticker's map.
    pub parallelism: usize,
    /// The run's default parallelism (`--parallelism`), for stages that set none.
    pub run_parallelism: Option<usize>,
}

impl Example {
    /// The example's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Demo => "demo",
            Self::Ticker => "ticker",
        }
    }

    /// The example's logical graph, or its physical plan at `o.parallelism`, in `format`
    /// (nothing runs).
    pub fn render(
        self,
        o: &ExampleOptions,
        format: Format,
        physical: bool,
    ) -> Result<String, EngineError> {
        fn one<M: Send + 'static>(
            g: &RunnableGraph<M>,
            par: Option<usize>,
            format: Format,
            physical: bool,
        ) -> Result<String, EngineError> {
            if physical {
                let m = Materializer::new();
                let m = match par {
                    Some(p) => m.with_parallelism(p),
                    None => m,
                };
                let plan = m.plan(g)?;
                Ok(viz::render_physical(&plan, format))
            } else {
                Ok(viz::render_logical(g.module(), format))
            }
        }
        match self {
            Self::Demo => {
                let corpus = Arc::new(crate::demo::zipf_corpus(o.lines.min(1_000), 10, 10_000, 42));
                let g = crate::demo::word_count_graph(corpus, o.parallelism);
                one(&g, o.run_parallelism, format, physical)
            }
            Self::Ticker => one(
                &ticker_graph(o.rate, o.parallelism),
                o.run_parallelism,
                format,
                physical,
            ),
        }
    }

    /// Runs the example as `job`; the exit code.
    pub fn run(
        self,
        job: Job,
        checkpoints: Option<weir_engine::CheckpointConfig>,
        o: ExampleOptions,
    ) -> Exit {
        match self {
            Self::Demo => job.run(move |m| async move {
                let started = std::time::Instant::now();
                let report =
                    crate::demo::word_count_on(m, o.lines, o.parallelism, checkpoints).await?;
                print_report(&report, started.elapsed().as_secs_f64(), o.parallelism);
                Ok(())
            }),
            Self::Ticker => job.run(move |m| async move {
                let g = ticker_graph(o.rate, o.parallelism);
                let (done, handle) = m.materialize(&g)?;
                done.await?;
                handle.wait().await?;
                Ok(())
            }),
        }
    }
}

/// The ticker: `ticks` (a `1` every `1 / rate` seconds) -> `square` x `parallelism` -> `sink`;
/// runs until cancelled, and checkpoints when the run does.
pub fn ticker_graph(rate: usize, parallelism: usize) -> RunnableGraph<SinkFuture<()>> {
    let every = Duration::from_secs(1) / u32::try_from(rate.max(1)).unwrap_or(u32::MAX);
    Source::tick(Duration::ZERO, every, 1u64)
        .named("ticks")
        .uid("ticks")
        .map(|x: u64| x.wrapping_mul(x))
        .named("square")
        .parallelism(parallelism.max(1))
        .to_mat(Sink::ignore().named("sink"), Keep::right)
}

/// Prints the demo's report on stdout, as `weir demo` does.
pub fn print_report(report: &crate::demo::DemoReport, secs: f64, par: usize) {
    println!(
        "word count: {} words, {} distinct, {:.1} ms ({:.2e} words/s), parallelism {par}",
        report.total,
        report.distinct,
        secs * 1e3,
        report.total as f64 / secs
    );
    println!(
        "state: counts in a RocksDB backend, checkpoints completed: {}",
        report.checkpoints
    );
    println!("top words:");
    for (w, c) in &report.top {
        println!("  {w:<12} {c}");
    }
    println!("stages (subtask: in -> out, batches, busy ms):");
    for m in &report.metrics {
        println!(
            "  {:<14} #{}: {:>9} -> {:>9}, {:>6} batches, {:>7.1} ms",
            m.path,
            m.subtask,
            m.elements_in,
            m.elements_out,
            m.batches_in,
            m.busy_ns as f64 / 1e6
        );
    }
}
