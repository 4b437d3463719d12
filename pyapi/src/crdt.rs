//! `weir.crdt`: the replicated data types of `weir_cluster::crdt` over Python values, and a
//! local replicator Python stages share.
//!
//! Set elements and map keys are stored as their key-codec encoding (`weir.codec`, the hashable
//! built-ins), map values as their value-codec encoding, so replicas compare and merge bytes and
//! the state travels as postcard bytes (`to_bytes`). Each object is one replica's view (its
//! `replica` id): mutators apply at once and join their delta into the object's pending delta,
//! which `take_delta()` hands out for another replica's `merge`.

use crate::codec::{Codec, decode, encode};
use pyo3::exceptions::{PyKeyError, PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyType};
use weir_cluster::crdt::{
    Consistency, Crdt, CrdtError, DataKind, GCounter, LWWMap, ORSet, PNCounter, Read, ReplicaId,
    ReplicatedData, Replicator, ReplicatorHandle, Write, Writer, from_bytes, to_bytes,
};

/// The Python exception of a CRDT error.
fn crdt_err(e: CrdtError) -> PyErr {
    match e {
        CrdtError::WrongKind { .. } => PyTypeError::new_err(e.to_string()),
        CrdtError::Overflow { .. } => PyOverflowError::new_err(e.to_string()),
        _ => PyValueError::new_err(e.to_string()),
    }
}

/// `n` as a count: an int in `0..2**64` (`what` names the call in the error).
fn count_arg(what: &str, n: &Bound<'_, PyAny>) -> PyResult<u64> {
    if n.cast::<PyInt>().is_err() {
        return Err(PyTypeError::new_err(format!(
            "{what}: the count must be an int, not {}",
            type_name(n)
        )));
    }
    n.extract::<u64>().map_err(|_| {
        PyValueError::new_err(format!(
            "{what}: the count must be an int in 0..2**64, got {}",
            n.repr().map_or_else(|_| "?".to_owned(), |r| r.to_string())
        ))
    })
}

fn type_name(x: &Bound<'_, PyAny>) -> String {
    x.get_type()
        .name()
        .map_or_else(|_| "?".to_owned(), |n| n.to_string())
}

/// The key-codec encoding of `x` (`what` names the call in the error).
fn key_bytes(what: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    encode(x, Codec::Key).map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))
}

/// The value-codec encoding of `x` (`what` names the call in the error).
fn value_bytes(what: &str, x: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    encode(x, Codec::Value).map_err(|e| PyTypeError::new_err(format!("{what}: {e}")))
}

/// Milliseconds since the Unix epoch, or `now_ms` when given.
fn clock(now_ms: Option<u64>) -> u64 {
    now_ms.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    })
}

