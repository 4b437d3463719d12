//! `recover` and `recover_with_retries` over the Rust operators.

use super::pyops::to_source;
use crate::mat::MatValue;
use crate::obj::{PyObj, py_cause, user_error};
use crate::pyfn::PyFn;
use crate::stages::unit_mat;
use pyo3::prelude::*;
use weir_graph::{ErrorKind, Flow, StageError};
use weir_operators::simple::try_recover;
use weir_operators::substream::try_recover_with_retries;

/// The Python exception for a stage error: the original one when user code raised it.
pub fn exception_of(py: Python<'_>, e: &StageError) -> Py<PyAny> {
    match py_cause(e) {
        Some(c) => c.value(py).clone().into_any().unbind(),
        None => crate::errors::to_py_err(py, e)
            .value(py)
            .clone()
            .into_any()
            .unbind(),
    }
}

// ---------------------------------------------------------------------------------------------
// recover

/// `f(exception)` for an upstream failure `e`: `None` when it returned `None` (or for a
/// cancellation, which is never recovered); its exception when it raised.
fn call_recovery<'py>(
    py: Python<'py>,
    f: &PyFn,
    e: &StageError,
) -> Result<Option<Bound<'py, PyAny>>, StageError> {
    if e.kind() == ErrorKind::Cancelled {
        return Ok(None);
    }
    let v = f
        .get()
        .bind(py)
        .call1((exception_of(py, e),))
        .map_err(|x| user_error(py, x))?;
    Ok((!v.is_none()).then_some(v))
}

/// `recover(f)`: on upstream failure emits `f(exception)` and completes (`None` propagates);
/// the Rust `try_recover`.
pub fn recover_flow(f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    let f = PyFn::new(f);
    let r = try_recover(move |e: &StageError| {
        crate::gil::with(|py| Ok(call_recovery(py, &f, e)?.map(PyObj::from_bound)))
    });
    unit_mat(r)
}

/// `recover_with_retries(attempts, f)`: on failure continues with the source `f(exception)`;
/// the Rust `try_recover_with_retries`, materializing the source in the Python run.
pub fn recover_retries_flow(attempts: usize, f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    let f = PyFn::new(f);
    let r = try_recover_with_retries(attempts, move |e: &StageError| {
        crate::gil::with(|py| match call_recovery(py, &f, e)? {
            Some(v) => to_source(&v).map(Some).map_err(|x| user_error(py, x)),
            None => Ok(None),
        })
    });
    unit_mat(r)
}
