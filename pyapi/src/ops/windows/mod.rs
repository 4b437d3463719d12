//! Event time and keyed event-time windows for Python: `assign_timestamps(..)` and
//! `assign_timestamps(..).key_by(f).window(..)` over the Rust operators
//! (`weir_operators::time::assign_timestamps`, `weir_operators::window`), elements being `PyObj`.
//!
//! Python speaks seconds (floats), Rust whole milliseconds: a timestamp `t` is `round(t * 1000)`.
//! One stage calls the timestamp and key functions a batch at a time (and converts the value of
//! `sum`/`min`/`max`/`mean` to a Rust number once per element); the window functions of `sum`,
//! `count`, `min`, `max` and `mean` then run in Rust without calling Python.

mod functions;
pub(crate) use functions::ToPy;
mod join;
mod processing;
mod stages;

pub use join::flow_join;
pub use processing::flow_processing_window;

use super::{flow, secs, sink_of, untag};
use crate::dsl::{PyBlueprint, PySupervision};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use crate::stages::{PyKey, PyOp, py_flow, unit_mat};
use functions::{PyAcc, PyAggregate, PyReduce};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use stages::{Emit, Prep, PrepOp, Value, millis, seconds};
use std::sync::Arc;
use weir_graph::{Flow, GraphBuilder};
use weir_operators::fan::Partition;
use weir_operators::simple::SimpleOps;
use weir_operators::time::{Timestamped, WatermarkStrategy, assign_timestamps};
use weir_operators::window::{Builtin, Window, WindowOps, WindowOutput, Windows};

fn strategy(kind: &str, bound: f64, idleness: Option<f64>) -> PyResult<WatermarkStrategy> {
    let s = match kind {
        "bounded" => WatermarkStrategy::bounded_out_of_orderness(secs(bound)?),
        "monotonous" => WatermarkStrategy::monotonous(),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown watermarks {other:?}"
            )));
        }
    };
    Ok(match idleness {
        Some(i) => s.with_idleness(secs(i)?),
        None => s,
    })
}

fn windows(kind: &str, size: f64, slide: f64) -> PyResult<Windows> {
    Ok(match kind {
        "tumbling" => Windows::tumbling(secs(size)?),
        "sliding" => Windows::sliding(secs(size)?, secs(slide)?),
        "session" => Windows::session(secs(size)?),
        other => return Err(PyValueError::new_err(format!("unknown windows {other:?}"))),
    })
}

/// `assign_timestamps(ts, watermarks)`: the elements unchanged, with the watermarks the
/// strategy derives from `ts(element)` (seconds) in band.
#[pyfunction]
#[pyo3(signature = (ts, kind, bound, idleness = None))]
pub fn flow_assign_timestamps(
    ts: Py<PyAny>,
    kind: &str,
    bound: f64,
    idleness: Option<f64>,
) -> PyResult<PyBlueprint> {
    let strategy = strategy(kind, bound, idleness)?;
    let f = PyFn::new(ts);
    let stamp = weir_operators::simple::try_map(move |x: &PyObj| {
        crate::gil::with(|py| {
            let t = f.get().bind(py).call1((x.0.bind(py),));
            let ms = t.and_then(|t| millis(&t));
            ms.map(|ms| (ms, x.clone_ref(py)))
                .map_err(|e| crate::obj::failure_on(py, e, x))
        })
    })
    .named("assign_timestamps");
    let f = stamp
        .via(assign_timestamps(|p: &(i64, PyObj)| p.0, strategy))
        .map(|t: Timestamped<(i64, PyObj)>| t.value.1);
    Ok(flow(unit_mat(f)))
}