/// The methods every CRDT class has: `replica`, `merge`, `take_delta`, `to_bytes`,
/// `from_bytes`, `copy`, `==`; `$extra` holds the type's own.
macro_rules! crdt_class {
    ($py:ident, $name:literal, $ty:ty, { $($extra:tt)* }) => {
        #[doc = concat!("`weir.crdt.", $name, "`: one replica's view of a replicated ", $name, ".")]
        #[pyclass(module = "weir.crdt", name = $name)]
        pub struct $py {
            state: $ty,
            delta: $ty,
            replica: ReplicaId,
        }

        impl $py {
            /// A view of `state` at `replica`, with no pending delta.
            pub fn of(state: $ty, replica: ReplicaId) -> Self {
                Self { state, delta: <$ty>::default(), replica }
            }
            /// Applies a mutator's delta: joins it into the pending delta.
            fn record(&mut self, d: $ty) {
                self.delta.merge(&d);
            }
            /// The pending delta, taken.
            fn take(&mut self) -> $ty {
                std::mem::take(&mut self.delta)
            }
        }

        #[pymethods]
        impl $py {
            #[doc = concat!("An empty ", $name, " at replica `replica`.")]
            #[new]
            #[pyo3(signature = (replica = 0))]
            fn new(replica: u64) -> Self {
                Self::of(<$ty>::default(), ReplicaId(replica))
            }
            /// The replica this view writes as.
            #[getter]
            fn replica(&self) -> u64 {
                self.replica.0
            }
            /// Merges another replica's state or delta into this one.
            fn merge(slf: &Bound<'_, Self>, other: &Bound<'_, Self>) {
                if slf.is(other) {
                    return;
                }
                let o = other.borrow();
                slf.borrow_mut().state.merge(&o.state);
            }
            /// The changes made here since the last call (None when there are none), for
            /// another replica's `merge`.
            fn take_delta(&mut self) -> Option<Self> {
                let d = self.take();
                (!d.is_bottom()).then(|| Self::of(d, self.replica))
            }
            /// The state as bytes (postcard).
            fn to_bytes<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
                let b = to_bytes(&self.state, $name).map_err(crdt_err)?;
                Ok(PyBytes::new(py, &b))
            }
            /// The state `b` encodes, as a view at `replica` (ValueError when malformed).
            #[staticmethod]
            #[pyo3(signature = (b, replica = 0))]
            fn from_bytes(b: &[u8], replica: u64) -> PyResult<Self> {
                let state: $ty = from_bytes(b, $name).map_err(crdt_err)?;
                Ok(Self::of(state, ReplicaId(replica)))
            }
            /// A copy of the state (same replica, no pending delta).
            fn copy(&self) -> Self {
                Self::of(self.state.clone(), self.replica)
            }
            fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
                other.cast::<Self>().is_ok_and(|o| o.borrow().state == self.state)
            }
            $($extra)*
        }
    };
}

crdt_class!(PyGCounter, "GCounter", GCounter, {
    /// The sum of every replica's increments.
    #[getter]
    fn value(&self) -> u128 {
        self.state.value()
    }
    /// Adds `n` (an int >= 0).
    #[pyo3(signature = (n = None))]
    fn increment(&mut self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.map_or(Ok(1), |n| count_arg("GCounter.increment", n))?;
        let d = self.state.increment(self.replica, n).map_err(crdt_err)?;
        self.record(d);
        Ok(())
    }
    fn __repr__(&self) -> String {
        format!("GCounter(value={})", self.state.value())
    }
});

crdt_class!(PyPNCounter, "PNCounter", PNCounter, {
    /// Every increment minus every decrement.
    #[getter]
    fn value(&self) -> i128 {
        self.state.value()
    }
    /// Adds `n` (an int >= 0).
    #[pyo3(signature = (n = None))]
    fn increment(&mut self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.map_or(Ok(1), |n| count_arg("PNCounter.increment", n))?;
        let d = self.state.increment(self.replica, n).map_err(crdt_err)?;
        self.record(d);
        Ok(())
    }
    /// Subtracts `n` (an int >= 0).
    #[pyo3(signature = (n = None))]
    fn decrement(&mut self, n: Option<&Bound<'_, PyAny>>) -> PyResult<()> {
        let n = n.map_or(Ok(1), |n| count_arg("PNCounter.decrement", n))?;
        let d = self.state.decrement(self.replica, n).map_err(crdt_err)?;
        self.record(d);
        Ok(())
    }
    fn __repr__(&self) -> String {
        format!("PNCounter(value={})", self.state.value())
    }
});

crdt_class!(PyORSet, "ORSet", ORSet<Vec<u8>>, {
    /// Adds `x` (None, bool, int, float, str, bytes or a tuple of them).
    fn add(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = key_bytes("ORSet.add", x)?;
        let d = self.state.add(self.replica, b);
        self.record(d);
        Ok(())
    }
    /// Removes `x` (KeyError when absent).
    fn remove(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = key_bytes("ORSet.remove", x)?;
        if !self.state.contains(&b) {
            return Err(PyKeyError::new_err(x.clone().unbind()));
        }
        let d = self.state.remove(&b);
        self.record(d);
        Ok(())
    }
    /// Removes `x` when present.
    fn discard(&mut self, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let b = key_bytes("ORSet.discard", x)?;
        let d = self.state.remove(&b);
        self.record(d);
        Ok(())
    }
    /// Removes every element this replica has seen.
    fn clear(&mut self) {
        let d = self.state.clear();
        self.record(d);
    }
    /// The elements, in the order of their encodings.
    fn elements<'py>(&self, py: Python<'py>) -> PyResult<Vec<Bound<'py, PyAny>>> {
        self.state.iter().map(|b| decode(py, b)).collect()
    }
    fn __contains__(&self, x: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.state.contains(&key_bytes("ORSet", x)?))
    }
    fn __len__(&self) -> usize {
        self.state.len()
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let items = self
            .elements(py)?
            .iter()
            .map(|x| x.repr().map(|r| r.to_string()))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!("ORSet({{{}}})", items.join(", ")))
    }
});

