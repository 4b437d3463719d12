//! Keyed process functions for Python: `key_by(f).process(on_element, on_timer=)` over the
//! Rust keyed process stage (`weir_operators::process`), state and elements being `PyObj`.
//!
//! Each call hands Python a `ProcessContext` for the current key: it records what the call
//! does (state set or cleared, elements emitted, timers registered or deleted) and the adapter
//! applies that to the Rust context once the call returns; a context kept past its call
//! raises. Times are seconds (floats): event-time timers go to whole milliseconds
//! (`round(t * 1000)`), processing-time timers are seconds of the run's clock.

use crate::dsl::{PyBlueprint, PySupervision};
use crate::obj::{PyObj, failure_on, user_error};
use crate::pyfn::PyFn;
use crate::stages::{PyKey, keyed::pair_stage};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::time::Duration;
use weir_graph::StageError;
use weir_operators::keyed::KeyedOps;
use weir_operators::process::{KeyedProcessFunction, ProcessContext, Timer};

/// A timer operation recorded during a call: (register, event time, time).
type TimerOp = (bool, bool, f64);

/// What a process function sees of its key during one call (see the module docs).
#[pyclass(name = "ProcessContext", module = "weir")]
pub struct PyProcessContext {
    key: Py<PyAny>,
    state: Option<Py<PyAny>>,
    state_changed: bool,
    watermark: Option<f64>,
    now: f64,
    emitted: Vec<Py<PyAny>>,
    timers: Vec<TimerOp>,
    live: bool,
}

impl PyProcessContext {
    fn check(&self) -> PyResult<()> {
        if self.live {
            Ok(())
        } else {
            Err(PyRuntimeError::new_err(
                "a ProcessContext is only valid during the call it was passed to",
            ))
        }
    }

    fn timer(&mut self, register: bool, event: bool, t: f64) -> PyResult<()> {
        self.check()?;
        if !t.is_finite() || t.abs() >= 9.0e12 || (!event && t < 0.0) {
            return Err(PyValueError::new_err(format!(
                "timer time out of range: {t}"
            )));
        }
        self.timers.push((register, event, t));
        Ok(())
    }
}

#[pymethods]
impl PyProcessContext {
    /// The current key.
    #[getter]
    fn key(&self, py: Python<'_>) -> Py<PyAny> {
        self.key.clone_ref(py)
    }
    /// The current key's state (`None` when unset).
    #[getter]
    fn state(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        self.check()?;
        Ok(self.state.as_ref().map(|s| s.clone_ref(py)))
    }
    /// Sets the current key's state.
    fn set_state(&mut self, value: Py<PyAny>) -> PyResult<()> {
        self.check()?;
        self.state = Some(value);
        self.state_changed = true;
        Ok(())
    }
    /// Clears the current key's state.
    fn clear_state(&mut self) -> PyResult<()> {
        self.check()?;
        self.state = None;
        self.state_changed = true;
        Ok(())
    }
    /// Emits `value` downstream.
    fn emit(&mut self, value: Py<PyAny>) -> PyResult<()> {
        self.check()?;
        self.emitted.push(value);
        Ok(())
    }
    /// The current watermark in seconds (`None` before the first).
    #[getter]
    fn watermark(&self) -> Option<f64> {
        self.watermark
    }
    /// The run's clock in seconds.
    #[getter]
    fn processing_time(&self) -> f64 {
        self.now
    }
    /// Calls `on_timer(t, "event", ctx)` once the watermark reaches `t` seconds.
    fn register_event_timer(&mut self, t: f64) -> PyResult<()> {
        self.timer(true, true, t)
    }
    /// Removes the current key's event-time timer at `t`.
    fn delete_event_timer(&mut self, t: f64) -> PyResult<()> {
        self.timer(false, true, t)
    }
    /// Calls `on_timer(t, "processing", ctx)` once the run's clock reaches `t` seconds.
    fn register_processing_timer(&mut self, t: f64) -> PyResult<()> {
        self.timer(true, false, t)
    }
    /// Removes the current key's processing-time timer at `t`.
    fn delete_processing_timer(&mut self, t: f64) -> PyResult<()> {
        self.timer(false, false, t)
    }
}

