//! Event time and keyed event-time windows for Python: `assign_timestamps(..)` and
//! `assign_timestamps(..).key_by(f).window(..)` over the Rust operators
//! (`weir_operators::time::assign_timestamps`, `weir_operators::window`), elements being `PyObj`.
//!
//! Python speaks seconds (floats), Rust whole milliseconds: a timestamp `t` is `round(t * 1000)`.
//! One stage calls the timestamp and key functions a batch at a time (and converts the value of
//! `sum`/`min`/`max`/`mean` to a Rust number once per element); the window functions of `sum`,
//! `count`, `min`, `max` and `mean` then run in Rust without calling Python.

use super::{flow, secs, sink_of, untag};
use crate::dsl::{PyBlueprint, PySupervision};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::{PyObj, short_repr};
use crate::pyfn::PyFn;
use crate::stages::{Batch, PyKey, PyOp, element_failed, py_flow, unit_mat};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};
use std::sync::Arc;
use weir_graph::{Flow, GraphBuilder, StageCx, StageError};
use weir_operators::fan::Partition;
use weir_operators::simple::SimpleOps;
use weir_operators::time::{Timestamped, WatermarkStrategy, assign_timestamps};
use weir_operators::window::{AggregateFunction, Window, WindowOps, WindowOutput, Windows};

/// A number summed, compared or counted in Rust.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    fn as_f64(self) -> f64 {
        match self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    fn add(self, other: Num) -> Num {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => Num::Int(a.saturating_add(b)),
            (a, b) => Num::Float(a.as_f64() + b.as_f64()),
        }
    }

    /// Whether `self < other` (ints exactly, mixed as floats).
    fn lt(self, other: Num) -> bool {
        match (self, other) {
            (Num::Int(a), Num::Int(b)) => a < b,
            (a, b) => a.as_f64() < b.as_f64(),
        }
    }
}

/// An element entering the window stage: its event time, key, number (built-ins) and itself.
#[derive(Clone)]
struct Prep {
    ts: i64,
    key: PyKey,
    num: Num,
    elem: PyObj,
}

/// Which window function runs (built-ins need a number per element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Builtin {
    Sum,
    Count,
    Min,
    Max,
    Mean,
}

impl AggregateFunction<Prep> for Builtin {
    /// The running result (the sum for `mean`) and the number of elements.
    type Acc = (Option<Num>, u64);
    type Out = Num;
    fn create(&self) -> Self::Acc {
        (None, 0)
    }
    fn add(&self, acc: &mut Self::Acc, value: Prep) {
        let x = if *self == Builtin::Count {
            Num::Int(1)
        } else {
            value.num
        };
        self.merge(acc, (Some(x), 1));
    }
    fn merge(&self, acc: &mut Self::Acc, other: Self::Acc) {
        let value = match (acc.0, other.0) {
            (None, o) | (o, None) => o,
            (Some(a), Some(b)) => Some(match self {
                Builtin::Sum | Builtin::Count | Builtin::Mean => a.add(b),
                Builtin::Min if b.lt(a) => b,
                Builtin::Max if a.lt(b) => b,
                Builtin::Min | Builtin::Max => a,
            }),
        };
        *acc = (value, acc.1.saturating_add(other.1));
    }
    fn result(&self, acc: &Self::Acc) -> Num {
        let value = acc.0.unwrap_or(Num::Int(0));
        match self {
            Builtin::Mean => Num::Float(value.as_f64() / acc.1.max(1) as f64),
            _ => value,
        }
    }
}

/// A window result computed by Python: the first failure is kept and fails the stage when the
/// window fires.
type PyAcc = Result<PyObj, StageError>;

/// `reduce(f)`: `f(acc, x)` per element.
#[derive(Clone)]
struct PyReduce(PyFn);

impl AggregateFunction<Prep> for PyReduce {
    type Acc = Option<PyAcc>;
    type Out = PyAcc;
    fn create(&self) -> Option<PyAcc> {
        None
    }
    fn add(&self, acc: &mut Option<PyAcc>, value: Prep) {
        self.merge(acc, Some(Ok(value.elem)));
    }
    fn merge(&self, acc: &mut Option<PyAcc>, other: Option<PyAcc>) {
        *acc = match (acc.take(), other) {
            (None, o) | (o, None) => o,
            (Some(Ok(a)), Some(Ok(b))) => Some(self.0.call2(&a, &b)),
            (Some(Err(e)), _) | (_, Some(Err(e))) => Some(Err(e)),
        };
    }
    fn result(&self, acc: &Option<PyAcc>) -> PyAcc {
        acc.clone()
            .unwrap_or_else(|| Err(StageError::internal("window_reduce: an empty window fired")))
    }
}

