//! The element type of Python streams and the conversions between Python errors and stage errors.

use pyo3::prelude::*;
use std::fmt;
use weir_graph::{ErrorKind, StageError};

/// A Python object travelling through a weir graph.
///
/// `Py<PyAny>` is `Send`, so batches of `PyObj` cross tokio threads freely; every operation that
/// touches the object (calls, clones, comparisons) happens on the Python dispatcher with the GIL.
pub struct PyObj(pub Py<PyAny>);

/// A new reference to the same object, so the generic Rust operators that copy elements
/// (`broadcast`, `sliding`, `expand`, `scan`, ...) run over `PyObj` as they are. It takes the
/// GIL, so it is meant only for the islands of a Python run, which run on the run's dispatcher
/// whose serving thread already holds it (cheap there); elsewhere it waits for the GIL, and on a
/// tokio worker it counts as a violation of the GIL invariant ([`crate::gil::with`]).
impl Clone for PyObj {
    fn clone(&self) -> Self {
        crate::gil::with(|py| self.clone_ref(py))
    }
}

impl fmt::Debug for PyObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PyObj")
    }
}

impl PyObj {
    /// Wraps a bound object.
    pub fn from_bound(b: Bound<'_, PyAny>) -> Self {
        Self(b.unbind())
    }
    /// A new strong reference (needs the GIL).
    pub fn clone_ref(&self, py: Python<'_>) -> Self {
        Self(self.0.clone_ref(py))
    }
}

/// A Python exception kept as the cause of a [`StageError`]; its text is captured while the GIL
/// is held, so displaying it never needs the interpreter.
pub struct PyCause {
    /// The original exception.
    pub err: PyErr,
    /// The element user code failed on, when known.
    pub element: Option<Py<PyAny>>,
    text: String,
}

impl fmt::Debug for PyCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PyCause({})", self.text)
    }
}

impl fmt::Display for PyCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::error::Error for PyCause {}

/// Converts a Python exception raised by user code into a user [`StageError`] keeping it as the
/// cause (call with the GIL held).
pub fn user_error(py: Python<'_>, err: PyErr) -> StageError {
    user_error_on(py, err, None)
}

/// [`user_error`] for a failure on `element`, which the Python exception raised to the caller
/// carries as `element`.
pub fn user_error_on(py: Python<'_>, err: PyErr, element: Option<&PyObj>) -> StageError {
    user_error_traced(py, err, element, false)
}

/// [`user_error_on`], with the Python traceback in the message when `traceback` is set.
pub fn user_error_traced(
    py: Python<'_>,
    err: PyErr,
    element: Option<&PyObj>,
    traceback: bool,
) -> StageError {
    if err.is_instance_of::<pyo3::exceptions::PyKeyboardInterrupt>(py) {
        // Ctrl-C landed inside user code: the serving loop cancels the run and re-raises it.
        crate::dispatch::note_interrupt(err);
        return StageError::cancelled("interrupted (KeyboardInterrupt)");
    }
    let v = err.value(py);
    let name = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "Exception".to_owned());
    let msg = v.str().map(|s| s.to_string()).unwrap_or_default();
    let mut text = if msg.is_empty() {
        name
    } else {
        format!("{name}: {msg}")
    };
    if traceback && let Some(tb) = err.traceback(py).and_then(|t| t.format().ok()) {
        text = format!("{text}\n{}", tb.trim_end());
    }
    let element = element.map(|x| x.0.clone_ref(py));
    StageError::from_boxed(ErrorKind::User, Box::new(PyCause { err, element, text }))
}

/// The stage error for user code raising `err` on the element `x`: a user error caused by the
/// exception, carrying `x` and its bounded rendering, so supervision, dead letters and the
/// error message name the element as in Rust (a `KeyboardInterrupt` cancels the run).
pub fn failure_on(py: Python<'_>, err: PyErr, x: &PyObj) -> StageError {
    user_error_on(py, err, Some(x)).with_element(&short_repr(py, x))
}

static REPR: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// A bounded rendering of `x` for error messages and dead letters (`reprlib.repr`: long
/// containers and strings are abbreviated, so rendering a huge element stays cheap).
pub fn short_repr(py: Python<'_>, x: &PyObj) -> String {
    let r = REPR
        .import(py, "reprlib", "repr")
        .and_then(|f| f.call1((x.0.bind(py),)))
        .and_then(|s| s.extract::<String>());
    r.unwrap_or_else(|_| "<unprintable>".to_owned())
}

/// The Python exception a stage error carries, if it wraps one.
pub fn py_cause(e: &StageError) -> Option<&PyErr> {
    e.downcast_cause::<PyCause>().map(|c| &c.err)
}

/// The element a stage error's Python exception was raised on, if known.
pub fn py_element(e: &StageError) -> Option<&Py<PyAny>> {
    e.downcast_cause::<PyCause>()
        .and_then(|c| c.element.as_ref())
}

/// `(a, b)` as a Python tuple.
pub fn tuple2(py: Python<'_>, a: Py<PyAny>, b: Py<PyAny>) -> Result<PyObj, StageError> {
    pyo3::types::PyTuple::new(py, [a, b])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}