crdt_class!(PyLWWMap, "LWWMap", LWWMap<Vec<u8>, Vec<u8>>, {
    /// Sets `k` to `v` at the system clock (or `now_ms`); the write with the latest
    /// (timestamp, replica) wins.
    #[pyo3(signature = (k, v, now_ms = None))]
    fn put(
        &mut self,
        k: &Bound<'_, PyAny>,
        v: &Bound<'_, PyAny>,
        now_ms: Option<u64>,
    ) -> PyResult<()> {
        let kb = key_bytes("LWWMap.put (key)", k)?;
        let vb = value_bytes("LWWMap.put (value)", v)?;
        let w = Writer {
            replica: self.replica,
            now_ms: clock(now_ms),
        };
        let d = self.state.put(w, kb, vb);
        self.record(d);
        Ok(())
    }
    /// Removes `k` at the system clock (or `now_ms`; KeyError when absent).
    #[pyo3(signature = (k, now_ms = None))]
    fn remove(&mut self, k: &Bound<'_, PyAny>, now_ms: Option<u64>) -> PyResult<()> {
        let kb = key_bytes("LWWMap.remove", k)?;
        if self.state.get(&kb).is_none() {
            return Err(PyKeyError::new_err(k.clone().unbind()));
        }
        let w = Writer {
            replica: self.replica,
            now_ms: clock(now_ms),
        };
        let d = self.state.remove(w, kb);
        self.record(d);
        Ok(())
    }
    /// The value of `k`, or `default`.
    #[pyo3(signature = (k, default = None))]
    fn get<'py>(
        &self,
        k: &Bound<'py, PyAny>,
        default: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let kb = key_bytes("LWWMap.get", k)?;
        match self.state.get(&kb) {
            Some(v) => decode(k.py(), v).map(Some),
            None => Ok(default),
        }
    }
    /// The `(key, value)` pairs, in the order of the keys' encodings.
    fn items<'py>(&self, py: Python<'py>) -> PyResult<Vec<(Bound<'py, PyAny>, Bound<'py, PyAny>)>> {
        self.state
            .iter()
            .map(|(k, v)| Ok((decode(py, k)?, decode(py, v)?)))
            .collect()
    }
    fn __getitem__<'py>(&self, k: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let kb = key_bytes("LWWMap", k)?;
        match self.state.get(&kb) {
            Some(v) => decode(k.py(), v),
            None => Err(PyKeyError::new_err(k.clone().unbind())),
        }
    }
    fn __setitem__(&mut self, k: &Bound<'_, PyAny>, v: &Bound<'_, PyAny>) -> PyResult<()> {
        self.put(k, v, None)
    }
    fn __delitem__(&mut self, k: &Bound<'_, PyAny>) -> PyResult<()> {
        self.remove(k, None)
    }
    fn __contains__(&self, k: &Bound<'_, PyAny>) -> PyResult<bool> {
        Ok(self.state.get(&key_bytes("LWWMap", k)?).is_some())
    }
    fn __len__(&self) -> usize {
        self.state.len()
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let items = self
            .items(py)?
            .iter()
            .map(|(k, v)| Ok(format!("{}: {}", k.repr()?, v.repr()?)))
            .collect::<PyResult<Vec<_>>>()?;
        Ok(format!("LWWMap({{{}}})", items.join(", ")))
    }
});

