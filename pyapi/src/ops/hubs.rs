//! Hubs and restart wrappers for Python: the Rust operators of `weir_operators::hub` and
//! `weir_operators::restart` over [`PyObj`]. Only the partitioner of `PartitionHub` (once per
//! batch) and the restart factories (once per restart) call Python, on the dispatcher thread
//! that polls the stage.

use super::*;
use crate::dsl::Bp;
use futures::FutureExt;
use futures::future::BoxFuture;
use weir_operators::hub::{BroadcastHub, MergeHub, PartitionHub, Partitioner, Routed};
use weir_operators::restart::{RestartFlow, RestartSettings, RestartSink, RestartSource};

/// An element shared between the consumers of a `BroadcastHub` by reference count: the hub
/// copies elements under its own lock, possibly on another run's dispatcher, where taking the GIL
/// (as cloning a [`PyObj`] does) could deadlock against a thread holding the GIL and waiting for
/// that lock.
type SharedObj = Arc<PyObj>;

fn share() -> Flow<PyObj, SharedObj, ()> {
    Flow::<PyObj, PyObj, ()>::identity().map(Arc::new)
}

/// Turns [`SharedObj`] elements back into owned objects (a new reference when still shared).
fn unshare_flow(name: &str) -> Flow<SharedObj, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, s: SharedObj| Ok(Arc::try_unwrap(s).unwrap_or_else(|s| s.clone_ref(py))))
        }),
    )
}

/// Wraps a native blueprint in its Python class (`weir.Source`, `weir.Sink`, ...).
fn py_blueprint(py: Python<'_>, class: &str, bp: Bp) -> PyResult<Py<PyAny>> {
    let native = Py::new(py, wrap(bp))?;
    Ok(py
        .import("weir._dsl")?
        .getattr(class)?
        .call1((native,))?
        .unbind())
}

/// The native blueprint of a Python blueprint object (or of a native one).
fn native_bp(obj: &Bound<'_, PyAny>) -> PyResult<Bp> {
    let n = if obj.is_instance_of::<PyBlueprint>() {
        obj.clone()
    } else {
        obj.getattr("_n")?
    };
    Ok(n.cast::<PyBlueprint>()?.get().bp.clone())
}

/// `MergeHub.source(per_producer_buffer_size)`: materializes a `weir.Sink` for producers.
#[pyfunction]
pub fn merge_hub_source(per_producer_buffer_size: usize) -> PyResult<PyBlueprint> {
    let s = MergeHub::source::<PyObj>(per_producer_buffer_size)
        .map_err(graph_err)?
        .map_materialized_value(|sink| {
            MatValue::Lazy(Box::new(move |py| {
                let sink = sink.map_materialized_value(|()| MatValue::Unit);
                py_blueprint(py, "Sink", Bp::Sink(sink))
            }))
        });
    Ok(wrap(Bp::Source(s)))
}

/// A hub sink whose materialized source becomes a `weir.Source`.
fn hub_sink(s: Sink<PyObj, Source<PyObj, ()>>) -> PyBlueprint {
    let s = s.map_materialized_value(|src| {
        MatValue::Lazy(Box::new(move |py| {
            let src = src.map_materialized_value(|()| MatValue::Unit);
            py_blueprint(py, "Source", Bp::Source(src))
        }))
    });
    wrap(Bp::Sink(s))
}

/// `BroadcastHub.sink(buffer_size)`: materializes a `weir.Source` for consumers. Elements are
/// shared by reference between consumers (one Python object, a new reference per consumer).
#[pyfunction]
pub fn broadcast_hub_sink(buffer_size: usize) -> PyResult<PyBlueprint> {
    let s = share()
        .to_mat(
            BroadcastHub::sink::<SharedObj>(buffer_size).map_err(graph_err)?,
            |(), m| m,
        )
        .map_materialized_value(|src: Source<SharedObj, ()>| {
            MatValue::Lazy(Box::new(move |py| {
                let src = src
                    .via(unshare_flow("broadcast_hub_source"))
                    .map_materialized_value(|()| MatValue::Unit);
                py_blueprint(py, "Source", Bp::Source(src))
            }))
        });
    Ok(wrap(Bp::Sink(s)))
}

/// Calls a Python `partitioner(n, element) -> int` over a batch, the GIL taken once (the hub's
/// sink stage runs on the run's dispatcher).
struct PyPartitioner {
    f: Arc<Py<PyAny>>,
}

impl Partitioner<PyObj> for PyPartitioner {
    fn route(&mut self, consumers: usize, batch: Vec<PyObj>) -> BoxFuture<'static, Routed<PyObj>> {
        let f = Arc::clone(&self.f);
        async move { crate::gil::with(|py| route_batch(py, &f, consumers, batch)) }.boxed()
    }
}