/// `assign_timestamps(ts, ..).key_by(key).window(..)` with its window function `func` (`sum`,
/// `count`, `min`, `max`, `mean`, `reduce`, `aggregate`, `process`) and its Python functions `fns`;
/// late elements go to `late` when given (else a late element fails the stage); `uid` is the
/// stable id of the window stage (the one holding the state), `par` its parallelism (and its
/// emit stage's).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (ts, watermarks, key, windows_, lateness, func, fns, value = None, late = None, sup = None, key_codec = "builtin", uid = None, par = None))]
pub fn flow_window(
    py: Python<'_>,
    ts: Py<PyAny>,
    watermarks: (String, f64, Option<f64>),
    key: Option<Py<PyAny>>,
    windows_: (String, f64, f64),
    lateness: f64,
    func: &str,
    fns: Vec<Option<Py<PyAny>>>,
    value: Option<Py<PyAny>>,
    late: Option<&PyBlueprint>,
    sup: Option<&PySupervision>,
    key_codec: &str,
    uid: Option<String>,
    par: Option<usize>,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    // `key_codec="pickle"`: the Python window state falls back to pickles too.
    let pickle = codec == crate::codec::Codec::PickleKey;
    let strategy = strategy(&watermarks.0, watermarks.1, watermarks.2)?;
    let w = windows(&windows_.0, windows_.1, windows_.2)?;
    let lateness = secs(lateness)?;
    let builtin = match func {
        "sum" => Some(Builtin::Sum),
        "count" => Some(Builtin::Count),
        "min" => Some(Builtin::Min),
        "max" => Some(Builtin::Max),
        "mean" => Some(Builtin::Mean),
        _ => None,
    };
    let kind = match builtin {
        Some(Builtin::Count) | None => Value::None,
        Some(_) => Value::Number,
    };
    let (ts, key, value) = (Arc::new(ts), key.map(Arc::new), value.map(Arc::new));
    let prep = py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(PrepOp {
                ts: Some(Arc::new(ts.clone_ref(py))),
                key: key.as_ref().map(|k| Arc::new(k.clone_ref(py))),
                value: value.as_ref().map(|v| Arc::new(v.clone_ref(py))),
                kind,
                codec,
            }) as Box<dyn PyOp<PyObj, Prep>>
        }),
    );
    let prep = match sup {
        Some(s) => prep.with_supervision(s.0.clone()),
        None => prep,
    };
    let stamped = prep.via(unit_mat(assign_timestamps(|p: &Prep| p.ts, strategy)));
    let keyed = stamped
        .window_by(|t: &Timestamped<Prep>| t.value.key.clone(), w)
        .allowed_lateness(lateness);
    let arg = |i: usize| -> PyResult<PyFn> {
        fns.get(i)
            .and_then(|f| f.as_ref())
            .map(|f| PyFn::new(f.clone_ref(py)))
            .ok_or_else(|| PyValueError::new_err(format!("{func}: a function is missing")))
    };
    let split = late.is_some();
    let tagged: Flow<PyObj, (bool, PyObj), MatValue> = match (builtin, func) {
        // Window state (keys, numbers, Python accumulators and buffered elements) checkpoints
        // through the key and value codec; a value without an encoding fails the checkpoint.
        (Some(b), _) => keyed
            .checkpointed()
            .aggregate(b)
            .attrs(&uid, par)
            .via(emit(split, func, par)),
        (None, "reduce") => keyed
            .checkpointed()
            .aggregate(PyReduce(arg(0)?, pickle))
            .attrs(&uid, par)
            .via(emit(split, func, par)),
        (None, "aggregate") => {
            let merge = fns
                .get(2)
                .and_then(|f| f.as_ref())
                .map(|f| PyFn::new(f.clone_ref(py)));
            if merge.is_none() && windows_.0 == "session" {
                return Err(PyValueError::new_err(
                    "aggregate over session windows needs merge= (sessions merge)",
                ));
            }
            let agg = PyAggregate {
                pickle,
                create: arg(0)?,
                add: arg(1)?,
                merge,
                result: fns
                    .get(3)
                    .and_then(|f| f.as_ref())
                    .map(|f| PyFn::new(f.clone_ref(py))),
            };
            keyed
                .checkpointed()
                .aggregate(agg)
                .attrs(&uid, par)
                .via(emit(split, func, par))
        }
        (None, "process") => {
            let f = arg(0)?;
            keyed
                .checkpointed()
                .process(move |k: &PyKey, w: Window, xs: &[Timestamped<Prep>]| {
                    call_process(&f, k, w, xs)
                })
                .attrs(&uid, par)
                .via(emit(split, func, par))
        }
        (None, other) => {
            return Err(PyValueError::new_err(format!(
                "unknown window function {other:?}"
            )));
        }
    };
    match late {
        None => Ok(flow(
            tagged.via(unit_mat(untag::<bool>()).attrs(&None, par)),
        )),
        Some(sink) => split_late(tagged, sink),
    }
}

