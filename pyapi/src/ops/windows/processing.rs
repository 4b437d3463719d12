//! Keyed processing-time windows for Python: `key_by(f).window(.., processing_time=True)` over
//! `weir_operators::window::ProcessingWindowOps` (elements stamped with their arrival on the
//! run's clock, windows fired by its timers), with the same window functions as event time.

use super::functions::{PyAggregate, PyReduce};
use super::stages::{Prep, PrepOp, Value};
use super::{StageAttrs, call_process, emit, flow, windows};
use crate::dsl::{PyBlueprint, PySupervision};
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use crate::stages::{PyKey, PyOp, py_flow, unit_mat};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Arc;
use weir_graph::Flow;
use weir_operators::time::Timestamped;
use weir_operators::window::{Builtin, ProcessingWindowOps, Window};

/// `key_by(key).window(windows, processing_time=True)` with its window function `func` (`sum`,
/// `count`, `min`, `max`, `mean`, `reduce`, `aggregate`, `process`) and its Python functions
/// `fns`; `uid` is the stable id of the window stage, `par` its parallelism (and its emit
/// stage's).
#[pyfunction]
#[allow(clippy::too_many_arguments)]
#[pyo3(signature = (key, windows_, func, fns, value = None, sup = None, key_codec = "builtin", uid = None, par = None))]
pub fn flow_processing_window(
    py: Python<'_>,
    key: Option<Py<PyAny>>,
    windows_: (String, f64, f64),
    func: &str,
    fns: Vec<Option<Py<PyAny>>>,
    value: Option<Py<PyAny>>,
    sup: Option<&PySupervision>,
    key_codec: &str,
    uid: Option<String>,
    par: Option<usize>,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    // `key_codec="pickle"`: the Python window state falls back to pickles too.
    let pickle = codec == crate::codec::Codec::PickleKey;
    let w = windows(&windows_.0, windows_.1, windows_.2)?;
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
    let (key, value) = (key.map(Arc::new), value.map(Arc::new));
    let prep = py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(PrepOp {
                ts: None,
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
    // Window state checkpoints through the key and value codec, as for event time.
    let keyed = prep
        .window_by_processing_time(|p: &Prep| p.key.clone(), w)
        .checkpointed();
    let arg = |i: usize| -> PyResult<PyFn> {
        fns.get(i)
            .and_then(|f| f.as_ref())
            .map(|f| PyFn::new(f.clone_ref(py)))
            .ok_or_else(|| PyValueError::new_err(format!("{func}: a function is missing")))
    };
    let opt = |i: usize| {
        fns.get(i)
            .and_then(|f| f.as_ref())
            .map(|f| PyFn::new(f.clone_ref(py)))
    };
    let tagged: Flow<PyObj, (bool, PyObj), _> = match (builtin, func) {
        (Some(b), _) => keyed
            .aggregate(b)
            .attrs(&uid, par)
            .via(emit(false, func, par)),
        (None, "reduce") => keyed
            .aggregate(PyReduce(arg(0)?, pickle))
            .attrs(&uid, par)
            .via(emit(false, func, par)),
        (None, "aggregate") => {
            let merge = opt(2);
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
                result: opt(3),
            };
            keyed
                .aggregate(agg)
                .attrs(&uid, par)
                .via(emit(false, func, par))
        }
        (None, "process") => {
            let f = arg(0)?;
            keyed
                .process(move |k: &PyKey, w: Window, xs: &[Timestamped<Prep>]| {
                    call_process(&f, k, w, xs)
                })
                .attrs(&uid, par)
                .via(emit(false, func, par))
        }
        (None, other) => {
            return Err(PyValueError::new_err(format!(
                "unknown window function {other:?}"
            )));
        }
    };
    Ok(flow(
        tagged.via(unit_mat(super::untag::<bool>()).attrs(&None, par)),
    ))
}