/// `"local"`, `"majority"` or `"all"`.
fn consistency_arg(what: &str, s: &str) -> PyResult<Consistency> {
    match s {
        "local" => Ok(Consistency::Local),
        "majority" => Ok(Consistency::Majority),
        "all" => Ok(Consistency::All),
        other => Err(PyValueError::new_err(format!(
            "{what}: consistency must be 'local', 'majority' or 'all', not {other:?}"
        ))),
    }
}

/// A timeout in seconds as milliseconds (ValueError when negative or not finite).
fn timeout_arg(what: &str, secs: f64) -> PyResult<u64> {
    if !secs.is_finite() || secs < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what}: timeout must be a non-negative number of seconds, got {secs}"
        )));
    }
    Ok((secs * 1000.0) as u64)
}

/// `weir.crdt.Replicator`: a replicator of keyed CRDTs shared by whoever holds it (Python
/// stages of any run, threads); `Replicator.local()` has no peers, so every consistency level
/// completes at once.
#[pyclass(module = "weir.crdt", name = "Replicator", frozen)]
pub struct PyReplicator {
    handle: ReplicatorHandle<ReplicatedData>,
}

/// The Python view of `d` at `replica` (None for no data).
fn to_py(py: Python<'_>, d: ReplicatedData, replica: ReplicaId) -> PyResult<Option<Py<PyAny>>> {
    Ok(Some(match d {
        ReplicatedData::Empty => return Ok(None),
        ReplicatedData::GCounter(s) => Py::new(py, PyGCounter::of(s, replica))?.into_any(),
        ReplicatedData::PNCounter(s) => Py::new(py, PyPNCounter::of(s, replica))?.into_any(),
        ReplicatedData::ORSet(s) => Py::new(py, PyORSet::of(s, replica))?.into_any(),
        ReplicatedData::LWWMap(s) => Py::new(py, PyLWWMap::of(s, replica))?.into_any(),
    }))
}

/// Which kind the class `kind` is.
fn kind_arg(py: Python<'_>, kind: &Bound<'_, PyType>) -> PyResult<DataKind> {
    if kind.is(py.get_type::<PyGCounter>()) {
        Ok(DataKind::GCounter)
    } else if kind.is(py.get_type::<PyPNCounter>()) {
        Ok(DataKind::PNCounter)
    } else if kind.is(py.get_type::<PyORSet>()) {
        Ok(DataKind::ORSet)
    } else if kind.is(py.get_type::<PyLWWMap>()) {
        Ok(DataKind::LWWMap)
    } else {
        Err(PyTypeError::new_err(format!(
            "Replicator.update: kind must be GCounter, PNCounter, ORSet or LWWMap, not {}",
            kind.name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        )))
    }
}

/// The pending delta of the view `obj` of `kind`, taken.
fn take_delta(obj: &Bound<'_, PyAny>, kind: DataKind) -> PyResult<ReplicatedData> {
    Ok(match kind {
        DataKind::GCounter => {
            ReplicatedData::GCounter(obj.cast::<PyGCounter>()?.borrow_mut().take())
        }
        DataKind::PNCounter => {
            ReplicatedData::PNCounter(obj.cast::<PyPNCounter>()?.borrow_mut().take())
        }
        DataKind::ORSet => ReplicatedData::ORSet(obj.cast::<PyORSet>()?.borrow_mut().take()),
        DataKind::LWWMap => ReplicatedData::LWWMap(obj.cast::<PyLWWMap>()?.borrow_mut().take()),
        DataKind::Empty => ReplicatedData::Empty,
    })
}

