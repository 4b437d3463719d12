//! Keyed ops: `key_by(f)` and per-key aggregates counted/folded in Rust.

use super::core::{PyOp, element_failed};
use crate::obj::{KeyedObj, PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use weir_graph::{StageCx, StageError};

/// `key_by(f)`: computes each element's key and Python hash (the routing hash).
pub struct KeyOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
    /// Keep the element next to its key (`False` for `count`).
    pub keep_value: bool,
}

impl PyOp<PyObj, KeyedObj> for KeyOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
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
                    value: self.keep_value.then_some(x),
                }),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// A hasher for already-hashed keys (Python's hash): one multiply to spread the bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (i ^ (i >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Per-key state in Rust: buckets by Python hash, keys compared with Python's `==`.
pub struct KeyTable<V> {
    map: HashMap<u64, Vec<(PyObj, V)>, BuildHasherDefault<PreHashed>>,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

impl<V> KeyTable<V> {
    /// The slot of `key`, created with `init` when new.
    pub fn slot<'a>(
        &'a mut self,
        py: Python<'_>,
        hash: u64,
        key: PyObj,
        init: impl FnOnce() -> V,
    ) -> PyResult<&'a mut V> {
        let bucket = self.map.entry(hash).or_default();
        let k = key.0.bind(py);
        let mut found = None;
        for (i, (other, _)) in bucket.iter().enumerate() {
            let o = other.0.bind(py);
            if o.is(k) || o.eq(k)? {
                found = Some(i);
                break;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                bucket.push((key, init()));
                bucket.len() - 1
            }
        };
        Ok(&mut bucket[i].1)
    }
    /// Every (key, value), emptying the table.
    pub fn drain(&mut self) -> impl Iterator<Item = (PyObj, V)> + '_ {
        self.map.drain().flat_map(|(_, b)| b)
    }
    /// Forgets every key.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

fn pair(py: Python<'_>, k: PyObj, v: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [k.0, v])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// `key_by(f).count()`: counts in Rust, one `(key, count)` tuple per key on completion.
#[derive(Default)]
pub struct CountAgg(KeyTable<u64>);

impl PyOp<KeyedObj, PyObj> for CountAgg {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for k in input {
            match self.0.slot(py, k.hash, k.key, || 0) {
                Ok(c) => *c += 1,
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
        input: Vec<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for k in input {
            let Some(x) = k.value else { continue };
            let zero = &self.zero;
            let slot = match self
                .table
                .slot(py, k.hash, k.key, || zero.as_ref().map(|z| z.clone_ref(py)))
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
