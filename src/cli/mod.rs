//! The `weir` command line and the helper Rust jobs call from their own `main`.
//!
//! - [`run_job`] / [`run_job_with`]: parse the standard job flags ([`JobArgs`]: `--state-dir`,
//!   `--checkpoint-interval`, `--from-savepoint`, `--parallelism`, `--ui-port`,
//!   `--metrics-port`, `--bind`, `--token`, `--log-format`, `--no-ui`), set up logging, serve the
//!   UI/API/metrics, run the job with a configured [`weir_engine::Materializer`], exit with the
//!   codes of [`Exit`].
//! - [`JobSettings`]: the same settings as `WEIR_*` environment variables, which `weir run`
//!   hands to a Python child and the Python extension reads back.
//!
//! The command line itself is documented in docs/cli.md.

#[doc(hidden)]
pub mod app;
mod child;
pub mod client;
mod cluster;
mod coord;
mod discover;
pub mod examples;
mod exit;
mod job;
mod logging;
mod serve;
mod settings;

pub use exit::{EXIT_CODES_HELP, Exit};
pub use job::{Job, JobArgs, JobError, JobOutcome, NoArgs, run_job, run_job_from, run_job_with};
pub use logging::{LoggingError, init as init_logging};
pub use serve::{ServeError, Served, start as serve};
pub use settings::{
    DEFAULT_CHECKPOINT_INTERVAL, JobSettings, LogFormat, SettingsError, UiSettings, env,
    parse_duration,
};
