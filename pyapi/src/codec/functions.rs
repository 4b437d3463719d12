//! The codec's Python functions (`weir.codec`) and its snapshot test hook.

use super::*;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::types::PyBytes;

fn codec_arg(kind: &str, pickle: bool) -> PyResult<Codec> {
    match (kind, pickle) {
        ("key", false) => Ok(Codec::Key),
        ("key", true) => Ok(Codec::PickleKey),
        ("value", false) => Ok(Codec::Value),
        ("value", true) => Ok(Codec::PickleValue),
        _ => Err(PyValueError::new_err(format!(
            "kind must be 'key' or 'value', not {kind:?}"
        ))),
    }
}

/// `weir.codec.encode(x, kind="key", pickle=False)`: the bytes a checkpoint stores for `x`.
#[pyfunction]
#[pyo3(signature = (x, kind = "key", pickle = false))]
pub fn codec_encode<'py>(
    py: Python<'py>,
    x: &Bound<'py, PyAny>,
    kind: &str,
    pickle: bool,
) -> PyResult<Bound<'py, PyBytes>> {
    let codec = codec_arg(kind, pickle)?;
    let b = encode(x, codec).map_err(|e| PyTypeError::new_err(e.to_string()))?;
    Ok(PyBytes::new(py, &b))
}

/// `weir.codec.decode(b)`: the object `b` encodes.
#[pyfunction]
pub fn codec_decode<'py>(py: Python<'py>, b: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    decode(py, b)
}

/// `weir.codec.stable_hash(key, pickle=False)`: the key's routing hash.
#[pyfunction]
#[pyo3(signature = (key, pickle = false))]
pub fn codec_stable_hash(key: &Bound<'_, PyAny>, pickle: bool) -> PyResult<u64> {
    let codec = codec_arg("key", pickle)?;
    stable_hash(key, codec).map_err(|e| PyTypeError::new_err(e.to_string()))
}

/// `weir.codec.key_group(key, pickle=False)`: the key group (`0..128`) the engine routes
/// `key` to (the same function `key_by` uses).
#[pyfunction]
#[pyo3(signature = (key, pickle = false))]
pub fn codec_key_group(py: Python<'_>, key: Py<PyAny>, pickle: bool) -> PyResult<usize> {
    let codec = codec_arg("key", pickle)?;
    let k = crate::stages::PyKey::new(py, crate::PyObj(key), codec)
        .map_err(|(e, _)| PyTypeError::new_err(e.to_string()))?;
    Ok(weir_operators::keyed::key_group_of(&k))
}

/// `(key, value)` pairs through a keyed snapshot's serde path (`PyKey` and `PyObj` as
/// `weir_graph::Snapshot` bytes and back), as keyed state checkpoints them: a test hook.
#[pyfunction]
pub fn _snapshot_roundtrip(
    py: Python<'_>,
    entries: Vec<(Py<PyAny>, Py<PyAny>)>,
) -> PyResult<Vec<(Py<PyAny>, Py<PyAny>)>> {
    let state = entries
        .into_iter()
        .map(|(k, v)| {
            let k = crate::stages::PyKey::new(py, crate::PyObj(k), Codec::PickleKey)
                .map_err(|(e, _)| e)?;
            Ok((k, crate::PyObj(v)))
        })
        .collect::<PyResult<Vec<_>>>()?;
    let snap =
        weir_graph::Snapshot::encode(&state).map_err(|e| PyTypeError::new_err(e.to_string()))?;
    let back: Vec<(crate::stages::PyKey, crate::PyObj)> = snap
        .decode()
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    Ok(back
        .into_iter()
        .map(|(k, v)| (k.key().0.clone_ref(py), v.0))
        .collect())
}

/// Adds the codec functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_snapshot_roundtrip, m)?)?;
    m.add_function(wrap_pyfunction!(codec_encode, m)?)?;
    m.add_function(wrap_pyfunction!(codec_decode, m)?)?;
    m.add_function(wrap_pyfunction!(codec_stable_hash, m)?)?;
    m.add_function(wrap_pyfunction!(codec_key_group, m)?)?;
    Ok(())
}
