//! `weir.ActorRef`: a handle to an actor of a running stage (the Rust [`ActorRef`] over Python
//! objects), usable from any Python thread.

use super::ctx::tell_result;
use crate::errors::WeirError;
use crate::obj::PyObj;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use std::time::Duration;
use weir_operators::actor::{ActorRef, AskError, Pressure, ScheduleHandle};

/// A delivery scheduled with `ActorRef.send_after` / `send_interval`: `cancel()` stops it.
#[pyclass(module = "weir._native", name = "Scheduled", frozen)]
pub struct PyScheduled(ScheduleHandle);

#[pymethods]
impl PyScheduled {
    /// Stops the delivery; `True` when it was still pending.
    fn cancel(&self) -> bool {
        self.0.cancel()
    }
    /// Whether it may still deliver.
    #[getter]
    fn is_active(&self) -> bool {
        self.0.is_active()
    }
    /// Whether `cancel()` stopped it.
    #[getter]
    fn is_cancelled(&self) -> bool {
        self.0.is_cancelled()
    }
}

/// A handle to an actor: `tell`, `try_tell`, `ask`; cheap to copy, usable from any thread.
#[pyclass(module = "weir._native", name = "ActorRef", frozen)]
pub struct PyActorRef(pub ActorRef<PyObj>);

static ASK_TIMEOUT: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static IN_EXECUTOR: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn secs(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|e| PyValueError::new_err(format!("{what} must be seconds >= 0, got {s}: {e}")))
}

/// Blocking here would stop the run that has to make room (or answer).
fn refuse_on_dispatcher(what: &str) -> PyResult<()> {
    if crate::dispatch::on_dispatcher() {
        return Err(PyRuntimeError::new_err(format!(
            "ActorRef.{what}() would block the run's Python dispatcher, which runs the actors: \
             inside a stage use ctx.tell(ref, msg) (or try_tell)"
        )));
    }
    Ok(())
}

/// Runs `f` on the weir runtime with the GIL released.
fn block_on<T: Send>(
    py: Python<'_>,
    f: impl std::future::Future<Output = T> + Send,
) -> PyResult<T> {
    let rt = crate::run::runtime()?;
    Ok(py.detach(|| rt.handle().block_on(f)))
}

#[pymethods]
impl PyActorRef {
    /// Sends `msg`, blocking (with the GIL released) while the mailbox is full. Returns
    /// `"enqueued"`, or `"stopped"` when the actor stopped (the message went to dead letters);
    /// raises `TimeoutError` when `timeout` seconds pass without room (nothing was sent).
    #[pyo3(signature = (msg, timeout = None))]
    fn tell(&self, py: Python<'_>, msg: Py<PyAny>, timeout: Option<f64>) -> PyResult<&'static str> {
        refuse_on_dispatcher("tell")?;
        let r = self.0.clone();
        let msg = PyObj(msg);
        let out = match timeout {
            None => block_on(py, async move { Some(r.tell(msg).await) })?,
            Some(t) => {
                let t = secs("timeout", t)?;
                block_on(py, async move {
                    tokio::time::timeout(t, r.tell(msg)).await.ok()
                })?
            }
        };
        match out {
            Some(r) => Ok(tell_result(r)),
            None => Err(pyo3::exceptions::PyTimeoutError::new_err(format!(
                "mailbox of actor '{}' stayed full for {}s",
                self.0.path(),
                timeout.unwrap_or_default()
            ))),
        }
    }

    /// Sends `msg` without waiting; a full mailbox applies its overflow policy. Returns
    /// `"enqueued"`, `"dropped"` (to dead letters), `"stopped"` or `"overflowed"` (policy
    /// `fail`: the actor's stage fails).
    fn try_tell(&self, msg: Py<PyAny>) -> &'static str {
        tell_result(self.0.try_tell(PyObj(msg)))
    }

