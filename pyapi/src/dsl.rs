//! The Python-facing blueprint: one pyclass wrapping a `Source`, `Flow`, `Sink` or
//! `RunnableGraph` of Python objects, the operator constructors, supervision and the builder.

use crate::errors::{GraphInvalid, graph_err};
use crate::junction::{PyBroadcast, PyZip};
use crate::mat::{KeepMode, MatValue};
use crate::obj::{KeyedObj, PyObj, py_cause};
use crate::stages::{
    ChainOp, CountAgg, FilterOp, FlatMapOp, FoldAgg, FoldOp, GroupedOp, KeyOp, MapBatchesOp, MapOp,
    OpFactory, PyOp, ScanOp, SinkKind, TupleOp, external_flow, iter_source, py_flow, py_sink,
    unit_mat,
};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_engine::KillSwitches;
use weir_graph::{
    DeadLetter, DeadLetterSink, Directive, Flow, GraphBuilder, Inlet, MatKey, Outlet,
    RunnableGraph, Sink, Source, Supervision,
};
use weir_operators::fan::{Balance, Concat, FanOps, Merge};
use weir_operators::source::OverflowStrategy;

/// A blueprint of any shape over Python objects.
#[derive(Clone)]
pub enum Bp {
    /// One open output.
    Source(Source<PyObj, MatValue>),
    /// One open input and one open output.
    Flow(Flow<PyObj, PyObj, MatValue>),
    /// One open input.
    Sink(Sink<PyObj, MatValue>),
    /// Closed, ready to run.
    Graph(RunnableGraph<MatValue>),
}

/// An immutable blueprint (`Source`, `Flow`, `Sink` or `RunnableGraph`) of Python objects.
#[pyclass(module = "weir._native", name = "Blueprint", frozen)]
pub struct NBlueprint {
    /// The wrapped blueprint.
    pub bp: Bp,
}

fn wrap(bp: Bp) -> NBlueprint {
    NBlueprint { bp }
}

fn keep(s: &str) -> PyResult<KeepMode> {
    KeepMode::parse(s).ok_or_else(|| {
        PyValueError::new_err(format!(
            "keep must be 'left', 'right', 'both' or 'none', not {s:?}"
        ))
    })
}

macro_rules! attr {
    ($bp:expr, |$x:ident| $body:expr) => {
        match $bp.clone() {
            Bp::Source($x) => Bp::Source($body),
            Bp::Flow($x) => Bp::Flow($body),
            Bp::Sink($x) => Bp::Sink($body),
            Bp::Graph(_) => {
                return Err(PyTypeError::new_err(
                    "a RunnableGraph has no last stage to set attributes on",
                ));
            }
        }
    };
}