#[pymethods]
impl PyReplicator {
    /// A replicator of one node (replica 0, no peers).
    #[staticmethod]
    fn local() -> Self {
        Self {
            handle: ReplicatorHandle::new(Replicator::local()),
        }
    }
    /// This replica's id.
    #[getter]
    fn replica(&self) -> u64 {
        self.handle.lock().id().0
    }
    /// The keys, in order.
    fn keys(&self) -> Vec<String> {
        self.handle
            .lock()
            .entries()
            .map(|(k, _)| k.to_owned())
            .collect()
    }
    /// A copy of the local state of `key` (a GCounter, PNCounter, ORSet or LWWMap), or None.
    fn get(&self, py: Python<'_>, key: &str) -> PyResult<Option<Py<PyAny>>> {
        let (d, me) = {
            let r = self.handle.lock();
            (r.get(key).cloned(), r.id())
        };
        d.map_or(Ok(None), |d| to_py(py, d, me))
    }
    /// The state of `key` merged from enough replicas for `consistency`.
    #[pyo3(signature = (key, consistency = "local", timeout = 5.0))]
    fn read(
        &self,
        py: Python<'_>,
        key: &str,
        consistency: &str,
        timeout: f64,
    ) -> PyResult<Option<Py<PyAny>>> {
        let level = consistency_arg("Replicator.read", consistency)?;
        let t = timeout_arg("Replicator.read", timeout)?;
        let me = self.handle.lock().id();
        match self.handle.read(key, level, t) {
            Read::Done(d) => d.map_or(Ok(None), |d| to_py(py, d, me)),
            Read::Pending(_) => Err(PyValueError::new_err(format!(
                "Replicator.read: a {consistency} read needs peers driven by a transport; this \
                 replicator has none"
            ))),
        }
    }
    /// Calls `f` with a copy of `key`'s state as a `kind` (empty for a new key) and merges the
    /// changes it makes at `consistency`; returns the view `f` changed. TypeError when the key
    /// holds another kind.
    #[pyo3(signature = (key, kind, f, consistency = "local", timeout = 5.0))]
    fn update<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        kind: &Bound<'py, PyType>,
        f: &Bound<'py, PyAny>,
        consistency: &str,
        timeout: f64,
    ) -> PyResult<Bound<'py, PyAny>> {
        let want = kind_arg(py, kind)?;
        let level = consistency_arg("Replicator.update", consistency)?;
        let t = timeout_arg("Replicator.update", timeout)?;
        let (cur, me) = {
            let r = self.handle.lock();
            (r.get(key).cloned().unwrap_or_default(), r.id())
        };
        if !cur.is_bottom() && cur.kind() != want {
            return Err(crdt_err(CrdtError::WrongKind {
                key: key.to_owned(),
                found: cur.kind(),
                expected: want,
            }));
        }
        let view = match cur {
            ReplicatedData::Empty => match want {
                DataKind::GCounter => to_py(py, ReplicatedData::GCounter(GCounter::new()), me)?,
                DataKind::PNCounter => to_py(py, ReplicatedData::PNCounter(PNCounter::new()), me)?,
                DataKind::ORSet => to_py(py, ReplicatedData::ORSet(ORSet::new()), me)?,
                DataKind::LWWMap => to_py(py, ReplicatedData::LWWMap(LWWMap::new()), me)?,
                DataKind::Empty => None,
            },
            d => to_py(py, d, me)?,
        };
        let view = view
            .ok_or_else(|| PyValueError::new_err("Replicator.update: no kind"))?
            .into_bound(py);
        f.call1((&view,))?;
        let delta = take_delta(&view, want)?;
        let w = self
            .handle
            .update(key, level, t, |d, _| {
                // The key may have become another kind while `f` ran.
                let found = d.kind();
                if found != DataKind::Empty && found != want {
                    return Err(CrdtError::WrongKind {
                        key: key.to_owned(),
                        found,
                        expected: want,
                    });
                }
                Ok(delta)
            })
            .map_err(crdt_err)?;
        match w {
            Write::Done => Ok(view),
            Write::Pending(_) => Err(PyValueError::new_err(format!(
                "Replicator.update: the write is merged locally, but a {consistency} write needs \
                 peers driven by a transport; this replicator has none"
            ))),
        }
    }
    fn __repr__(&self) -> String {
        let r = self.handle.lock();
        format!(
            "Replicator(replica={}, keys={})",
            r.id().0,
            r.entries().count()
        )
    }
}

/// Adds the CRDT classes to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyGCounter>()?;
    m.add_class::<PyPNCounter>()?;
    m.add_class::<PyORSet>()?;
    m.add_class::<PyLWWMap>()?;
    m.add_class::<PyReplicator>()?;
    Ok(())
}
