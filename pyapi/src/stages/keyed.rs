//! `key_by(f)` for Python: the key stages (keys computed a batch at a time on the dispatcher)
//! and the adapters that hand them to `weir_operators::keyed`, which owns the aggregation (the
//! combiner before the hash edge, per-key state, first-seen order, supervision of `g`).

use super::cloop;
use super::core::{Batch, PyOp, element_failed_stateless, py_flow};
use crate::codec::{self, Codec, StateVal};
use crate::mat::MatValue;
use crate::obj::{PyObj, short_repr, user_error, user_error_on};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use weir_graph::{Flow, StageCx, StageError};
use weir_operators::keyed;

/// A Python key in Rust keyed state: its stable hash ([`crate::codec::stable_hash`], never
/// Python's salted `hash()`), taken once when the key is extracted (it also routes the key over
/// the hash exchange), and the key, compared with Python's `==` (an `__eq__` that raises counts
/// as unequal; the error is logged). It serializes as its codec encoding (checkpoints).
#[derive(Clone)]
pub struct PyKey {
    hash: u64,
    key: PyObj,
}

impl PyKey {
    /// `key` with its stable hash under `codec` (a key without an encoding, or an unhashable
    /// one, comes back with the error).
    pub(crate) fn new(py: Python<'_>, key: PyObj, codec: Codec) -> Result<Self, (PyErr, PyObj)> {
        match codec::stable_hash(key.0.bind(py), codec) {
            Ok(hash) => Ok(Self { hash, key }),
            Err(e) => {
                let msg = format!("key {}: {e}", short_repr(py, &key));
                Err((PyTypeError::new_err(msg), key))
            }
        }
    }

    /// The Python key.
    pub(crate) fn key(&self) -> &PyObj {
        &self.key
    }
}

impl serde::Serialize for PyKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A key that is no built-in was accepted only by a stage with `key_codec="pickle"`.
        let b = crate::gil::with(|py| codec::encode(self.key.0.bind(py), Codec::PickleKey));
        match b {
            Ok(b) => s.serialize_bytes(&b),
            Err(e) => {
                // Binary formats (postcard) drop a custom message: it is recorded too.
                let msg = format!("cannot checkpoint a key: {e}");
                codec::note_refusal(&msg);
                Err(serde::ser::Error::custom(msg))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for PyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = d.deserialize_bytes(codec::BytesVisitor)?;
        crate::gil::with(|py| {
            let key = codec::decode(py, &b).map(PyObj::from_bound).map_err(|e| {
                serde::de::Error::custom(format!("cannot restore a key: {}", user_error(py, e)))
            })?;
            PyKey::new(py, key, Codec::PickleKey)
                .map_err(|(e, _)| serde::de::Error::custom(user_error(py, e)))
        })
    }
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
    /// The key codec (stable hash and checkpoint encoding).
    pub codec: Codec,
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
            match PyKey::new(py, k, self.codec) {
                Ok(k) => out.push(k),
                Err((e, k)) => element_failed_stateless(py, cx, e, Some(k))?,
            }
        }
        failure
    }
}

/// `key_by(f)` before `fold`/`reduce`/`process`: each element with its key (the key function as
/// one CPython `map` over the batch) and the key's hash.
pub struct PairsOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
    /// The key codec (stable hash and checkpoint encoding).
    pub codec: Codec,
}

