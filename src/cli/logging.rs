//! Log set-up of a job process: `tracing` events to stderr as text or JSON lines, filtered by
//! `WEIR_LOG` (else `RUST_LOG`, else `warn`).

use super::settings::LogFormat;
use tracing_subscriber::EnvFilter;

/// Installs the process's log subscriber; a no-op when one is installed already.
pub fn init(format: LogFormat) {
    let filter = std::env::var("WEIR_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new("warn"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => b.try_init(),
        LogFormat::Json => b.json().try_init(),
    };
}
