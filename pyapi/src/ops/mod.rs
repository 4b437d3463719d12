//! The operators added to the Python API on top of the core set in [`crate::dsl`]: sources
//! (`tick`, `queue`), flows (`take_while`, `sliding`, `recover`, substreams, time operators, fan
//! operators), junctions (`Partition`, `MergePreferred`, ...) and `Sink.queue`.
//!
//! Operators that never call Python run the generic Rust operators on [`PyObj`] (or on
//! `(tag, PyObj)` pairs and [`pyops::Shared`] references when the generic operator needs a key
//! or clones elements); operators calling Python compute what Rust needs (a predicate's result,
//! a key id, a source) in a [`PyOp`](crate::stages::PyOp) on the dispatcher, one job per batch.

pub mod handles;
pub mod pyops;
pub mod stages;

use crate::dsl::{Bp, NBlueprint, NBuilder, NInlet, NOutlet, wrap};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::obj::user_error;
use crate::stages::{OpFactory, PyOp, convert, each_fallible, py_flow, unit_mat};
use handles::{NCancellable, NSinkQueue, NSourceQueue};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyops::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_graph::{Flow, GraphBuilder, Inlet, MatKey, Outlet, Sink, Source, StageError};
use weir_operators::fan::{
    Broadcast, Interleave, MergePreferred, MergePrioritized, Partition, Unzip, WireTap, ZipLatest,
};
use weir_operators::prelude::*;
use weir_operators::source::OverflowStrategy;

fn factory<I: Send + 'static, O: Send + 'static, P: PyOp<I, O>>(
    f: impl Fn(Python<'_>) -> P + Send + Sync + 'static,
) -> OpFactory<I, O> {
    Arc::new(move |py, _info| Box::new(f(py)) as Box<dyn PyOp<I, O>>)
}

fn flow(f: Flow<PyObj, PyObj, MatValue>) -> NBlueprint {
    wrap(Bp::Flow(f))
}

fn secs(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| PyValueError::new_err(format!("{s}: {e}")))
}

fn source_of(b: &NBlueprint) -> PyResult<Source<PyObj, MatValue>> {
    match &b.bp {
        Bp::Source(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Source")),
    }
}

fn flow_of(b: &NBlueprint) -> PyResult<Flow<PyObj, PyObj, MatValue>> {
    match &b.bp {
        Bp::Flow(f) => Ok(f.clone()),
        _ => Err(PyTypeError::new_err("expected a Flow")),
    }
}

fn sink_of(b: &NBlueprint) -> PyResult<Sink<PyObj, MatValue>> {
    match &b.bp {
        Bp::Sink(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Sink")),
    }
}

/// Parses an overflow strategy name.
pub fn overflow(s: &str) -> PyResult<OverflowStrategy> {
    Ok(match s {
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
    })
}

fn tag_flow(name: &str, f: Py<PyAny>, stop: bool) -> Flow<PyObj, (bool, PyObj), MatValue> {
    py_flow(
        name,
        factory(move |py| TagOp {
            f: f.clone_ref(py),
            stop_after_false: stop,
            stopped: false,
        }),
    )
}

fn untag<K: Send + 'static>() -> Flow<(K, PyObj), PyObj, ()> {
    Flow::<(K, PyObj), (K, PyObj), ()>::identity().map(|t: (K, PyObj)| t.1)
}

fn share() -> Flow<PyObj, Shared, ()> {
    Flow::<PyObj, PyObj, ()>::identity().map(Arc::new)
}

fn unshare_flow(name: &str) -> Flow<Shared, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| convert(|py, s: Shared| Ok(unshare(py, s)))),
    )
}

/// Pairs of [`Shared`] objects (from `ZipLatest`) as tuples.
fn shared_pair(py: Python<'_>, (a, b): (Shared, Shared)) -> Result<PyObj, StageError> {
    let (a, b) = (unshare(py, a), unshare(py, b));
    tuple2(py, a.0, b.0)
}

fn list_flow(name: &str) -> Flow<Vec<PyObj>, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, v: Vec<PyObj>| {
                let l =
                    PyList::new(py, v.into_iter().map(|x| x.0)).map_err(|e| user_error(py, e))?;
                Ok(PyObj(l.into_any().unbind()))
            })
        }),
    )
}

// ---------------------------------------------------------------------------------------------
// Sources and sinks

