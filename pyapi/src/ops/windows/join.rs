//! `assign_timestamps(..).join_by(other, left_key, right_key)` for Python, then `.window(..)` or
//! `.interval(..)`: the Rust window and interval joins (`weir_operators::join`) over the windows'
//! key-stage elements ([`Prep`]: timestamp, [`PyKey`], element), each side's timestamp and key
//! functions called a batch at a time. The join's state (watermark, keys, buffered elements of
//! both sides) is checkpointed by key group through the key and value codec (`weir.codec`, or
//! pickles with `key_codec="pickle"`), so a restore, also at another parallelism, resumes it.

use super::stages::{Prep, PrepOp, Value, float, seconds};
use super::{StageAttrs, split_late, strategy, windows};
use crate::dsl::{PyBlueprint, PySupervision};
use crate::mat::MatValue;
use crate::obj::{PyObj, failure_on, short_repr, user_error};
use crate::pyfn::PyFn;
use crate::stages::{Batch, PyKey, PyOp, py_flow, unit_mat};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use std::sync::Arc;
use weir_graph::{Flow, Source, StageCx, StageError};
use weir_operators::join::{JoinOps, JoinOutput};
use weir_operators::time::{Timestamped, assign_timestamps};

/// A joined pair's result: `f(left, right)`, or the error it raised (failing the emit stage).
type Joined = Result<PyObj, StageError>;

/// One side of a join: the timestamp and key functions and the watermark strategy.
struct Side {
    ts: Py<PyAny>,
    watermarks: (String, f64, Option<f64>),
    key: Option<Py<PyAny>>,
}

impl Side {
    /// The side's key stage (`(ts, key, element)` per element, under `sup`) and its
    /// timestamps and watermarks.
    fn stamped(
        self,
        codec: crate::codec::Codec,
        sup: Option<&PySupervision>,
    ) -> PyResult<Flow<PyObj, Timestamped<Prep>, MatValue>> {
        let strategy = strategy(&self.watermarks.0, self.watermarks.1, self.watermarks.2)?;
        let (ts, key) = (Arc::new(self.ts), self.key.map(Arc::new));
        let prep = py_flow(
            "join_key_by",
            Arc::new(move |py, _| {
                Box::new(PrepOp {
                    ts: Some(Arc::new(ts.clone_ref(py))),
                    key: key.as_ref().map(|k| Arc::new(k.clone_ref(py))),
                    value: None,
                    kind: Value::None,
                    codec,
                }) as Box<dyn PyOp<PyObj, Prep>>
            }),
        );
        let prep = match sup {
            Some(s) => prep.with_supervision(s.0.clone()),
            None => prep,
        };
        Ok(prep.via(unit_mat(assign_timestamps(|p: &Prep| p.ts, strategy))))
    }
}

/// What the join does once both sides are keyed.
enum How {
    /// Tumbling or sliding event-time windows.
    Window(weir_operators::window::Windows),
    /// `left.ts + lower <= right.ts <= left.ts + upper` (ms).
    Interval(i64, i64),
}

/// Milliseconds from seconds (the join's interval bounds).
fn bound_ms(what: &str, s: f64) -> PyResult<i64> {
    let ms = (s * 1000.0).round();
    if !ms.is_finite() || ms.abs() >= 9.0e15 {
        return Err(PyValueError::new_err(format!(
            "interval join: {what} out of range: {s}"
        )));
    }
    Ok(ms as i64)
}

