//! `weir::cli` for Rust jobs: the standard job flags ([`JobArgs`]) and [`run_job`], which a job
//! calls from its own `main` to get logging, checkpoints, the UI/API/metrics server, signal
//! handling and documented exit codes around its pipeline.
//!
//! ```no_run
//! use weir::prelude::*;
//!
//! fn main() -> std::process::ExitCode {
//!     weir::cli::run_job("squares", |m: Materializer| async move {
//!         let g = Source::range(0u64, 1_000).map(|x| x * x).to_mat(Sink::ignore(), Keep::right);
//!         let (done, handle) = m.materialize(&g)?;
//!         done.await?;
//!         handle.wait().await?;
//!         Ok(())
//!     })
//! }
//! ```

use super::exit::Exit;
use super::serve::{self, Served};
use super::settings::{JobSettings, LogFormat, SettingsError, UiSettings, parse_duration};
use std::future::Future;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::{EngineError, Materializer, RunObserver, RunView};
use weir_graph::ErrorKind;

/// The flags every job accepts (`weir run` takes the same ones).
#[derive(Debug, Clone, clap::Args)]
pub struct JobArgs {
    /// Keep checkpoints in this directory (checkpoints are off without it).
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Time between checkpoints, e.g. `10s` or `500ms` (default 10s; needs --state-dir).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub checkpoint_interval: Option<Duration>,
    /// Start from this savepoint unless the state directory holds a checkpoint (needs --state-dir).
    #[arg(long, value_name = "DIR")]
    pub from_savepoint: Option<PathBuf>,
    /// Default parallelism of the job's stages.
    #[arg(long, value_name = "N")]
    pub parallelism: Option<usize>,
    /// Port of the web UI and HTTP API (0: any free port, the default).
    #[arg(long, value_name = "PORT", default_value_t = 0)]
    pub ui_port: u16,
    /// Serve Prometheus `/metrics` on this port too (it is always on the UI port).
    #[arg(long, value_name = "PORT")]
    pub metrics_port: Option<u16>,
    /// Address the UI and API listen on.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Token that cancel and savepoint calls must present (default: random, printed at start).
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Do not serve the UI, API and metrics.
    #[arg(long)]
    pub no_ui: bool,
}

impl JobArgs {
    /// The checked settings of a job named `name`.
    pub fn settings(&self, name: &str) -> Result<JobSettings, SettingsError> {
        let s = JobSettings {
            name: Some(name.to_owned()),
            state_dir: self.state_dir.clone(),
            checkpoint_interval: self.checkpoint_interval,
            from_savepoint: self.from_savepoint.clone(),
            parallelism: self.parallelism,
            ui: (!self.no_ui).then(|| UiSettings {
                port: self.ui_port,
                metrics_port: self.metrics_port,
                bind: self.bind,
                token: self.token.clone(),
            }),
            log_format: self.log_format,
        };
        s.check()?;
        Ok(s)
    }
}