#[pymethods]
impl NBlueprint {
    /// `"source"`, `"flow"`, `"sink"` or `"graph"`.
    #[getter]
    fn kind(&self) -> &'static str {
        match self.bp {
            Bp::Source(_) => "source",
            Bp::Flow(_) => "flow",
            Bp::Sink(_) => "sink",
            Bp::Graph(_) => "graph",
        }
    }

    /// Attaches a flow (`self` is a source or a flow), combining materialized values per `keep`.
    #[pyo3(signature = (flow, keep = "left"))]
    fn via(&self, flow: &NBlueprint, keep: &str) -> PyResult<NBlueprint> {
        let k = self::keep(keep)?;
        let Bp::Flow(f) = flow.bp.clone() else {
            return Err(PyTypeError::new_err("via() takes a Flow"));
        };
        Ok(wrap(match self.bp.clone() {
            Bp::Source(s) => Bp::Source(s.via_mat(f, move |a, b| k.combine(a, b))),
            Bp::Flow(s) => Bp::Flow(s.via_mat(f, move |a, b| k.combine(a, b))),
            _ => {
                return Err(PyTypeError::new_err(
                    "via() needs a Source or a Flow on the left",
                ));
            }
        }))
    }

    /// Connects a sink (`self` is a source or a flow), combining materialized values per `keep`.
    #[pyo3(signature = (sink, keep = "left"))]
    fn to(&self, sink: &NBlueprint, keep: &str) -> PyResult<NBlueprint> {
        let k = self::keep(keep)?;
        let Bp::Sink(s2) = sink.bp.clone() else {
            return Err(PyTypeError::new_err("to() takes a Sink"));
        };
        Ok(wrap(match self.bp.clone() {
            Bp::Source(s) => Bp::Graph(s.to_mat(s2, move |a, b| k.combine(a, b))),
            Bp::Flow(s) => Bp::Sink(s.to_mat(s2, move |a, b| k.combine(a, b))),
            _ => {
                return Err(PyTypeError::new_err(
                    "to() needs a Source or a Flow on the left",
                ));
            }
        }))
    }

    /// Names the last stage (used in errors, metrics and diagrams).
    fn named(&self, name: String) -> PyResult<NBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.named(name))))
    }

    /// Starts a new island after the last stage.
    fn async_boundary(&self) -> PyResult<NBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.async_boundary())))
    }

    /// Runs the last stage as `n` parallel subtasks.
    fn parallelism(&self, n: usize) -> PyResult<NBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.parallelism(n))))
    }

    /// Target rows per batch of the last stage.
    fn batch_size(&self, n: usize) -> PyResult<NBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.batch_size(n))))
    }

    /// Capacity, in rows, of the channel feeding the last stage.
    fn buffer_rows(&self, n: usize) -> PyResult<NBlueprint> {
        Ok(wrap(attr!(self.bp, |x| x.buffer_rows(n))))
    }

    /// Sets the supervision policy of the last stage.
    fn with_supervision(&self, s: &NSupervision) -> PyResult<NBlueprint> {
        let sup = s.0.clone();
        Ok(wrap(attr!(self.bp, |x| x.with_supervision(sup))))
    }

    /// The blueprint as a Mermaid flowchart.
    fn to_mermaid(&self) -> String {
        match &self.bp {
            Bp::Source(x) => x.to_mermaid(),
            Bp::Flow(x) => x.to_mermaid(),
            Bp::Sink(x) => x.to_mermaid(),
            Bp::Graph(x) => x.module().to_mermaid(),
        }
    }

    /// The blueprint as Graphviz DOT.
    fn to_dot(&self) -> String {
        match &self.bp {
            Bp::Source(x) => x.to_dot(),
            Bp::Flow(x) => x.to_dot(),
            Bp::Sink(x) => x.to_dot(),
            Bp::Graph(x) => x.module().to_dot(),
        }
    }

    /// Number of stages in the blueprint.
    fn stage_count(&self) -> usize {
        match &self.bp {
            Bp::Source(x) => x.module().nodes.len(),
            Bp::Flow(x) => x.module().nodes.len(),
            Bp::Sink(x) => x.module().nodes.len(),
            Bp::Graph(x) => x.module().nodes.len(),
        }
    }

    /// Merges `other` (a source) into this stream.
    fn merge(&self, other: &NBlueprint) -> PyResult<NBlueprint> {
        let o = source_of(other)?;
        linear(&self.bp, unit_mat(Flow::identity().merge(o)))
    }

    /// Emits this stream, then `other` (a source).
    fn concat(&self, other: &NBlueprint) -> PyResult<NBlueprint> {
        let o = source_of(other)?;
        linear(&self.bp, unit_mat(Flow::identity().concat(o)))
    }

    /// Pairs elements with those of `other` (a source) into tuples.
    fn zip(&self, other: &NBlueprint) -> PyResult<NBlueprint> {
        let o = source_of(other)?;
        let tuples = py_flow::<(PyObj, PyObj), PyObj>("zip", op(|_py| TupleOp));
        linear(
            &self.bp,
            Flow::<PyObj, PyObj, ()>::identity()
                .zip(o)
                .map_materialized_value(|_| MatValue::Unit)
                .via(tuples),
        )
    }

    fn __repr__(&self) -> String {
        format!(
            "<weir {} blueprint with {} stages>",
            self.kind(),
            self.stage_count()
        )
    }
}

