//! Keyed ops: `key_by(f)` and per-key aggregates counted/folded in Rust.

use super::cloop;
use super::core::{Batch, PyOp, element_failed};
use crate::obj::{KeyedObj, PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use weir_graph::{Directive, StageCx, StageError};

/// `key_by(f)` before `fold`/`reduce`: computes each element's key and Python hash (the
/// routing hash) and keeps the element next to it.
pub struct KeyOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
}

impl PyOp<PyObj, KeyedObj> for KeyOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<KeyedObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.as_ref().map(|f| f.bind(py));
        for x in input {
            let key = match f {
                Some(f) => f.call1((x.0.bind(py),)),
                None => Ok(x.0.bind(py).clone()),
            };
            match key.and_then(|k| k.hash().map(|h| (h, k))) {
                Ok((h, k)) => out.push(KeyedObj {
                    hash: h as u64,
                    key: PyObj::from_bound(k),
                    value: Some(x),
                }),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// Per-key state in Rust, keys compared by Python's `hash` and `==`: a dict maps each distinct
/// key to its slot (the dict's C lookup uses a string's cached hash and compares without going
/// through Python-level calls), the values live in a `Vec`.
pub struct KeyTable<V> {
    index: Option<Py<PyDict>>,
    slots: Vec<(PyObj, V)>,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        Self {
            index: None,
            slots: Vec::new(),
        }
    }
}

impl<V> KeyTable<V> {
    /// The slot of `key`, created with `init` when new.
    pub fn slot<'a>(
        &'a mut self,
        py: Python<'_>,
        key: &PyObj,
        init: impl FnOnce() -> V,
    ) -> PyResult<&'a mut V> {
        let index = match &self.index {
            Some(d) => d.bind(py).clone(),
            None => {
                let d = PyDict::new(py);
                self.index = Some(d.clone().unbind());
                d
            }
        };
        let k = key.0.bind(py);
        let i = match index.get_item(k)? {
            Some(i) => i.extract::<usize>()?,
            None => {
                let i = self.slots.len();
                index.set_item(k, i)?;
                self.slots.push((key.clone_ref(py), init()));
                i
            }
        };
        Ok(&mut self.slots[i].1)
    }
    /// Every (key, value) in first-seen order, emptying the table.
    pub fn drain(&mut self) -> impl Iterator<Item = (PyObj, V)> + '_ {
        self.index = None;
        self.slots.drain(..)
    }
    /// Forgets every key.
    pub fn clear(&mut self) {
        self.index = None;
        self.slots.clear();
    }
}

fn pair(py: Python<'_>, k: PyObj, v: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [k.0, v])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// `key_by(f).count()`, first half: computes keys (CPython's own `map` over the batch: no
/// argument tuple per call) and counts them locally; on completion emits one `(hash, key,
/// count)` per key, routed by hash to [`CountAgg`]. Only the distinct keys cross to the next
/// stage, which alone may run in parallel.
pub struct KeyCountOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
    /// Counts so far.
    pub table: KeyTable<u64>,
}

impl PyOp<PyObj, KeyedObj> for KeyCountOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        _out: &mut Vec<KeyedObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let mut failure = Ok(());
        let batch: Vec<PyObj> = input.collect();
        let keys = match &self.f {
            Some(f) => {
                let mut keys = Vec::with_capacity(batch.len());
                // Keys computed before a failing element still count.
                failure = cloop::via_list(py, &batch, &mut keys, |l, res| {
                    cloop::map_list(f, l, res, cx)
                });
                keys
            }
            None => batch,
        };
        for k in keys {
            if let Err(e) = self.table.slot(py, &k, || 0).map(|c| *c += 1)
                && let Err(e) = element_failed(py, cx, e, Some(k))
            {
                // Restart forgets the counts and goes on with the keys after the failing one.
                if cx.decide(&e) != Directive::Restart {
                    return Err(e);
                }
                self.table.clear();
            }
        }
        failure
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<KeyedObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let items: Vec<_> = self.table.drain().collect();
        for (k, c) in items {
            let hash = k.0.bind(py).hash().map_err(|e| user_error(py, e))?;
            let Ok(c) = c.into_pyobject(py);
            out.push(KeyedObj {
                hash: hash as u64,
                key: k,
                value: Some(PyObj(c.into_any().unbind())),
            });
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.table.clear();
    }
}

/// `key_by(f).count()`, second half: sums the per-key counts of its upstream subtasks, one
/// `(key, count)` tuple per key on completion.
#[derive(Default)]
pub struct CountAgg(KeyTable<u64>);

impl PyOp<KeyedObj, PyObj> for CountAgg {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for k in input {
            let n = match &k.value {
                Some(v) => v.0.bind(py).extract::<u64>(),
                None => Ok(1),
            };
            match n.and_then(|n| self.0.slot(py, &k.key, || 0).map(|c| *c += n)) {
                Ok(()) => {}
                Err(e) => element_failed(py, cx, e, None)?,
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
        let items: Vec<_> = self.0.drain().collect();
        for (k, c) in items {
            let Ok(c) = c.into_pyobject(py);
            out.push(pair(py, k, c.into_any().unbind())?);
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.0.clear();
    }
}

/// `key_by(f).fold(zero, g)` (with a zero) or `.reduce(g)` (without).
pub struct FoldAgg {
    /// The initial accumulator of every key (`None` for reduce).
    pub zero: Option<Py<PyAny>>,
    /// `g(acc, x)`.
    pub f: Py<PyAny>,
    /// Accumulators.
    pub table: KeyTable<Option<Py<PyAny>>>,
}

impl PyOp<KeyedObj, PyObj> for FoldAgg {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for k in input {
            let Some(x) = k.value else { continue };
            let zero = &self.zero;
            let slot = match self
                .table
                .slot(py, &k.key, || zero.as_ref().map(|z| z.clone_ref(py)))
            {
                Ok(s) => s,
                Err(e) => {
                    element_failed(py, cx, e, Some(x))?;
                    continue;
                }
            };
            let Some(acc) = slot.take() else {
                *slot = Some(x.0);
                continue;
            };
            match f.call1((acc.bind(py), x.0.bind(py))) {
                Ok(y) => *slot = Some(y.unbind()),
                Err(e) => {
                    *slot = Some(acc);
                    element_failed(py, cx, e, Some(x))?;
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
        let items: Vec<_> = self.table.drain().collect();
        for (k, v) in items {
            if let Some(v) = v {
                out.push(pair(py, k, v)?);
            }
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.table.clear();
    }
}
