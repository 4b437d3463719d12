//! The job settings `weir run` hands a Python script through `WEIR_*` variables
//! (`weir::cli::JobSettings::from_env`), applied where a run starts: run defaults (name,
//! parallelism, checkpoints), the UI/API/metrics server started once per process (its
//! `/metrics` with the interpreter pools' gauges, `crate::pool_metrics`), logging (the same
//! `weir_ops::logging` set-up as a Rust job: stderr text or JSON lines, OTLP span export, flushed
//! when the interpreter exits), and `WEIR_VISUALIZE`, which prints the graph instead of running it.

use crate::errors::WeirError;
use crate::mat::MatValue;
use crate::pool_metrics::PoolMetrics;
use pyo3::exceptions::{PySystemExit, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex, OnceLock};
use weir::cli::{JobSettings, LogFormat, LoggingError, Served, env};
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

/// Whether the environment asks for logging: `weir run` sets `WEIR_LOG_FORMAT`; a filter in
/// `WEIR_LOG`/`RUST_LOG` or an OTLP endpoint asks for it too. A plain script or notebook
/// without any of them installs no subscriber.
fn logging_asked() -> bool {
    [
        env::LOG_FORMAT,
        "WEIR_LOG",
        "RUST_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ]
    .iter()
    .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()))
}

static LOGGING: OnceLock<()> = OnceLock::new();

/// Sends the spans not yet exported (registered with `atexit` once logging is set up), with the
/// GIL released: the export thread may be waiting for nothing of Python's, but a run's last
/// stage may still be.
#[pyfunction]
fn shutdown_logging(py: Python<'_>) {
    py.detach(weir_ops::logging::shutdown);
}

/// Installs the process's log subscriber in `format` (at most once; later calls and a
/// subscriber set by someone else leave it as it is) and flushes its spans at exit. Returns
/// whether this call installed it.
fn install_logging(py: Python<'_>, format: LogFormat) -> PyResult<bool> {
    if LOGGING.get().is_some() {
        return Ok(false);
    }
    let f = match format {
        LogFormat::Text => weir_ops::logging::LogFormat::Text,
        LogFormat::Json => weir_ops::logging::LogFormat::Json,
    };
    match weir_ops::logging::init(f) {
        Ok(()) => {}
        Err(LoggingError::AlreadySet) => return Ok(false),
        Err(e) => return Err(PyValueError::new_err(format!("weir logging: {e}"))),
    }
    let _ = LOGGING.set(());
    let hook = wrap_pyfunction!(shutdown_logging, py)?;
    py.import("atexit")?.call_method1("register", (hook,))?;
    Ok(true)
}

/// Sets up logging where the environment asks for it (see `logging_asked`), once per process,
/// in the format of `WEIR_LOG_FORMAT`; a filter that does not parse is a `ValueError`.
pub fn ensure_logging(py: Python<'_>) -> PyResult<()> {
    if LOGGING.get().is_some() || !logging_asked() {
        return Ok(());
    }
    install_logging(py, settings()?.log_format).map(drop)
}

/// `weir.init_logging(format="text")`: engine logs to stderr as `"text"` or `"json"` lines,
/// filtered by `WEIR_LOG` (else `RUST_LOG`, else `info`), spans exported over OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set. Returns whether logging was installed by this call
/// (`False` once it is set up already).
#[pyfunction]
#[pyo3(signature = (format = "text"))]
pub fn init_logging(py: Python<'_>, format: &str) -> PyResult<bool> {
    let format = match format {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            return Err(PyValueError::new_err(format!(
                "init_logging: format must be 'text' or 'json', got '{other}'"
            )));
        }
    };
    install_logging(py, format)
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
