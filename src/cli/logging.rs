//! Log set-up of a job process, through `weir_ops::logging` (the one set-up of the project):
//! `tracing` events to stderr as text or JSON lines, filtered by `WEIR_LOG`, else `RUST_LOG`.

use super::settings::LogFormat;
pub use weir_ops::logging::LoggingError;

/// Installs the process's log subscriber; a subscriber installed already is kept (`Ok`), a
/// filter that does not parse is an error.
pub fn init(format: LogFormat) -> Result<(), LoggingError> {
    let f = match format {
        LogFormat::Text => weir_ops::logging::LogFormat::Text,
        LogFormat::Json => weir_ops::logging::LogFormat::Json,
    };
    match weir_ops::logging::init(f) {
        Err(LoggingError::AlreadySet) => Ok(()),
        r => r,
    }
}