fn source_of(b: &NBlueprint) -> PyResult<Source<PyObj, MatValue>> {
    match &b.bp {
        Bp::Source(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Source")),
    }
}

/// Appends the flow built by `f` to a source or flow.
fn linear(bp: &Bp, flow: Flow<PyObj, PyObj, MatValue>) -> PyResult<NBlueprint> {
    Ok(wrap(match bp.clone() {
        Bp::Source(s) => Bp::Source(s.via(flow)),
        Bp::Flow(s) => Bp::Flow(s.via(flow)),
        _ => return Err(PyTypeError::new_err("needs a Source or a Flow")),
    }))
}

fn op<I: Send + 'static, O: Send + 'static, P: PyOp<I, O>>(
    f: impl Fn(Python<'_>) -> P + Send + Sync + 'static,
) -> OpFactory<I, O> {
    Arc::new(move |py, _info| Box::new(f(py)) as Box<dyn PyOp<I, O>>)
}

/// A stateless element-wise operation that can be fused with its neighbours into one stage:
/// `kind` is `map`, `filter`, `flat_map` or `map_batches`.
#[pyclass(module = "weir._native", name = "Op", frozen)]
pub struct NOp {
    kind: String,
    f: Py<PyAny>,
    name: String,
    sup: Option<Supervision>,
}

#[pymethods]
impl NOp {
    /// A fusable op.
    #[new]
    #[pyo3(signature = (kind, f, name = None, supervision = None))]
    fn new(
        kind: String,
        f: Py<PyAny>,
        name: Option<String>,
        supervision: Option<PyRef<'_, NSupervision>>,
    ) -> PyResult<Self> {
        if !matches!(kind.as_str(), "map" | "filter" | "flat_map" | "map_batches") {
            return Err(PyValueError::new_err(format!("{kind:?} cannot be fused")));
        }
        Ok(Self {
            name: name.unwrap_or_else(|| kind.clone()),
            kind,
            f,
            sup: supervision.map(|s| s.0.clone()),
        })
    }

    /// The same op under another name.
    fn renamed(&self, py: Python<'_>, name: String) -> Self {
        Self {
            kind: self.kind.clone(),
            f: self.f.clone_ref(py),
            name,
            sup: self.sup.clone(),
        }
    }

    /// The same op with a supervision policy.
    fn supervised(&self, py: Python<'_>, s: &NSupervision) -> Self {
        Self {
            kind: self.kind.clone(),
            f: self.f.clone_ref(py),
            name: self.name.clone(),
            sup: Some(s.0.clone()),
        }
    }

    /// The op's name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }
}

struct OpSpec {
    kind: String,
    f: Py<PyAny>,
    name: String,
    sup: Option<Supervision>,
}

fn chain_factory(py: Python<'_>, ops: &[PyRef<'_, NOp>]) -> OpFactory<PyObj, PyObj> {
    let specs: Vec<OpSpec> = ops
        .iter()
        .map(|o| OpSpec {
            kind: o.kind.clone(),
            f: o.f.clone_ref(py),
            name: o.name.clone(),
            sup: o.sup.clone(),
        })
        .collect();
    Arc::new(move |py, info| {
        let ops = specs
            .iter()
            .map(|s| {
                let f = s.f.clone_ref(py);
                let op: Box<dyn PyOp<PyObj, PyObj>> = match s.kind.as_str() {
                    "filter" => Box::new(FilterOp(f)),
                    "flat_map" => Box::new(FlatMapOp(f)),
                    "map_batches" => Box::new(MapBatchesOp(f)),
                    _ => Box::new(MapOp(f)),
                };
                let mut i = info.clone();
                i.name = s.name.clone();
                i.path = format!("{}#{}", s.name, info.index);
                (op, i, s.sup.clone())
            })
            .collect();
        Box::new(ChainOp { ops }) as Box<dyn PyOp<PyObj, PyObj>>
    })
}

/// Fuses `ops` into one flow stage (one dispatcher job per batch for all of them).
#[pyfunction]
pub fn flow_chain(py: Python<'_>, ops: Vec<PyRef<'_, NOp>>) -> NBlueprint {
    let name = ops
        .iter()
        .map(|o| o.name.as_str())
        .collect::<Vec<_>>()
        .join("→");
    flow(py_flow(&name, chain_factory(py, &ops)))
}

fn flow(b: Flow<PyObj, PyObj, MatValue>) -> NBlueprint {
    wrap(Bp::Flow(b))
}

/// `Source.from_iter(iterable)`: a source of the items of `iterable` (re-iterated per run),
/// with the fusable `ops` applied in the same job.
#[pyfunction]
#[pyo3(signature = (iterable, ops = Vec::new()))]
pub fn source_from_iter(
    py: Python<'_>,
    iterable: Py<PyAny>,
    ops: Vec<PyRef<'_, NOp>>,
) -> NBlueprint {
    let chain = (!ops.is_empty()).then(|| chain_factory(py, &ops));
    let mut s = iter_source(iterable, chain);
    if !ops.is_empty() {
        let name = ops
            .iter()
            .map(|o| o.name.as_str())
            .collect::<Vec<_>>()
            .join("→");
        s = s.named(format!("from_iter→{name}"));
    }
    wrap(Bp::Source(s))
}

/// An empty flow (passes every element through).
#[pyfunction]
pub fn flow_identity() -> NBlueprint {
    flow(unit_mat(Flow::identity()))
}

/// `map(f)` on the dispatcher.
#[pyfunction]
pub fn flow_map(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow("map", op(move |py| MapOp(f.clone_ref(py)))))
}

