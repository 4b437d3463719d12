//! Element-wise ops (fusable into one stage) and other per-batch transformations.

use super::cloop;
use super::core::{Batch, PyOp, element_failed};
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use weir_graph::{StageCx, StageError};

/// A list-to-list loop of [`cloop`]: `map_list`, `filter_list` or `flat_map_list`.
type ListLoop = fn(
    &Py<PyAny>,
    &Bound<'_, PyList>,
    &Bound<'_, PyList>,
    &mut StageCx<'_>,
) -> Result<(), StageError>;

/// An element-wise op run at C speed by CPython's own iterators over the batch (`map`,
/// `filter`, `flat_map`): `f` is called with vectorcall (abi3 builds of pyo3 cannot), so the loop
/// costs what `map()` costs, and failures keep their position.
pub struct ListOp {
    f: Py<PyAny>,
    run: ListLoop,
    expands: bool,
}

impl ListOp {
    /// `map(f)`.
    pub fn map(f: Py<PyAny>) -> Self {
        Self {
            f,
            run: cloop::map_list,
            expands: false,
        }
    }
    /// `filter(pred)`.
    pub fn filter(pred: Py<PyAny>) -> Self {
        Self {
            f: pred,
            run: cloop::filter_list,
            expands: false,
        }
    }
    /// `flat_map(f)`: `f` returns an iterable per element; its items are emitted in order
    /// (those yielded before a failure included).
    pub fn flat_map(f: Py<PyAny>) -> Self {
        Self {
            f,
            run: cloop::flat_map_list,
            expands: true,
        }
    }
}

impl PyOp<PyObj, PyObj> for ListOp {
    fn expands(&self) -> bool {
        self.expands
    }

    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let list = cloop::into_list(py, input)?;
        let res = PyList::empty(py);
        let r = (self.run)(&self.f, &list, &res, cx);
        cloop::take_list(out, &res);
        r
    }
}

/// Appends the items of the iterable `it` to `out`.
pub(crate) fn extend_from(out: &mut Vec<PyObj>, it: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(l) = it.cast::<PyList>() {
        out.extend(l.iter().map(PyObj::from_bound));
        return Ok(());
    }
    if let Ok(t) = it.cast::<PyTuple>() {
        out.extend(t.iter().map(PyObj::from_bound));
        return Ok(());
    }
    for y in it.try_iter()? {
        out.push(PyObj::from_bound(y?));
    }
    Ok(())
}

/// `map_batches(f)`: `f` receives the whole batch as a list and returns an iterable of results.
pub struct MapBatchesOp(pub Py<PyAny>);

impl PyOp<PyObj, PyObj> for MapBatchesOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let batch: Vec<PyObj> = input.collect();
        if batch.is_empty() {
            return Ok(());
        }
        let list =
            PyList::new(py, batch.iter().map(|x| x.0.bind(py))).map_err(|e| user_error(py, e))?;
        let r = self
            .0
            .bind(py)
            .call1((&list,))
            .and_then(|it| extend_from(out, &it));
        if let Err(e) = r {
            element_failed(py, cx, e, Some(PyObj(list.into_any().unbind())))?;
        }
        Ok(())
    }
}
