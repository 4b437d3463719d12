//! `key_by(f)` for Python: the key stages (keys computed a batch at a time on the dispatcher)
//! and the adapters that hand them to `weir_operators::keyed`, which owns the aggregation (the
//! combiner before the hash edge, per-key state, first-seen order, supervision of `g`).

use super::cloop;
use super::core::{Batch, PyOp, element_failed, element_failed_stateless, py_flow};
use crate::mat::MatValue;
use crate::obj::{PyObj, short_repr, user_error, user_error_on};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use weir_graph::{Flow, StageCx, StageError};
use weir_operators::keyed;

/// A Python key in Rust keyed state: its [`routing_hash`], taken once when the key is extracted
/// (it routes the key over the hash exchange, so it must be the same in every process), and
/// the key, compared with Python's `==` (an `__eq__` that raises counts as unequal; the error
/// is logged).
#[derive(Clone)]
pub struct PyKey {
    hash: u64,
    key: PyObj,
}

impl PyKey {
    /// `key` with its Python hash (an unhashable key comes back with the error).
    pub(crate) fn new(py: Python<'_>, key: PyObj) -> Result<Self, (PyErr, PyObj)> {
        match routing_hash(key.0.bind(py)) {
            Ok(hash) => Ok(Self { hash, key }),
            Err(e) => Err((e, key)),
        }
    }

    /// The Python key.
    pub(crate) fn key(&self) -> &PyObj {
        &self.key
    }
}

/// The routing hash of a Python key, the same in every process (Python's `hash()` of a `str` or
/// `bytes` is salted per process): `str` and `bytes` (and their subclasses) hash their contents
/// with `weir_graph::stable_hash_of` (a `str` as its UTF-8, lone surrogates replaced), tuples
/// (and named tuples) their items' routing hashes; everything else is Python's `hash()`, which
/// is deterministic for numbers (equal numbers of any type hash alike) and `bool` (`None` gets a
/// constant: its `hash()` is its address before Python 3.12), but salted or identity-based for
/// other types (`frozenset` of strings, `datetime`, objects with
/// the default `__hash__`): those keys are not restart-safe.
pub(crate) fn routing_hash(key: &Bound<'_, PyAny>) -> PyResult<u64> {
    if let Ok(s) = key.cast::<PyString>() {
        return Ok(weir_graph::stable_hash_of(s.to_string_lossy().as_ref()));
    }
    if let Ok(b) = key.cast::<PyBytes>() {
        return Ok(weir_graph::stable_hash_of(b.as_bytes()));
    }
    if key.is_none() {
        // `hash(None)` is its address before Python 3.12.
        return Ok(weir_graph::stable_hash_of(&()));
    }
    if let Ok(t) = key.cast::<PyTuple>() {
        let mut h = weir_graph::StableHasher::new();
        h.write_usize(t.len());
        for item in t.iter() {
            h.write_u64(routing_hash(&item)?);
        }
        return Ok(h.finish());
    }
    Ok(key.hash()? as u64)
}

/// `_native._key_routing_hash(key)`: the hash a key routes by (tests check it is the same in
/// every process).
#[pyfunction]
pub fn _key_routing_hash(key: &Bound<'_, PyAny>) -> PyResult<u64> {
    routing_hash(key)
}

impl std::fmt::Debug for PyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PyKey({})", self.hash)
    }
}

impl Hash for PyKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.hash);
    }
}

impl PartialEq for PyKey {
    fn eq(&self, other: &Self) -> bool {
        if self.hash != other.hash {
            return false;
        }
        if self.key.0.as_ptr() == other.key.0.as_ptr() {
            return true;
        }
        crate::gil::with(|py| match self.key.0.bind(py).eq(other.key.0.bind(py)) {
            Ok(eq) => eq,
            Err(e) => {
                tracing::warn!(error = %user_error(py, e), "a key's == raised; keys kept apart");
                false
            }
        })
    }
}

impl Eq for PyKey {}

/// `key_by(f)` before `count()`: each element's key (CPython's own `map` over the batch, so no
/// argument tuple per call) with its hash; the element itself is not kept.
pub struct KeysOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
}