/// `left.join_by(right, left_key, right_key).window(windows, f)` (`how="window"`, `a`/`b` the
/// window kind's size and slide) or `.interval(a, b, f)` (`how="interval"`, seconds): the
/// results of `f(left, right)`; late elements go to `late` as `("left" | "right", key, ts,
/// element)` when given, else a late element fails the join's emit stage naming it. `left` and
/// `right` are the `(ts, watermarks)` of each side (`right_src` is the right stream before its
/// timestamps); `uid` is the stable id of the join stage (the one holding the state), `par` its
/// parallelism (and its emit stage's). The flow
/// materializes `right_src`'s value (with `late`, the late sink's).
#[pyfunction]
#[pyo3(signature = (left, left_key, right_src, right, right_key, how, a, b, f, late = None, sup = None, key_codec = "builtin", uid = None, par = None))]
#[allow(clippy::too_many_arguments)]
pub fn flow_join(
    left: (Py<PyAny>, (String, f64, Option<f64>)),
    left_key: Option<Py<PyAny>>,
    right_src: &PyBlueprint,
    right: (Py<PyAny>, (String, f64, Option<f64>)),
    right_key: Option<Py<PyAny>>,
    how: &str,
    a: f64,
    b: f64,
    f: Py<PyAny>,
    late: Option<&PyBlueprint>,
    sup: Option<&PySupervision>,
    key_codec: &str,
    uid: Option<String>,
    par: Option<usize>,
) -> PyResult<PyBlueprint> {
    let codec = crate::codec::Codec::parse_key(key_codec)?;
    let how = match how {
        "tumbling" | "sliding" => How::Window(windows(how, a, b)?),
        "session" => {
            return Err(PyValueError::new_err(
                "join_by(..).window(): session windows cannot be joined",
            ));
        }
        "interval" => How::Interval(bound_ms("lower", a)?, bound_ms("upper", b)?),
        other => return Err(PyValueError::new_err(format!("unknown join {other:?}"))),
    };
    let lside = Side {
        ts: left.0,
        watermarks: left.1,
        key: left_key,
    };
    let rside = Side {
        ts: right.0,
        watermarks: right.1,
        key: right_key,
    };
    let other: Source<Timestamped<Prep>, MatValue> =
        crate::ops::source_of(right_src)?.via(rside.stamped(codec, sup)?);
    let keyed = lside
        .stamped(codec, sup)?
        .join_by(
            other,
            |t: &Timestamped<Prep>| t.value.key.clone(),
            |t: &Timestamped<Prep>| t.value.key.clone(),
        )
        .checkpointed();
    let f = PyFn::new(f);
    let call = move |l: &Prep, r: &Prep| -> Joined {
        crate::gil::with(|py| {
            f.get()
                .bind(py)
                .call1((l.elem.0.bind(py), r.elem.0.bind(py)))
                .map(PyObj::from_bound)
                .map_err(|e| failure_on(py, e, &l.elem))
        })
    };
    // The flow materializes the right source's value (the left one's is the upstream's).
    let right_mat = |_: MatValue, r: Option<MatValue>| r.unwrap_or(MatValue::Unit);
    let joined = match how {
        How::Window(w) => keyed.window_mat(w, call, right_mat),
        How::Interval(lower, upper) => keyed.interval_mat(lower, upper, call, right_mat),
    };
    let split = late.is_some();
    let tagged: Flow<PyObj, (bool, PyObj), MatValue> = joined.attrs(&uid, par).via(
        py_flow(
            "join",
            Arc::new(move |_, _| {
                Box::new(EmitJoined { split_late: split })
                    as Box<dyn PyOp<JoinOutput<PyKey, Joined, Prep, Prep>, (bool, PyObj)>>
            }),
        )
        .attrs(&None, par),
    );
    match late {
        None => Ok(crate::ops::flow(
            tagged.via(unit_mat(crate::ops::untag::<bool>()).attrs(&None, par)),
        )),
        Some(sink) => split_late(tagged, sink),
    }
}

/// The stage after the join: `(False, f(left, right))` per joined pair, `(True, (side, key,
/// ts, element))` per late element when they go to a sink, else a late element fails the stage
/// naming it (as a raise of `f` does).
struct EmitJoined {
    split_late: bool,
}

impl EmitJoined {
    fn late(
        &self,
        py: Python<'_>,
        side: &str,
        key: PyKey,
        element: Timestamped<Prep>,
        out: &mut Vec<(bool, PyObj)>,
    ) -> Result<(), StageError> {
        if !self.split_late {
            let repr = short_repr(py, &element.value.elem);
            let msg = format!(
                "late {side} element at {}s: the join's watermark passed it (pass late_to= to \
                 keep late elements)",
                seconds(element.ts)
            );
            return Err(StageError::user(msg).with_element(&repr));
        }
        let items = [
            PyString::new(py, side).into_any().unbind(),
            key.key().clone_ref(py).0,
            float(py, seconds(element.ts)),
            element.value.elem.0,
        ];
        let t = PyTuple::new(py, items).map_err(|e| user_error(py, e))?;
        out.push((true, PyObj(t.into_any().unbind())));
        Ok(())
    }
}

impl PyOp<JoinOutput<PyKey, Joined, Prep, Prep>, (bool, PyObj)> for EmitJoined {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<JoinOutput<PyKey, Joined, Prep, Prep>>,
        out: &mut Vec<(bool, PyObj)>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for o in input {
            match o {
                JoinOutput::Joined(t) => out.push((false, t.value?)),
                JoinOutput::LateLeft { key, element } => {
                    self.late(py, "left", key, element, out)?;
                }
                JoinOutput::LateRight { key, element } => {
                    self.late(py, "right", key, element, out)?;
                }
            }
        }
        Ok(())
    }
}