/// Why a job could not run (its own failure is [`JobOutcome::Failed`]).
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// The settings do not fit together.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The tokio runtime did not start.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The UI/API server did not start.
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    /// The log filter (`WEIR_LOG` / `RUST_LOG`) does not parse.
    #[error(transparent)]
    Logging(#[from] super::logging::LoggingError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// How a job ended.
#[derive(Debug)]
pub enum JobOutcome {
    /// Its pipeline returned `Ok`.
    Finished,
    /// It was cancelled (signal or API); exit code 130.
    Cancelled,
    /// It failed with this error; exit code 1.
    Failed(EngineError),
}

impl JobOutcome {
    /// The exit code of the outcome.
    pub fn exit(&self) -> Exit {
        match self {
            Self::Finished => Exit::Ok,
            Self::Cancelled => Exit::Cancelled,
            Self::Failed(_) => Exit::Failed,
        }
    }
}

/// The runs a job started, so a signal can cancel them (also those starting after it) and the
/// outcome can tell a cancel.
#[derive(Default)]
struct Runs {
    runs: Mutex<Vec<RunView>>,
    signalled: AtomicBool,
}

impl RunObserver for Runs {
    fn run_started(&self, run: RunView) {
        if let Ok(mut v) = self.runs.lock() {
            if self.signalled.load(Ordering::SeqCst) {
                run.cancel();
            }
            v.push(run);
        }
    }
}

impl Runs {
    /// Records a signal and cancels every run; whether one was recorded before.
    fn signal(&self) -> bool {
        let again = self.signalled.swap(true, Ordering::SeqCst);
        if let Ok(v) = self.runs.lock() {
            v.iter().for_each(RunView::cancel);
        }
        again
    }
    fn signalled(&self) -> bool {
        self.signalled.load(Ordering::SeqCst)
    }
}

/// A job ready to run: its name and settings, and how long the UI stays up after it ends.
#[derive(Debug, Clone)]
pub struct Job {
    name: String,
    settings: JobSettings,
    linger: Option<Duration>,
}

impl Job {
    /// A job named `name` with `settings`.
    pub fn new(name: impl Into<String>, settings: JobSettings) -> Self {
        Self {
            name: name.into(),
            settings,
            linger: None,
        }
    }

    /// Keeps the UI and API serving for `d` after the job ended (until a signal).
    pub fn linger(mut self, d: Duration) -> Self {
        self.linger = Some(d);
        self
    }

    /// Runs `job` and returns its exit code, reporting a failure on stderr.
    pub fn run<F, Fut>(self, job: F) -> Exit
    where
        F: FnOnce(Materializer) -> Fut,
        Fut: Future<Output = Result<(), EngineError>>,
    {
        let name = self.name.clone();
        match self.try_run(job) {
            Ok(JobOutcome::Failed(e)) => {
                eprintln!("weir: job {name} failed: {e}");
                Exit::Failed
            }
            Ok(JobOutcome::Cancelled) => {
                eprintln!("weir: job {name} cancelled");
                Exit::Cancelled
            }
            Ok(JobOutcome::Finished) => Exit::Ok,
            Err(e @ (JobError::Settings(_) | JobError::Logging(_))) => {
                eprintln!("weir: {e}");
                Exit::Usage
            }
            Err(JobError::Serve(e)) if matches!(e.source, weir_ops::OpsError::BadToken) => {
                eprintln!("weir: job {name}: {e}");
                Exit::Usage
            }
            Err(e) => {
                eprintln!("weir: job {name}: {e}");
                Exit::Failed
            }
        }
    }

    /// Runs `job`: sets up logging, starts the UI/API server (its URL with the token on
    /// stderr), hands `job` a [`Materializer`] carrying the job's name, parallelism and
    /// checkpoints, and cancels its runs on SIGINT or SIGTERM (a second signal exits at once).
    pub fn try_run<F, Fut>(self, job: F) -> Result<JobOutcome, JobError>
    where
        F: FnOnce(Materializer) -> Fut,
        Fut: Future<Output = Result<(), EngineError>>,
    {
        self.settings.check()?;
        super::logging::init(self.settings.log_format)?;
        let rt = weir_engine::Runtime::new().map_err(JobError::Runtime)?;
        let runs = Arc::new(Runs::default());
        let observer: Arc<dyn RunObserver> = runs.clone();
        weir_engine::observe::add_observer(Arc::clone(&observer));
        let _hooks = Hooks {
            observer,
            signals: Some(signals(Arc::clone(&runs))?),
        };
        let served: Option<Served> = match &self.settings.ui {
            Some(ui) => Some(serve::start(ui)?),
            None => None,
        };
        if let Some(s) = &served {
            eprintln!("weir: job {} serving its UI at {}", self.name, s.ui_url());
            if let Some(a) = s.server().metrics_addr() {
                eprintln!(
                    "weir: job {} serving its metrics at http://{a}/metrics",
                    self.name
                );
            }
        }
        let m = self
            .settings
            .apply(Materializer::new().with_runtime(rt.handle()));
        let result = rt.block_on(job(m));
        // A run's handle cancels it when dropped, so a finished run's view may read as
        // cancelled: only a signal or the job's own cancellation error count.
        let cancelled = runs.signalled();
        let outcome = match result {
            _ if cancelled => JobOutcome::Cancelled,
            Ok(()) => JobOutcome::Finished,
            Err(EngineError::Stage(e)) if e.kind() == ErrorKind::Cancelled => JobOutcome::Cancelled,
            Err(e) => JobOutcome::Failed(e),
        };
        if let (Some(d), Some(_)) = (self.linger, &served)
            && !runs.signalled()
        {
            eprintln!(
                "weir: job {} ended; UI stays up for {}",
                self.name,
                humantime::format_duration(d)
            );
            linger(d, &runs);
        }
        drop(served);
        // Spans exported over OTLP (when configured) are sent before the job returns, once the
        // runs (which hold their spans) and their runtime are gone.
        drop(_hooks);
        drop(runs);
        drop(rt);
        weir_ops::logging::shutdown();
        Ok(outcome)
    }
}

/// What [`Job::try_run`] installed, removed when it returns (also on an early error).
struct Hooks {
    observer: Arc<dyn RunObserver>,
    signals: Option<(std::thread::JoinHandle<()>, signal_hook::iterator::Handle)>,
}

impl Drop for Hooks {
    fn drop(&mut self) {
        if let Some((t, h)) = self.signals.take() {
            h.close();
            let _ = t.join();
        }
        weir_engine::observe::remove_observer(&self.observer);
    }
}

/// Sleeps `d`, waking early once a signal arrived.
fn linger(d: Duration, runs: &Runs) {
    let until = std::time::Instant::now() + d;
    while std::time::Instant::now() < until && !runs.signalled() {
        let left = until.saturating_duration_since(std::time::Instant::now());
        std::thread::sleep(Duration::from_millis(50).min(left));
    }
}

/// A thread cancelling the job's runs on the first SIGINT/SIGTERM and exiting with 130 on the
/// second; the handle closes it.
fn signals(
    runs: Arc<Runs>,
) -> Result<(std::thread::JoinHandle<()>, signal_hook::iterator::Handle), JobError> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut s =
        signal_hook::iterator::Signals::new([SIGINT, SIGTERM]).map_err(JobError::Signals)?;
    let handle = s.handle();
    let t = std::thread::Builder::new()
        .name("weir-signals".into())
        .spawn(move || {
            for _ in s.forever() {
                if runs.signal() {
                    std::process::exit(i32::from(Exit::Cancelled.code()));
                }
            }
        })
        .map_err(JobError::Signals)?;
    Ok((t, handle))
}

