//! Hubs and restart wrappers for Python: the Rust operators of `weir_operators::hub` and
//! `weir_operators::restart` over [`PyObj`]. Only the partitioner of `PartitionHub` (one job
//! per batch) and the restart factories (one job per restart) call Python, on the dispatcher of
//! the run that holds the stage.

use super::*;
use crate::dispatch::{Dispatcher, RunCtx};
use crate::dsl::Bp;
use futures::FutureExt;
use futures::future::BoxFuture;
use weir_graph::{AsyncIo, AsyncLogic, Module};
use weir_operators::hub::{BroadcastHub, MergeHub, PartitionHub, Partitioner, Routed};
use weir_operators::restart::{RestartFlow, RestartSettings, RestartSink, RestartSource};

/// An element shared between the consumers of a `BroadcastHub` by reference count: the hub
/// copies elements under its own lock, possibly on another run's dispatcher, where taking the GIL
/// (as cloning a [`PyObj`] does) could deadlock against a thread holding the GIL and waiting for
/// that lock.
type Shared = Arc<PyObj>;

fn share() -> Flow<PyObj, Shared, ()> {
    Flow::<PyObj, PyObj, ()>::identity().map(Arc::new)
}

/// Turns [`Shared`] elements back into owned objects (a new reference when still shared).
fn unshare_flow(name: &str) -> Flow<Shared, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, s: Shared| Ok(Arc::try_unwrap(s).unwrap_or_else(|s| s.clone_ref(py))))
        }),
    )
}

/// A positive size from Python, or a `ValueError` naming the operator and the parameter.
fn size(op: &str, param: &str, n: i64) -> PyResult<usize> {
    match usize::try_from(n) {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(PyValueError::new_err(format!(
            "{op}: {param} must be at least 1, got {n}"
        ))),
    }
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
    let n = if obj.is_instance_of::<NBlueprint>() {
        obj.clone()
    } else {
        obj.getattr("_n")?
    };
    Ok(n.cast::<NBlueprint>()?.get().bp.clone())
}

/// `MergeHub.source(per_producer_buffer_size)`: materializes a `weir.Sink` for producers.
#[pyfunction]
pub fn merge_hub_source(per_producer_buffer_size: i64) -> PyResult<NBlueprint> {
    let n = size(
        "MergeHub.source",
        "per_producer_buffer_size",
        per_producer_buffer_size,
    )?;
    let s = MergeHub::source::<PyObj>(n)
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
fn hub_sink(s: Sink<PyObj, Source<PyObj, ()>>) -> NBlueprint {
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
pub fn broadcast_hub_sink(buffer_size: i64) -> PyResult<NBlueprint> {
    let n = size("BroadcastHub.sink", "buffer_size", buffer_size)?;
    let s = share()
        .to_mat(
            BroadcastHub::sink::<Shared>(n).map_err(graph_err)?,
            |(), m| m,
        )
        .map_materialized_value(|src: Source<Shared, ()>| {
            MatValue::Lazy(Box::new(move |py| {
                let src = src
                    .via(unshare_flow("broadcast_hub_source"))
                    .map_materialized_value(|()| MatValue::Unit);
                py_blueprint(py, "Source", Bp::Source(src))
            }))
        });
    Ok(wrap(Bp::Sink(s)))
}

/// Calls a Python `partitioner(n, element) -> int` over a batch in one dispatcher job.
struct PyPartitioner {
    f: Arc<Py<PyAny>>,
    disp: Result<Arc<Dispatcher>, StageError>,
}

impl Partitioner<PyObj> for PyPartitioner {
    fn route(&mut self, consumers: usize, batch: Vec<PyObj>) -> BoxFuture<'static, Routed<PyObj>> {
        let f = Arc::clone(&self.f);
        let disp = self.disp.clone();
        async move {
            let disp = match disp {
                Ok(d) => d,
                Err(e) => {
                    return Routed {
                        batch,
                        routes: Vec::new(),
                        error: Some(e),
                    };
                }
            };
            let routed = disp
                .call(move |py| route_batch(py, &f, consumers, batch))
                .await;
            routed.unwrap_or_else(|e| Routed {
                batch: Vec::new(),
                routes: Vec::new(),
                error: Some(e),
            })
        }
        .boxed()
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
    py: Python<'_>,
    partitioner: Py<PyAny>,
    start_after_nr_of_consumers: i64,
    buffer_size: i64,
) -> PyResult<NBlueprint> {
    let n = size("PartitionHub.sink", "buffer_size", buffer_size)?;
    let start = usize::try_from(start_after_nr_of_consumers).map_err(|_| {
        PyValueError::new_err(format!(
            "PartitionHub.sink: start_after_nr_of_consumers must be at least 0, got \
             {start_after_nr_of_consumers}"
        ))
    })?;
    if !partitioner.bind(py).is_callable() {
        return Err(PyTypeError::new_err(
            "PartitionHub.sink: partitioner must be callable as partitioner(n, element)",
        ));
    }
    let f = Arc::new(partitioner);
    let s = PartitionHub::batch_sink(
        move || PyPartitioner {
            f: Arc::clone(&f),
            disp: RunCtx::current().map(|c| c.dispatcher),
        },
        start,
        n,
    )
    .map_err(graph_err)?;
    Ok(hub_sink(s))
}

/// Backoff settings from Python arguments (seconds).
fn restart_settings(
    min_backoff: f64,
    max_backoff: f64,
    random_factor: f64,
    max_restarts: Option<i64>,
    max_restarts_within: Option<f64>,
) -> PyResult<RestartSettings> {
    let s = RestartSettings::new(secs(min_backoff)?, secs(max_backoff)?, random_factor)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(match max_restarts {
        None => s,
        Some(n) => {
            let n = usize::try_from(n).map_err(|_| {
                PyValueError::new_err(format!("max_restarts must be at least 0, got {n}"))
            })?;
            let within = match max_restarts_within {
                Some(w) => secs(w)?,
                None => secs(min_backoff)?,
            };
            s.with_max_restarts(n, within)
        }
    })
}

/// The blueprint made by the Python factory of a restart wrapper, in one dispatcher job; the
/// run's context is the one entered while the wrapper's stage is polled (see [`polled_in_ctx`]).
fn call_factory<T: Send + 'static>(
    factory: &Arc<Py<PyAny>>,
    convert: fn(Bp) -> PyResult<T>,
) -> BoxFuture<'static, Result<T, StageError>> {
    let ctx = RunCtx::current();
    let factory = Arc::clone(factory);
    async move {
        ctx?.dispatcher
            .call(move |py| {
                factory
                    .bind(py)
                    .call0()
                    .and_then(|r| native_bp(&r))
                    .and_then(convert)
                    .map_err(|e| user_error(py, e))
            })
            .await?
    }
    .boxed()
}

