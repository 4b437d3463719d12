//! Running Python graphs: the shared weir runtime, `start()`, and the handle of a run.

use crate::checkpoints::{PySavepoint, Slot};
use crate::dispatch::{Dispatcher, Queue, RunCtx};
use crate::dsl::{Bp, PyBlueprint};
use crate::errors::{RunCancelled, WeirError, engine_err, to_py_err};
use crate::mat::MatValue;
use crate::obj::PyObj;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use std::sync::{Arc, Mutex, OnceLock};
use weir_engine::{Materializer, RunHandle, Runtime, UniqueKillSwitch};
use weir_graph::{ExecutorId, SinkFuture, StageError};

/// The name of the weir runtime's worker threads.
pub const WORKER_THREAD: &str = "weir-worker";

static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();

/// The process-wide weir runtime every Python run executes on (one worker per core, at least 2).
pub fn runtime() -> PyResult<&'static Runtime> {
    let r = RUNTIME.get_or_init(|| {
        let n = std::thread::available_parallelism().map_or(2, |n| n.get().max(2));
        Runtime::with_threads(n).map_err(|e| e.to_string())
    });
    r.as_ref()
        .map_err(|e| WeirError::new_err(format!("cannot start the weir runtime: {e}")))
}

/// Polls a sink's future, converting its result to Python once it is there.
type Poller = Box<dyn FnMut(Python<'_>) -> Option<Result<Py<PyAny>, StageError>> + Send>;

/// The future result of a sink, resolved once the run completes.
#[pyclass(module = "weir._native", name = "SinkFuture", frozen)]
pub struct PySinkFuture {
    fut: Mutex<Option<Poller>>,
    value: Mutex<Option<Result<Py<PyAny>, StageError>>>,
}

impl PySinkFuture {
    /// The future `f` of a Rust sink, its value made a Python object by `convert` (with the
    /// GIL, when the value is first asked for).
    pub fn new<T: Send + 'static>(
        mut f: SinkFuture<T>,
        convert: impl Fn(Python<'_>, T) -> PyResult<Py<PyAny>> + Send + 'static,
    ) -> Self {
        let poll: Poller = Box::new(move |py| {
            f.try_get()
                .map(|r| r.and_then(|v| convert(py, v).map_err(|e| crate::obj::user_error(py, e))))
        });
        Self {
            fut: Mutex::new(Some(poll)),
            value: Mutex::new(None),
        }
    }

    fn poll(&self, py: Python<'_>) -> Option<Result<Py<PyAny>, StageError>> {
        let mut v = self.value.lock().ok()?;
        if v.is_none() {
            let mut f = self.fut.lock().ok()?;
            if let Some(r) = f.as_mut().and_then(|f| f(py)) {
                *f = None;
                *v = Some(r);
            }
        }
        v.as_ref().map(|r| match r {
            Ok(o) => Ok(o.clone_ref(py)),
            Err(e) => Err(e.clone()),
        })
    }
}

#[pymethods]
impl PySinkFuture {
    /// Whether the result is available.
    fn done(&self, py: Python<'_>) -> bool {
        self.poll(py).is_some()
    }

    /// The result; raises the stage's error if it failed, `RuntimeError`-like `WeirError` if it is
    /// not complete yet (wait for the run first).
    fn result(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        match self.poll(py) {
            Some(Ok(v)) => Ok(v),
            Some(Err(e)) => Err(to_py_err(py, &e)),
            None => Err(WeirError::new_err("the result is not available yet")),
        }
    }
}

/// A kill switch of one run: `shutdown()` completes the stream downstream and cancels upstream;
/// `abort(message)` fails it.
#[pyclass(module = "weir._native", name = "UniqueKillSwitch", frozen)]
pub struct PyUniqueKillSwitch(UniqueKillSwitch);

#[pymethods]
impl PyUniqueKillSwitch {
    /// Completes downstream, cancels upstream.
    fn shutdown(&self) {
        self.0.shutdown();
    }
    /// Fails downstream with `message`, cancels upstream.
    #[pyo3(signature = (message = "aborted by kill switch"))]
    fn abort(&self, message: &str) {
        self.0.abort(StageError::user(message));
    }
}

pub(crate) fn mat_to_py(py: Python<'_>, m: MatValue) -> PyResult<Py<PyAny>> {
    Ok(match m {
        MatValue::Unit => py.None(),
        MatValue::Future(f) => Py::new(py, PySinkFuture::new(f, |_, o: PyObj| Ok(o.0)))?.into_any(),
        MatValue::KillSwitch(k) => Py::new(py, PyUniqueKillSwitch(k))?.into_any(),
        MatValue::Pair(a, b) => {
            let items = [mat_to_py(py, *a)?, mat_to_py(py, *b)?];
            PyTuple::new(py, items)?.into_any().unbind()
        }
        MatValue::Many(v) => {
            let items = v
                .into_iter()
                .map(|x| mat_to_py(py, x))
                .collect::<PyResult<Vec<_>>>()?;
            PyTuple::new(py, items)?.into_any().unbind()
        }
        MatValue::Lazy(f) => f(py)?,
    })
}

/// A running graph: serve its Python dispatcher, wait for it, cancel it, read its metrics.
#[pyclass(module = "weir._native", name = "Run", frozen)]
pub struct PyRun {
    handle: Arc<RunHandle>,
    queue: Queue,
    disp: Arc<Dispatcher>,
    grace: std::time::Duration,
    outcome: Arc<Mutex<Option<Result<(), StageError>>>>,
    mat: Mutex<Option<Py<PyAny>>>,
}

impl PyRun {
    /// The queue of the run's Python jobs (served by `weir.testing` while it settles a run).
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

#[pymethods]
impl PyRun {
    /// Executes the run's Python jobs on the calling thread until the run is over. On Ctrl-C
    /// (a signal handler raising on the main thread) the run is cancelled, wound down, and the
    /// `KeyboardInterrupt` is raised. Only one thread serves a run; later calls return at once.
    fn serve(&self, py: Python<'_>) -> PyResult<()> {
        let h = Arc::clone(&self.handle);
        self.queue.serve(py, &move || h.cancel())
    }

    /// Cancels the run: every stage stops at its next await point.
    fn cancel(&self) {
        self.handle.cancel();
    }

    /// Seconds a cancelled run gives a Python call still running to return before `wait()`
    /// gives up on it (see `stuck_error`).
    #[getter]
    fn cancel_grace(&self) -> f64 {
        self.grace.as_secs_f64()
    }

    /// When the serving thread is still inside a user call although the run is over: the
    /// `StageFailed` (kind `"timeout"`) naming the stage that queued the call, how long it has
    /// been running and the serving thread, which is left behind.
    /// `None` when the serving thread is idle.
    fn stuck_error(&self, py: Python<'_>) -> Option<PyErr> {
        let (mut stage, busy, thread) = self.disp.busy()?;
        let outcome = self.outcome.lock().ok().and_then(|o| o.clone());
        if let Some(Err(e)) = &outcome
            && e.kind() == weir_graph::ErrorKind::Timeout
            && let Some(s) = e.stage()
        {
            // The engine knows which stage of the island the thread is stuck in.
            stage = s.to_owned();
        }
        let cause = match outcome {
            // The engine's own timeout says the same as this error.
            Some(Err(e)) if e.kind() != weir_graph::ErrorKind::Timeout => {
                format!(" (the run stopped because: {e})")
            }
            _ => String::new(),
        };
        let msg = format!(
            "did not stop within {:?} of the end of the run: its Python call has been running \
             for {:.1}s on thread {thread}, which serves the run and is left behind{cause}",
            self.grace,
            busy.as_secs_f64()
        );
        Some(to_py_err(py, &StageError::timeout(msg).with_stage(&stage)))
    }

    /// Whether every task of the run has ended.
    fn is_finished(&self) -> bool {
        self.outcome.lock().map(|o| o.is_some()).unwrap_or(true)
    }

    /// The materialized value (completions are `SinkFuture` objects).
    #[getter]
    fn materialized(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.mat
            .lock()
            .ok()
            .and_then(|m| m.as_ref().map(|m| m.clone_ref(py)))
    }

    /// `None` if the run completed, raises its failure (or `RunCancelled`) otherwise; raises
    /// `WeirError` while the run is still going.
    fn outcome(&self, py: Python<'_>) -> PyResult<()> {
        let o = self
            .outcome
            .lock()
            .map_err(|_| WeirError::new_err("poisoned"))?;
        match o.as_ref() {
            None => Err(WeirError::new_err("the run is still going")),
            Some(Ok(())) => Ok(()),
            Some(Err(e)) => Err(to_py_err(py, e)),
        }
    }

    /// The newest checkpoint this run completed (`None` before the first, or without
    /// checkpoints).
    #[getter]
    fn latest_checkpoint(&self) -> Option<u64> {
        self.handle.checkpoints().and_then(|c| c.latest_completed())
    }

    /// The checkpoint this run restored its state from (`None`: it started empty).
    #[getter]
    fn restored_checkpoint(&self) -> Option<u64> {
        self.handle.checkpoints().and_then(|c| c.restored())
    }

    /// Takes a savepoint into `dir` (a barrier now; written once every stage acknowledged it):
    /// the pending `Savepoint`, which fails when the run has no checkpoints, ended first, or a
    /// stage declined the barrier.
    fn savepoint(&self, dir: std::path::PathBuf) -> PyResult<PySavepoint> {
        let slot = Arc::new(Slot::default());
        let (h, s, d) = (Arc::clone(&self.handle), Arc::clone(&slot), dir.clone());
        runtime()?
            .handle()
            .spawn(async move { s.set(h.savepoint(d).await) });
        Ok(PySavepoint::new(dir, slot))
    }

    /// The stage subtasks (`(path, subtask)`) that found no state in the checkpoint or
    /// savepoint this run restored from and started empty (`[]` without a restore).
    #[getter]
    fn started_empty(&self) -> Vec<(String, usize)> {
        let Some(c) = self.handle.checkpoints() else {
            return Vec::new();
        };
        let empty = c.started_empty();
        if empty.is_empty() {
            return Vec::new();
        }
        let paths: std::collections::HashMap<_, _> = self
            .handle
            .metrics()
            .into_iter()
            .map(|m| ((m.stage_id, m.subtask), m.path))
            .collect();
        empty
            .into_iter()
            .map(|(id, sub)| {
                let path = paths.get(&(id, sub)).cloned();
                (path.unwrap_or_else(|| id.to_string()), sub)
            })
            .collect()
    }

    /// The newer checkpoints skipped as corrupt when this run restored an older one, each as
    /// its error (naming the damaged file), newest first.
    #[getter]
    fn skipped(&self) -> Vec<String> {
        self.handle
            .checkpoints()
            .map(|c| c.skipped())
            .unwrap_or_default()
    }

    /// Per stage subtask: a dict of counters (`path`, `subtask`, `elements_in`, `elements_out`,
    /// `batches_in`, `batches_out`, `queue_depth`, `busy_ms`, `backpressured_ms`, `idle_ms`,
    /// `restarts`, `failures`, `stopped`).
    fn metrics<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyDict>>> {
        self.handle
            .metrics()
            .into_iter()
            .map(|m| {
                let d = PyDict::new(py);
                d.set_item("path", m.path)?;
                d.set_item("subtask", m.subtask)?;
                d.set_item("island", m.island)?;
                d.set_item("elements_in", m.elements_in)?;
                d.set_item("elements_out", m.elements_out)?;
                d.set_item("batches_in", m.batches_in)?;
                d.set_item("batches_out", m.batches_out)?;
                d.set_item("queue_depth", m.queue_depth)?;
                d.set_item("busy_ms", m.busy_ns as f64 / 1e6)?;
                d.set_item("backpressured_ms", m.backpressured_ns as f64 / 1e6)?;
                d.set_item("idle_ms", m.idle_ns as f64 / 1e6)?;
                d.set_item("restarts", m.restarts)?;
                d.set_item("failures", m.failures)?;
                d.set_item("stopped", m.stopped)?;
                Ok(d)
            })
            .collect()
    }
}

/// Materializes a closed graph: its stages start at once on the weir runtime and send their
/// Python work to the returned run, which some Python thread must `serve()`.
#[pyfunction]
#[pyo3(signature = (graph, aio_loop = None, batch_size = None, cancel_grace = None, clock = None, parallelism = None, state_dir = None, checkpoint_interval = None, retain = None, restore_from = None, allow_unmatched = false, cluster = None))]
pub fn start(
    py: Python<'_>,
    graph: &PyBlueprint,
    aio_loop: Option<Py<PyAny>>,
    batch_size: Option<usize>,
    cancel_grace: Option<f64>,
    clock: Option<PyRef<'_, crate::testing::PyVirtualClock>>,
    parallelism: Option<usize>,
    state_dir: Option<std::path::PathBuf>,
    checkpoint_interval: Option<f64>,
    retain: Option<usize>,
    restore_from: Option<std::path::PathBuf>,
    allow_unmatched: bool,
    cluster: Option<PyRef<'_, crate::ops::cluster::PyClusterNode>>,
) -> PyResult<PyRun> {
    let Bp::Graph(g) = &graph.bp else {
        return Err(PyTypeError::new_err(
            "only a closed graph (a RunnableGraph) can run",
        ));
    };
    let rt = runtime()?;
    let (disp, rx) = Dispatcher::new();
    let ctx = RunCtx {
        dispatcher: Arc::clone(&disp),
        aio_loop: aio_loop.map(Arc::new),
    };
    let mut m = Materializer::new()
        .with_runtime(rt.handle())
        .with_executor(
            ExecutorId::PYTHON,
            Arc::clone(&disp) as Arc<dyn weir_engine::IslandExecutor>,
        )
        .with_default_executor(ExecutorId::PYTHON)
        .with_service(Arc::new(ctx));
    if let Some(b) = batch_size {
        m = m.with_batch_size(b);
    }
    if let Some(c) = clock {
        m = m.with_clock(c.clock());
    }
    // `WEIR_*` job settings (from `weir run`) are the defaults of what the call leaves out.
    let job = crate::ops_env::settings()?;
    if let Some(n) = &job.name {
        m = m.with_name(n.clone());
    }
    if let Some(p) = parallelism.or(job.parallelism) {
        m = m.with_parallelism(p);
    }
    let (state_dir, checkpoint_interval, restore_from) = match state_dir {
        Some(d) => (Some(d), checkpoint_interval, restore_from),
        None => (
            job.state_dir.clone(),
            checkpoint_interval.or(job.checkpoint_interval.map(|d| d.as_secs_f64())),
            restore_from.or(job.from_savepoint.clone()),
        ),
    };
    let settings = crate::checkpoints::Settings {
        state_dir,
        interval: checkpoint_interval,
        retain,
        restore_from,
        allow_unmatched,
    };
    if let Some(mut c) = crate::checkpoints::config(settings)? {
        // A node of a job over nodes: its checkpoints complete only once every node wrote them.
        if let Some(node) = &cluster {
            c = node.checkpoints(py, c)?;
        }
        m = m.with_checkpoints(c);
    }
    let grace = match cancel_grace {
        Some(g) if g.is_finite() && g >= 0.0 => std::time::Duration::from_secs_f64(g),
        Some(g) => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "cancel_grace must be a non-negative number of seconds, got {g}"
            )));
        }
        None => weir_engine::DEFAULT_CANCEL_GRACE,
    };
    m = m.with_cancel_grace(grace);
    crate::ops_env::visualize(py, g, &m)?;
    crate::ops_env::ensure_logging(py)?;
    crate::ops_env::ensure_server(py)?;
    let (mat, handle) = m.materialize(g).map_err(|e| engine_err(py, e))?;
    let handle = Arc::new(handle);
    let outcome = Arc::new(Mutex::new(None));
    let (h2, o2, d2) = (Arc::clone(&handle), Arc::clone(&outcome), Arc::clone(&disp));
    rt.handle().spawn(async move {
        let r = h2.wait().await;
        if let Ok(mut o) = o2.lock() {
            *o = Some(r);
        }
        d2.stop();
    });
    let mat = mat_to_py(py, mat)?;
    Ok(PyRun {
        handle,
        queue: Queue::new(rx),
        disp,
        grace,
        outcome,
        mat: Mutex::new(Some(mat)),
    })
}

/// Raised for documentation purposes: cancelled runs raise [`RunCancelled`].
pub fn cancelled_type(py: Python<'_>) -> Bound<'_, pyo3::types::PyType> {
    py.get_type::<RunCancelled>()
}