/// Parses the job flags of a program named `name` from the command line (printing help or a
/// usage error and exiting 2 as clap does) and runs `job` with them; the process's exit code.
pub fn run_job<F, Fut>(name: &str, job: F) -> std::process::ExitCode
where
    F: FnOnce(Materializer) -> Fut,
    Fut: Future<Output = Result<(), EngineError>>,
{
    run_job_with(name, |m, _: NoArgs| job(m))
}

/// No flags beyond the job flags.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct NoArgs {}

/// [`run_job`] for a job with flags of its own (`A`, a clap `Args`), parsed with the job flags.
pub fn run_job_with<A, F, Fut>(name: &str, job: F) -> std::process::ExitCode
where
    A: clap::Args + clap::FromArgMatches,
    F: FnOnce(Materializer, A) -> Fut,
    Fut: Future<Output = Result<(), EngineError>>,
{
    run_job_from(name, std::env::args_os(), job).into()
}

/// [`run_job_with`] on the command line `argv` (its first item is the program name); the exit.
pub fn run_job_from<A, F, Fut, I, T>(name: &str, argv: I, job: F) -> Exit
where
    A: clap::Args + clap::FromArgMatches,
    F: FnOnce(Materializer, A) -> Fut,
    Fut: Future<Output = Result<(), EngineError>>,
    I: IntoIterator<Item = T>,
    T: Into<std::ffi::OsString> + Clone,
{
    let cmd = A::augment_args(<JobArgs as clap::Args>::augment_args(clap::Command::new(
        name.to_owned(),
    )));
    let parsed = cmd.try_get_matches_from(argv).and_then(|m| {
        Ok((
            <JobArgs as clap::FromArgMatches>::from_arg_matches(&m)?,
            A::from_arg_matches(&m)?,
        ))
    });
    let (args, extra) = match parsed {
        Ok(p) => p,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                Exit::Usage
            } else {
                Exit::Ok
            };
        }
    };
    let settings = match args.settings(name) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{name}: {e}");
            return Exit::Usage;
        }
    };
    Job::new(name, settings).run(|m| job(m, extra))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prelude::*;

    #[derive(Debug, clap::Args)]
    struct Extra {
        /// Elements to count.
        #[arg(long)]
        count: u64,
    }

    #[test]
    fn a_job_gets_its_own_flags_and_a_configured_materializer() {
        let seen = Arc::new(Mutex::new(None));
        let s2 = Arc::clone(&seen);
        let exit = run_job_from(
            "counting",
            ["counting", "--no-ui", "--parallelism", "3", "--count", "7"],
            move |m: Materializer, extra: Extra| async move {
                let g = Source::range(0u64, extra.count)
                    .to_mat(Sink::fold(0u64, |n, _| n + 1), Keep::right);
                let plan = m.plan(&g)?;
                let (sum, h) = m.materialize(&g)?;
                let n = sum.await?;
                h.wait().await?;
                *s2.lock().unwrap() = Some((n, plan.islands[0].parallelism));
                Ok(())
            },
        );
        assert_eq!(exit, Exit::Ok);
        // The range source takes the run's parallelism 3 (its subtasks split the range).
        assert_eq!(*seen.lock().unwrap(), Some((7, 3)));
    }

    #[test]
    fn a_failing_job_exits_1_and_bad_flags_exit_2() {
        let exit = run_job_from("failing", ["failing", "--no-ui"], |_m, _: NoArgs| async {
            Err(EngineError::Stage(StageError::user("boom")))
        });
        assert_eq!(exit, Exit::Failed);
        let never = |_m, _: NoArgs| async { Ok(()) };
        assert_eq!(
            run_job_from("j", ["j", "--parallelism", "0", "--no-ui"], never),
            Exit::Usage
        );
        assert_eq!(
            run_job_from("j", ["j", "--paralelism", "2"], never),
            Exit::Usage
        );
        assert_eq!(
            run_job_from("j", ["j", "--checkpoint-interval", "1s", "--no-ui"], never),
            Exit::Usage
        );
        assert_eq!(run_job_from("j", ["j", "--help"], never), Exit::Ok);
    }
}
