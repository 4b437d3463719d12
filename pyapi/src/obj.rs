//! The element type of Python streams and the conversions between Python errors and stage errors.

use pyo3::prelude::*;
use std::fmt;
use weir_graph::{ErrorKind, StageError};

/// A Python object travelling through a weir graph.
///
/// `Py<PyAny>` is `Send`, so batches of `PyObj` cross tokio threads freely; every operation that
/// touches the object (calls, clones, comparisons) happens on the Python dispatcher with the GIL.
pub struct PyObj(pub Py<PyAny>);

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

/// A keyed element produced by a `key_by` stage: Python's hash of the key, the key and the value.
pub struct KeyedObj {
    /// `hash(key)` computed by Python (routing and bucketing).
    pub hash: u64,
    /// The key.
    pub key: PyObj,
    /// The element (absent for `count`, which needs only keys).
    pub value: Option<PyObj>,
}

impl fmt::Debug for KeyedObj {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyedObj({})", self.hash)
    }
}

/// A Python exception kept as the cause of a [`StageError`]; its text is captured while the GIL
/// is held, so displaying it never needs the interpreter.
pub struct PyCause {
    /// The original exception.
    pub err: PyErr,
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
    let text = if msg.is_empty() {
        name
    } else {
        format!("{name}: {msg}")
    };
    StageError::from_boxed(ErrorKind::User, Box::new(PyCause { err, text }))
}

/// The Python exception a stage error carries, if it wraps one.
pub fn py_cause(e: &StageError) -> Option<&PyErr> {
    e.downcast_cause::<PyCause>().map(|c| &c.err)
}