/// `Source.tick(initial_delay, interval, value)`: materializes a `Cancellable`.
#[pyfunction]
pub fn source_tick(initial_delay: f64, interval: f64, value: Py<PyAny>) -> PyResult<NBlueprint> {
    let ticks = Source::<(), ()>::tick(secs(initial_delay)?, secs(interval)?, ())
        .map_materialized_value(|c| {
            MatValue::Lazy(Box::new(move |py| {
                Ok(Py::new(py, NCancellable(c))?.into_any())
            }))
        });
    let values = py_flow(
        "tick",
        factory(move |py| {
            let value = value.clone_ref(py);
            convert(move |py, ()| Ok(PyObj(value.clone_ref(py))))
        }),
    );
    Ok(wrap(Bp::Source(ticks.via(values))))
}

/// `Source.queue(capacity, overflow)`: materializes a `SourceQueue` handle.
#[pyfunction]
pub fn source_queue(capacity: usize, strategy: &str) -> PyResult<NBlueprint> {
    let s = Source::<PyObj, ()>::queue(capacity.max(1), overflow(strategy)?)
        .map_materialized_value(|q| {
            MatValue::Lazy(Box::new(move |py| {
                handles::python_handle(py, "SourceQueue", Py::new(py, NSourceQueue(q))?.into_any())
            }))
        });
    Ok(wrap(Bp::Source(s)))
}

/// `Sink.queue(capacity)`: materializes a `SinkQueue` handle.
#[pyfunction]
pub fn sink_queue(capacity: usize) -> NBlueprint {
    let s = Sink::<PyObj, ()>::queue(capacity.max(1)).map_materialized_value(|q| {
        MatValue::Lazy(Box::new(move |py| {
            let n = Py::new(py, NSinkQueue(Mutex::new(Some(q))))?.into_any();
            handles::python_handle(py, "SinkQueue", n)
        }))
    });
    wrap(Bp::Sink(s))
}

// ---------------------------------------------------------------------------------------------
// Flows calling Python

/// `take_while(pred, inclusive)`.
#[pyfunction]
#[pyo3(signature = (f, inclusive = false))]
pub fn flow_take_while(f: Py<PyAny>, inclusive: bool) -> NBlueprint {
    let name = if inclusive {
        "take_while_inclusive"
    } else {
        "take_while"
    };
    let tags = Flow::<(bool, PyObj), (bool, PyObj), ()>::identity();
    let tw = if inclusive {
        tags.take_while_inclusive(|t: &(bool, PyObj)| t.0)
    } else {
        tags.take_while(|t: &(bool, PyObj)| t.0)
    };
    flow(tag_flow(name, f, true).via(tw.via(untag())))
}

/// `drop_while(pred)`.
#[pyfunction]
pub fn flow_drop_while(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow(
        "drop_while",
        factory(move |py| DropWhileOp {
            f: f.clone_ref(py),
            passing: false,
        }),
    ))
}

/// `sliding(n, step)`.
#[pyfunction]
#[pyo3(signature = (n, step = 1))]
pub fn flow_sliding(n: usize, step: usize) -> NBlueprint {
    flow(py_flow(
        "sliding",
        factory(move |_py| SlidingOp::new(n, step)),
    ))
}

/// `intersperse(sep, start, end)`.
#[pyfunction]
#[pyo3(signature = (sep, start = None, end = None))]
pub fn flow_intersperse(
    sep: Py<PyAny>,
    start: Option<Py<PyAny>>,
    end: Option<Py<PyAny>>,
) -> NBlueprint {
    flow(py_flow(
        "intersperse",
        factory(move |py| IntersperseOp {
            sep: sep.clone_ref(py),
            start: start.as_ref().map(|s| s.clone_ref(py)),
            end: end.as_ref().map(|s| s.clone_ref(py)),
            first: true,
        }),
    ))
}

/// `zip_with_index()`.
#[pyfunction]
pub fn flow_zip_with_index() -> NBlueprint {
    flow(py_flow(
        "zip_with_index",
        factory(|_py| {
            let mut next = 0u64;
            convert(move |py, x: PyObj| {
                let Ok(i) = next.into_pyobject(py);
                next += 1;
                tuple2(py, x.0, i.into_any().unbind())
            })
        }),
    ))
}