/// `filter(pred)` on the dispatcher.
#[pyfunction]
pub fn flow_filter(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow("filter", op(move |py| FilterOp(f.clone_ref(py)))))
}

/// `flat_map(f)` on the dispatcher.
#[pyfunction]
pub fn flow_flat_map(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow(
        "flat_map",
        op(move |py| FlatMapOp(f.clone_ref(py))),
    ))
}

/// `map_batches(f)`: `f(list) -> iterable` per batch, on the dispatcher.
#[pyfunction]
pub fn flow_map_batches(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow(
        "map_batches",
        op(move |py| MapBatchesOp(f.clone_ref(py))),
    ))
}

/// `scan(zero, f)`.
#[pyfunction]
pub fn flow_scan(zero: Py<PyAny>, f: Py<PyAny>) -> NBlueprint {
    flow(py_flow(
        "scan",
        op(move |py| ScanOp {
            zero: zero.clone_ref(py),
            acc: zero.clone_ref(py),
            f: f.clone_ref(py),
        }),
    ))
}

/// `fold(zero, f)` as a flow emitting once; `zero=None` with `reduce=True` gives `reduce(f)`.
#[pyfunction]
#[pyo3(signature = (zero, f, reduce = false))]
pub fn flow_fold(zero: Py<PyAny>, f: Py<PyAny>, reduce: bool) -> NBlueprint {
    let name = if reduce { "reduce" } else { "fold" };
    flow(py_flow(
        name,
        op(move |py| {
            let z = (!reduce).then(|| zero.clone_ref(py));
            FoldOp {
                acc: z.as_ref().map(|z| z.clone_ref(py)),
                zero: z,
                f: f.clone_ref(py),
            }
        }),
    ))
}

/// `grouped(n)`: lists of `n` elements.
#[pyfunction]
pub fn flow_grouped(n: usize) -> NBlueprint {
    let n = n.max(1);
    flow(py_flow(
        "grouped",
        op(move |_py| GroupedOp { n, buf: Vec::new() }),
    ))
}

/// `take(n)` (generic Rust operator).
#[pyfunction]
pub fn flow_take(n: usize) -> NBlueprint {
    flow(unit_mat(weir_operators::simple::take::<PyObj>(n)))
}

/// `drop(n)` (generic Rust operator).
#[pyfunction]
pub fn flow_drop(n: usize) -> NBlueprint {
    flow(unit_mat(weir_operators::simple::drop::<PyObj>(n)))
}

/// `throttle(elements, per_seconds, burst)` (generic Rust operator).
#[pyfunction]
pub fn flow_throttle(elements: usize, per_seconds: f64, burst: usize) -> PyResult<NBlueprint> {
    let per = Duration::try_from_secs_f64(per_seconds)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(flow(unit_mat(weir_operators::time::throttle::<PyObj>(
        elements, per, burst,
    ))))
}

/// `buffer(size, strategy)` (generic Rust operator); strategy is one of `backpressure`,
/// `drop_head`, `drop_tail`, `drop_buffer`, `drop_new`, `fail`.
#[pyfunction]
pub fn flow_buffer(size: usize, strategy: &str) -> PyResult<NBlueprint> {
    let s = match strategy {
        "backpressure" => OverflowStrategy::Backpressure,
        "drop_head" => OverflowStrategy::DropHead,
        "drop_tail" => OverflowStrategy::DropTail,
        "drop_buffer" => OverflowStrategy::DropBuffer,
        "drop_new" => OverflowStrategy::DropNew,
        "fail" => OverflowStrategy::Fail,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown overflow strategy {other:?}"
            )));
        }
    };
    Ok(flow(unit_mat(weir_operators::time::buffer::<PyObj>(
        size, s,
    ))))
}

