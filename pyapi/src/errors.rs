//! Python exception types and the mapping from weir errors to Python exceptions.

use crate::obj::{py_cause, py_element};
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use weir_graph::{ErrorKind, StageError};

create_exception!(
    _native,
    WeirError,
    PyException,
    "Base class of every error raised by weir."
);
create_exception!(
    _native,
    StageFailed,
    WeirError,
    "A stage failed; `stage` is its path (`name#index`), `stage_name` its name, `kind` the error's domain, `element` the element user code failed on (when known) and `__cause__` the original exception raised by user code, with its traceback."
);
create_exception!(
    _native,
    RunCancelled,
    WeirError,
    "The run was cancelled (by `cancel()`, a kill switch or Ctrl-C) before it completed."
);
create_exception!(
    _native,
    GraphInvalid,
    WeirError,
    "A blueprint could not be built or materialized (unconnected ports, cycles, wrong shapes)."
);

fn kind_name(k: ErrorKind) -> &'static str {
    match k {
        ErrorKind::User => "user",
        ErrorKind::External => "external",
        ErrorKind::Internal => "internal",
        ErrorKind::Cancelled => "cancelled",
        ErrorKind::Timeout => "timeout",
        _ => "other",
    }
}

/// Converts a stage error into the Python exception raised to the caller: `RunCancelled` for
/// cancellations, otherwise `StageFailed` carrying the stage path and the original exception as
/// `__cause__`.
pub fn to_py_err(py: Python<'_>, e: &StageError) -> PyErr {
    // A snapshot a Python key or value refused: the message says which value and why.
    let mut text = e.to_string();
    let mut message = e.message().to_owned();
    if message.contains("cannot encode the stage state")
        && let Some(why) = crate::codec::take_refusal()
    {
        text = format!("{text} ({why})");
        message = format!("{message} ({why})");
    }
    let err = if e.kind() == ErrorKind::Cancelled {
        RunCancelled::new_err(text)
    } else {
        StageFailed::new_err(text)
    };
    let v = err.value(py);
    let stage = e.stage().unwrap_or("");
    let name = stage.rsplit_once('#').map_or(stage, |(n, _)| n);
    let _ = v.setattr("stage", stage);
    let _ = v.setattr("stage_name", name);
    let _ = v.setattr("kind", kind_name(e.kind()));
    let _ = v.setattr("message", message);
    let _ = match py_element(e) {
        Some(x) => v.setattr("element", x.bind(py)),
        None => v.setattr("element", py.None()),
    };
    if let Some(cause) = py_cause(e) {
        err.set_cause(py, Some(cause.clone_ref(py)));
    }
    err
}

/// Converts an engine error (materialization) into a Python exception.
pub fn engine_err(py: Python<'_>, e: weir_engine::EngineError) -> PyErr {
    match e {
        weir_engine::EngineError::Stage(s) => to_py_err(py, &s),
        other => GraphInvalid::new_err(other.to_string()),
    }
}

/// Converts a graph error into a Python exception.
pub fn graph_err(e: weir_graph::GraphError) -> PyErr {
    GraphInvalid::new_err(e.to_string())
}
