//! Per-batch Python transformations ([`PyOp`]s) behind the operators of [`super`]: each runs on
//! the run's dispatcher, one job per batch, with the GIL held.

use crate::dsl::{Bp, NBlueprint};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use crate::stages::{Batch, PyOp, element_failed, iter_source};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyTuple};
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{Source, StageCx, StageError};

/// A Python object shared by reference count without the GIL (for generic operators that clone
/// elements: `expand`, `also_to`, `wire_tap`, `ZipLatest`).
pub type Shared = Arc<PyObj>;

/// Turns a [`Shared`] back into an owned object (a new reference when it is still shared).
pub fn unshare(py: Python<'_>, s: Shared) -> PyObj {
    Arc::try_unwrap(s).unwrap_or_else(|s| s.clone_ref(py))
}

/// `(a, b)` as a Python tuple.
pub fn tuple2(py: Python<'_>, a: Py<PyAny>, b: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [a, b])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// `pred(x)` as a flag carried with the element: `(pred(x), x)`. With `stop_after_false`
/// (`take_while`), `pred` is not called after the first false and later elements are dropped.
pub struct TagOp {
    /// The predicate.
    pub f: Py<PyAny>,
    /// `take_while` mode.
    pub stop_after_false: bool,
    /// `take_while` saw its first false.
    pub stopped: bool,
}

impl PyOp<PyObj, (bool, PyObj)> for TagOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<(bool, PyObj)>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for x in input {
            if self.stopped {
                break;
            }
            match f.call1((x.0.bind(py),)).and_then(|r| r.is_truthy()) {
                Ok(b) => {
                    if !b && self.stop_after_false {
                        self.stopped = true;
                    }
                    out.push((b, x));
                }
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.stopped = false;
    }
}

/// `drop_while(pred)`: drops elements until `pred` is false once.
pub struct DropWhileOp {
    /// The predicate.
    pub f: Py<PyAny>,
    /// `pred` was false once: pass everything.
    pub passing: bool,
}

impl PyOp<PyObj, PyObj> for DropWhileOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for x in input {
            if self.passing {
                out.push(x);
                continue;
            }
            match f.call1((x.0.bind(py),)).and_then(|r| r.is_truthy()) {
                Ok(true) => {}
                Ok(false) => {
                    self.passing = true;
                    out.push(x);
                }
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.passing = false;
    }
}

/// `sliding(n, step)`: lists of `n` elements every `step` elements.
pub struct SlidingOp {
    /// Window size (at least 1).
    pub n: usize,
    /// Step (at least 1).
    pub step: usize,
    /// The current window.
    pub buf: VecDeque<PyObj>,
    /// Elements still to skip (`step > n`).
    pub skip: usize,
    /// Elements added since the last emitted window.
    pub fresh: usize,
}

impl SlidingOp {
    /// A window operator.
    pub fn new(n: usize, step: usize) -> Self {
        Self {
            n: n.max(1),
            step: step.max(1),
            buf: VecDeque::new(),
            skip: 0,
            fresh: 0,
        }
    }
    fn window(&self, py: Python<'_>) -> Result<PyObj, StageError> {
        PyList::new(py, self.buf.iter().map(|x| x.0.bind(py)))
            .map(|l| PyObj(l.into_any().unbind()))
            .map_err(|e| user_error(py, e))
    }
}

impl PyOp<PyObj, PyObj> for SlidingOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            if self.skip > 0 {
                self.skip -= 1;
                continue;
            }
            self.buf.push_back(x);
            self.fresh += 1;
            if self.buf.len() == self.n {
                out.push(self.window(py)?);
                self.fresh = 0;
                if self.step >= self.n {
                    self.skip = self.step - self.n;
                    self.buf.clear();
                } else {
                    self.buf.drain(..self.step);
                }
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if self.fresh > 0 && !self.buf.is_empty() {
            out.push(self.window(py)?);
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.buf.clear();
        self.skip = 0;
        self.fresh = 0;
    }
}

/// `intersperse(sep, start, end)`.
pub struct IntersperseOp {
    /// Between elements.
    pub sep: Py<PyAny>,
    /// Before the first element.
    pub start: Option<Py<PyAny>>,
    /// After the last element.
    pub end: Option<Py<PyAny>>,
    /// No element seen yet.
    pub first: bool,
}

impl PyOp<PyObj, PyObj> for IntersperseOp {
    fn on_start(&mut self, py: Python<'_>, out: &mut Vec<PyObj>) {
        if let Some(s) = &self.start {
            out.push(PyObj(s.clone_ref(py)));
        }
    }
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            if !self.first {
                out.push(PyObj(self.sep.clone_ref(py)));
            }
            self.first = false;
            out.push(x);
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if let Some(e) = &self.end {
            out.push(PyObj(e.clone_ref(py)));
        }
        Ok(())
    }
}

/// `(key id, x)`: keys compared by Python's `==`/`hash` through a dict mapping each distinct key
/// to a small integer (so Rust can route without the GIL and without hash collisions).
pub struct KeyIdOp {
    /// The key function (`None`: the element itself).
    pub f: Option<Py<PyAny>>,
    /// Key -> id.
    pub ids: Py<PyDict>,
}

impl KeyIdOp {
    fn id(&self, py: Python<'_>, x: &PyObj) -> PyResult<u64> {
        let k = match &self.f {
            Some(f) => f.bind(py).call1((x.0.bind(py),))?,
            None => x.0.bind(py).clone(),
        };
        let ids = self.ids.bind(py);
        if let Some(v) = ids.get_item(&k)? {
            return v.extract();
        }
        let n = ids.len() as u64;
        ids.set_item(k, n)?;
        Ok(n)
    }
}

impl PyOp<PyObj, (u64, PyObj)> for KeyIdOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<(u64, PyObj)>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            match self.id(py, &x) {
                Ok(id) => out.push((id, x)),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// A source to run as a substream: made from what a Python function returned.
pub struct SubSource(pub Source<PyObj, MatValue>);

/// Converts a weir `Source` (the Python wrapper or the native blueprint) or any iterable into a
/// source blueprint.
pub fn to_source(obj: &Bound<'_, PyAny>) -> PyResult<Source<PyObj, MatValue>> {
    let native = if obj.is_instance_of::<NBlueprint>() {
        Some(obj.clone())
    } else if obj.hasattr("_flush")? && obj.hasattr("_n")? {
        Some(obj.getattr("_n")?)
    } else {
        None
    };
    if let Some(n) = native {
        let n = n.cast::<NBlueprint>()?;
        return match &n.get().bp {
            Bp::Source(s) => Ok(s.clone()),
            _ => Err(pyo3::exceptions::PyTypeError::new_err(
                "expected a weir Source or an iterable",
            )),
        };
    }
    // Validate iterability now, so the error names the element.
    obj.try_iter()?;
    Ok(iter_source(obj.clone().unbind()))
}

/// Calls `f(x)` for each element and passes it on; `on_complete()` when upstream completes.
pub struct InspectOp {
    /// Per element.
    pub f: Py<PyAny>,
    /// On completion.
    pub on_complete: Option<Py<PyAny>>,
}

impl PyOp<PyObj, PyObj> for InspectOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for x in input {
            match f.call1((x.0.bind(py),)) {
                Ok(_) => out.push(x),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        _out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if let Some(f) = &self.on_complete {
            f.bind(py).call0().map_err(|e| user_error(py, e))?;
        }
        Ok(())
    }
}
