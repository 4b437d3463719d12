//! Ops defined by one function per element: the small conversions between Python objects and
//! what the generic Rust operators carry, and per-element calls of user functions.

use super::core::{Batch, PyOp, element_failed};
use crate::obj::PyObj;
use pyo3::prelude::*;
use weir_graph::{StageCx, StageError};

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

/// Applies `f` (which may call user code) to every element: an element for which it raises goes
/// through the stage's supervision, carrying the element.
pub struct EachFallible<F>(F);

/// An [`EachFallible`] op (the bound lets a closure take any `Python` lifetime).
pub fn each_fallible<O, F>(f: F) -> EachFallible<F>
where
    F: FnMut(Python<'_>, &PyObj) -> PyResult<O> + Send + 'static,
{
    EachFallible(f)
}

impl<O, F> PyOp<PyObj, O> for EachFallible<F>
where
    O: Send + 'static,
    F: FnMut(Python<'_>, &PyObj) -> PyResult<O> + Send + 'static,
{
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<O>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            match (self.0)(py, &x) {
                Ok(y) => out.push(y),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}
