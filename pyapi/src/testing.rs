//! `weir.testing` on the Rust testkit: the virtual clock, the probe source and the exact probe
//! sink over [`PyObj`], and settling a run (serving its Python jobs on the calling thread until
//! every task waits). The semantics live in `weir_engine::testkit`; this only adapts.

use crate::dsl::{Bp, PyBlueprint, wrap};
use crate::errors::{WeirError, to_py_err};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use crate::ops::secs;
use crate::run::PyRun;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_engine::VirtualClock;
use weir_engine::testkit::{ExactProbe, ExactSink, Observed, SourceProbe, TestSource};
use weir_graph::Clock;

/// A virtual clock for runs started with it: time moves only when the test moves it.
#[pyclass(module = "weir._native", name = "VirtualClock", frozen)]
pub struct PyVirtualClock(pub VirtualClock);

impl PyVirtualClock {
    /// The clock as the materializer takes it.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.0.clone())
    }
}

#[pymethods]
impl PyVirtualClock {
    #[new]
    fn new() -> Self {
        Self(VirtualClock::new())
    }

    /// Seconds since the clock started.
    fn now(&self) -> f64 {
        self.0.now().as_secs_f64()
    }

    /// Timers waiting on the clock.
    fn pending_timers(&self) -> usize {
        self.0.pending_timers()
    }

    /// The earliest timer's deadline in seconds, if any.
    fn next_deadline(&self) -> Option<f64> {
        self.0.next_deadline().map(|d| d.as_secs_f64())
    }

    /// Moves towards `target` seconds: to the earliest timer due by then (or to `target`) and
    /// wakes what is due; false once the clock is at `target`.
    fn step_towards(&self, target: f64) -> PyResult<bool> {
        Ok(self.0.step_towards(secs(target)?))
    }

    /// Serves the Python jobs of `runs` on this thread until every task of those runs waits;
    /// raises `WeirError` if they are still busy after `timeout` seconds of real time.
    fn settle(&self, py: Python<'_>, runs: Vec<PyRef<'_, PyRun>>, timeout: f64) -> PyResult<()> {
        let end = Instant::now() + secs(timeout)?;
        loop {
            let mut ran = 0;
            for r in &runs {
                ran += r.queue().run_ready(py);
            }
            if ran > 0 {
                continue;
            }
            // Idle, then nothing queued: a task queues its job before it stops running.
            if self.0.is_idle() && runs.iter().all(|r| r.queue().run_ready(py) == 0) {
                return Ok(());
            }
            if Instant::now() >= end {
                return Err(WeirError::new_err(format!(
                    "the run did not settle within {timeout} s of real time (a stage waits on \
                     something outside the virtual clock)"
                )));
            }
            let clock = self.0.clone();
            py.detach(move || clock.settle_blocking(Duration::from_millis(1)));
            py.check_signals()?;
        }
    }
}

/// The probe source's handle: offer elements, complete or fail it, see cancellation.
#[pyclass(module = "weir._native", name = "SourceProbe", frozen)]
pub struct PySourceProbe(SourceProbe<PyObj>);

#[pymethods]
impl PySourceProbe {
    /// Emits `x` (delivered as downstream credit allows).
    fn offer(&self, x: Py<PyAny>) {
        self.0.send(PyObj(x));
    }
    /// Emits every element of `xs` as one batch.
    fn offer_all(&self, xs: Vec<Py<PyAny>>) {
        self.0.send_all(xs.into_iter().map(PyObj).collect());
    }
    /// Completes the source after what was offered.
    fn complete(&self) {
        self.0.complete();
    }
    /// Fails the source with `exc` after what was offered.
    fn fail(&self, py: Python<'_>, exc: Bound<'_, PyAny>) {
        self.0.fail(user_error(py, PyErr::from_value(exc)));
    }
    /// Whether downstream cancelled the source.
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
    /// Elements handed downstream so far.
    fn delivered(&self) -> u64 {
        self.0.delivered()
    }
}

/// The probe sink's handle: grant demand, cancel, read the signals that arrived.
#[pyclass(module = "weir._native", name = "SinkProbe", frozen)]
pub struct PySinkProbe(ExactProbe<PyObj>);

#[pymethods]
impl PySinkProbe {
    /// Grants demand for `n` more elements.
    fn request(&self, n: i64) -> PyResult<()> {
        let n = u64::try_from(n)
            .map_err(|_| PyValueError::new_err(format!("request({n}): n must be >= 0")))?;
        self.0.request(n);
        Ok(())
    }
    /// Lets the sink read once without demand so a pending completion or failure is seen.
    fn observe_end(&self) {
        self.0.observe_end();
    }
    /// Cancels upstream.
    fn cancel(&self) {
        self.0.cancel();
    }
    /// The next signal as `(seconds, kind, value)`: kind `"next"` (value: the element),
    /// `"complete"` (None) or `"error"` (the exception); None when nothing arrived.
    fn try_next<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyTuple>>> {
        let Some((at, o)) = self.0.try_next() else {
            return Ok(None);
        };
        let (kind, value) = match o {
            Observed::Next(x) => ("next", x.0),
            Observed::Complete => ("complete", py.None()),
            Observed::Error(e) => ("error", to_py_err(py, &e).into_value(py).into_any()),
        };
        Ok(Some(PyTuple::new(
            py,
            [
                at.as_secs_f64().into_pyobject(py)?.into_any(),
                kind.into_pyobject(py)?.into_any(),
                value.into_bound(py),
            ],
        )?))
    }
}

/// `weir.testing.probe_source()`: a source materializing a `SourceProbe`.
#[pyfunction]
pub fn testing_source_probe() -> PyBlueprint {
    let s = TestSource::probe::<PyObj>().map_materialized_value(|p| {
        MatValue::Lazy(Box::new(move |py| {
            Ok(Py::new(py, PySourceProbe(p))?.into_any())
        }))
    });
    wrap(Bp::Source(s))
}

/// `weir.testing.probe_sink()`: a sink materializing a `SinkProbe`.
#[pyfunction]
pub fn testing_sink_probe() -> PyBlueprint {
    let s = ExactSink::probe::<PyObj>().map_materialized_value(|p| {
        MatValue::Lazy(Box::new(move |py| {
            Ok(Py::new(py, PySinkProbe(p))?.into_any())
        }))
    });
    wrap(Bp::Sink(s))
}

/// Adds the testing classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyVirtualClock>()?;
    m.add_class::<PySourceProbe>()?;
    m.add_class::<PySinkProbe>()?;
    m.add_function(wrap_pyfunction!(testing_source_probe, m)?)?;
    m.add_function(wrap_pyfunction!(testing_sink_probe, m)?)?;
    Ok(())
}