impl PyOp<PyObj, (PyKey, PyObj)> for PairsOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<(PyKey, PyObj)>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let batch: Vec<PyObj> = input.collect();
        out.reserve(batch.len());
        let Some(f) = &self.f else {
            for x in batch {
                match PyKey::new(py, x.clone_ref(py), self.codec) {
                    Ok(k) => out.push((k, x)),
                    Err((e, _)) => element_failed_stateless(py, cx, e, Some(x))?,
                }
            }
            return Ok(());
        };
        // The keys as one `map` over the batch; an element whose key call failed went through
        // supervision there and is skipped (the loop is stateless: Restart goes on like Resume).
        let list = cloop::to_list(py, &batch)?;
        let res = pyo3::types::PyList::empty(py);
        let failed = cloop::map_list_skipping(f, &list, &res, cx)?;
        let mut keys = Vec::with_capacity(res.len());
        cloop::take_list(&mut keys, &res);
        let mut keys = keys.into_iter();
        let mut failed = failed.into_iter().peekable();
        for (i, x) in batch.into_iter().enumerate() {
            if failed.peek() == Some(&i) {
                failed.next();
                continue;
            }
            let Some(k) = keys.next() else { break };
            match PyKey::new(py, k, self.codec) {
                Ok(k) => out.push((k, x)),
                Err((e, _)) => element_failed_stateless(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// The `key_by` stage of `count()`.
pub fn key_stage(f: Option<Py<PyAny>>, codec: Codec) -> Flow<PyObj, PyKey, MatValue> {
    let f = f.map(Arc::new);
    py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(KeysOp {
                f: f.as_ref().map(|f| f.clone_ref(py)),
                codec,
            })
        }),
    )
}

/// The `key_by` stage of `fold`/`reduce`.
pub fn pair_stage(f: Option<Py<PyAny>>, codec: Codec) -> Flow<PyObj, (PyKey, PyObj), MatValue> {
    let f = f.map(Arc::new);
    py_flow(
        "key_by",
        Arc::new(move |py, _| {
            Box::new(PairsOp {
                f: f.as_ref().map(|f| f.clone_ref(py)),
                codec,
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
/// stage is named `count`), the counts checkpointed by key group.
pub fn count(keys: Flow<PyObj, PyKey, MatValue>) -> Flow<PyObj, PyObj, MatValue> {
    keyed::count_keys_with(
        keys,
        |k: PyKey, n: u64| {
            crate::gil::with(|py| {
                let Ok(n) = n.into_pyobject(py);
                pair(py, k, n.into_any().unbind())
            })
        },
        keyed::KeyedCodec::serde(),
    )
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

fn emit<V: StateVal>(k: PyKey, v: V) -> Result<PyObj, StageError> {
    crate::gil::with(|py| pair(py, k, v.into_obj().0))
}

/// `key_by(f).fold(zero, g)` after its key stage: one `(key, acc)` tuple per key (stage `fold`),
/// the accumulators checkpointed by key group as `V` (the value codec, or pickles).
pub fn fold<V: StateVal>(
    pairs: Flow<PyObj, (PyKey, PyObj), MatValue>,
    zero: Py<PyAny>,
    g: Py<PyAny>,
) -> Flow<PyObj, PyObj, MatValue> {
    let (zero, g) = (Arc::new(zero), Arc::new(g));
    let zero = move || crate::gil::with(|py| V::wrap(PyObj(zero.clone_ref(py))));
    keyed::try_fold_pairs_with(
        pairs,
        zero,
        move |a: &V, x: &PyObj| call2(&g, a.obj(), x).map(V::wrap),
        emit,
        Some(keyed::KeyedCodec::serde()),
    )
    .named("fold")
}

/// `key_by(f).reduce(g)` after its key stage: one `(key, acc)` tuple per key (stage `reduce`;
/// a key's first element is its accumulator), checkpointed as [`fold`] is.
pub fn reduce<V: StateVal>(
    pairs: Flow<PyObj, (PyKey, PyObj), MatValue>,
    g: Py<PyAny>,
) -> Flow<PyObj, PyObj, MatValue> {
    let g = Arc::new(g);
    let step = move |a: &Option<V>, x: &PyObj| match a {
        Some(a) => call2(&g, a.obj(), x).map(|v| Some(V::wrap(v))),
        None => Ok(Some(V::wrap(x.clone()))),
    };
    let emit = |k: PyKey, v: Option<V>| match v {
        Some(v) => emit(k, v),
        None => Err(StageError::internal("reduce: a key without a value")),
    };
    keyed::try_fold_pairs_with(pairs, || None, step, emit, Some(keyed::KeyedCodec::serde()))
        .named("reduce")
}