/// `aggregate(create, add, merge, result)`: an accumulator per window, Python functions.
#[derive(Clone)]
struct PyAggregate {
    create: PyFn,
    add: PyFn,
    merge: Option<PyFn>,
    result: Option<PyFn>,
}

impl AggregateFunction<Prep> for PyAggregate {
    type Acc = PyAcc;
    type Out = PyAcc;
    fn create(&self) -> PyAcc {
        crate::gil::with(|py| {
            self.create
                .get()
                .bind(py)
                .call0()
                .map(PyObj::from_bound)
                .map_err(|e| crate::obj::user_error(py, e))
        })
    }
    fn add(&self, acc: &mut PyAcc, value: Prep) {
        if let Ok(a) = acc {
            *acc = self.add.call2(a, &value.elem);
        }
    }
    fn merge(&self, acc: &mut PyAcc, other: PyAcc) {
        *acc = match (&*acc, other) {
            (Err(_), _) => return,
            (_, Err(e)) => Err(e),
            (Ok(a), Ok(b)) => match &self.merge {
                Some(m) => m.call2(a, &b),
                None => Err(StageError::internal("window_aggregate: merge needed")),
            },
        };
    }
    fn result(&self, acc: &PyAcc) -> PyAcc {
        match (acc, &self.result) {
            (Err(e), _) => Err(e.clone()),
            (Ok(a), Some(r)) => r.call1(a),
            (Ok(a), None) => Ok(a.clone()),
        }
    }
}

/// Seconds from milliseconds, as Python sees window bounds and timestamps.
fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// A window result as a Python object.
trait ToPy: Send + 'static {
    /// The object, or the failure the window's function met.
    fn to_py(self, py: Python<'_>) -> Result<Py<PyAny>, StageError>;
}

impl ToPy for Num {
    fn to_py(self, py: Python<'_>) -> Result<Py<PyAny>, StageError> {
        Ok(match self {
            Num::Int(i) => {
                let Ok(o) = i.into_pyobject(py);
                o.into_any().unbind()
            }
            Num::Float(f) => float(py, f),
        })
    }
}

impl ToPy for PyAcc {
    fn to_py(self, _py: Python<'_>) -> Result<Py<PyAny>, StageError> {
        self.map(|o| o.0)
    }
}

fn tuple(py: Python<'_>, items: Vec<Py<PyAny>>) -> Result<PyObj, StageError> {
    PyTuple::new(py, items)
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| crate::obj::user_error(py, e))
}

fn float(py: Python<'_>, x: f64) -> Py<PyAny> {
    PyFloat::new(py, x).into_any().unbind()
}

/// The stage after the window stage: `(False, (key, start, end, value))` per fired window,
/// `(True, (key, ts, element))` per late element when they go to a sink, else a late element
/// fails the stage naming it.
struct Emit {
    split_late: bool,
}

impl<R: ToPy> PyOp<WindowOutput<PyKey, R, Prep>, (bool, PyObj)> for Emit {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<WindowOutput<PyKey, R, Prep>>,
        out: &mut Vec<(bool, PyObj)>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for o in input {
            match o {
                WindowOutput::Fired { key, window, value } => {
                    let v = value.to_py(py)?;
                    let k = key.key().clone_ref(py).0;
                    let (s, e) = (seconds(window.start), seconds(window.end));
                    out.push((false, tuple(py, vec![k, float(py, s), float(py, e), v])?));
                }
                WindowOutput::Late { key, element } if self.split_late => {
                    let k = key.key().clone_ref(py).0;
                    let ts = float(py, seconds(element.ts));
                    out.push((true, tuple(py, vec![k, ts, element.value.elem.0])?));
                }
                WindowOutput::Late { element, .. } => {
                    let repr = short_repr(py, &element.value.elem);
                    let msg = format!(
                        "late element at {}s: every window it belongs to is past its \
                         allowed lateness (pass late_to= to keep late elements)",
                        seconds(element.ts)
                    );
                    return Err(StageError::user(msg).with_element(&repr));
                }
            }
        }
        Ok(())
    }
}

/// What the key stage computes besides the timestamp and key.
#[derive(Clone, Copy)]
enum Value {
    /// Nothing (`count`, Python window functions).
    None,
    /// The element (or `value(element)`) as a Rust number.
    Number,
}