/// An asynchronous stage polled with the Python run's context entered, so what it calls (the
/// restart factory, the sub-materializer starting an incarnation's Python stages) finds the
/// run's dispatcher.
struct PolledInCtx {
    inner: Box<dyn AsyncLogic>,
    ctx: Option<RunCtx>,
}

impl AsyncLogic for PolledInCtx {
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self { inner, ctx } = *self;
        let Some(ctx) = ctx else {
            return inner.run(io);
        };
        let mut fut = ctx.enter(|| inner.run(io));
        std::future::poll_fn(move |cx| ctx.enter(|| fut.as_mut().poll(cx))).boxed()
    }
}

/// `m` with its asynchronous stages polled inside the Python run that materializes them.
fn polled_in_ctx(m: &Module) -> Arc<Module> {
    Arc::new(super::stages::wrap_async_stages(m, |inner, ctx| {
        Box::new(PolledInCtx { inner, ctx })
    }))
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
    max_restarts: Option<i64>,
    max_restarts_within: Option<f64>,
    only_on_failures: bool,
) -> PyResult<NBlueprint> {
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
            let w = Source::<PyObj, ()>::from_module(polled_in_ctx(w.module()));
            Bp::Source(w.map_materialized_value(|()| MatValue::Unit))
        }
        "flow" => {
            let w = RestartFlow::try_with_backoff(s, only_on_failures, move || {
                call_factory(&factory, |bp| match bp {
                    Bp::Flow(f) => Ok(f),
                    _ => Err(wrong_blueprint("RestartFlow", "weir.Flow")),
                })
            });
            let w = Flow::<PyObj, PyObj, ()>::from_module(polled_in_ctx(w.module()));
            Bp::Flow(w.map_materialized_value(|()| MatValue::Unit))
        }
        "sink" if !only_on_failures => {
            let w = RestartSink::try_with_backoff(s, move || {
                call_factory(&factory, |bp| match bp {
                    Bp::Sink(s) => Ok(s),
                    _ => Err(wrong_blueprint("RestartSink", "weir.Sink")),
                })
            });
            let w = Sink::<PyObj, ()>::from_module(polled_in_ctx(w.module()));
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
