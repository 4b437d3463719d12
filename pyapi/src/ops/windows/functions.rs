//! The window functions: built-in aggregates over Rust numbers, Python `reduce`/`aggregate`,
//! and the conversion of a window result to a Python object.

use super::stages::{Prep, float};
use crate::obj::PyObj;
use crate::pyfn::PyFn;
use pyo3::prelude::*;
use weir_graph::StageError;
use weir_operators::window::AggregateFunction;

/// A number summed, compared or counted in Rust.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Num {
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

/// Which window function runs (built-ins need a number per element).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Builtin {
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
