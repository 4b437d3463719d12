//! `key_by(f).sum(field)`, `.min`, `.max`, `.mean`, `.first`, `.last` for Python: one key stage
//! computes each element's key and value a batch at a time (CPython's own `map` over the batch
//! for the key function and the field getter, so no Python call from Rust per element), and
//! `weir_operators::keyed::aggregate_pairs` accumulates them per key in Rust with the window
//! built-ins ([`Builtin`]) or [`First`] / [`Last`], checkpointed by key group through the key
//! and value codec (`weir.codec`).

use super::flow;
use super::windows::ToPy;
use crate::codec::Codec;
use crate::dsl::{PyBlueprint, PySupervision};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use crate::stages::cloop;
use crate::stages::core::element_failed_stateless;
use crate::stages::{Batch, PyKey, PyOp, py_flow};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyList, PyTuple};
use std::sync::Arc;
use weir_graph::{Flow, StageCx, StageError};
use weir_operators::keyed::{First, KeyedCodec, Last, aggregate_pairs};
use weir_operators::window::{AggregateFunction, Builtin, Num};

/// What the key stage pairs with each key: a Rust number (`sum`/`min`/`max`/`mean`) or the
/// value itself (`first`/`last`).
trait Value: Sized + Send + 'static {
    /// `x` as the aggregate's input, or why it cannot be (`func` names the aggregate).
    fn from_py(x: &Bound<'_, PyAny>, func: &'static str) -> PyResult<Self>;
}

impl Value for Num {
    fn from_py(x: &Bound<'_, PyAny>, func: &'static str) -> PyResult<Self> {
        // `bool` is an int subclass: it sums as 0 / 1, as in Python.
        if let Ok(i) = x.cast::<PyInt>() {
            return match i.extract::<i64>() {
                Ok(v) => Ok(Num::Int(i128::from(v))),
                Err(_) => Err(PyValueError::new_err(format!(
                    "{func}: the value {i} does not fit in 64 bits"
                ))),
            };
        }
        if let Ok(f) = x.cast::<PyFloat>() {
            return Ok(Num::Float(f.value()));
        }
        let ty = x
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        Err(PyTypeError::new_err(format!(
            "{func}: the value must be an int or a float, got {ty}"
        )))
    }
}

impl Value for PyObj {
    fn from_py(x: &Bound<'_, PyAny>, _func: &'static str) -> PyResult<Self> {
        Ok(PyObj::from_bound(x.clone()))
    }
}

/// The key stage: `(key, value)` per element; the key function and the field getter each run
/// as one `map` over the batch. A failing call, a key without an encoding or a value of the
/// wrong type goes through supervision with the element (the stage is stateless: Restart goes
/// on like Resume, so the rest of the batch is kept).
struct PairsOp {
    key: Option<Arc<Py<PyAny>>>,
    field: Option<Arc<Py<PyAny>>>,
    codec: Codec,
    func: &'static str,
}

impl PairsOp {
    /// `f` over `batch` as one `map`: the results in element order, `None` for an element whose
    /// call failed (and went through supervision).
    fn map(
        py: Python<'_>,
        f: &Py<PyAny>,
        batch: &Bound<'_, PyList>,
        cx: &mut StageCx<'_>,
    ) -> Result<Vec<Option<PyObj>>, StageError> {
        let res = PyList::empty(py);
        let failed = cloop::map_list_skipping(f, batch, &res, cx)?;
        let mut got = Vec::new();
        cloop::take_list(&mut got, &res);
        let mut got = got.into_iter();
        let mut failed = failed.into_iter().peekable();
        Ok((0..batch.len())
            .map(|i| {
                if failed.peek() == Some(&i) {
                    failed.next();
                    None
                } else {
                    got.next()
                }
            })
            .collect())
    }
}

