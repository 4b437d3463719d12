//! Element-wise ops (fusable into one stage) and other per-batch transformations.

use super::cloop;
use super::core::{Batch, Partial, PyOp, element_failed, run_op};
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use weir_graph::{Clock, StageCx, StageError, StageInfo, Supervision};

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
}

impl ListOp {
    /// `map(f)`.
    pub fn map(f: Py<PyAny>) -> Self {
        Self {
            f,
            run: cloop::map_list,
        }
    }
    /// `filter(pred)`.
    pub fn filter(pred: Py<PyAny>) -> Self {
        Self {
            f: pred,
            run: cloop::filter_list,
        }
    }
    /// `flat_map(f)`: `f` returns an iterable per element; its items are emitted in order
    /// (those yielded before a failure included).
    pub fn flat_map(f: Py<PyAny>) -> Self {
        Self {
            f,
            run: cloop::flat_map_list,
        }
    }
}

impl PyOp<PyObj, PyObj> for ListOp {
    fn on_list<'py>(
        &mut self,
        input: &Bound<'py, PyList>,
        out: &Bound<'py, PyList>,
        cx: &mut StageCx<'_>,
    ) -> Option<Result<(), StageError>> {
        Some((self.run)(&self.f, input, out, cx))
    }
    fn list_capable(&self) -> bool {
        true
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

/// Several stateless ops fused into one stage: the batch goes through each op in the same job.
/// Each op keeps its own name (errors and dead letters name it) and supervision.
pub struct ChainOp {
    /// The ops in order, with the identity and policy each reports failures under.
    pub ops: Vec<(Box<dyn PyOp<PyObj, PyObj>>, StageInfo, Option<Supervision>)>,
}

impl ChainOp {
    /// Runs the batch through every op (see [`ChainOp::apply_list`] for the list path).
    pub(crate) fn apply(
        &mut self,
        py: Python<'_>,
        mut cur: Vec<PyObj>,
        clock: &dyn Clock,
        batch: usize,
    ) -> Partial<Vec<PyObj>> {
        if self.list_capable() {
            let l = match cloop::to_list(py, &cur) {
                Ok(l) => l,
                Err(e) => return (Vec::new(), Some(e)),
            };
            let (l, failure) = self.apply_list(l, clock, batch);
            let mut out = Vec::new();
            cloop::take_list(&mut out, &l);
            return (out, failure);
        }
        let mut failure = None;
        for (op, info, sup) in &mut self.ops {
            let mut next = Vec::with_capacity(cur.len());
            let mut cx = StageCx::new(info, clock, sup.as_ref(), batch);
            if let Err(e) = run_op(py, &mut **op, cur, &mut next, &mut cx) {
                failure = Some(e);
            }
            cur = next;
        }
        (cur, failure)
    }

    /// Runs a batch held in a Python list through every op, list to list where the op supports
    /// it (C-speed `map`/`filter`), through `Vec`s otherwise. When an op stops on a failing
    /// element, what it produced before that element still goes through the later ops and
    /// comes back with the failure (a later op failing on it supersedes the failure).
    pub(crate) fn apply_list<'py>(
        &mut self,
        mut cur: Bound<'py, PyList>,
        clock: &dyn Clock,
        batch: usize,
    ) -> Partial<Bound<'py, PyList>> {
        let py = cur.py();
        let mut failure = None;
        for (op, info, sup) in &mut self.ops {
            let mut cx = StageCx::new(info, clock, sup.as_ref(), batch);
            let next = PyList::empty(py);
            let r = match op.on_list(&cur, &next, &mut cx) {
                Some(r) => r,
                None => {
                    let mut v = Vec::new();
                    cloop::take_list(&mut v, &cur);
                    let mut out = Vec::with_capacity(v.len());
                    let r = run_op(py, &mut **op, v, &mut out, &mut cx);
                    for x in out {
                        if let Err(e) = next.append(x.0) {
                            return (next, Some(user_error(py, e)));
                        }
                    }
                    r
                }
            };
            if let Err(e) = r {
                failure = Some(e);
            }
            cur = next;
        }
        (cur, failure)
    }
}

impl PyOp<PyObj, PyObj> for ChainOp {
    fn on_list<'py>(
        &mut self,
        input: &Bound<'py, PyList>,
        out: &Bound<'py, PyList>,
        cx: &mut StageCx<'_>,
    ) -> Option<Result<(), StageError>> {
        let py = input.py();
        let (l, failure) = self.apply_list(input.clone(), cx.clock(), cx.batch_size());
        if let Err(e) = out.call_method1(pyo3::intern!(py, "extend"), (l,)) {
            return Some(Err(user_error(py, e)));
        }
        Some(failure.map_or(Ok(()), Err))
    }
    fn list_capable(&self) -> bool {
        self.ops.iter().all(|(op, _, _)| op.list_capable())
    }
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let (r, failure) = self.apply(py, input.collect(), cx.clock(), cx.batch_size());
        if out.is_empty() {
            *out = r;
        } else {
            out.extend(r);
        }
        failure.map_or(Ok(()), Err)
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
