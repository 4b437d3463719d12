//! Python handles materialized by `Source.queue`, `Sink.queue` and `Source.tick`.

use crate::errors::to_py_err;
use crate::obj::{PyObj, user_error};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use std::sync::Mutex;
use weir_operators::sink::SinkQueue;
use weir_operators::source::{Cancellable, QueueOfferResult, SourceQueue};

/// The handle of a running `Source.queue`: `offer(x)` elements, then `complete()` or `fail(e)`.
#[pyclass(module = "weir._native", name = "SourceQueue", frozen)]
pub struct PySourceQueue(pub SourceQueue<PyObj>);

#[pymethods]
impl PySourceQueue {
    /// Offers `x`; blocks (with the GIL released) while the buffer is full under
    /// `"backpressure"`. Returns `"enqueued"`, `"dropped"` or `"closed"`; raises `StageFailed`
    /// once the queue failed.
    fn offer(&self, py: Python<'_>, x: Py<PyAny>) -> PyResult<&'static str> {
        let q = self.0.clone();
        let r = py.detach(move || futures::executor::block_on(q.offer(PyObj(x))));
        match r {
            Ok(QueueOfferResult::Enqueued) => Ok("enqueued"),
            Ok(QueueOfferResult::Dropped) => Ok("dropped"),
            Ok(QueueOfferResult::QueueClosed) => Ok("closed"),
            Err(e) => Err(to_py_err(py, &e)),
        }
    }

    /// Completes the source once the buffered elements are emitted.
    fn complete(&self) {
        self.0.complete();
    }

    /// Fails the source with `exc` (it becomes the `__cause__` of the run's `StageFailed`).
    fn fail(&self, py: Python<'_>, exc: Bound<'_, PyAny>) {
        self.0.fail(user_error(py, PyErr::from_value(exc)));
    }

    /// Elements buffered and not emitted yet.
    fn buffered(&self) -> usize {
        self.0.buffered()
    }

    /// Whether the queue accepts no more elements (completed, failed, or its stream stopped).
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The handle of a running `Sink.queue`: `pull()` elements one at a time.
#[pyclass(module = "weir._native", name = "SinkQueue", frozen)]
pub struct PySinkQueue(pub Mutex<Option<SinkQueue<PyObj>>>);

#[pymethods]
impl PySinkQueue {
    /// The next element as `(True, x)`, or `(False, None)` once the stream completed; blocks
    /// with the GIL released; raises `StageFailed` if the stream failed.
    fn pull(&self, py: Python<'_>) -> PyResult<(bool, Py<PyAny>)> {
        let mut q = self
            .0
            .lock()
            .map_err(|_| PyRuntimeError::new_err("sink queue poisoned"))?
            .take()
            .ok_or_else(|| {
                PyRuntimeError::new_err("the queue is cancelled or pulled concurrently")
            })?;
        let (q, r) = py.detach(move || {
            let r = futures::executor::block_on(q.pull());
            (q, r)
        });
        if let Ok(mut g) = self.0.lock() {
            *g = Some(q);
        }
        match r {
            Ok(Some(x)) => Ok((true, x.0)),
            Ok(None) => Ok((false, py.None())),
            Err(e) => Err(to_py_err(py, &e)),
        }
    }

    /// Stops pulling: upstream is cancelled.
    fn cancel(&self) {
        if let Ok(mut g) = self.0.lock() {
            g.take();
        }
    }
}

/// The handle of a running `Source.tick`: `cancel()` completes the source.
#[pyclass(module = "weir._native", name = "Cancellable", frozen)]
pub struct PyCancellable(pub Cancellable);

#[pymethods]
impl PyCancellable {
    /// Completes the tick source; `True` the first time.
    fn cancel(&self) -> bool {
        self.0.cancel()
    }

    /// Whether `cancel()` was called.
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// Wraps a native handle in its Python class `weir._handles.<name>` (adds the `async` and
/// iteration methods).
pub fn python_handle(py: Python<'_>, name: &str, native: Py<PyAny>) -> PyResult<Py<PyAny>> {
    Ok(py
        .import("weir._handles")?
        .getattr(name)?
        .call1((native,))?
        .unbind())
}