/// `inspect(f, on_complete)`.
#[pyfunction]
#[pyo3(signature = (f, on_complete = None, name = "inspect"))]
pub fn flow_inspect(f: Py<PyAny>, on_complete: Option<Py<PyAny>>, name: &str) -> NBlueprint {
    flow(py_flow(
        name,
        factory(move |py| InspectOp {
            f: f.clone_ref(py),
            on_complete: on_complete.as_ref().map(|c| c.clone_ref(py)),
        }),
    ))
}

/// `recover(f)`.
#[pyfunction]
pub fn flow_recover(f: Py<PyAny>) -> NBlueprint {
    flow(stages::recover_flow(f))
}

/// `recover_with_retries(attempts, f)`.
#[pyfunction]
pub fn flow_recover_with_retries(attempts: usize, f: Py<PyAny>) -> NBlueprint {
    flow(stages::recover_retries_flow(attempts, f))
}

/// `flat_map_concat(f)` (`breadth == 1`) or `flat_map_merge(breadth, f)`.
#[pyfunction]
pub fn flow_flat_map_sources(f: Py<PyAny>, breadth: usize) -> NBlueprint {
    let name = if breadth <= 1 {
        "flat_map_concat"
    } else {
        "flat_map_merge"
    };
    let sources = py_flow(
        name,
        factory(move |py| {
            let f = f.clone_ref(py);
            each_fallible(move |py, x: &PyObj| {
                let s = f.bind(py).call1((x.0.bind(py),))?;
                Ok(SubSource(to_source(&s)?))
            })
        }),
    );
    let ids = Flow::<SubSource, SubSource, ()>::identity();
    let merged = if breadth <= 1 {
        ids.flat_map_concat(|s: SubSource| s.0)
    } else {
        ids.flat_map_merge(breadth, |s: SubSource| s.0)
    };
    flow(sources.via(unit_mat(stages::with_run_ctx(merged))))
}

/// `group_by(max_substreams, key).merge_substreams_via(sub)`.
#[pyfunction]
#[pyo3(signature = (max_substreams, key, sub))]
pub fn flow_group_by(
    max_substreams: usize,
    key: Option<Py<PyAny>>,
    sub: &NBlueprint,
) -> PyResult<NBlueprint> {
    let sub = untag::<u64>().via(flow_of(sub)?);
    let ids = py_flow(
        "group_by",
        factory(move |py| KeyIdOp {
            f: key.as_ref().map(|k| k.clone_ref(py)),
            ids: PyDict::new(py).unbind(),
        }),
    );
    let grouped = Flow::<(u64, PyObj), (u64, PyObj), ()>::identity()
        .group_by(max_substreams.max(1), |t: &(u64, PyObj)| t.0)
        .merge_substreams_via(sub);
    Ok(flow(ids.via(unit_mat(stages::with_run_ctx(grouped)))))
}

/// `split_when(pred)` / `split_after(pred)` `.merge_substreams_via(sub)`.
#[pyfunction]
pub fn flow_split(pred: Py<PyAny>, after: bool, sub: &NBlueprint) -> PyResult<NBlueprint> {
    let name = if after { "split_after" } else { "split_when" };
    let sub = untag::<bool>().via(flow_of(sub)?);
    let ids = Flow::<(bool, PyObj), (bool, PyObj), ()>::identity();
    let split = if after {
        ids.split_after(|t: &(bool, PyObj)| t.0)
            .merge_substreams_via(sub)
    } else {
        ids.split_when(|t: &(bool, PyObj)| t.0)
            .merge_substreams_via(sub)
    };
    Ok(flow(
        tag_flow(name, pred, false).via(unit_mat(stages::with_run_ctx(split))),
    ))
}

// ---------------------------------------------------------------------------------------------
// Time and rate (generic Rust operators)

/// `delay`, `idle_timeout`, `completion_timeout` or `initial_timeout` (`kind`) of `seconds`.
#[pyfunction]
#[pyo3(signature = (kind, seconds, capacity = 0))]
pub fn flow_timed(kind: &str, seconds: f64, capacity: usize) -> PyResult<NBlueprint> {
    let d = secs(seconds)?;
    let f = match kind {
        "delay" if capacity > 0 => weir_operators::time::delay_with_capacity::<PyObj>(d, capacity),
        "delay" => weir_operators::time::delay::<PyObj>(d),
        "idle_timeout" => weir_operators::time::idle_timeout::<PyObj>(d),
        "completion_timeout" => weir_operators::time::completion_timeout::<PyObj>(d),
        "initial_timeout" => weir_operators::time::initial_timeout::<PyObj>(d),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown timed flow {other:?}"
            )));
        }
    };
    Ok(flow(unit_mat(f)))
}

