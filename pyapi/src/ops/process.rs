//! Keyed process functions for Python: `key_by(f).process(on_element, on_timer=)` over the
//! Rust keyed process stage (`weir_operators::process`), state and elements being `PyObj`.
//!
//! Each call hands Python a `ProcessContext` for the current key: it records what the call
//! does (state set or cleared, elements emitted, timers registered or deleted) and the adapter
//! applies that to the Rust context once the call returns; a context kept past its call
//! raises. Times are seconds (floats): event-time timers go to whole milliseconds
//! (`round(t * 1000)`), processing-time timers are seconds of the run's clock.

use crate::codec::{PyState, StateVal};
use crate::dsl::{PyBlueprint, PySupervision};
use crate::obj::{PyObj, failure_on, user_error};
use crate::pyfn::PyFn;
use crate::stages::{PyKey, keyed::pair_stage};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::time::Duration;
use weir_graph::{StageError, StateCodec};
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

/// The Python functions of a keyed process stage; its per-key state is kept as `V` (the value
/// codec, or pickles with `key_codec="pickle"`).
struct PyProcess<V> {
    on_element: PyFn,
    on_timer: Option<PyFn>,
    _v: std::marker::PhantomData<fn() -> V>,
}

impl<V> Clone for PyProcess<V> {
    fn clone(&self) -> Self {
        Self {
            on_element: self.on_element.clone(),
            on_timer: self.on_timer.clone(),
            _v: std::marker::PhantomData,
        }
    }
}

type Cx<'a, V> = ProcessContext<'a, PyKey, V, PyObj>;

fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

impl<V: StateVal> PyProcess<V> {
    /// Calls `f(args.., ctx)` with a fresh context, then applies what the call recorded.
    fn call(
        py: Python<'_>,
        f: &PyFn,
        first: Py<PyAny>,
        second: Option<&str>,
        cx: &mut Cx<'_, V>,
    ) -> PyResult<()> {
        let ctx = Py::new(
            py,
            PyProcessContext {
                key: cx.key().key().0.clone_ref(py),
                state: cx.state().get().map(|s| s.obj().0.clone_ref(py)),
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
                Some(s) => cx.state().set(V::wrap(PyObj(s))),
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

impl<V: StateVal> KeyedProcessFunction<PyKey, (PyKey, PyObj)> for PyProcess<V> {
    type State = V;
    type Out = PyObj;

    fn process_element(
        &mut self,
        element: &(PyKey, PyObj),
        cx: &mut Cx<'_, V>,
    ) -> Result<(), StageError> {
        crate::gil::with(|py| {
            let x = element.1.0.clone_ref(py);
            Self::call(py, &self.on_element, x, None, cx).map_err(|e| failure_on(py, e, &element.1))
        })
    }

    fn on_timer(&mut self, timer: Timer, cx: &mut Cx<'_, V>) -> Result<(), StageError> {
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
    let (on_element, on_timer) = (PyFn::new(on_element), on_timer.map(PyFn::new));
    Ok(super::flow(if codec == crate::codec::Codec::PickleKey {
        process_stage::<PyState>(key, on_element, on_timer, sup, codec)
    } else {
        process_stage::<PyObj>(key, on_element, on_timer, sup, codec)
    }))
}

/// The key stage and the process stage, state kept as `V`.
fn process_stage<V: StateVal>(
    key: Option<Py<PyAny>>,
    on_element: PyFn,
    on_timer: Option<PyFn>,
    sup: Option<&PySupervision>,
    codec: crate::codec::Codec,
) -> weir_graph::Flow<PyObj, PyObj, crate::mat::MatValue> {
    let f = PyProcess::<V> {
        on_element,
        on_timer,
        _v: std::marker::PhantomData,
    };
    let pairs = pair_stage(key, codec);
    let pairs = match sup {
        Some(s) => pairs.with_supervision(s.0.clone()),
        None => pairs,
    };
    // State and timers checkpoint through the codec (a state value without an encoding fails
    // the checkpoint, naming the stage and the value's type).
    let staged = pairs
        .key_by(|p: &(PyKey, PyObj)| p.0.clone())
        .process_with_codec(f, StateCodec::serde());
    match sup {
        Some(s) => staged.with_supervision(s.0.clone()),
        None => staged,
    }
}