impl<V: Value> PyOp<PyObj, (PyKey, V)> for PairsOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<(PyKey, V)>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let batch: Vec<PyObj> = input.collect();
        let list = cloop::to_list(py, &batch)?;
        let keys = match &self.key {
            Some(f) => Self::map(py, f, &list, cx)?,
            None => batch.iter().map(|x| Some(x.clone_ref(py))).collect(),
        };
        // Values only of the elements that have a key (a failed element is reported once).
        let values = match &self.field {
            Some(f) if keys.iter().all(Option::is_some) => Self::map(py, f, &list, cx)?,
            Some(f) => {
                let with_key = keys.iter().zip(&batch).filter(|(k, _)| k.is_some());
                let l = cloop::to_list(
                    py,
                    &with_key.map(|(_, x)| x.clone_ref(py)).collect::<Vec<_>>(),
                )?;
                let mut vs = Self::map(py, f, &l, cx)?.into_iter();
                keys.iter()
                    .map(|k| k.as_ref().and_then(|_| vs.next().flatten()))
                    .collect()
            }
            None => batch.iter().map(|x| Some(x.clone_ref(py))).collect(),
        };
        out.reserve(batch.len());
        for ((k, v), x) in keys.into_iter().zip(values).zip(batch) {
            let (Some(k), Some(v)) = (k, v) else { continue };
            let v = match V::from_py(v.0.bind(py), self.func) {
                Ok(v) => v,
                Err(e) => {
                    element_failed_stateless(py, cx, e, Some(x))?;
                    continue;
                }
            };
            match PyKey::new(py, k, self.codec) {
                Ok(k) => out.push((k, v)),
                Err((e, _)) => element_failed_stateless(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// The Python tuple `(key, value)`.
fn pair(py: Python<'_>, k: PyKey, v: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [k.key().clone_ref(py).0, v])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// The key stage of `func`, supervised by `sup`.
fn pairs<V: Value>(
    key: Option<Py<PyAny>>,
    field: Option<Py<PyAny>>,
    codec: Codec,
    func: &'static str,
    sup: Option<&PySupervision>,
) -> Flow<PyObj, (PyKey, V), MatValue> {
    let (key, field) = (key.map(Arc::new), field.map(Arc::new));
    let stage = py_flow(
        "key_by",
        Arc::new(move |_, _| {
            Box::new(PairsOp {
                key: key.clone(),
                field: field.clone(),
                codec,
                func,
            }) as Box<dyn PyOp<PyObj, (PyKey, V)>>
        }),
    );
    match sup {
        Some(s) => stage.with_supervision(s.0.clone()),
        None => stage,
    }
}

/// The aggregate stage (named `func`) after `pairs`: `(key, result)` tuples.
fn aggregate<V, A>(
    pairs: Flow<PyObj, (PyKey, V), MatValue>,
    agg: A,
    func: &'static str,
    out: fn(Python<'_>, A::Out) -> Result<Py<PyAny>, StageError>,
) -> Flow<PyObj, PyObj, MatValue>
where
    V: Send + 'static,
    A: AggregateFunction<V>,
    A::Acc: serde::Serialize + serde::de::DeserializeOwned,
{
    let emit = move |k: PyKey, r: A::Out| crate::gil::with(|py| pair(py, k, out(py, r)?));
    aggregate_pairs(pairs, agg, emit, Some(KeyedCodec::serde())).named(func)
}

fn builtin_out(py: Python<'_>, n: Num) -> Result<Py<PyAny>, StageError> {
    n.to_py(py)
}

fn object_out(_py: Python<'_>, v: Option<PyObj>) -> Result<Py<PyAny>, StageError> {
    v.map(|v| v.0)
        .ok_or_else(|| StageError::internal("a key without a value was emitted"))
}

/// `key_by(key).<func>(field)` for `func` in `sum`, `min`, `max`, `mean`, `first`, `last`:
/// one `(key, result)` tuple per key when the input completes (stage `func`, the one
/// `parallelism` applies to); `field` (a function, e.g. `operator.itemgetter`) picks each
/// element's value, the element itself when `None`; `sup` supervises the `key_by` stage.
#[pyfunction]
#[pyo3(signature = (key, func, field = None, sup = None, key_codec = "builtin"))]
pub fn flow_key_aggregate(
    key: Option<Py<PyAny>>,
    func: &str,
    field: Option<Py<PyAny>>,
    sup: Option<&PySupervision>,
    key_codec: &str,
) -> PyResult<PyBlueprint> {
    let codec = Codec::parse_key(key_codec)?;
    let (name, b) = match func {
        "sum" => ("sum", Builtin::Sum),
        "min" => ("min", Builtin::Min),
        "max" => ("max", Builtin::Max),
        "mean" => ("mean", Builtin::Mean),
        "first" => {
            let p = pairs::<PyObj>(key, field, codec, "first", sup);
            return Ok(flow(aggregate(p, First, "first", object_out)));
        }
        "last" => {
            let p = pairs::<PyObj>(key, field, codec, "last", sup);
            return Ok(flow(aggregate(p, Last, "last", object_out)));
        }
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown keyed aggregate {other:?}"
            )));
        }
    };
    let p = pairs::<Num>(key, field, codec, name, sup);
    Ok(flow(aggregate(p, b, name, builtin_out)))
}