/// `grouped_within(n, seconds)`: lists.
#[pyfunction]
pub fn flow_grouped_within(n: usize, seconds: f64) -> PyResult<NBlueprint> {
    let g = weir_operators::time::grouped_within::<PyObj>(n.max(1), secs(seconds)?);
    Ok(flow(unit_mat(g).via(list_flow("grouped_within"))))
}

/// Lists of the elements that arrived while downstream was busy: at most `max` per list
/// (`batch`), unbounded when `max == 0` (`conflate`). Python folds them afterwards.
#[pyfunction]
pub fn flow_batch_lists(max: usize) -> NBlueprint {
    let seed = |x: PyObj| vec![x];
    let agg = |mut v: Vec<PyObj>, x: PyObj| {
        v.push(x);
        v
    };
    let (b, name) = if max == 0 {
        (
            weir_operators::time::conflate_with_seed(seed, agg),
            "conflate",
        )
    } else {
        (weir_operators::time::batch(max, seed, agg), "batch")
    };
    flow(unit_mat(b).via(list_flow(name)))
}

/// `expand()`: repeats the last element while downstream is faster than upstream.
#[pyfunction]
pub fn flow_expand() -> NBlueprint {
    let e = weir_operators::time::expand(|s: Shared| std::iter::repeat(s));
    flow(unit_mat(share().via(e)).via(unshare_flow("expand")))
}

// ---------------------------------------------------------------------------------------------
// Fan-out / fan-in (linear forms)

fn built(r: Result<Flow<PyObj, PyObj, MatValue>, weir_graph::GraphError>) -> PyResult<NBlueprint> {
    r.map(flow).map_err(graph_err)
}

fn take_mat(k: MatKey<MatValue>) -> impl Fn(&mut weir_graph::MatValues) -> MatValue + Send + Sync {
    move |v| v.take(k).unwrap_or(MatValue::Unit)
}

/// `also_to(sink)`: every element to `sink` too; materializes the sink's value.
#[pyfunction]
#[pyo3(signature = (sink, tap = false))]
pub fn flow_also_to(sink: &NBlueprint, tap: bool) -> PyResult<NBlueprint> {
    let sink = sink_of(sink)?;
    let name = if tap { "wire_tap" } else { "also_to" };
    let mut b = GraphBuilder::new();
    let (si, so, _) = b.add_flow(share());
    let (mi, mo, _) = b.add_flow(unshare_flow(name));
    let (ti, to, _) = b.add_flow(unshare_flow(name));
    let (ki, k) = b.add_sink(sink);
    let r = (|| {
        if tap {
            let j = b.add(WireTap::<Shared>::new());
            b.connect(so, j.inlet)?;
            b.connect(j.main, mi)?;
            b.connect(j.tap, ti)?;
        } else {
            let j = b.add(Broadcast::<Shared>::new(2).eager_cancel(true));
            b.connect(so, j.inlet)?;
            let (o0, o1) = match j.outlets.as_slice() {
                [a, c, ..] => (*a, *c),
                _ => return Err(weir_graph::GraphError::UnknownNode("also_to".into())),
            };
            b.connect(o0, mi)?;
            b.connect(o1, ti)?;
        }
        b.connect(to, ki)?;
        b.build_flow(si, mo, take_mat(k))
    })();
    built(r)
}

/// `divert_to(sink, pred)`: elements matching `pred` go to `sink` only.
#[pyfunction]
pub fn flow_divert_to(sink: &NBlueprint, pred: Py<PyAny>) -> PyResult<NBlueprint> {
    let sink = sink_of(sink)?;
    let mut b = GraphBuilder::new();
    let (ti, to, _) = b.add_flow(tag_flow("divert_to", pred, false));
    let (mi, mo, _) = b.add_flow(untag::<bool>());
    let (di, dout, _) = b.add_flow(untag::<bool>());
    let (ki, k) = b.add_sink(sink);
    let j = b.add(
        Partition::<(bool, PyObj)>::new(2, |t: &(bool, PyObj)| usize::from(t.0)).eager_cancel(true),
    );
    let r = (|| {
        let (o0, o1) = match j.outlets.as_slice() {
            [a, c, ..] => (*a, *c),
            _ => return Err(weir_graph::GraphError::UnknownNode("divert_to".into())),
        };
        b.connect(to, j.inlet)?;
        b.connect(o0, mi)?;
        b.connect(o1, di)?;
        b.connect(dout, ki)?;
        b.build_flow(ti, mo, take_mat(k))
    })();
    built(r)
}