impl PyOp<PyObj, PyKey> for KeysOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyKey>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let batch: Vec<PyObj> = input.collect();
        let mut failure = Ok(());
        let keys = match &self.f {
            Some(f) => {
                let mut keys = Vec::with_capacity(batch.len());
                // Keys computed before a failing element still count (the loop is stateless:
                // Restart goes on like Resume).
                failure = cloop::via_list(py, &batch, &mut keys, |l, res| {
                    cloop::map_list(f, l, res, cx)
                });
                keys
            }
            None => batch,
        };
        out.reserve(keys.len());
        for k in keys {
            match PyKey::new(py, k) {
                Ok(k) => out.push(k),
                Err((e, k)) => element_failed_stateless(py, cx, e, Some(k))?,
            }
        }
        failure
    }
}

/// `key_by(f)` before `fold`/`reduce`: each element with its key and the key's hash.
pub struct PairsOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
}

impl PyOp<PyObj, (PyKey, PyObj)> for PairsOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<(PyKey, PyObj)>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.as_ref().map(|f| f.bind(py));
        for x in input {
            let key = match f {
                Some(f) => f.call1((x.0.bind(py),)).map(PyObj::from_bound),
                None => Ok(x.clone_ref(py)),
            };
            match key.and_then(|k| PyKey::new(py, k).map_err(|(e, _)| e)) {
                Ok(k) => out.push((k, x)),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// The `key_by` stage of `count()`.
pub fn key_stage(f: Option<Py<PyAny>>) -> Flow<PyObj, PyKey, MatValue> {
    let f = f.map(Arc::new);
    py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(KeysOp {
                f: f.as_ref().map(|f| f.clone_ref(py)),
            })
        }),
    )
}

/// The `key_by` stage of `fold`/`reduce`.
pub fn pair_stage(f: Option<Py<PyAny>>) -> Flow<PyObj, (PyKey, PyObj), MatValue> {
    let f = f.map(Arc::new);
    py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(PairsOp {
                f: f.as_ref().map(|f| f.clone_ref(py)),
            })
        }),
    )
}

/// The Python tuple `(key, value)`.
fn pair(py: Python<'_>, k: PyKey, v: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [k.key.0, v])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// `key_by(f).count()` after its key stage: one `(key, count)` tuple per key (the summing
/// stage is named `count`).
pub fn count(keys: Flow<PyObj, PyKey, MatValue>) -> Flow<PyObj, PyObj, MatValue> {
    keyed::count_keys(keys, |k: PyKey, n: u64| {
        crate::gil::with(|py| {
            let Ok(n) = n.into_pyobject(py);
            pair(py, k, n.into_any().unbind())
        })
    })
    .named("count")
}

/// `g(acc, x)` as a supervised per-key function: a raise names the element.
fn call2(g: &Py<PyAny>, acc: &PyObj, x: &PyObj) -> Result<PyObj, StageError> {
    crate::gil::with(|py| {
        g.bind(py)
            .call1((acc.0.bind(py), x.0.bind(py)))
            .map(PyObj::from_bound)
            .map_err(|e| user_error_on(py, e, Some(x)).with_element(&short_repr(py, x)))
    })
}

fn emit(k: PyKey, v: PyObj) -> Result<PyObj, StageError> {
    crate::gil::with(|py| pair(py, k, v.0))
}

/// `key_by(f).fold(zero, g)` after its key stage: one `(key, acc)` tuple per key (stage `fold`).
pub fn fold(
    pairs: Flow<PyObj, (PyKey, PyObj), MatValue>,
    zero: Py<PyAny>,
    g: Py<PyAny>,
) -> Flow<PyObj, PyObj, MatValue> {
    let (zero, g) = (Arc::new(zero), Arc::new(g));
    let zero = move || crate::gil::with(|py| PyObj(zero.clone_ref(py)));
    keyed::try_fold_pairs(
        pairs,
        zero,
        move |a: &PyObj, x: &PyObj| call2(&g, a, x),
        emit,
    )
    .named("fold")
}

/// `key_by(f).reduce(g)` after its key stage: one `(key, acc)` tuple per key (stage `reduce`).
pub fn reduce(
    pairs: Flow<PyObj, (PyKey, PyObj), MatValue>,
    g: Py<PyAny>,
) -> Flow<PyObj, PyObj, MatValue> {
    let g = Arc::new(g);
    keyed::try_reduce_pairs(pairs, move |a: &PyObj, x: &PyObj| call2(&g, a, x), emit)
        .named("reduce")
}