/// The first stage: `(ts, key, number, element)` per element, the timestamp, key and value
/// functions called a batch at a time; an error names the element.
struct PrepOp {
    ts: Arc<Py<PyAny>>,
    key: Option<Arc<Py<PyAny>>>,
    value: Option<Arc<Py<PyAny>>>,
    kind: Value,
}

fn millis(t: &Bound<'_, PyAny>) -> PyResult<i64> {
    let s: f64 = t.extract().map_err(|_| {
        let ty = t
            .get_type()
            .name()
            .map(|n| n.to_string())
            .unwrap_or_default();
        PyTypeError::new_err(format!("timestamp must be a number of seconds, got {ty}"))
    })?;
    let ms = (s * 1000.0).round();
    if !ms.is_finite() || ms.abs() >= 9.0e15 {
        return Err(PyValueError::new_err(format!(
            "timestamp out of range: {s}"
        )));
    }
    Ok(ms as i64)
}

fn number(v: &Bound<'_, PyAny>) -> PyResult<Num> {
    if let Ok(i) = v.cast::<PyInt>() {
        return i.extract::<i64>().map(|i| Num::Int(i128::from(i)));
    }
    if let Ok(f) = v.cast::<PyFloat>() {
        return Ok(Num::Float(f.value()));
    }
    let ty = v
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    Err(PyTypeError::new_err(format!(
        "window value must be an int or a float, got {ty}"
    )))
}

impl PrepOp {
    fn prep(&self, py: Python<'_>, x: &PyObj) -> PyResult<Prep> {
        let b = x.0.bind(py);
        let ts = millis(&self.ts.bind(py).call1((b,))?)?;
        let key = match &self.key {
            Some(f) => PyObj::from_bound(f.bind(py).call1((b,))?),
            None => x.clone_ref(py),
        };
        let key = PyKey::new(py, key).map_err(|(e, _)| e)?;
        let num = match self.kind {
            Value::None => Num::Int(0),
            Value::Number => match &self.value {
                Some(f) => number(&f.bind(py).call1((b,))?)?,
                None => number(b)?,
            },
        };
        Ok(Prep {
            ts,
            key,
            num,
            elem: x.clone_ref(py),
        })
    }
}

impl PyOp<PyObj, Prep> for PrepOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<Prep>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            match self.prep(py, &x) {
                Ok(p) => out.push(p),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

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
/// late elements go to `late` when given (else a late element fails the stage).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (ts, watermarks, key, windows_, lateness, func, fns, value = None, late = None, sup = None))]
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
) -> PyResult<PyBlueprint> {
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
                ts: Arc::new(ts.clone_ref(py)),
                key: key.as_ref().map(|k| Arc::new(k.clone_ref(py))),
                value: value.as_ref().map(|v| Arc::new(v.clone_ref(py))),
                kind,
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
        (Some(b), _) => keyed.aggregate(b).via(emit(split, func)),
        (None, "reduce") => keyed.aggregate(PyReduce(arg(0)?)).via(emit(split, func)),
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
                create: arg(0)?,
                add: arg(1)?,
                merge,
                result: fns
                    .get(3)
                    .and_then(|f| f.as_ref())
                    .map(|f| PyFn::new(f.clone_ref(py))),
            };
            keyed.aggregate(agg).via(emit(split, func))
        }
        (None, "process") => {
            let f = arg(0)?;
            keyed
                .process(move |k: &PyKey, w: Window, xs: &[Timestamped<Prep>]| {
                    call_process(&f, k, w, xs)
                })
                .via(emit(split, func))
        }
        (None, other) => {
            return Err(PyValueError::new_err(format!(
                "unknown window function {other:?}"
            )));
        }
    };
    match late {
        None => Ok(flow(tagged.via(unit_mat(untag::<bool>())))),
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
) -> Flow<WindowOutput<PyKey, R, Prep>, (bool, PyObj), MatValue> {
    let name = format!("window_{func}");
    py_flow(
        &name,
        Arc::new(move |_, _| {
            Box::new(Emit { split_late: split })
                as Box<dyn PyOp<WindowOutput<PyKey, R, Prep>, (bool, PyObj)>>
        }),
    )
}

/// The results on, the late elements (tagged `true`) to `sink`.
fn split_late(
    tagged: Flow<PyObj, (bool, PyObj), MatValue>,
    sink: &PyBlueprint,
) -> PyResult<PyBlueprint> {
    let sink = sink_of(sink)?;
    let mut b = GraphBuilder::new();
    let (ti, to, _) = b.add_flow(tagged);
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
            v.take(k).unwrap_or(MatValue::Unit)
        })
    })();
    r.map(flow).map_err(graph_err)
}