/// The Python functions of a keyed process stage.
#[derive(Clone)]
struct PyProcess {
    on_element: PyFn,
    on_timer: Option<PyFn>,
}

type Cx<'a> = ProcessContext<'a, PyKey, PyObj, PyObj>;

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl PyProcess {
    /// Calls `f(args.., ctx)` with a fresh context, then applies what the call recorded.
    fn call(
        py: Python<'_>,
        f: &PyFn,
        first: Py<PyAny>,
        second: Option<&str>,
        cx: &mut Cx<'_>,
    ) -> PyResult<()> {
        let ctx = Py::new(
            py,
            PyProcessContext {
                key: cx.key().key().0.clone_ref(py),
                state: cx.state().get().map(|s| s.0.clone_ref(py)),
                state_changed: false,
                watermark: cx.watermark().map(seconds),
                now: cx.processing_time().as_secs_f64(),
                emitted: Vec::new(),
                timers: Vec::new(),
                live: true,
            },
        )?;
        let r = match second {
            None => f.get().bind(py).call1((first, ctx.clone_ref(py))),
            Some(kind) => f.get().bind(py).call1((first, kind, ctx.clone_ref(py))),
        };
        let mut c = ctx.borrow_mut(py);
        c.live = false;
        // What the call did before it raised still applies (its emits go out ahead of the error).
        for x in c.emitted.drain(..) {
            cx.emit(PyObj(x));
        }
        if c.state_changed {
            match c.state.take() {
                Some(s) => cx.state().set(PyObj(s)),
                None => cx.state().clear(),
            }
        }
        for (register, event, t) in c.timers.drain(..) {
            match (register, event) {
                (true, true) => cx.register_event_timer((t * 1000.0).round() as i64),
                (false, true) => cx.delete_event_timer((t * 1000.0).round() as i64),
                (true, false) => cx.register_processing_timer(Duration::from_secs_f64(t)),
                (false, false) => cx.delete_processing_timer(Duration::from_secs_f64(t)),
            }
        }
        r.map(|_| ())
    }
}

impl KeyedProcessFunction<PyKey, (PyKey, PyObj)> for PyProcess {
    type State = PyObj;
    type Out = PyObj;

    fn process_element(
        &mut self,
        element: &(PyKey, PyObj),
        cx: &mut Cx<'_>,
    ) -> Result<(), StageError> {
        crate::gil::with(|py| {
            let x = element.1.0.clone_ref(py);
            Self::call(py, &self.on_element, x, None, cx).map_err(|e| failure_on(py, e, &element.1))
        })
    }

    fn on_timer(&mut self, timer: Timer, cx: &mut Cx<'_>) -> Result<(), StageError> {
        let Some(f) = &self.on_timer else {
            return Ok(());
        };
        crate::gil::with(|py| {
            let (t, kind) = match timer {
                Timer::Event(ms) => (seconds(ms), "event"),
                Timer::Processing(at) => (at.as_secs_f64(), "processing"),
            };
            let t = pyo3::types::PyFloat::new(py, t).into_any().unbind();
            Self::call(py, f, t, Some(kind), cx).map_err(|e| user_error(py, e))
        })
    }
}

/// `key_by(key).process(on_element, on_timer)`: `on_element(element, ctx)` per element and
/// `on_timer(t, "event" | "processing", ctx)` per timer, with per-key state and timers.
#[pyfunction]
#[pyo3(signature = (key, on_element, on_timer = None, sup = None, key_codec = "builtin"))]
pub fn flow_key_process(
    key: Option<Py<PyAny>>,
    on_element: Py<PyAny>,
    on_timer: Option<Py<PyAny>>,
    sup: Option<&PySupervision>,
    key_codec: &str,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    let f = PyProcess {
        on_element: PyFn::new(on_element),
        on_timer: on_timer.map(PyFn::new),
    };
    let pairs = pair_stage(key, codec);
    let pairs = match sup {
        Some(s) => pairs.with_supervision(s.0.clone()),
        None => pairs,
    };
    let staged = pairs.key_by(|p: &(PyKey, PyObj)| p.0.clone()).process(f);
    let staged = match sup {
        Some(s) => staged.with_supervision(s.0.clone()),
        None => staged,
    };
    Ok(super::flow(staged))
}
