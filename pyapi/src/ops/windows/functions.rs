//! The Python window functions (`reduce`/`aggregate`) and the conversion of a window result to
//! a Python object; the built-in aggregates are `weir_operators::window::Builtin`.

use super::stages::{Prep, float};

impl Numeric for Prep {
    fn num(&self) -> Num {
        self.num
    }
}
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use pyo3::prelude::*;
use weir_graph::StageError;
use weir_operators::window::{AggregateFunction, Num, Numeric};

/// A window result computed by Python: the first failure is kept and fails the stage when the
/// window fires.
pub(super) type PyAcc = Result<PyObj, StageError>;

/// `reduce(f)`: `f(acc, x)` per element.
#[derive(Clone)]
pub(super) struct PyReduce(pub(super) PyFn);

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
pub(super) struct PyAggregate {
    pub(super) create: PyFn,
    pub(super) add: PyFn,
    pub(super) merge: Option<PyFn>,
    pub(super) result: Option<PyFn>,
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

/// A window result as a Python object.
pub(super) trait ToPy: Send + 'static {
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