fn keyed(
    f: Option<Py<PyAny>>,
    keep_value: bool,
    agg_name: &str,
    agg: OpFactory<KeyedObj, PyObj>,
) -> NBlueprint {
    let keys = py_flow::<PyObj, KeyedObj>(
        "key_by",
        op(move |py| KeyOp {
            f: f.as_ref().map(|f| f.clone_ref(py)),
            keep_value,
        }),
    )
    .partition_by_hash(|k: &KeyedObj| k.hash);
    flow(keys.via_mat(py_flow(agg_name, agg), |_, _| MatValue::Unit))
}

/// `key_by(f).count()`: keys hashed by Python, counted in Rust.
#[pyfunction]
#[pyo3(signature = (f=None))]
pub fn flow_key_count(f: Option<Py<PyAny>>) -> NBlueprint {
    keyed(f, false, "count", op(|_py| CountAgg::default()))
}

/// `key_by(f).fold(zero, g)`; `zero=None` with `reduce=True` gives `.reduce(g)`.
#[pyfunction]
#[pyo3(signature = (f, zero, g, reduce = false))]
pub fn flow_key_fold(
    f: Option<Py<PyAny>>,
    zero: Py<PyAny>,
    g: Py<PyAny>,
    reduce: bool,
) -> NBlueprint {
    let name = if reduce { "reduce" } else { "fold" };
    keyed(
        f,
        true,
        name,
        op(move |py| FoldAgg {
            zero: (!reduce).then(|| zero.clone_ref(py)),
            f: g.clone_ref(py),
            table: Default::default(),
        }),
    )
}

/// A flow handing batches to `submit(batch, completion)` with at most `max_inflight` batches
/// outstanding (asyncio coroutines, interpreter pools).
#[pyfunction]
pub fn flow_external(name: &str, submit: Py<PyAny>, max_inflight: usize) -> NBlueprint {
    flow(external_flow(name, submit, max_inflight))
}

/// A flow materializing a kill switch for its run.
#[pyfunction]
pub fn flow_kill_switch() -> NBlueprint {
    flow(KillSwitches::single::<PyObj>().map_materialized_value(MatValue::KillSwitch))
}

/// `Sink.collect()`: a list of every element, passed through `finish(list)` when given.
#[pyfunction]
#[pyo3(signature = (finish = None))]
pub fn sink_collect(finish: Option<Py<PyAny>>) -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::Collect(finish))))
}

/// `Sink.fold(zero, f)`.
#[pyfunction]
pub fn sink_fold(zero: Py<PyAny>, f: Py<PyAny>) -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::Fold(zero, f))))
}

/// `Sink.for_each(f)`.
#[pyfunction]
pub fn sink_for_each(f: Py<PyAny>) -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::ForEach(f))))
}

/// `Sink.ignore()`.
#[pyfunction]
pub fn sink_ignore() -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::Ignore)))
}

/// `Sink.head()` / `Sink.head_option()`.
#[pyfunction]
#[pyo3(signature = (optional = false))]
pub fn sink_head(optional: bool) -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::Head(optional))))
}

/// `Sink.last()` / `Sink.last_option()`.
#[pyfunction]
#[pyo3(signature = (optional = false))]
pub fn sink_last(optional: bool) -> NBlueprint {
    wrap(Bp::Sink(py_sink(SinkKind::Last(optional))))
}

// ---------------------------------------------------------------------------------------------
// Supervision

fn directive(s: &str) -> PyResult<Directive> {
    match s {
        "stop" => Ok(Directive::Stop),
        "resume" => Ok(Directive::Resume),
        "restart" => Ok(Directive::Restart),
        other => Err(PyValueError::new_err(format!(
            "a directive is 'stop', 'resume' or 'restart', not {other:?}"
        ))),
    }
}

/// A supervision policy: exception classes mapped to directives, a default, and an optional
/// dead-letter callback `f(element, exception, stage_path)`.
#[pyclass(module = "weir._native", name = "Supervision", frozen)]
pub struct NSupervision(pub Supervision);

