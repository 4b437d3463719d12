//! Lifecycle operators over Python objects: `Source.maybe` / `never` / `lazy`, `Sink.lazy` and
//! `watch_termination`, the Rust operators with Python factories called on the dispatcher.

use super::*;
use crate::run::mat_to_py;
use pyo3::types::PyString;
use weir_graph::SinkFuture;
use weir_operators::lifecycle::{
    LifecycleSinks, LifecycleSources, MaybeHandle, watch_termination_as,
};

/// The handle materialized by `Source.maybe()`.
#[pyclass(module = "weir._native", name = "MaybeHandle", frozen)]
pub struct PyMaybeHandle(pub MaybeHandle<PyObj>);

#[pymethods]
impl PyMaybeHandle {
    /// Emits `x` and completes the source; `False` if already completed or the source stopped.
    fn success(&self, x: Py<PyAny>) -> bool {
        self.0.success(PyObj(x))
    }
    /// Completes the source without an element; `False` if already completed or stopped.
    fn empty(&self) -> bool {
        self.0.empty()
    }
    /// Fails the source with `exc`; `False` if already completed or stopped.
    fn fail(&self, py: Python<'_>, exc: Bound<'_, PyAny>) -> bool {
        self.0.fail(user_error(py, PyErr::from_value(exc)))
    }
    /// Whether `success`, `empty` or `fail` was called.
    fn is_completed(&self) -> bool {
        self.0.is_completed()
    }
    /// Whether the source stopped (emitted, completed or was cancelled).
    fn is_stopped(&self) -> bool {
        self.0.is_stopped()
    }
}

/// `Source.maybe()`: materializes a `MaybeHandle`.
#[pyfunction]
pub fn source_maybe() -> PyBlueprint {
    let s = Source::<PyObj>::maybe().map_materialized_value(|h| {
        MatValue::Lazy(Box::new(move |py| {
            Ok(Py::new(py, PyMaybeHandle(h))?.into_any())
        }))
    });
    wrap(Bp::Source(s))
}

/// `Source.never()`.
#[pyfunction]
pub fn source_never() -> PyBlueprint {
    wrap(Bp::Source(
        Source::<PyObj>::never().map_materialized_value(|()| MatValue::Unit),
    ))
}

/// An inner blueprint's materialized value as a Python object (called while it materializes).
fn mat_object(m: MatValue) -> PyObj {
    crate::gil::with(|py| PyObj(mat_to_py(py, m).unwrap_or_else(|_| py.None())))
}

fn blueprint(obj: &Bound<'_, PyAny>) -> PyResult<Bp> {
    let n = if obj.is_instance_of::<PyBlueprint>() {
        obj.clone()
    } else if obj.hasattr("_n")? {
        obj.getattr("_n")?
    } else {
        return Err(PyTypeError::new_err(format!(
            "the factory must return a weir blueprint, not {}",
            obj.get_type().name()?
        )));
    };
    Ok(n.cast::<PyBlueprint>()?.get().bp.clone())
}

/// `make(f())`, called when the stage (polled on the run's dispatcher) starts its inner graph.
async fn on_dispatcher<R: Send + 'static>(
    f: Arc<Py<PyAny>>,
    make: fn(Python<'_>, Bound<'_, PyAny>) -> PyResult<R>,
) -> Result<R, StageError> {
    crate::gil::with(|py| {
        let obj = f.bind(py).call0().map_err(|e| user_error(py, e))?;
        make(py, obj).map_err(|e| user_error(py, e))
    })
}

fn future_mat(f: SinkFuture<PyObj>) -> MatValue {
    MatValue::Future(f)
}

/// `Source.lazy(f)`: `f()` returns the source, called when the stage starts.
#[pyfunction]
pub fn source_lazy(f: Py<PyAny>) -> PyBlueprint {
    let f = Arc::new(f);
    let s = Source::<PyObj>::lazy_future(move || {
        on_dispatcher(Arc::clone(&f), |_py, obj| match blueprint(&obj)? {
            Bp::Source(s) => Ok(s.map_materialized_value(mat_object)),
            _ => Err(PyTypeError::new_err(
                "Source.lazy: the factory must return a Source",
            )),
        })
    })
    .map_materialized_value(future_mat);
    wrap(Bp::Source(s))
}

/// `Sink.lazy(f)`: `f()` returns the sink, called when the first element arrives.
#[pyfunction]
pub fn sink_lazy(f: Py<PyAny>) -> PyBlueprint {
    let f = Arc::new(f);
    let s = Sink::<PyObj>::lazy_future(move || {
        on_dispatcher(Arc::clone(&f), |_py, obj| match blueprint(&obj)? {
            Bp::Sink(s) => Ok(s.map_materialized_value(mat_object)),
            _ => Err(PyTypeError::new_err(
                "Sink.lazy: the factory must return a Sink",
            )),
        })
    })
    .map_materialized_value(future_mat);
    wrap(Bp::Sink(s))
}

/// `watch_termination()`: a `SinkFuture` of `"completed"` / `"cancelled"`, or the failure.
#[pyfunction]
pub fn flow_watch_termination() -> PyBlueprint {
    let w = watch_termination_as::<PyObj, PyObj>(|| {
        crate::gil::with(|py| {
            let s = |t: &str| PyObj(PyString::new(py, t).into_any().unbind());
            (s("completed"), s("cancelled"))
        })
    })
    .map_materialized_value(future_mat);
    flow(w)
}

/// Adds the lifecycle classes and functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyMaybeHandle>()?;
    m.add_function(wrap_pyfunction!(source_maybe, m)?)?;
    m.add_function(wrap_pyfunction!(source_never, m)?)?;
    m.add_function(wrap_pyfunction!(source_lazy, m)?)?;
    m.add_function(wrap_pyfunction!(sink_lazy, m)?)?;
    m.add_function(wrap_pyfunction!(flow_watch_termination, m)?)?;
    Ok(())
}
