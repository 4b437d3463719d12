//! Per-element loops that run at C speed inside CPython.
//!
//! pyo3 on an abi3-py310 build calls Python through an argument tuple (no vectorcall), and every
//! element crossing into Rust costs an iterator step, a `Bound` and a push. The loops here build
//! CPython's own iterator objects (`map`, `filter`, `itertools.accumulate`) over a list iterator
//! and drain them with `list.extend` / `deque.extend`, so a batch costs what `map()` costs in
//! plain Python. A failing element is still known by position: CPython's `extend` keeps what was
//! appended before the exception, and the list iterator's `__length_hint__` says how far it got;
//! the iterator objects are stateless between elements (accumulate keeps its last total), so the
//! same object resumes after the failed element when supervision says so (Resume or Restart:
//! these loops hold no state a restart could reset).

use super::core::element_failed_stateless;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyType};
use weir_graph::{StageCx, StageError};

static MAP: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static FILTER: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static ACCUMULATE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static DEQUE: PyOnceLock<Py<PyType>> = PyOnceLock::new();
static CHAIN: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// A cached type from a module (`builtins.map`, `itertools.accumulate`, ...).
fn ty<'py>(
    py: Python<'py>,
    cell: &'static PyOnceLock<Py<PyType>>,
    module: &str,
    name: &str,
) -> Result<&'py Bound<'py, PyType>, StageError> {
    cell.import(py, module, name).map_err(|e| user_error(py, e))
}

/// An iterator over the input list, and the list (to find a failing element by position).
struct Cursor<'py> {
    it: Bound<'py, PyAny>,
    list: Bound<'py, PyList>,
}

impl<'py> Cursor<'py> {
    fn new(list: &Bound<'py, PyList>) -> Result<Self, StageError> {
        let py = list.py();
        let it = list.try_iter().map_err(|e| user_error(py, e))?.into_any();
        Ok(Self {
            it,
            list: list.clone(),
        })
    }

    /// The element the iterator handed out last (the one that failed).
    fn last(&self) -> Option<PyObj> {
        let py = self.it.py();
        let left: usize = self
            .it
            .call_method0(pyo3::intern!(py, "__length_hint__"))
            .and_then(|n| n.extract())
            .ok()?;
        let i = self.list.len().checked_sub(left)?.checked_sub(1)?;
        self.list.get_item(i).ok().map(PyObj::from_bound)
    }
}

/// Drains `source` (an iterator object over `cur.it`) into `sink.extend`, routing each failure
/// through supervision with the element at the failing position, and resuming after it.
fn drain(
    py: Python<'_>,
    sink: &Bound<'_, PyAny>,
    source: &Bound<'_, PyAny>,
    cur: &Cursor<'_>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let extend = sink
        .getattr(pyo3::intern!(py, "extend"))
        .map_err(|e| user_error(py, e))?;
    loop {
        match extend.call1((source,)) {
            Ok(_) => return Ok(()),
            Err(e) => element_failed_stateless(py, cx, e, cur.last())?,
        }
    }
}

/// A batch as a new Python list.
pub(crate) fn to_list<'py>(py: Python<'py>, v: &[PyObj]) -> Result<Bound<'py, PyList>, StageError> {
    PyList::new(py, v.iter().map(|x| x.0.bind(py))).map_err(|e| user_error(py, e))
}

/// Appends the items of a Python list to `out`.
pub(crate) fn take_list(out: &mut Vec<PyObj>, list: &Bound<'_, PyList>) {
    // By index: the list iterator re-reads the length at every step.
    let n = list.len();
    out.reserve(n);
    out.extend((0..n).filter_map(|i| list.get_item(i).ok().map(PyObj::from_bound)));
}

/// `kind(f, iter(input))` for `kind` = `builtins.map` or `builtins.filter`, with the cursor
/// that tells which element it is on.
fn lazy<'py>(
    kind: &'static PyOnceLock<Py<PyType>>,
    name: &str,
    f: &Py<PyAny>,
    input: &Bound<'py, PyList>,
) -> Result<(Cursor<'py>, Bound<'py, PyAny>), StageError> {
    let py = input.py();
    let cur = Cursor::new(input)?;
    let src = ty(py, kind, "builtins", name)?
        .call1((f.bind(py), &cur.it))
        .map_err(|e| user_error(py, e))?;
    Ok((cur, src))
}

/// Appends `map(f, input)` to `out` (partial results stay in `out` when an element fails).
pub(crate) fn map_list(
    f: &Py<PyAny>,
    input: &Bound<'_, PyList>,
    out: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let (cur, src) = lazy(&MAP, "map", f, input)?;
    drain(input.py(), out, &src, &cur, cx)
}

