//! The `weir` command-line tool.

use std::process::ExitCode;

const USAGE: &str = "usage: weir demo [--lines N] [--parallelism P]\n\n\
  demo   run the embedded demo job (word count over a generated corpus) and print its metrics";

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> Result<T, String> {
    match args.iter().position(|a| a == name) {
        None => Ok(default),
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{name} needs a number")),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") | None => {}
        Some("-h" | "--help" | "help") => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => {
            eprintln!("unknown command '{other}'\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let (lines, par) = match (
        arg(&args, "--lines", 100_000usize),
        arg(&args, "--parallelism", 2usize),
    ) {
        (Ok(l), Ok(p)) => (l, p),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
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
