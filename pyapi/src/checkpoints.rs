//! Checkpoint settings of a Python run (`run(state_dir=, checkpoint_interval=, retain=)`)
//! mapped onto the engine's `CheckpointConfig`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::time::Duration;
use weir_engine::CheckpointConfig;

/// The interval when `state_dir` is given without one (seconds).
pub const DEFAULT_INTERVAL_S: f64 = 10.0;

/// The checkpoint configuration of a run: `None` without `state_dir`; an interval or `retain`
/// without `state_dir`, a non-positive interval or `retain < 1` are a `ValueError`.
pub fn config(
    state_dir: Option<PathBuf>,
    interval: Option<f64>,
    retain: Option<usize>,
) -> PyResult<Option<CheckpointConfig>> {
    let Some(dir) = state_dir else {
        if interval.is_some() || retain.is_some() {
            return Err(PyValueError::new_err(
                "run: checkpoint_interval and retain need state_dir (where checkpoints are kept)",
            ));
        }
        return Ok(None);
    };
    let s = interval.unwrap_or(DEFAULT_INTERVAL_S);
    let interval = match Duration::try_from_secs_f64(s) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            return Err(PyValueError::new_err(format!(
                "run: checkpoint_interval must be positive, got {s}s"
            )));
        }
    };
    let mut c = CheckpointConfig::new(interval, dir);
    if let Some(n) = retain {
        if n == 0 {
            return Err(PyValueError::new_err(
                "run: retain must be at least 1, got 0",
            ));
        }
        c = c.retain(n);
    }
    Ok(Some(c))
}
