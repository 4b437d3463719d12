//! The Python window functions (`reduce`/`aggregate`) and the conversion of a window result to
//! a Python object; the built-in aggregates are `weir_operators::window::Builtin`.

use super::stages::{Prep, float};

impl Numeric for Prep {
    fn num(&self) -> Num {
        self.num
    }
}
use crate::codec::{Encoded, PyState};
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use pyo3::prelude::*;
use weir_graph::StageError;
use weir_operators::window::{AggregateFunction, Num, Numeric};

/// A window result computed by Python: the first failure is kept and fails the stage when the
/// window fires.
pub(super) type PyAcc = Result<PyObj, StageError>;

/// A Python accumulator as window state: checkpointed as its value encoding (`weir.codec`, or
/// falling back to a pickle when the stage opted in: the flag), a failure kept for the firing
/// as its message.
#[derive(Clone)]
pub(super) struct Saved(pub(super) PyAcc, pub(super) bool);

/// What [`Saved`] is in a snapshot.
#[derive(serde::Serialize, serde::Deserialize)]
enum SavedRepr<T> {
    Ok(bool, T),
    Failed(bool, String),
}

impl serde::Serialize for Saved {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.0 {
            Ok(o) => SavedRepr::Ok(self.1, Encoded(o, self.1)).serialize(s),
            Err(e) => SavedRepr::<Encoded<'_>>::Failed(self.1, e.message().to_owned()).serialize(s),
        }
    }
}

impl<'de> serde::Deserialize<'de> for Saved {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match SavedRepr::<PyState>::deserialize(d)? {
            SavedRepr::Ok(p, o) => Saved(Ok(o.0), p),
            SavedRepr::Failed(p, m) => Saved(Err(StageError::user(m)), p),
        })
    }
}

/// `reduce(f)`: `f(acc, x)` per element; the flag: accumulators fall back to pickles.
#[derive(Clone)]
pub(super) struct PyReduce(pub(super) PyFn, pub(super) bool);

impl AggregateFunction<Prep> for PyReduce {
    type Acc = Option<Saved>;
    type Out = PyAcc;
    fn create(&self) -> Option<Saved> {
        None
    }
    fn add(&self, acc: &mut Option<Saved>, value: Prep) {
        self.merge(acc, Some(Saved(Ok(value.elem), self.1)));
    }
    fn merge(&self, acc: &mut Option<Saved>, other: Option<Saved>) {
        let p = self.1;
        *acc = match (acc.take(), other) {
            (None, o) | (o, None) => o,
            (Some(Saved(Ok(a), _)), Some(Saved(Ok(b), _))) => Some(Saved(self.0.call2(&a, &b), p)),
            (Some(Saved(Err(e), _)), _) | (_, Some(Saved(Err(e), _))) => Some(Saved(Err(e), p)),
        };
    }
    fn result(&self, acc: &Option<Saved>) -> PyAcc {
        acc.clone().map_or_else(
            || Err(StageError::internal("window_reduce: an empty window fired")),
            |s| s.0,
        )
    }
}

/// `aggregate(create, add, merge, result)`: an accumulator per window, Python functions.
#[derive(Clone)]
pub(super) struct PyAggregate {
    /// Accumulators fall back to pickles (`key_codec="pickle"`).
    pub(super) pickle: bool,
    pub(super) create: PyFn,
    pub(super) add: PyFn,
    pub(super) merge: Option<PyFn>,
    pub(super) result: Option<PyFn>,
}

impl AggregateFunction<Prep> for PyAggregate {
    type Acc = Saved;
    type Out = PyAcc;
    fn create(&self) -> Saved {
        let acc = crate::gil::with(|py| {
            self.create
                .get()
                .bind(py)
                .call0()
                .map(PyObj::from_bound)
                .map_err(|e| crate::obj::user_error(py, e))
        });
        Saved(acc, self.pickle)
    }
    fn add(&self, acc: &mut Saved, value: Prep) {
        if let Ok(a) = &acc.0 {
            acc.0 = self.add.call2(a, &value.elem);
        }
    }
    fn merge(&self, acc: &mut Saved, other: Saved) {
        let (acc, other) = (&mut acc.0, other.0);
        *acc = match (&*acc, other) {
            (Err(_), _) => return,
            (_, Err(e)) => Err(e),
            (Ok(a), Ok(b)) => match &self.merge {
                Some(m) => m.call2(a, &b),
                None => Err(StageError::internal("window_aggregate: merge needed")),
            },
        };
    }
    fn result(&self, acc: &Saved) -> PyAcc {
        match (&acc.0, &self.result) {
            (Err(e), _) => Err(e.clone()),
            (Ok(a), Some(r)) => r.call1(a),
            (Ok(a), None) => Ok(a.clone()),
        }
    }
}

/// A window result as a Python object.
pub(crate) trait ToPy: Send + 'static {
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