/// `f(key, start, end, [elements])` for `process`.
fn call_process(f: &PyFn, k: &PyKey, w: Window, xs: &[Timestamped<Prep>]) -> PyAcc {
    crate::gil::with(|py| {
        let items = xs.iter().map(|t| t.value.elem.0.clone_ref(py));
        let r = PyList::new(py, items).and_then(|l| {
            f.get()
                .bind(py)
                .call1((k.key().0.bind(py), seconds(w.start), seconds(w.end), l))
        });
        r.map(PyObj::from_bound)
            .map_err(|e| crate::obj::failure_on(py, e, k.key()))
    })
}

fn emit<R: ToPy>(
    split: bool,
    func: &str,
    par: Option<usize>,
) -> Flow<WindowOutput<PyKey, R, Prep>, (bool, PyObj), MatValue> {
    let name = format!("window_{func}");
    py_flow(
        &name,
        Arc::new(move |_, _| {
            Box::new(Emit { split_late: split })
                as Box<dyn PyOp<WindowOutput<PyKey, R, Prep>, (bool, PyObj)>>
        }),
    )
    .attrs(&None, par)
}

/// The results on, the late elements (tagged `true`) to `sink`; materializes the sink's value
/// (paired after `tagged`'s when that is not `()`).
fn split_late(
    tagged: Flow<PyObj, (bool, PyObj), MatValue>,
    sink: &PyBlueprint,
) -> PyResult<PyBlueprint> {
    let sink = sink_of(sink)?;
    let mut b = GraphBuilder::new();
    let (ti, to, tm) = b.add_flow(tagged);
    let (mi, mo, _) = b.add_flow(untag::<bool>());
    let (di, dout, _) = b.add_flow(untag::<bool>());
    let (ki, k) = b.add_sink(sink);
    let j = b.add(
        Partition::<(bool, PyObj)>::new(2, |t: &(bool, PyObj)| usize::from(t.0)).eager_cancel(true),
    );
    let r = (|| {
        let (o0, o1) = match j.outlets.as_slice() {
            [a, c, ..] => (*a, *c),
            _ => return Err(weir_graph::GraphError::UnknownNode("late_to".into())),
        };
        b.connect(to, j.inlet)?;
        b.connect(o0, mi)?;
        b.connect(o1, di)?;
        b.connect(dout, ki)?;
        b.build_flow(ti, mo, move |v: &mut weir_graph::MatValues| {
            let late = v.take(k).unwrap_or(MatValue::Unit);
            match v.take(tm) {
                None | Some(MatValue::Unit) => late,
                Some(m) => MatValue::Pair(Box::new(m), Box::new(late)),
            }
        })
    })();
    r.map(flow).map_err(graph_err)
}

/// Sets an optional stable id and parallelism on the last stage (the window or join stage,
/// before its emit stage, which takes the same parallelism).
trait StageAttrs: Sized {
    fn attrs(self, uid: &Option<String>, par: Option<usize>) -> Self;
}

impl<I: Send + 'static, O: Send + 'static, M: Send + 'static> StageAttrs for Flow<I, O, M> {
    fn attrs(self, uid: &Option<String>, par: Option<usize>) -> Self {
        let s = match uid {
            Some(u) => self.uid(u.clone()),
            None => self,
        };
        match par {
            Some(n) => s.parallelism(n),
            None => s,
        }
    }
}
