//! `Source.from_iter` over a container (`iter(x) is not x`: a list, tuple, range, dict...):
//! a synchronous source the engine fuses with the stages after it and pulls on the run's
//! dispatcher, a batch at C speed per call. Iterators that may block (generators, files,
//! sockets) are pulled on a thread of their own instead ([`super::source`]).

use super::cloop::take_list;
use super::source::pull_list;
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};

/// The iterator of one run over the container, and a failure held back until the elements the
/// iterator yielded before it are out.
pub(crate) struct ContainerSource {
    it: Py<PyAny>,
    failed: Option<StageError>,
}

impl ContainerSource {
    /// Pulls the Python iterator `it`.
    pub(crate) fn new(it: Py<PyAny>) -> Self {
        Self { it, failed: None }
    }
}

impl SourceLogic<PyObj> for ContainerSource {
    fn poll_next(
        &mut self,
        _cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<PyObj>,
    ) -> Poll<Result<Step, StageError>> {
        if let Some(e) = self.failed.take() {
            return Poll::Ready(Err(e));
        }
        let n = scx.batch_size().max(1);
        let path = scx.info().path.clone();
        crate::gil::with(|py| {
            let (batch, failure) = pull_list(py, &self.it, n, &path);
            let exhausted = failure.is_none() && batch.len() < n;
            take_list(out, &batch);
            Poll::Ready(match failure {
                Some(e) if out.is_empty() => Err(e),
                Some(e) => {
                    self.failed = Some(e);
                    Ok(Step::More)
                }
                None if exhausted => Ok(Step::Done),
                None => Ok(Step::More),
            })
        })
    }
}

/// Whether `iterable` is a builtin container (list, tuple, range, dict, set, str, bytes),
/// whose iterator never waits for outside input; decided without iterating it.
pub fn is_container(iterable: &Bound<'_, PyAny>) -> bool {
    use pyo3::types::{PyBytes, PyDict, PyFrozenSet, PyList, PyRange, PySet, PyString, PyTuple};
    iterable.is_exact_instance_of::<PyList>()
        || iterable.is_exact_instance_of::<PyTuple>()
        || iterable.is_exact_instance_of::<PyRange>()
        || iterable.is_exact_instance_of::<PyDict>()
        || iterable.is_exact_instance_of::<PySet>()
        || iterable.is_exact_instance_of::<PyFrozenSet>()
        || iterable.is_exact_instance_of::<PyString>()
        || iterable.is_exact_instance_of::<PyBytes>()
}

/// The items of the container `iterable` (`iter()` is called again for every run).
pub fn container_source(iterable: Py<PyAny>) -> Source<PyObj, MatValue> {
    Source::from_logic("from_iter", move |_info| {
        let it = crate::gil::with(|py| {
            iterable
                .bind(py)
                .try_iter()
                .map(|i| i.into_any().unbind())
                .map_err(|e| user_error(py, e))
        })?;
        Ok((ContainerSource::new(it), MatValue::Unit))
    })
}