#[pymethods]
impl NSupervision {
    /// `rules` is a list of `(exception class, "stop" | "resume" | "restart")`, checked in order.
    #[new]
    #[pyo3(signature = (rules, default = "stop", dead_letters = None))]
    fn new(
        rules: Vec<(Py<PyAny>, String)>,
        default: &str,
        dead_letters: Option<Py<PyAny>>,
    ) -> PyResult<Self> {
        let default = directive(default)?;
        let rules: Vec<(Py<PyAny>, Directive)> = rules
            .into_iter()
            .map(|(c, d)| directive(&d).map(|d| (c, d)))
            .collect::<PyResult<_>>()?;
        let mut s = Supervision::new(move |err| {
            let Some(cause) = py_cause(err) else {
                return default;
            };
            Python::attach(|py| {
                let v = cause.value(py);
                for (cls, d) in &rules {
                    if v.is_instance(cls.bind(py)).unwrap_or(false) {
                        return *d;
                    }
                }
                default
            })
        });
        if let Some(cb) = dead_letters {
            s = s.with_dead_letters(DeadLetterSink::new(move |d: DeadLetter| {
                Python::attach(|py| {
                    let elem = d
                        .element
                        .and_then(|e| e.downcast::<PyObj>().ok())
                        .map_or_else(|| py.None(), |e| e.0);
                    let exc = match py_cause(&d.error) {
                        Some(c) => c.value(py).clone().into_any().unbind(),
                        None => crate::errors::to_py_err(py, &d.error)
                            .value(py)
                            .clone()
                            .into_any()
                            .unbind(),
                    };
                    if let Err(e) = cb.call1(py, (elem, exc, d.stage)) {
                        e.write_unraisable(py, None);
                    }
                })
            }));
        }
        Ok(Self(s))
    }
}

// ---------------------------------------------------------------------------------------------
// GraphBuilder

/// A typed input port of a component added to a builder.
#[pyclass(module = "weir._native", name = "Inlet", frozen)]
pub struct NInlet(pub Inlet<PyObj>);

/// A typed output port of a component added to a builder.
#[pyclass(module = "weir._native", name = "Outlet", frozen)]
pub struct NOutlet(pub Outlet<PyObj>);

/// The key to a component's materialized value inside a builder.
#[pyclass(module = "weir._native", name = "MatKey", frozen)]
pub struct NMatKey(pub MatKey<MatValue>);

/// Wires sources, flows, sinks and junctions into non-linear graphs.
#[pyclass(module = "weir._native", name = "GraphBuilder", frozen)]
pub struct NBuilder(Mutex<Option<GraphBuilder>>);

impl NBuilder {
    fn with<R>(&self, f: impl FnOnce(&mut GraphBuilder) -> PyResult<R>) -> PyResult<R> {
        let mut g = self
            .0
            .lock()
            .map_err(|_| GraphInvalid::new_err("builder poisoned"))?;
        let b = g
            .as_mut()
            .ok_or_else(|| GraphInvalid::new_err("this builder was already built"))?;
        f(b)
    }
    fn take(&self) -> PyResult<GraphBuilder> {
        self.0
            .lock()
            .map_err(|_| GraphInvalid::new_err("builder poisoned"))?
            .take()
            .ok_or_else(|| GraphInvalid::new_err("this builder was already built"))
    }
}

fn mat_of(
    keys: Vec<MatKey<MatValue>>,
) -> impl Fn(&mut weir_graph::MatValues) -> MatValue + Send + Sync {
    move |vals| {
        let mut v: Vec<MatValue> = keys
            .iter()
            .map(|k| vals.take(*k).unwrap_or(MatValue::Unit))
            .collect();
        match v.len() {
            0 => MatValue::Unit,
            1 => v.pop().unwrap_or(MatValue::Unit),
            _ => MatValue::Many(v),
        }
    }
}

#[pymethods]
impl NBuilder {
    /// An empty builder.
    #[new]
    fn new() -> Self {
        Self(Mutex::new(Some(GraphBuilder::new())))
    }

