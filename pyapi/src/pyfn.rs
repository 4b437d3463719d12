//! Python callables as the closures of the generic Rust operators: each call takes the GIL
//! through [`crate::gil::with`] (cheap on the run's dispatcher, where Python runs' islands run)
//! and turns a raised exception into the stage error naming the element.

use crate::obj::{PyObj, failure_on, user_error};
use pyo3::prelude::*;
use std::cmp::Ordering;
use std::sync::Arc;
use weir_graph::StageError;

/// A Python callable shared by the copies of an operator's closure (cloned without the GIL).
#[derive(Clone)]
pub struct PyFn(Arc<Py<PyAny>>);

impl PyFn {
    /// Wraps a callable.
    pub fn new(f: Py<PyAny>) -> Self {
        Self(Arc::new(f))
    }

    /// The callable.
    pub fn get(&self) -> &Py<PyAny> {
        &self.0
    }

    /// `f(x)`; an exception fails on `x`.
    pub fn call1(&self, x: &PyObj) -> Result<PyObj, StageError> {
        crate::gil::with(|py| {
            self.0
                .bind(py)
                .call1((x.0.bind(py),))
                .map(PyObj::from_bound)
                .map_err(|e| failure_on(py, e, x))
        })
    }

    /// `bool(f(x))`; an exception fails on `x`.
    pub fn truthy(&self, x: &PyObj) -> Result<bool, StageError> {
        crate::gil::with(|py| {
            self.0
                .bind(py)
                .call1((x.0.bind(py),))
                .and_then(|r| r.is_truthy())
                .map_err(|e| failure_on(py, e, x))
        })
    }

    /// `f(acc, x)`; an exception fails on `x`.
    pub fn call2(&self, acc: &PyObj, x: &PyObj) -> Result<PyObj, StageError> {
        crate::gil::with(|py| {
            self.0
                .bind(py)
                .call1((acc.0.bind(py), x.0.bind(py)))
                .map(PyObj::from_bound)
                .map_err(|e| failure_on(py, e, x))
        })
    }

    /// `f()` for its effect; an exception fails the stage.
    pub fn call0(&self) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.0
                .bind(py)
                .call0()
                .map(drop)
                .map_err(|e| user_error(py, e))
        })
    }
}

/// `f(py, x)` with the GIL; a Python exception fails on `x` (as [`PyFn::call1`] does).
pub fn attempt<O>(
    x: &PyObj,
    f: impl FnOnce(Python<'_>, &PyObj) -> PyResult<O>,
) -> Result<O, StageError> {
    crate::gil::with(|py| f(py, x).map_err(|e| failure_on(py, e, x)))
}

/// Python's order of `a` and `b` for a sorted merge, with one `<`: `Greater` when `b < a`, else
/// `Less` (ties keep the left element first); a raising `<` fails on `b`.
pub fn py_order(a: &PyObj, b: &PyObj) -> Result<Ordering, StageError> {
    crate::gil::with(|py| match b.0.bind(py).lt(a.0.bind(py)) {
        Ok(true) => Ok(Ordering::Greater),
        Ok(false) => Ok(Ordering::Less),
        Err(e) => Err(failure_on(py, e, b)),
    })
}
