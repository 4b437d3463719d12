//! `weir.SupervisorStrategy`: how a Python actor supervises its children, mapped onto the Rust
//! [`SupervisorStrategy`] (one-for-one or all-for-one, directive or decider, restart budget,
//! backoff).

use crate::obj::py_cause;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::time::Duration;
use weir_operators::actor::{ActorDirective, SupervisorStrategy};

fn directive(s: &str) -> PyResult<ActorDirective> {
    match s {
        "restart" => Ok(ActorDirective::Restart),
        "resume" => Ok(ActorDirective::Resume),
        "stop" => Ok(ActorDirective::Stop),
        "escalate" => Ok(ActorDirective::Escalate),
        other => Err(PyValueError::new_err(format!(
            "an actor directive is 'restart', 'resume', 'stop' or 'escalate', not {other:?}"
        ))),
    }
}

fn secs(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|e| PyValueError::new_err(format!("{what} must be seconds >= 0, got {s}: {e}")))
}

/// Decides with the Python `decider(exception) -> directive`; a decider that raises or
/// answers something else stops the child (logged).
fn py_decider(decider: Py<PyAny>) -> impl Fn(&weir_graph::StageError) -> ActorDirective {
    move |err| {
        crate::gil::with(|py| {
            let exc = match py_cause(err) {
                Some(c) => c.value(py).clone().into_any(),
                None => crate::errors::to_py_err(py, err)
                    .value(py)
                    .clone()
                    .into_any(),
            };
            let answer = decider
                .bind(py)
                .call1((exc,))
                .and_then(|d| d.extract::<String>())
                .and_then(|d| directive(&d));
            answer.unwrap_or_else(|e| {
                tracing::warn!(error = %e, "supervisor decider failed: the child stops");
                ActorDirective::Stop
            })
        })
    }
}

/// How an actor supervises its children: set `supervisor_strategy` on a `weir.Actor` class.
#[pyclass(module = "weir._native", name = "SupervisorStrategy", frozen)]
pub struct PySupervisorStrategy(pub SupervisorStrategy);

fn build(
    base: SupervisorStrategy,
    max_restarts: Option<u32>,
    within: Option<f64>,
    directive_name: &str,
    decider: Option<Py<PyAny>>,
) -> PyResult<PySupervisorStrategy> {
    let mut s = match decider {
        Some(d) => base.with_decider(py_decider(d)),
        None => base.with_directive(directive(directive_name)?),
    };
    match (max_restarts, within) {
        (Some(n), w) => {
            let w = match w {
                Some(w) => secs("within", w)?,
                None => Duration::MAX,
            };
            s = s.with_restart_budget(n, w);
        }
        (None, Some(_)) => {
            return Err(PyValueError::new_err("within= needs max_restarts="));
        }
        (None, None) => {}
    }
    Ok(PySupervisorStrategy(s))
}

#[pymethods]
impl PySupervisorStrategy {
    /// Applies `directive` (or `decider(exception)`'s answer: `"restart"`, `"resume"`,
    /// `"stop"`, `"escalate"`) to the failed child only; at most `max_restarts` restarts of a
    /// child within `within` seconds (beyond it the child stops).
    #[staticmethod]
    #[pyo3(signature = (max_restarts = None, within = None, directive = "restart", decider = None))]
    fn one_for_one(
        max_restarts: Option<u32>,
        within: Option<f64>,
        directive: &str,
        decider: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        build(
            SupervisorStrategy::one_for_one(),
            max_restarts,
            within,
            directive,
            decider,
        )
    }

    /// As `one_for_one`, applied to every child of the parent when one fails.
    #[staticmethod]
    #[pyo3(signature = (max_restarts = None, within = None, directive = "restart", decider = None))]
    fn all_for_one(
        max_restarts: Option<u32>,
        within: Option<f64>,
        directive: &str,
        decider: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        build(
            SupervisorStrategy::all_for_one(),
            max_restarts,
            within,
            directive,
            decider,
        )
    }

    /// One-for-one restarts after a delay growing from `min_backoff` by doubling up to
    /// `max_backoff` seconds, each stretched by up to `random_factor` (messages wait meanwhile).
    #[staticmethod]
    #[pyo3(signature = (min_backoff, max_backoff, random_factor = 0.0, max_restarts = None, within = None))]
    fn backoff(
        min_backoff: f64,
        max_backoff: f64,
        random_factor: f64,
        max_restarts: Option<u32>,
        within: Option<f64>,
    ) -> PyResult<Self> {
        if !(0.0..=1.0).contains(&random_factor) {
            return Err(PyValueError::new_err(format!(
                "random_factor must be within [0, 1], got {random_factor}"
            )));
        }
        let s = build(
            SupervisorStrategy::one_for_one(),
            max_restarts,
            within,
            "restart",
            None,
        )?;
        Ok(Self(s.0.with_backoff(
            secs("min_backoff", min_backoff)?,
            secs("max_backoff", max_backoff)?,
            random_factor,
        )))
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.0)
    }
}
