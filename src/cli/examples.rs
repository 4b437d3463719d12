//! The built-in Rust jobs of `weir run --example NAME` and `weir visualize --example NAME`.

use super::exit::Exit;
use super::job::Job;
use crate::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use crate::viz::{self, Format};

/// A built-in job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Example {
    /// The word count of `weir demo`: a generated corpus split, counted by key in RocksDB and
    /// ranked; finishes and prints its report.
    Demo,
    /// Ticks through a throttle and a map into a sink until cancelled (for the UI and tests).
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
            par: usize,
            format: Format,
            physical: bool,
        ) -> Result<String, EngineError> {
            if physical {
                let plan = Materializer::new().with_parallelism(par).plan(g)?;
                Ok(viz::render_physical(&plan, format))
            } else {
                Ok(viz::render_logical(g.module(), format))
            }
        }
        match self {
            Self::Demo => {
                let corpus = Arc::new(crate::demo::zipf_corpus(o.lines.min(1_000), 10, 10_000, 42));
                let g = crate::demo::word_count_graph(corpus, o.parallelism);
                one(&g, o.parallelism, format, physical)
            }
            Self::Ticker => one(&ticker_graph(o.rate, o.parallelism), o.parallelism, format, physical),
        }
    }

    /// Runs the example as `job`; the exit code.
    pub fn run(self, job: Job, checkpoints: Option<weir_engine::CheckpointConfig>, o: ExampleOptions) -> Exit {
        match self {
            Self::Demo => job.run(move |m| async move {
                let started = std::time::Instant::now();
                let report = crate::demo::word_count_on(m, o.lines, o.parallelism, checkpoints).await?;
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

/// The ticker: `ticks` (0, 1, 2, ...) -> `throttle` (`rate` per second) -> `square` x
/// `parallelism` -> `sink`; runs until cancelled.
pub fn ticker_graph(rate: usize, parallelism: usize) -> RunnableGraph<SinkFuture<()>> {
    let rate = rate.max(1);
    Source::range(0u64, u64::MAX)
        .named("ticks")
        .uid("ticks")
        .parallelism(1)
        .throttle(rate, Duration::from_secs(1), rate)
        .named("throttle")
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
