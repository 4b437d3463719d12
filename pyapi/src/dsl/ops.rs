//! Operator constructors: the fusable `Op`, sources, flows and sinks over Python objects.

use super::supervision::PySupervision;
use super::{Bp, PyBlueprint, op, wrap};
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use crate::stages::{
    ListOp, MapBatchesOp, OpFactory, PyOp, container_source, external_flow, is_container,
    iter_source, keyed, py_flow, sinks, unit_mat,
};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Arc;
use std::time::Duration;
use weir_engine::KillSwitches;
use weir_graph::{Flow, Supervision};
use weir_operators::simple;

/// A stateless element-wise operation that can be fused with its neighbours into one stage:
/// `kind` is `map`, `filter`, `flat_map` or `map_batches`.
#[pyclass(module = "weir._native", name = "Op", frozen)]
pub struct PyElementOp {
    kind: String,
    f: Py<PyAny>,
    name: String,
    sup: Option<Supervision>,
}

#[pymethods]
impl PyElementOp {
    /// A fusable op.
    #[new]
    #[pyo3(signature = (kind, f, name = None, supervision = None))]
    fn new(
        kind: String,
        f: Py<PyAny>,
        name: Option<String>,
        supervision: Option<PyRef<'_, PySupervision>>,
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
    fn supervised(&self, py: Python<'_>, s: &PySupervision) -> Self {
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

/// The flow stage of one element-wise op.
fn op_flow(py: Python<'_>, o: &PyElementOp) -> Flow<PyObj, PyObj, MatValue> {
    let f = o.f.clone_ref(py);
    let kind = o.kind.clone();
    let factory: OpFactory<PyObj, PyObj> = Arc::new(move |py, _info| {
        let f = f.clone_ref(py);
        match kind.as_str() {
            "filter" => Box::new(ListOp::filter(f)) as Box<dyn PyOp<PyObj, PyObj>>,
            "flat_map" => Box::new(ListOp::flat_map(f)),
            "map_batches" => Box::new(MapBatchesOp(f)),
            _ => Box::new(ListOp::map(f)),
        }
    });
    let flow = py_flow(&o.name, factory);
    match &o.sup {
        Some(s) => flow.with_supervision(s.clone()),
        None => flow,
    }
}

/// `ops` in order, one stage each (the engine fuses them with their neighbours).
#[pyfunction]
pub fn flow_chain(py: Python<'_>, ops: Vec<PyRef<'_, PyElementOp>>) -> PyBlueprint {
    flow(chain(py, &ops))
}

fn chain(py: Python<'_>, ops: &[PyRef<'_, PyElementOp>]) -> Flow<PyObj, PyObj, MatValue> {
    ops.iter()
        .map(|o| op_flow(py, o))
        .reduce(|a, b| a.via(b))
        .unwrap_or_else(|| unit_mat(Flow::identity()))
}

fn flow(b: Flow<PyObj, PyObj, MatValue>) -> PyBlueprint {
    wrap(Bp::Flow(b))
}

/// `Source.from_iter(iterable)`: a source of the items of `iterable` (re-iterated per run),
/// followed by the element-wise `ops`; with `factory`, `iterable()` is called per run instead
/// and an iterator it returns is checkpointed by count.
#[pyfunction]
#[pyo3(signature = (iterable, ops = Vec::new(), factory = false))]
pub fn source_from_iter(
    py: Python<'_>,
    iterable: Py<PyAny>,
    ops: Vec<PyRef<'_, PyElementOp>>,
    factory: bool,
) -> PyBlueprint {
    let src = if factory {
        crate::stages::factory_source(iterable)
    } else if is_container(iterable.bind(py)) {
        container_source(iterable)
    } else {
        iter_source(iterable)
    };
    let src = if ops.is_empty() {
        src
    } else {
        src.via(chain(py, &ops))
    };
    wrap(Bp::Source(src))
}

/// An empty flow (passes every element through).
#[pyfunction]
pub fn flow_identity() -> PyBlueprint {
    flow(unit_mat(Flow::identity()))
}

/// `map(f)` on the dispatcher.
#[pyfunction]
pub fn flow_map(f: Py<PyAny>) -> PyBlueprint {
    flow(py_flow("map", op(move |py| ListOp::map(f.clone_ref(py)))))
}

/// `filter(pred)` on the dispatcher.
#[pyfunction]
pub fn flow_filter(f: Py<PyAny>) -> PyBlueprint {
    flow(py_flow(
        "filter",
        op(move |py| ListOp::filter(f.clone_ref(py))),
    ))
}

/// `flat_map(f)` on the dispatcher.
#[pyfunction]
pub fn flow_flat_map(f: Py<PyAny>) -> PyBlueprint {
    flow(py_flow(
        "flat_map",
        op(move |py| ListOp::flat_map(f.clone_ref(py))),
    ))
}

/// `map_batches(f)`: `f(list) -> iterable` per batch, on the dispatcher.
#[pyfunction]
pub fn flow_map_batches(f: Py<PyAny>) -> PyBlueprint {
    flow(py_flow(
        "map_batches",
        op(move |py| MapBatchesOp(f.clone_ref(py))),
    ))
}

/// `scan(zero, f)` (the Rust `try_scan` calling `f` on the dispatcher).
#[pyfunction]
pub fn flow_scan(zero: Py<PyAny>, f: Py<PyAny>) -> PyBlueprint {
    let f = PyFn::new(f);
    let scan = simple::try_scan(PyObj(zero), move |acc: &PyObj, x: &PyObj| f.call2(acc, x));
    flow(unit_mat(scan))
}

/// `fold(zero, f)` as a flow emitting once; `zero=None` with `reduce=True` gives `reduce(f)`
/// (the Rust `try_fold` / `try_reduce`).
#[pyfunction]
#[pyo3(signature = (zero, f, reduce = false))]
pub fn flow_fold(zero: Py<PyAny>, f: Py<PyAny>, reduce: bool) -> PyBlueprint {
    let f = PyFn::new(f);
    let step = move |acc: &PyObj, x: &PyObj| f.call2(acc, x);
    if reduce {
        flow(unit_mat(simple::try_reduce(step)))
    } else {
        flow(unit_mat(simple::try_fold(PyObj(zero), step)))
    }
}

/// `grouped(n)`: lists of `n` elements (the Rust `grouped`).
#[pyfunction]
pub fn flow_grouped(n: usize) -> PyBlueprint {
    let g = simple::grouped::<PyObj>(n.max(1));
    flow(unit_mat(g).via(crate::stages::convert::list_flow("grouped")))
}

/// `take(n)` (generic Rust operator).
#[pyfunction]
pub fn flow_take(n: usize) -> PyBlueprint {
    flow(unit_mat(weir_operators::simple::take::<PyObj>(n)))
}

/// `drop(n)` (generic Rust operator).
#[pyfunction]
pub fn flow_drop(n: usize) -> PyBlueprint {
    flow(unit_mat(weir_operators::simple::drop::<PyObj>(n)))
}

/// `throttle(elements, per_seconds, burst)` (generic Rust operator).
#[pyfunction]
pub fn flow_throttle(elements: usize, per_seconds: f64, burst: usize) -> PyResult<PyBlueprint> {
    let per = Duration::try_from_secs_f64(per_seconds)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(flow(unit_mat(weir_operators::time::throttle::<PyObj>(
        elements, per, burst,
    ))))
}

/// `buffer(size, strategy)` (generic Rust operator); strategy is one of `backpressure`,
/// `drop_head`, `drop_tail`, `drop_buffer`, `drop_new`, `fail`.
#[pyfunction]
pub fn flow_buffer(size: usize, strategy: &str) -> PyResult<PyBlueprint> {
    let s = crate::stages::convert::overflow(strategy)?;
    Ok(flow(unit_mat(weir_operators::time::buffer::<PyObj>(
        size, s,
    ))))
}

/// `key_by(f).count()`: keys counted where they are computed (stage `key_by`, with a local
/// combiner fused into it), the per-key counts summed after a hash exchange (stage
/// `count`, the one `parallelism` applies to). `sup` supervises the `key_by` stage.
#[pyfunction]
#[pyo3(signature = (f=None, sup=None, key_codec="builtin"))]
pub fn flow_key_count(
    f: Option<Py<PyAny>>,
    sup: Option<&PySupervision>,
    key_codec: &str,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    Ok(flow(keyed::count(supervised(
        keyed::key_stage(f, codec),
        sup,
    ))))
}

/// `Source.from_iter(iterable)` + `ops` + `key_by(f).count()` (the engine fuses the source,
/// the ops and the `key_by` stage into one chain).
#[pyfunction]
#[pyo3(signature = (iterable, ops, f = None, sup = None, key_codec = "builtin"))]
pub fn source_from_iter_key_count(
    py: Python<'_>,
    iterable: Py<PyAny>,
    ops: Vec<PyRef<'_, PyElementOp>>,
    f: Option<Py<PyAny>>,
    sup: Option<&PySupervision>,
    key_codec: &str,
) -> PyResult<PyBlueprint> {
    let src = source_from_iter(py, iterable, ops, false);
    src.via(&flow_key_count(f, sup, key_codec)?, "left")
}

/// `key_by(f).fold(zero, g)`; `zero=None` with `reduce=True` gives `.reduce(g)`; `sup`
/// supervises the `key_by` stage (the one calling `f`).
#[pyfunction]
#[pyo3(signature = (f, zero, g, reduce = false, sup = None, key_codec = "builtin"))]
pub fn flow_key_fold(
    f: Option<Py<PyAny>>,
    zero: Py<PyAny>,
    g: Py<PyAny>,
    reduce: bool,
    sup: Option<&PySupervision>,
    key_codec: &str,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    let pairs = supervised(keyed::pair_stage(f, codec), sup);
    // `key_codec="pickle"` opts the accumulators into pickles too.
    use crate::codec::PyState;
    Ok(flow(
        match (reduce, codec == crate::codec::Codec::PickleKey) {
            (true, false) => keyed::reduce::<PyObj>(pairs, g),
            (true, true) => keyed::reduce::<PyState>(pairs, g),
            (false, false) => keyed::fold::<PyObj>(pairs, zero, g),
            (false, true) => keyed::fold::<PyState>(pairs, zero, g),
        },
    ))
}

/// A flow handing batches to `submit(batch, completion)` with at most `max_inflight` batches
/// outstanding (asyncio coroutines, interpreter pools); emits results in input order, or as
/// batches complete when `ordered` is false.
#[pyfunction]
#[pyo3(signature = (name, submit, max_inflight, ordered = true))]
pub fn flow_external(
    name: &str,
    submit: Py<PyAny>,
    max_inflight: usize,
    ordered: bool,
) -> PyBlueprint {
    flow(external_flow(name, submit, max_inflight, ordered))
}

/// A flow materializing a kill switch for its run.
#[pyfunction]
pub fn flow_kill_switch() -> PyBlueprint {
    flow(KillSwitches::single::<PyObj>().map_materialized_value(MatValue::KillSwitch))
}

/// `Sink.collect()`: a list of every element, passed through `finish(list)` when given.
#[pyfunction]
#[pyo3(signature = (finish = None))]
pub fn sink_collect(finish: Option<Py<PyAny>>) -> PyBlueprint {
    wrap(Bp::Sink(sinks::collect(finish)))
}

/// `Sink.fold(zero, f)`.
#[pyfunction]
pub fn sink_fold(zero: Py<PyAny>, f: Py<PyAny>) -> PyBlueprint {
    wrap(Bp::Sink(sinks::fold(zero, f)))
}

/// `Sink.for_each(f)`.
#[pyfunction]
pub fn sink_for_each(f: Py<PyAny>) -> PyBlueprint {
    wrap(Bp::Sink(sinks::for_each(f)))
}

/// `Sink.ignore()`.
#[pyfunction]
pub fn sink_ignore() -> PyBlueprint {
    wrap(Bp::Sink(sinks::ignore()))
}

/// `Sink.head()` / `Sink.head_option()`.
#[pyfunction]
#[pyo3(signature = (optional = false))]
pub fn sink_head(optional: bool) -> PyBlueprint {
    wrap(Bp::Sink(sinks::head(optional)))
}

/// `Sink.last()` / `Sink.last_option()`.
#[pyfunction]
#[pyo3(signature = (optional = false))]
pub fn sink_last(optional: bool) -> PyBlueprint {
    wrap(Bp::Sink(sinks::last(optional)))
}

/// `flow` with `sup` (when given) as the supervision of its last stage.
fn supervised<I: Send + 'static, O: Send + 'static>(
    flow: Flow<I, O, MatValue>,
    sup: Option<&PySupervision>,
) -> Flow<I, O, MatValue> {
    match sup {
        Some(s) => flow.with_supervision(s.0.clone()),
        None => flow,
    }
}
