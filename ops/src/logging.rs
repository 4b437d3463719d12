//! Process-wide logging set-up for job processes: `tracing` events (with the engine's `run`,
//! `island` and `checkpoint` spans) to stderr, as text or JSON lines, filtered by `WEIR_LOG`,
//! else `RUST_LOG`, else `info`; with the `otlp` feature and an OTLP endpoint in the
//! environment, the same spans are exported too (`crate::otlp`), and [`shutdown`] sends the last.

use std::io::IsTerminal as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line (fields, level, target, the span path).
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    /// The filter in `WEIR_LOG` / `RUST_LOG` does not parse.
    #[error("invalid log filter '{filter}' in {var}: {reason}")]
    Filter {
        /// The variable it came from.
        var: &'static str,
        /// The filter text.
        filter: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A global subscriber was set already (by this function or another).
    #[error("a global tracing subscriber is already set")]
    AlreadySet,
    /// OTLP export was asked for and cannot be set up.
    #[cfg(feature = "otlp")]
    #[error(transparent)]
    Otlp(#[from] crate::otlp::OtlpError),
}

/// The filter directives in force: `WEIR_LOG`, else `RUST_LOG`, else `info`, with the variable
/// they came from.
pub fn filter_from_env() -> (&'static str, String) {
    for var in ["WEIR_LOG", "RUST_LOG"] {
        if let Ok(v) = std::env::var(var)
            && !v.trim().is_empty()
        {
            return (var, v);
        }
    }
    ("default", "info".to_owned())
}

/// Parses filter directives (`info,weir_engine=debug`).
pub fn parse_filter(var: &'static str, filter: &str) -> Result<EnvFilter, LoggingError> {
    EnvFilter::builder()
        .parse(filter)
        .map_err(|e| LoggingError::Filter {
            var,
            filter: filter.to_owned(),
            reason: e.to_string(),
        })
}

/// Installs the process's global subscriber writing `format` lines to stderr, filtered as
/// [`filter_from_env`] says (and exporting the spans at `info` and above over OTLP when
/// configured, feature `otlp`).
pub fn init(format: LogFormat) -> Result<(), LoggingError> {
    let (var, directives) = filter_from_env();
    let filter = parse_filter(var, &directives)?;
    // Colours only for a terminal: piped or captured lines stay plain.
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .boxed(),
    };
    let registry = tracing_subscriber::registry().with(fmt.with_filter(filter));
    // The export gets the spans at `info` and above (`run`, `checkpoint`) whatever the stderr
    // filter lets through: `WEIR_LOG=warn` quiets the log, not the traces.
    #[cfg(feature = "otlp")]
    let registry = registry.with(
        crate::otlp::layer()?.map(|l| l.with_filter(tracing_subscriber::filter::LevelFilter::INFO)),
    );
    registry.try_init().map_err(|_| LoggingError::AlreadySet)
}

/// Sends the spans not yet exported (feature `otlp`; nothing to do otherwise): call it before
/// the process exits.
pub fn shutdown() {
    #[cfg(feature = "otlp")]
    crate::otlp::shutdown();
}