    /// Sends `msg` and blocks (GIL released) for the actor's `ctx.reply(x)`, at most `timeout`
    /// seconds on the run's clock; raises `weir.AskTimeout` naming the actor when it passes,
    /// `WeirError` when the actor stopped or handled the message without replying.
    fn ask(&self, py: Python<'_>, msg: Py<PyAny>, timeout: f64) -> PyResult<Py<PyAny>> {
        refuse_on_dispatcher("ask")?;
        let t = secs("timeout", timeout)?;
        let r = self.0.clone();
        let msg = PyObj(msg);
        let out = block_on(py, async move { r.ask::<PyObj>(msg, t).await })?;
        match out {
            Ok(x) => Ok(x.0),
            Err(e @ AskError::Timeout { .. }) => {
                let cls = ASK_TIMEOUT.import(py, "weir._actors", "AskTimeout")?;
                Err(PyErr::from_value(cls.call1((e.to_string(),))?))
            }
            Err(e) => Err(WeirError::new_err(e.to_string())),
        }
    }

    /// `tell` awaited on the event loop's default executor (the loop keeps running).
    #[pyo3(signature = (msg, timeout = None))]
    fn tell_async(
        slf: &Bound<'_, Self>,
        msg: Py<PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let f = slf.getattr("tell")?;
        let run = IN_EXECUTOR.import(py, "weir._actors", "_in_executor")?;
        Ok(run.call1((f, msg, timeout))?.unbind())
    }

    /// `ask` awaited on the event loop's default executor (the loop keeps running).
    fn ask_async(slf: &Bound<'_, Self>, msg: Py<PyAny>, timeout: f64) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let f = slf.getattr("ask")?;
        let run = IN_EXECUTOR.import(py, "weir._actors", "_in_executor")?;
        Ok(run.call1((f, msg, timeout))?.unbind())
    }

    /// Delivers `msg` once after `delay` seconds on the run's clock (virtual under
    /// `weir.testing`), as `try_tell` would; cancelled when the actor's stage stops.
    fn send_after(&self, msg: Py<PyAny>, delay: f64) -> PyResult<PyScheduled> {
        let d = secs("send_after: delay", delay)?;
        Ok(PyScheduled(self.0.send_after(PyObj(msg), d)))
    }

    /// Delivers `msg` every `interval` seconds on the run's clock (the first one interval from
    /// now), as `try_tell` would, until cancelled or the actor stops.
    fn send_interval(&self, msg: Py<PyAny>, interval: f64) -> PyResult<PyScheduled> {
        let d = secs("send_interval: interval", interval)?;
        if d.is_zero() {
            return Err(PyValueError::new_err(
                "send_interval: interval must be more than 0 seconds",
            ));
        }
        let msg = PyObj(msg);
        Ok(PyScheduled(self.0.send_interval(move || msg.clone(), d)))
    }

    /// Bytes one queued message counts for in a stage's `mailbox_budget`.
    #[staticmethod]
    fn message_bytes() -> usize {
        ActorRef::<PyObj>::message_bytes()
    }

    /// Messages waiting in the mailbox.
    fn __len__(&self) -> usize {
        self.0.len()
    }

    /// How many messages the mailbox holds.
    #[getter]
    fn capacity(&self) -> usize {
        self.0.capacity()
    }

    /// How full the mailbox is: `"normal"` (under half), `"high"` or `"critical"` (90%).
    #[getter]
    fn pressure(&self) -> &'static str {
        match self.0.pressure() {
            Pressure::Normal => "normal",
            Pressure::High => "high",
            Pressure::Critical => "critical",
        }
    }

    /// The actor's path (`stage/actor`).
    #[getter]
    fn path(&self) -> String {
        self.0.path().to_owned()
    }

    /// Whether the actor stopped (its mailbox is closed).
    fn is_stopped(&self) -> bool {
        self.0.is_stopped()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyActorRef>()
            .is_ok_and(|o| o.get().0.id() == self.0.id() && o.get().0.path() == self.0.path())
    }

    fn __hash__(&self) -> u64 {
        weir_graph::stable_hash_of(&(self.0.path(), format!("{}", self.0.id())))
    }

    fn __repr__(&self) -> String {
        format!("ActorRef({})", self.0.path())
    }
}
