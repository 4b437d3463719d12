//! Supervision policies from Python: directives, exception classes, dead letters.

use crate::obj::{PyObj, py_cause};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use weir_graph::{DeadLetter, DeadLetterSink, Directive, Supervision};

fn directive(s: &str) -> PyResult<Directive> {
    match s {
        "stop" => Ok(Directive::Stop),
        "resume" => Ok(Directive::Resume),
        "restart" => Ok(Directive::Restart),
        other => Err(PyValueError::new_err(format!(
            "a directive is 'stop', 'resume' or 'restart', not {other:?}"
        ))),
    }
}

/// A supervision policy: exception classes mapped to directives, a default, and an optional
/// dead-letter callback `f(element, exception, stage_path)`.
#[pyclass(module = "weir._native", name = "Supervision", frozen)]
pub struct PySupervision(pub Supervision);

#[pymethods]
impl PySupervision {
    /// `rules` is a list of `(exception class, "stop" | "resume" | "restart")`, checked in order.
    #[new]
    #[pyo3(signature = (rules, default = "stop", dead_letters = None))]
    fn new(
        rules: Vec<(Py<PyAny>, String)>,
        default: &str,
        dead_letters: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let default = directive(default)?;
        let rules: Vec<(Py<PyAny>, Directive)> = rules
            .into_iter()
            .map(|(c, d)| directive(&d).map(|d| (c, d)))
            .collect::<PyResult<_>>()?;
        let mut s = Supervision::new(move |err| {
            if rules.is_empty() {
                return default;
            }
            crate::gil::with(|py| {
                // A failure of a Rust stage (a file source's bad line) is matched as the
                // exception it raises in Python (`StageFailed`).
                let own;
                let v = match py_cause(err) {
                    Some(cause) => cause.value(py),
                    None => {
                        own = crate::errors::to_py_err(py, err);
                        own.value(py)
                    }
                };
                for (cls, d) in &rules {
                    if v.is_instance(cls.bind(py)).unwrap_or(false) {
                        return *d;
                    }
                }
                default
            })
        });
        if let Some(cb) = dead_letters {
            s = s.with_dead_letters(DeadLetterSink::new(move |d: DeadLetter| {
                crate::gil::with(|py| {
                    let elem = match d.element.map(|e| e.downcast::<PyObj>()) {
                        Some(Ok(e)) => e.0,
                        // A file source's bad line (its raw bytes): a str when it is text.
                        Some(Err(e)) => match e.downcast::<weir_operators::file::Bytes>() {
                            Ok(b) => match std::str::from_utf8(&b) {
                                Ok(s) => pyo3::types::PyString::new(py, s).into_any().unbind(),
                                Err(_) => pyo3::types::PyBytes::new(py, &b).into_any().unbind(),
                            },
                            Err(_) => py.None(),
                        },
                        None => py.None(),
                    };
                    let exc = match py_cause(&d.error) {
                        Some(c) => c.value(py).clone().into_any().unbind(),
                        None => crate::errors::to_py_err(py, &d.error)
                            .value(py)
                            .clone()
                            .into_any()
                            .unbind(),
                    };
                    if let Err(e) = cb.call1(py, (elem, exc, d.stage)) {
                        e.write_unraisable(py, None);
                    }
                })
            }));
        }
        Ok(Self(s))
    }
}
