//! `Source.tick`, `Source.queue` and `Sink.queue`.

use super::*;

/// `Source.tick(initial_delay, interval, value)` (the Rust `tick`, each tick a new reference to
/// `value`): materializes a `Cancellable`.
#[pyfunction]
pub fn source_tick(initial_delay: f64, interval: f64, value: Py<PyAny>) -> PyResult<PyBlueprint> {
    // A new reference to `value` per tick, made when the tick is emitted (on the dispatcher).
    let make = move || crate::gil::with(|py| PyObj(value.clone_ref(py)));
    let ticks = Source::<PyObj, ()>::tick_with(secs(initial_delay)?, secs(interval)?, make)
        .map_materialized_value(|c| {
            MatValue::Lazy(Box::new(move |py| {
                Ok(Py::new(py, PyCancellable(c))?.into_any())
            }))
        });
    Ok(wrap(Bp::Source(ticks)))
}

/// `Source.queue(capacity, overflow)`: materializes a `SourceQueue` handle.
#[pyfunction]
pub fn source_queue(capacity: usize, strategy: &str) -> PyResult<PyBlueprint> {
    let s = Source::<PyObj, ()>::queue(capacity.max(1), overflow(strategy)?)
        .map_materialized_value(|q| {
            MatValue::Lazy(Box::new(move |py| {
                handles::python_handle(py, "SourceQueue", Py::new(py, PySourceQueue(q))?.into_any())
            }))
        });
    Ok(wrap(Bp::Source(s)))
}

/// `Sink.queue(capacity)`: materializes a `SinkQueue` handle.
#[pyfunction]
pub fn sink_queue(capacity: usize) -> PyBlueprint {
    let s = Sink::<PyObj, ()>::queue(capacity.max(1)).map_materialized_value(|q| {
        MatValue::Lazy(Box::new(move |py| {
            let n = Py::new(py, PySinkQueue(Mutex::new(Some(q))))?.into_any();
            handles::python_handle(py, "SinkQueue", n)
        }))
    });
    wrap(Bp::Sink(s))
}
