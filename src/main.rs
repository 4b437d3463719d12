//! The `weir` command-line tool.

use std::process::ExitCode;

/// The `weir` command line.
#[derive(clap::Parser)]
#[command(name = "weir", about = "weir: a stream-centric dataflow engine")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// Subcommands (running `weir` alone runs the demo).
#[derive(clap::Subcommand)]
enum Command {
    /// Run the embedded demo job (word count over a generated corpus) and print its metrics.
    Demo(DemoArgs),
}

/// Flags of `weir demo`.
#[derive(clap::Args)]
struct DemoArgs {
    /// Lines of generated text.
    #[arg(long, default_value_t = 100_000)]
    lines: usize,
    /// Subtasks of the split and count stages.
    #[arg(long, default_value_t = 2)]
    parallelism: usize,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = <Cli as clap::Parser>::parse();
    let DemoArgs {
        lines,
        parallelism: par,
    } = match cli.command {
        Some(Command::Demo(a)) => a,
        None => DemoArgs {
            lines: 100_000,
            parallelism: 2,
        },
    };
    let rt = match weir::engine::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let started = std::time::Instant::now();
    match rt.block_on(weir::demo::word_count(lines, par)) {
        Ok(report) => {
            let secs = started.elapsed().as_secs_f64();
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
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}
