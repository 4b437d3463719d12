//! `Source.from_iter` over a container (`iter(x) is not x`: a list, tuple, range, dict...):
//! a synchronous source the engine fuses with the stages after it and pulls on the run's
//! dispatcher, a batch at C speed per call. Iterators that may block (generators, files,
//! sockets) are pulled on a thread of their own instead ([`super::source`]).
//!
//! Checkpoints record how many items the source emitted; a restored run iterates the container
//! again and skips that many (as Flink's `fromElements` does), so a job restarted from a
//! checkpoint reads each item once.

use super::cloop::take_list;
use super::source::pull_list;
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use std::task::{Context, Poll};
use weir_graph::{Snapshot, Source, SourceLogic, StageCx, StageError, Step};

/// Items skipped per call while a restored source catches up with its checkpoint.
const SKIP_CHUNK: u64 = 65_536;

/// The iterator of one run over the container, a failure held back until the elements the
/// iterator yielded before it are out, and its position.
pub(crate) struct ContainerSource {
    it: Py<PyAny>,
    failed: Option<StageError>,
    /// Items emitted since the container's start (what a checkpoint records).
    emitted: u64,
    /// Items still to skip after a restore.
    skip: u64,
    /// Whether every process iterates the container in the same order (not a set: its order
    /// follows the per-process string hash).
    ordered: bool,
}

impl ContainerSource {
    /// Pulls the Python iterator `it` (of a container iterated in the same order by every
    /// process when `ordered`).
    pub(crate) fn new(it: Py<PyAny>, ordered: bool) -> Self {
        Self {
            it,
            failed: None,
            emitted: 0,
            skip: 0,
            ordered,
        }
    }

    /// Skips the items a restored checkpoint had emitted; `Ok(false)` when the container
    /// ended before them.
    fn catch_up(&mut self, py: Python<'_>, path: &str) -> Result<bool, StageError> {
        while self.skip > 0 {
            let k = self.skip.min(SKIP_CHUNK);
            let (batch, failure) = pull_list(py, &self.it, usize::try_from(k).unwrap_or(1), path);
            if let Some(e) = failure {
                return Err(e);
            }
            let got = batch.len() as u64;
            self.skip -= got;
            if got < k {
                tracing::warn!(
                    stage = path,
                    missing = self.skip,
                    "from_iter: the container is shorter than the restored checkpoint's position"
                );
                self.skip = 0;
                return Ok(false);
            }
        }
        Ok(true)
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
            if self.skip > 0 {
                match self.catch_up(py, &path) {
                    Ok(true) => {}
                    Ok(false) => return Poll::Ready(Ok(Step::Done)),
                    Err(e) => return Poll::Ready(Err(e)),
                }
            }
            let (batch, failure) = pull_list(py, &self.it, n, &path);
            let exhausted = failure.is_none() && batch.len() < n;
            self.emitted += batch.len() as u64;
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
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        if !self.ordered {
            return Err(StageError::internal(
                "from_iter over a set cannot be checkpointed: another process iterates it in another order (give a sorted list)",
            ));
        }
        Snapshot::encode(&self.emitted)
            .map(Some)
            .map_err(|e| StageError::internal(format!("from_iter: {e}")))
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        let n: u64 = snapshot.decode().map_err(|e| {
            StageError::internal(format!("from_iter: the checkpoint's position: {e}"))
        })?;
        self.skip = n;
        self.emitted = n;
        Ok(())
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

/// A run's source over the container `b` (a set is marked unordered).
pub(crate) fn container_logic(b: &Bound<'_, PyAny>) -> Result<ContainerSource, StageError> {
    use pyo3::types::{PyFrozenSet, PySet};
    let ordered = !(b.is_exact_instance_of::<PySet>() || b.is_exact_instance_of::<PyFrozenSet>());
    let it = b.try_iter().map_err(|e| user_error(b.py(), e))?;
    Ok(ContainerSource::new(it.into_any().unbind(), ordered))
}

/// The items of the container `iterable` (`iter()` is called again for every run).
pub fn container_source(iterable: Py<PyAny>) -> Source<PyObj, MatValue> {
    Source::from_logic("from_iter", move |_info| {
        let logic = crate::gil::with(|py| container_logic(iterable.bind(py)))?;
        Ok((logic, MatValue::Unit))
    })
}