/// `merge_sorted(other)`: both sorted ascending (Python `<`), merged into one sorted stream.
#[pyfunction]
pub fn flow_merge_sorted(other: &NBlueprint) -> PyResult<NBlueprint> {
    let other = source_of(other)?;
    let mut b = GraphBuilder::new();
    let (i, o, _) = b.add_flow(Flow::<PyObj, PyObj, ()>::identity());
    let (so, _) = b.add_source(other);
    let j = b.add(stages::PyMergeSorted);
    let r = (|| {
        b.connect(o, j.inlet::<PyObj>(0))?;
        b.connect(so, j.inlet::<PyObj>(1))?;
        b.build_flow(i, j.outlet::<PyObj>(0), |_| MatValue::Unit)
    })();
    built(r)
}

/// `interleave(other, segment_size)`.
#[pyfunction]
pub fn flow_interleave(other: &NBlueprint, segment_size: usize) -> PyResult<NBlueprint> {
    let other = source_of(other)?;
    Ok(flow(unit_mat(
        Flow::<PyObj, PyObj, ()>::identity().interleave(other, segment_size.max(1)),
    )))
}

/// `zip_latest(other)`: `(a, b)` of the latest elements of both, on every new element.
#[pyfunction]
pub fn flow_zip_latest(other: &NBlueprint) -> PyResult<NBlueprint> {
    let other = source_of(other)?.via(share());
    let mut b = GraphBuilder::new();
    let (i, o, _) = b.add_flow(share());
    let (so, _) = b.add_source(other);
    let (pi, po, _) = b.add_flow(py_flow("zip_latest", factory(|_py| convert(shared_pair))));
    let j = b.add(ZipLatest::<Shared, Shared>::new());
    let r = (|| {
        b.connect(o, j.left)?;
        b.connect(so, j.right)?;
        b.connect(j.outlet, pi)?;
        b.build_flow(i, po, |_| MatValue::Unit)
    })();
    built(r)
}

// ---------------------------------------------------------------------------------------------
// Junctions for the GraphBuilder

type PortLists = (Vec<NInlet>, Vec<NOutlet>);

fn ports(ins: Vec<Inlet<PyObj>>, outs: Vec<Outlet<PyObj>>) -> PortLists {
    (
        ins.into_iter().map(NInlet).collect(),
        outs.into_iter().map(NOutlet).collect(),
    )
}

fn add_junction(
    b: &mut GraphBuilder,
    kind: &str,
    n: usize,
    f: Option<Py<PyAny>>,
    priorities: Vec<usize>,
    segment_size: usize,
) -> PyResult<PortLists> {
    let n = n.max(1);
    let ge = graph_err;
    Ok(match kind {
        "partition" => {
            let f = f.ok_or_else(|| PyTypeError::new_err("Partition needs a function"))?;
            let (ti, to, _) = b.add_flow(py_flow(
                "partition",
                factory(move |py| {
                    let f = f.clone_ref(py);
                    each_fallible(move |py, x: &PyObj| {
                        let i: usize = f.bind(py).call1((x.0.bind(py),))?.extract()?;
                        if i >= n {
                            return Err(PyIndexError::new_err(format!(
                                "partition index {i} out of range for {n} outputs"
                            )));
                        }
                        Ok((i, x.clone_ref(py)))
                    })
                }),
            ));
            let j = b.add(Partition::<(usize, PyObj)>::new(n, |t: &(usize, PyObj)| {
                t.0
            }));
            b.connect(to, j.inlet).map_err(ge)?;
            let mut outs = Vec::with_capacity(n);
            for o in j.outlets {
                let (si, so, _) = b.add_flow(untag::<usize>());
                b.connect(o, si).map_err(ge)?;
                outs.push(so);
            }
            ports(vec![ti], outs)
        }
        "merge_preferred" => {
            let j = b.add(MergePreferred::<PyObj>::new(n));
            let mut ins = vec![j.preferred];
            ins.extend(j.inlets);
            ports(ins, vec![j.outlet])
        }
        "merge_prioritized" => {
            let j = b.add(MergePrioritized::<PyObj>::new(priorities));
            ports(j.inlets, vec![j.outlet])
        }
        "interleave" => {
            let j = b.add(Interleave::<PyObj>::new(n, segment_size.max(1)));
            ports(j.inlets, vec![j.outlet])
        }
        "merge_sorted" => {
            let j = b.add(stages::PyMergeSorted);
            ports(vec![j.inlet(0), j.inlet(1)], vec![j.outlet(0)])
        }
        "zip_latest" => {
            let (ai, ao, _) = b.add_flow(share());
            let (bi, bo, _) = b.add_flow(share());
            let (pi, po, _) =
                b.add_flow(py_flow("zip_latest", factory(|_py| convert(shared_pair))));
            let j = b.add(ZipLatest::<Shared, Shared>::new());
            b.connect(ao, j.left).map_err(ge)?;
            b.connect(bo, j.right).map_err(ge)?;
            b.connect(j.outlet, pi).map_err(ge)?;
            ports(vec![ai, bi], vec![po])
        }
        "unzip" => {
            let (ti, to, _) = b.add_flow(py_flow(
                "unzip",
                factory(|_py| {
                    each_fallible(|py, x: &PyObj| {
                        let (a, b) = x.0.bind(py).extract::<(Py<PyAny>, Py<PyAny>)>()?;
                        Ok((PyObj(a), PyObj(b)))
                    })
                }),
            ));
            let j = b.add(Unzip::<PyObj, PyObj>::new());
            b.connect(to, j.inlet).map_err(ge)?;
            ports(vec![ti], vec![j.left, j.right])
        }
        other => return Err(PyValueError::new_err(format!("unknown junction {other:?}"))),
    })
}

