//! Checkpoint settings of a Python run (`run(state_dir=, checkpoint_interval=, retain=,
//! restore_from=, allow_unmatched=)`) mapped onto the engine's `CheckpointConfig`, and the
//! pending savepoint a run handle returns.

use crate::errors::WeirError;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;
use weir_engine::CheckpointConfig;
use weir_engine::checkpoint::CheckpointError;

/// The interval when `state_dir` is given without one (seconds).
pub const DEFAULT_INTERVAL_S: f64 = 10.0;

/// What a run's checkpoints are asked for from Python, before checking.
#[derive(Debug, Default)]
pub struct Settings {
    /// Where the run's checkpoints are kept (`None`: checkpoints off).
    pub state_dir: Option<PathBuf>,
    /// Seconds between barriers.
    pub interval: Option<f64>,
    /// Complete checkpoints kept.
    pub retain: Option<usize>,
    /// A savepoint to start from when `state_dir` holds no checkpoint.
    pub restore_from: Option<PathBuf>,
    /// Whether state of stages no longer in the graph is ignored.
    pub allow_unmatched: bool,
}

/// The checkpoint configuration of a run: `None` without `state_dir`; an interval, `retain`,
/// `restore_from` or `allow_unmatched` without `state_dir`, a non-positive interval or
/// `retain < 1` are a `ValueError`.
pub fn config(s: Settings) -> PyResult<Option<CheckpointConfig>> {
    let Some(dir) = s.state_dir else {
        if s.interval.is_some() || s.retain.is_some() {
            return Err(PyValueError::new_err(
                "run: checkpoint_interval and retain need state_dir (where checkpoints are kept)",
            ));
        }
        if s.restore_from.is_some() || s.allow_unmatched {
            return Err(PyValueError::new_err(
                "run: restore_from and allow_unmatched need state_dir (where the restored run keeps its checkpoints)",
            ));
        }
        return Ok(None);
    };
    let secs = s.interval.unwrap_or(DEFAULT_INTERVAL_S);
    let interval = match Duration::try_from_secs_f64(secs) {
        Ok(d) if !d.is_zero() => d,
        _ => {
            return Err(PyValueError::new_err(format!(
                "run: checkpoint_interval must be positive, got {secs}s"
            )));
        }
    };
    let mut c = CheckpointConfig::new(interval, dir);
    if let Some(n) = s.retain {
        if n == 0 {
            return Err(PyValueError::new_err(
                "run: retain must be at least 1, got 0",
            ));
        }
        c = c.retain(n);
    }
    if let Some(p) = s.restore_from {
        c = c.restore_from(p);
    }
    if s.allow_unmatched {
        c = c.allow_unmatched();
    }
    Ok(Some(c))
}

type Outcome = Option<Result<PathBuf, CheckpointError>>;

/// Where a savepoint's outcome lands once the engine wrote (or gave up on) it.
#[derive(Default)]
pub struct Slot {
    outcome: Mutex<Outcome>,
    ready: Condvar,
}

impl Slot {
    /// Records the savepoint's outcome and wakes every waiter.
    pub fn set(&self, r: Result<PathBuf, CheckpointError>) {
        *self.outcome.lock().unwrap_or_else(PoisonError::into_inner) = Some(r);
        self.ready.notify_all();
    }
}

/// A savepoint being taken: `done()`, `wait(timeout)` (blocking, without the GIL) and
/// `result()` give its directory or raise `WeirError` saying why it was not written.
#[pyclass(module = "weir._native", name = "Savepoint", frozen)]
pub struct PySavepoint {
    dir: PathBuf,
    slot: Arc<Slot>,
}

impl PySavepoint {
    /// A savepoint into `dir` whose outcome `slot` receives.
    pub fn new(dir: PathBuf, slot: Arc<Slot>) -> Self {
        Self { dir, slot }
    }

    fn outcome(&self) -> PyResult<Option<String>> {
        let o = self
            .slot
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match o.as_ref() {
            None => Ok(None),
            Some(Ok(p)) => Ok(Some(p.to_string_lossy().into_owned())),
            Some(Err(e)) => Err(WeirError::new_err(format!(
                "savepoint into {} failed: {e}",
                self.dir.display()
            ))),
        }
    }
}

#[pymethods]
impl PySavepoint {
    /// Whether the savepoint was written or failed.
    fn done(&self) -> bool {
        self.slot
            .outcome
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The savepoint's directory; raises `WeirError` if it failed or is not written yet.
    fn result(&self) -> PyResult<String> {
        self.outcome()?
            .ok_or_else(|| WeirError::new_err("the savepoint is not written yet"))
    }

    /// Blocks (without the GIL) until the savepoint is written or failed, at most `timeout`
    /// seconds (`None`: no limit); returns whether it is done.
    #[pyo3(signature = (timeout = None))]
    fn wait(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<bool> {
        let limit = match timeout {
            None => None,
            Some(t) => Some(Duration::try_from_secs_f64(t).map_err(|_| {
                PyValueError::new_err(format!(
                    "savepoint wait: timeout must be a non-negative number of seconds, got {t}"
                ))
            })?),
        };
        let slot = Arc::clone(&self.slot);
        Ok(py.detach(move || {
            let guard = slot.outcome.lock().unwrap_or_else(PoisonError::into_inner);
            match limit {
                None => slot
                    .ready
                    .wait_while(guard, |o| o.is_none())
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some(),
                Some(d) => slot
                    .ready
                    .wait_timeout_while(guard, d, |o| o.is_none())
                    .unwrap_or_else(PoisonError::into_inner)
                    .0
                    .is_some(),
            }
        }))
    }
}
