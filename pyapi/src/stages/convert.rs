//! Ops defined by one function per element: the small conversions between Python objects and
//! what the generic Rust operators carry (user functions run in the Rust `try_map`).

use super::core::{Batch, PyOp};
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
