//! The stages around the Rust window stage: the key stage (timestamp, key and number per element)
//! and the emit stage (Python tuples, late elements split off or failing the stage).

use super::functions::ToPy;
use crate::obj::{PyObj, short_repr};
use crate::stages::{Batch, PyKey, PyOp, element_failed};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyFloat, PyInt, PyTuple};
use std::sync::Arc;
use weir_graph::{StageCx, StageError};
use weir_operators::window::{Num, WindowOutput};

/// An element entering the window stage: its event time, key, number (built-ins) and itself
/// (checkpointed as the elements a `process` window buffers, falling back to pickles when
/// `pickle`).
#[derive(Clone)]
pub(super) struct Prep {
    pub(super) ts: i64,
    pub(super) key: PyKey,
    pub(super) num: Num,
    pub(super) elem: PyObj,
    pub(super) pickle: bool,
}

impl serde::Serialize for Prep {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let elem = crate::codec::Encoded(&self.elem, self.pickle);
        (self.ts, &self.key, self.num, self.pickle, elem).serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Prep {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let (ts, key, num, pickle, elem) =
            <(i64, PyKey, Num, bool, crate::codec::PyState)>::deserialize(d)?;
        Ok(Prep {
            ts,
            key,
            num,
            elem: elem.0,
            pickle,
        })
    }
}

/// Seconds from milliseconds, as Python sees window bounds and timestamps.
pub(super) fn seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

fn tuple(py: Python<'_>, items: Vec<Py<PyAny>>) -> Result<PyObj, StageError> {
    PyTuple::new(py, items)
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| crate::obj::user_error(py, e))
}

pub(super) fn float(py: Python<'_>, x: f64) -> Py<PyAny> {
    PyFloat::new(py, x).into_any().unbind()
}

/// The stage after the window stage: `(False, (key, start, end, value))` per fired window,
/// `(True, (key, ts, element))` per late element when they go to a sink, else a late element
/// fails the stage naming it.
pub(super) struct Emit {
    pub(super) split_late: bool,
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
pub(super) enum Value {
    /// Nothing (`count`, Python window functions).
    None,
    /// The element (or `value(element)`) as a Rust number.
    Number,
}

/// The first stage: `(ts, key, number, element)` per element, the timestamp, key and value
/// functions called a batch at a time; an error names the element.
pub(super) struct PrepOp {
    /// The timestamp function (`None` for processing-time windows, which stamp arrival).
    pub(super) ts: Option<Arc<Py<PyAny>>>,
    pub(super) key: Option<Arc<Py<PyAny>>>,
    pub(super) value: Option<Arc<Py<PyAny>>>,
    pub(super) kind: Value,
    pub(super) codec: crate::codec::Codec,
}

pub(super) fn millis(t: &Bound<'_, PyAny>) -> PyResult<i64> {
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
        let ts = match &self.ts {
            Some(f) => millis(&f.bind(py).call1((b,))?)?,
            None => 0,
        };
        let key = match &self.key {
            Some(f) => PyObj::from_bound(f.bind(py).call1((b,))?),
            None => x.clone_ref(py),
        };
        let key = PyKey::new(py, key, self.codec).map_err(|(e, _)| e)?;
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
            pickle: self.codec == crate::codec::Codec::PickleKey,
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