/// Appends `map(f, input)` to `out` like [`map_list`], and returns the positions in `input` of
/// the elements whose call failed and went through supervision (so results can be matched to
/// their elements again).
pub(crate) fn map_list_skipping(
    f: &Py<PyAny>,
    input: &Bound<'_, PyList>,
    out: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<Vec<usize>, StageError> {
    let py = input.py();
    let (cur, src) = lazy(&MAP, "map", f, input)?;
    let extend = out
        .getattr(pyo3::intern!(py, "extend"))
        .map_err(|e| user_error(py, e))?;
    let mut failed = Vec::new();
    loop {
        match extend.call1((&src,)) {
            Ok(_) => return Ok(failed),
            Err(e) => {
                // The failing element is the one handed out last: at `out`'s length plus the
                // elements that failed before it.
                failed.push(out.len() + failed.len());
                element_failed_stateless(py, cx, e, cur.last())?;
            }
        }
    }
}

/// Appends `filter(pred, input)` to `out`.
pub(crate) fn filter_list(
    pred: &Py<PyAny>,
    input: &Bound<'_, PyList>,
    out: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let (cur, src) = lazy(&FILTER, "filter", pred, input)?;
    drain(input.py(), out, &src, &cur, cx)
}

/// Appends the items of `f(x)` for every element of `input` to `out`
/// (`itertools.chain.from_iterable(map(f, input))` drained by `list.extend`). An element whose
/// `f` raises, or whose iterable raises part-way, goes through supervision; the items its
/// iterable yielded before failing stay, as they would have been emitted one at a time. `chain`
/// drops its source after an error, so resuming starts a new one over the same `map` object.
pub(crate) fn flat_map_list(
    f: &Py<PyAny>,
    input: &Bound<'_, PyList>,
    out: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let py = input.py();
    let (cur, mapped) = lazy(&MAP, "map", f, input)?;
    let from_iterable = ty(py, &CHAIN, "itertools", "chain")?
        .getattr(pyo3::intern!(py, "from_iterable"))
        .map_err(|e| user_error(py, e))?;
    let extend = out
        .getattr(pyo3::intern!(py, "extend"))
        .map_err(|e| user_error(py, e))?;
    loop {
        let items = from_iterable
            .call1((&mapped,))
            .map_err(|e| user_error(py, e))?;
        match extend.call1((items,)) {
            Ok(_) => return Ok(()),
            Err(e) => element_failed_stateless(py, cx, e, cur.last())?,
        }
    }
}

/// Runs a list-to-list loop (`map_list`, `filter_list`) over a `Vec` batch, into `out`.
/// Moves the elements of `v` into a new list (no reference count changes).
pub(crate) fn into_list<'py>(
    py: Python<'py>,
    v: impl ExactSizeIterator<Item = PyObj>,
) -> Result<Bound<'py, PyList>, StageError> {
    PyList::new(py, v.map(|x| x.0)).map_err(|e| user_error(py, e))
}

pub(crate) fn via_list(
    py: Python<'_>,
    input: &[PyObj],
    out: &mut Vec<PyObj>,
    f: impl FnOnce(&Bound<'_, PyList>, &Bound<'_, PyList>) -> Result<(), StageError>,
) -> Result<(), StageError> {
    let res = PyList::empty(py);
    let r = f(&to_list(py, input)?, &res);
    take_list(out, &res);
    r
}

/// Calls `f(x)` for every element, dropping the results.
pub(crate) fn for_each_list(
    f: &Py<PyAny>,
    input: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let py = input.py();
    let (cur, src) = lazy(&MAP, "map", f, input)?;
    let sink = ty(py, &DEQUE, "collections", "deque")?
        .call1(((), 0))
        .map_err(|e| user_error(py, e))?;
    drain(py, &sink, &src, &cur, cx)
}

/// Folds `input` into `acc` with `f(acc, x)`; a failed element leaves the accumulator as it was.
pub(crate) fn fold_list(
    f: &Py<PyAny>,
    acc: &mut Py<PyAny>,
    input: &Bound<'_, PyList>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let py = input.py();
    if input.is_empty() {
        return Ok(());
    }
    let cur = Cursor::new(input)?;
    let kw = pyo3::types::PyDict::new(py);
    kw.set_item(pyo3::intern!(py, "initial"), acc.bind(py))
        .map_err(|e| user_error(py, e))?;
    let src = ty(py, &ACCUMULATE, "itertools", "accumulate")?
        .call((&cur.it, f.bind(py)), Some(&kw))
        .map_err(|e| user_error(py, e))?;
    // A deque of length 1 keeps the latest total, also when a later element fails.
    let last = ty(py, &DEQUE, "collections", "deque")?
        .call1(((), 1))
        .map_err(|e| user_error(py, e))?;
    let r = drain(py, &last, &src, &cur, cx);
    if let Ok(v) = last.call_method0(pyo3::intern!(py, "pop")) {
        *acc = v.unbind();
    }
    r
}