/// `f(consumers, x)` for each element until one raises or returns a non-integer.
fn route_batch(
    py: Python<'_>,
    f: &Py<PyAny>,
    consumers: usize,
    batch: Vec<PyObj>,
) -> Routed<PyObj> {
    let f = f.bind(py);
    let mut routes = Vec::with_capacity(batch.len());
    let mut error = None;
    for x in &batch {
        match f
            .call1((consumers, x.0.bind(py)))
            .and_then(|r| r.extract::<i64>())
        {
            Ok(i) => routes.push(i),
            Err(e) => {
                let repr = crate::obj::short_repr(py, x);
                error = Some(crate::obj::user_error_on(py, e, Some(x)).with_element(&repr));
                break;
            }
        }
    }
    Routed {
        batch,
        routes,
        error,
    }
}

/// `PartitionHub.sink(partitioner, start_after_nr_of_consumers, buffer_size)`.
#[pyfunction]
pub fn partition_hub_sink(
    partitioner: Py<PyAny>,
    start_after_nr_of_consumers: usize,
    buffer_size: usize,
) -> PyResult<PyBlueprint> {
    let f = Arc::new(partitioner);
    let s = PartitionHub::batch_sink(
        move || PyPartitioner { f: Arc::clone(&f) },
        start_after_nr_of_consumers,
        buffer_size,
    )
    .map_err(graph_err)?;
    Ok(hub_sink(s))
}

/// The restart settings from values `weir._hubs._backoff` checked at construction; what
/// only Rust checks (the backoff pair) is its `ValueError`.
fn restart_settings(
    min_backoff: f64,
    max_backoff: f64,
    random_factor: f64,
    max_restarts: Option<usize>,
    max_restarts_within: Option<f64>,
) -> PyResult<RestartSettings> {
    let s = RestartSettings::new(secs(min_backoff)?, secs(max_backoff)?, random_factor)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(match max_restarts {
        None => s,
        Some(n) => s.with_max_restarts(n, secs(max_restarts_within.unwrap_or(min_backoff))?),
    })
}

/// The blueprint made by the Python factory of a restart wrapper, called when the wrapper
/// stage (polled on the run's dispatcher) starts an incarnation.
fn call_factory<T: Send + 'static>(
    factory: &Arc<Py<PyAny>>,
    convert: fn(Bp) -> PyResult<T>,
) -> BoxFuture<'static, Result<T, StageError>> {
    let factory = Arc::clone(factory);
    async move {
        crate::gil::with(|py| {
            factory
                .bind(py)
                .call0()
                .and_then(|r| native_bp(&r))
                .and_then(convert)
                .map_err(|e| user_error(py, e))
        })
    }
    .boxed()
}

/// The type error of a restart factory that returned the wrong kind of blueprint.
fn wrong_blueprint(op: &str, class: &str) -> PyErr {
    PyTypeError::new_err(format!("{op}: the factory must return a {class}"))
}

/// `RestartSource`, `RestartFlow` or `RestartSink` (`kind` is `"source"`, `"flow"` or `"sink"`)
/// over what `factory()` returns; `only_on_failures` is the `on_failures_with_backoff` flavour
/// (sources and flows only).
#[pyfunction]
#[pyo3(signature = (kind, factory, min_backoff, max_backoff, random_factor, max_restarts, max_restarts_within, only_on_failures))]
#[allow(clippy::too_many_arguments)]
pub fn restart(
    kind: &str,
    factory: Py<PyAny>,
    min_backoff: f64,
    max_backoff: f64,
    random_factor: f64,
    max_restarts: Option<usize>,
    max_restarts_within: Option<f64>,
    only_on_failures: bool,
) -> PyResult<PyBlueprint> {
    let s = restart_settings(
        min_backoff,
        max_backoff,
        random_factor,
        max_restarts,
        max_restarts_within,
    )?;
    let factory = Arc::new(factory);
    let bp = match kind {
        "source" => {
            let w = RestartSource::try_with_backoff(s, only_on_failures, move || {
                call_factory(&factory, |bp| match bp {
                    Bp::Source(s) => Ok(s),
                    _ => Err(wrong_blueprint("RestartSource", "weir.Source")),
                })
            });
            Bp::Source(w.map_materialized_value(|()| MatValue::Unit))
        }
        "flow" => {
            let w = RestartFlow::try_with_backoff(s, only_on_failures, move || {
                call_factory(&factory, |bp| match bp {
                    Bp::Flow(f) => Ok(f),
                    _ => Err(wrong_blueprint("RestartFlow", "weir.Flow")),
                })
            });
            Bp::Flow(w.map_materialized_value(|()| MatValue::Unit))
        }
        "sink" if !only_on_failures => {
            let w = RestartSink::try_with_backoff(s, move || {
                call_factory(&factory, |bp| match bp {
                    Bp::Sink(s) => Ok(s),
                    _ => Err(wrong_blueprint("RestartSink", "weir.Sink")),
                })
            });
            Bp::Sink(w.map_materialized_value(|()| MatValue::Unit))
        }
        _ => {
            return Err(PyValueError::new_err(format!(
                "restart: no {kind:?} wrapper (only_on_failures={only_on_failures})"
            )));
        }
    };
    Ok(wrap(bp))
}
