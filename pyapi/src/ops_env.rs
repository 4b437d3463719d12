//! The job settings `weir run` hands a Python script through `WEIR_*` variables
//! (`weir::cli::JobSettings::from_env`), applied where a run starts: run defaults (name,
//! parallelism, checkpoints), the UI/API/metrics server started once per process (its
//! `/metrics` with the interpreter pools' gauges, `crate::pool_metrics`), and
//! `WEIR_VISUALIZE`, which prints the graph instead of running it.

use crate::errors::WeirError;
use crate::mat::MatValue;
use crate::pool_metrics::PoolMetrics;
use pyo3::exceptions::{PySystemExit, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};
use weir::cli::{JobSettings, Served, env};
use weir::viz::{self, Format};
use weir_engine::Materializer;
use weir_graph::RunnableGraph;
use weir_ops::prom::MetricsSource;

/// The process's job settings, read once.
pub fn settings() -> PyResult<&'static JobSettings> {
    static SETTINGS: OnceLock<Result<JobSettings, String>> = OnceLock::new();
    SETTINGS
        .get_or_init(|| JobSettings::from_env().map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| PyValueError::new_err(format!("weir job settings: {e}")))
}

fn write(py: Python<'_>, stream: &str, text: &str) -> PyResult<()> {
    let s = py.import("sys")?.getattr(stream)?;
    s.call_method1("write", (text,))?;
    s.call_method0("flush")?;
    Ok(())
}

/// The server and the pool metrics source it exposes.
struct Serving {
    served: Served,
    pools: Arc<dyn MetricsSource>,
}

static SERVER: OnceLock<Mutex<Option<Serving>>> = OnceLock::new();

/// Stops the server and removes its job file (registered with `atexit`). The GIL is released
/// meanwhile: a scrape in flight may be waiting for it to read the pools.
#[pyfunction]
fn shutdown_server(py: Python<'_>) {
    let Some(m) = SERVER.get() else { return };
    let taken = m.lock().ok().and_then(|mut s| s.take());
    if let Some(s) = taken {
        weir_ops::prom::remove_source(&s.pools);
        py.detach(move || drop(s.served));
    }
}

/// Starts the UI/API server when `WEIR_UI_PORT` is set, once per process (its URL with the
/// token goes to stderr; it stops, removing its job file, when the interpreter exits); later
/// calls do nothing.
pub fn ensure_server(py: Python<'_>) -> PyResult<()> {
    let s = settings()?;
    let Some(ui) = &s.ui else {
        return Ok(());
    };
    if SERVER.get().is_some() {
        return Ok(());
    }
    let served = weir::cli::serve(ui)
        .map_err(|e| WeirError::new_err(format!("cannot start the weir UI: {e}")))?;
    let name = s.name.as_deref().unwrap_or("python");
    // The interpreter pools' gauges join the server's `/metrics` before its address is told,
    // so the first scrape has them.
    let pools = PoolMetrics::source();
    weir_ops::prom::add_source(Arc::clone(&pools));
    let url = served.ui_url();
    let _ = SERVER.set(Mutex::new(Some(Serving { served, pools })));
    write(
        py,
        "stderr",
        &format!("weir: job {name} serving its UI at {url}\n"),
    )?;
    let hook = wrap_pyfunction!(shutdown_server, py)?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    Ok(())
}

/// With `WEIR_VISUALIZE=<mermaid|dot|svg>` set: prints `g`'s logical graph (or, with
/// `WEIR_VISUALIZE_PHYSICAL=1`, its physical plan on `m`) to stdout and raises `SystemExit(0)`
/// so the script ends before running it. Without it: nothing.
pub fn visualize(py: Python<'_>, g: &RunnableGraph<MatValue>, m: &Materializer) -> PyResult<()> {
    let Some(f) = std::env::var(env::VISUALIZE).ok().filter(|v| !v.is_empty()) else {
        return Ok(());
    };
    let format = Format::parse(&f).ok_or_else(|| {
        PyValueError::new_err(format!(
            "{}={f:?}: expected mermaid, dot or svg",
            env::VISUALIZE
        ))
    })?;
    let physical = std::env::var(env::VISUALIZE_PHYSICAL).is_ok_and(|v| v == "1");
    let text = if physical {
        let plan = m.plan(g).map_err(|e| crate::errors::engine_err(py, e))?;
        viz::render_physical(&plan, format)
    } else {
        viz::render_logical(g.module(), format)
    };
    write(py, "stdout", &text)?;
    Err(PySystemExit::new_err(0))
}