/// Adds a junction of this module to a builder: `kind` is `partition` (with `f`),
/// `merge_preferred`, `merge_prioritized` (with `priorities`), `interleave` (with
/// `segment_size`), `merge_sorted`, `zip_latest` or `unzip`; returns `(inlets, outlets)`.
#[pyfunction]
#[pyo3(signature = (builder, kind, n = 2, f = None, priorities = Vec::new(), segment_size = 1))]
pub fn builder_add_junction(
    builder: &NBuilder,
    kind: &str,
    n: usize,
    f: Option<Py<PyAny>>,
    priorities: Vec<usize>,
    segment_size: usize,
) -> PyResult<PortLists> {
    builder.with(|b| add_junction(b, kind, n, f, priorities, segment_size))
}

/// Adds this module's classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NSourceQueue>()?;
    m.add_class::<NSinkQueue>()?;
    m.add_class::<NCancellable>()?;
    m.add_function(wrap_pyfunction!(source_tick, m)?)?;
    m.add_function(wrap_pyfunction!(source_queue, m)?)?;
    m.add_function(wrap_pyfunction!(sink_queue, m)?)?;
    m.add_function(wrap_pyfunction!(flow_take_while, m)?)?;
    m.add_function(wrap_pyfunction!(flow_drop_while, m)?)?;
    m.add_function(wrap_pyfunction!(flow_sliding, m)?)?;
    m.add_function(wrap_pyfunction!(flow_intersperse, m)?)?;
    m.add_function(wrap_pyfunction!(flow_zip_with_index, m)?)?;
    m.add_function(wrap_pyfunction!(flow_inspect, m)?)?;
    m.add_function(wrap_pyfunction!(flow_recover, m)?)?;
    m.add_function(wrap_pyfunction!(flow_recover_with_retries, m)?)?;
    m.add_function(wrap_pyfunction!(flow_flat_map_sources, m)?)?;
    m.add_function(wrap_pyfunction!(flow_group_by, m)?)?;
    m.add_function(wrap_pyfunction!(flow_split, m)?)?;
    m.add_function(wrap_pyfunction!(flow_timed, m)?)?;
    m.add_function(wrap_pyfunction!(flow_grouped_within, m)?)?;
    m.add_function(wrap_pyfunction!(flow_batch_lists, m)?)?;
    m.add_function(wrap_pyfunction!(flow_expand, m)?)?;
    m.add_function(wrap_pyfunction!(flow_also_to, m)?)?;
    m.add_function(wrap_pyfunction!(flow_divert_to, m)?)?;
    m.add_function(wrap_pyfunction!(flow_merge_sorted, m)?)?;
    m.add_function(wrap_pyfunction!(flow_interleave, m)?)?;
    m.add_function(wrap_pyfunction!(flow_zip_latest, m)?)?;
    m.add_function(wrap_pyfunction!(builder_add_junction, m)?)?;
    Ok(())
}
