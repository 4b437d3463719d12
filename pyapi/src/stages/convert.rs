//! Ops defined by one function per element: the small conversions between Python objects and
//! what the generic Rust operators carry (user functions run in the Rust `try_map`).

use super::core::{Batch, PyOp, py_flow};
use crate::mat::MatValue;
use crate::obj::{PyObj, tuple2, user_error};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::Arc;
use weir_graph::{Flow, StageCx, StageError};
use weir_operators::source::OverflowStrategy;

/// Applies `f` to every element: a conversion without user code, so an error fails the stage.
pub struct Convert<F>(F);

/// A [`Convert`] op (the bound lets a closure take any `Python` lifetime).
pub fn convert<I, O, F>(f: F) -> Convert<F>
where
    F: FnMut(Python<'_>, I) -> Result<O, StageError> + Send + 'static,
{
    Convert(f)
}

impl<I, O, F> PyOp<I, O> for Convert<F>
where
    I: Send + 'static,
    O: Send + 'static,
    F: FnMut(Python<'_>, I) -> Result<O, StageError> + Send + 'static,
{
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<I>,
        out: &mut Vec<O>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        out.reserve(input.len());
        for x in input {
            out.push((self.0)(py, x)?);
        }
        Ok(())
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

/// Pairs (from `Zip`, `ZipLatest`) as Python tuples.
pub fn tuple_flow(name: &str) -> Flow<(PyObj, PyObj), PyObj, MatValue> {
    py_flow(
        name,
        Arc::new(|_py, _info| {
            Box::new(convert(|py, (a, b): (PyObj, PyObj)| tuple2(py, a.0, b.0)))
                as Box<dyn PyOp<(PyObj, PyObj), PyObj>>
        }),
    )
}

/// Vectors (from `grouped`, `sliding`, `batch`, ...) as Python lists.
pub fn list_flow(name: &str) -> Flow<Vec<PyObj>, PyObj, MatValue> {
    py_flow(
        name,
        Arc::new(|_py, _info| {
            Box::new(convert(|py, v: Vec<PyObj>| {
                let l =
                    PyList::new(py, v.into_iter().map(|x| x.0)).map_err(|e| user_error(py, e))?;
                Ok(PyObj(l.into_any().unbind()))
            })) as Box<dyn PyOp<Vec<PyObj>, PyObj>>
        }),
    )
}