    /// Adds a source; returns `(outlet, mat_key)`.
    fn add_source(&self, s: &NBlueprint) -> PyResult<(NOutlet, NMatKey)> {
        let src = source_of(s)?;
        self.with(|b| {
            let (o, k) = b.add_source(src);
            Ok((NOutlet(o), NMatKey(k)))
        })
    }

    /// Adds a flow; returns `(inlet, outlet, mat_key)`.
    fn add_flow(&self, f: &NBlueprint) -> PyResult<(NInlet, NOutlet, NMatKey)> {
        let Bp::Flow(fl) = f.bp.clone() else {
            return Err(PyTypeError::new_err("add_flow() takes a Flow"));
        };
        self.with(|b| {
            let (i, o, k) = b.add_flow(fl);
            Ok((NInlet(i), NOutlet(o), NMatKey(k)))
        })
    }

    /// Adds a sink; returns `(inlet, mat_key)`.
    fn add_sink(&self, s: &NBlueprint) -> PyResult<(NInlet, NMatKey)> {
        let Bp::Sink(sk) = s.bp.clone() else {
            return Err(PyTypeError::new_err("add_sink() takes a Sink"));
        };
        self.with(|b| {
            let (i, k) = b.add_sink(sk);
            Ok((NInlet(i), NMatKey(k)))
        })
    }

    /// Adds a junction: `kind` is `broadcast`, `balance`, `merge`, `zip` or `concat`; returns
    /// `(inlets, outlets)`.
    fn add_junction(&self, kind: &str, n: usize) -> PyResult<(Vec<NInlet>, Vec<NOutlet>)> {
        let n = n.max(1);
        self.with(|b| match kind {
            "broadcast" => {
                let p = b.add(PyBroadcast(n));
                Ok((
                    vec![NInlet(p.inlet(0))],
                    (0..n).map(|i| NOutlet(p.outlet(i))).collect(),
                ))
            }
            "zip" => {
                let p = b.add(PyZip);
                Ok((
                    vec![NInlet(p.inlet(0)), NInlet(p.inlet(1))],
                    vec![NOutlet(p.outlet(0))],
                ))
            }
            "balance" => {
                let p = b.add(Balance::<PyObj>::new(n));
                Ok((
                    vec![NInlet(p.inlet)],
                    p.outlets.into_iter().map(NOutlet).collect(),
                ))
            }
            "merge" => {
                let p = b.add(Merge::<PyObj>::new(n));
                Ok((
                    p.inlets.into_iter().map(NInlet).collect(),
                    vec![NOutlet(p.outlet)],
                ))
            }
            "concat" => {
                let p = b.add(Concat::<PyObj>::new(n));
                Ok((
                    p.inlets.into_iter().map(NInlet).collect(),
                    vec![NOutlet(p.outlet)],
                ))
            }
            other => Err(PyValueError::new_err(format!("unknown junction {other:?}"))),
        })
    }

    /// Connects an outlet to an inlet.
    fn connect(&self, from: &NOutlet, to: &NInlet) -> PyResult<()> {
        self.with(|b| b.connect(from.0, to.0).map_err(graph_err))
    }

    /// Builds a closed graph materializing to the values of `keys`.
    fn build(&self, keys: Vec<PyRef<'_, NMatKey>>) -> PyResult<NBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self.take()?.build_mat(mat_of(keys)).map_err(graph_err)?;
        Ok(wrap(Bp::Graph(g)))
    }

    /// Builds a source whose output is `outlet`.
    fn build_source(
        &self,
        outlet: &NOutlet,
        keys: Vec<PyRef<'_, NMatKey>>,
    ) -> PyResult<NBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_source(outlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Source(g)))
    }

    /// Builds a flow from `inlet` to `outlet`.
    fn build_flow(
        &self,
        inlet: &NInlet,
        outlet: &NOutlet,
        keys: Vec<PyRef<'_, NMatKey>>,
    ) -> PyResult<NBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_flow(inlet.0, outlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Flow(g)))
    }

    /// Builds a sink whose input is `inlet`.
    fn build_sink(&self, inlet: &NInlet, keys: Vec<PyRef<'_, NMatKey>>) -> PyResult<NBlueprint> {
        let keys = keys.iter().map(|k| k.0).collect();
        let g = self
            .take()?
            .build_sink(inlet.0, mat_of(keys))
            .map_err(graph_err)?;
        Ok(wrap(Bp::Sink(g)))
    }
}
