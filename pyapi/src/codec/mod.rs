//! The key and value codec of Python state: a tagged binary encoding of the built-in types that
//! routes keys by a stable hash (fixed-seed xxh3, `weir_state::stable_hash`, the same in every
//! process whatever `PYTHONHASHSEED` says) and persists keys and values in checkpoints.
//!
//! The format (part of what checkpoints hold, never to change; documented in docs/python.md):
//!
//! | type | bytes |
//! |---|---|
//! | `None` | `0x00` |
//! | `False` / `True` | `0x01` / `0x02` |
//! | `int` in i64 | `0x03`, zigzag LEB128 varint |
//! | other `int` | `0x04`, varint length, two's complement little-endian bytes |
//! | `float` | `0x05`, IEEE 754 binary64 little-endian |
//! | `str` | `0x06`, varint length, UTF-8 bytes |
//! | `bytes` | `0x07`, varint length, the bytes |
//! | `tuple` | `0x08`, varint count, the items |
//! | `list` (values only) | `0x09`, varint count, the items |
//! | `dict` (values only) | `0x0a`, varint count, key and value of each item |
//! | anything else, opt-in | `0x50`, varint length, `pickle.dumps(x, 5)` |
//!
//! Only exact built-in types are encoded (a subclass such as a named tuple or an enum is not).
//! The routing hash is xxh3 over the encoding of the key with numbers normalized as Python's
//! `==` sees them (`True` hashes as `1`, an integral float as the int), so keys equal in Python
//! always land in the same key group and one subtask compares them with `==`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use std::cell::RefCell;

mod decode;
mod functions;
mod state;

pub use decode::decode;
pub use functions::register;
pub use state::{Encoded, PyState, StateVal};

pub(super) const NONE: u8 = 0x00;
pub(super) const FALSE: u8 = 0x01;
pub(super) const TRUE: u8 = 0x02;
pub(super) const INT: u8 = 0x03;
pub(super) const BIG_INT: u8 = 0x04;
pub(super) const FLOAT: u8 = 0x05;
pub(super) const STR: u8 = 0x06;
pub(super) const BYTES: u8 = 0x07;
pub(super) const TUPLE: u8 = 0x08;
pub(super) const LIST: u8 = 0x09;
pub(super) const DICT: u8 = 0x0a;
pub(super) const PICKLE: u8 = 0x50;

/// Nesting depth past which an object is refused (a self-referencing list has no end).
pub(super) const MAX_DEPTH: usize = 64;

/// Which objects a codec accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The hashable built-ins: `None`, `bool`, `int`, `float`, `str`, `bytes` and tuples of them.
    Key,
    /// Keys, plus lists and dicts of values.
    Value,
    /// [`Codec::Key`], anything else as a pickle (`key_codec="pickle"`).
    PickleKey,
    /// [`Codec::Value`], anything else as a pickle (the state of a `key_codec="pickle"` stage).
    PickleValue,
}

impl Codec {
    /// `"builtin"` or `"pickle"` (the `key_codec=` argument).
    pub fn parse_key(name: &str) -> PyResult<Self> {
        match name {
            "builtin" => Ok(Self::Key),
            "pickle" => Ok(Self::PickleKey),
            other => Err(PyValueError::new_err(format!(
                "key_codec must be 'builtin' or 'pickle', not {other:?}"
            ))),
        }
    }
}

/// Why an object has no encoding: its type (and where inside the key it was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unencodable {
    /// The type's name.
    pub type_name: String,
    /// The reason when it is not the type (too deep, pickling failed).
    pub detail: Option<String>,
}

impl std::fmt::Display for Unencodable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.detail {
            Some(d) => write!(f, "{d}"),
            None => write!(
                f,
                "a {} has no stable encoding (weir encodes None, bool, int, float, str, bytes \
                 and tuples of them, and lists and dicts as values; key_by(..., \
                 key_codec=\"pickle\") opts into pickled keys)",
                self.type_name
            ),
        }
    }
}

fn unencodable(x: &Bound<'_, PyAny>) -> Unencodable {
    Unencodable {
        type_name: x
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string()),
        detail: None,
    }
}

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn len_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

static PICKLE_DUMPS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
pub(super) static PICKLE_LOADS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn big_int(out: &mut Vec<u8>, x: &Bound<'_, PyAny>) -> Result<(), Unencodable> {
    let py = x.py();
    let fail = |e: PyErr| Unencodable {
        type_name: "int".to_owned(),
        detail: Some(format!("cannot encode an int: {e}")),
    };
    // Enough bytes for the value and its sign: bit_length // 8 + 1.
    let bits: u64 = x
        .call_method0(pyo3::intern!(py, "bit_length"))
        .and_then(|b| b.extract())
        .map_err(fail)?;
    let n = bits / 8 + 1;
    let kw = PyDict::new(py);
    kw.set_item("signed", true).map_err(fail)?;
    let b = x
        .call_method(pyo3::intern!(py, "to_bytes"), (n, "little"), Some(&kw))
        .map_err(fail)?;
    let b = b.cast::<PyBytes>().map_err(|e| fail(e.into()))?;
    len_bytes(out, BIG_INT, b.as_bytes());
    Ok(())
}

/// Appends the encoding of `x` to `out`; `normal` encodes numbers as `==` compares them (the
/// routing hash's input), otherwise exactly (what is persisted).
fn encode_into(
    out: &mut Vec<u8>,
    x: &Bound<'_, PyAny>,
    codec: Codec,
    normal: bool,
    depth: usize,
) -> Result<(), Unencodable> {
    if depth > MAX_DEPTH {
        return Err(Unencodable {
            type_name: "object".to_owned(),
            detail: Some(format!("nested deeper than {MAX_DEPTH} levels")),
        });
    }
    if let Ok(s) = x.cast_exact::<PyString>() {
        let s = s.to_str().map_err(|e| Unencodable {
            type_name: "str".to_owned(),
            detail: Some(format!("cannot encode a str: {e}")),
        })?;
        len_bytes(out, STR, s.as_bytes());
        return Ok(());
    }
    if let Ok(i) = x.cast_exact::<PyInt>() {
        match i.extract::<i64>() {
            Ok(v) => {
                out.push(INT);
                varint(out, zigzag(v));
            }
            Err(_) => big_int(out, i.as_any())?,
        }
        return Ok(());
    }
    if x.is_none() {
        out.push(NONE);
        return Ok(());
    }
    if let Ok(b) = x.cast_exact::<PyBool>() {
        let v = b.is_true();
        if normal {
            out.push(INT);
            varint(out, zigzag(i64::from(v)));
        } else {
            out.push(if v { TRUE } else { FALSE });
        }
        return Ok(());
    }
    if let Ok(f) = x.cast_exact::<PyFloat>() {
        let v = f.value();
        // An integral float equals the int (`1.0 == 1`): it routes like it.
        if normal && v.fract() == 0.0 && v.abs() < 9.0e15 {
            out.push(INT);
            varint(out, zigzag(v as i64));
        } else {
            out.push(FLOAT);
            out.extend_from_slice(&v.to_le_bytes());
        }
        return Ok(());
    }
    if let Ok(b) = x.cast_exact::<PyBytes>() {
        len_bytes(out, BYTES, b.as_bytes());
        return Ok(());
    }
    if let Ok(t) = x.cast_exact::<PyTuple>() {
        out.push(TUPLE);
        varint(out, t.len() as u64);
        for item in t.iter() {
            encode_into(out, &item, codec, normal, depth + 1)?;
        }
        return Ok(());
    }
    if matches!(codec, Codec::Value | Codec::PickleValue) {
        if let Ok(l) = x.cast_exact::<PyList>() {
            out.push(LIST);
            varint(out, l.len() as u64);
            for item in l.iter() {
                encode_into(out, &item, codec, normal, depth + 1)?;
            }
            return Ok(());
        }
        if let Ok(d) = x.cast_exact::<PyDict>() {
            out.push(DICT);
            varint(out, d.len() as u64);
            for (k, v) in d.iter() {
                encode_into(out, &k, codec, normal, depth + 1)?;
                encode_into(out, &v, codec, normal, depth + 1)?;
            }
            return Ok(());
        }
    }
    if matches!(codec, Codec::PickleKey | Codec::PickleValue) {
        let py = x.py();
        let fail = |e: PyErr| Unencodable {
            type_name: unencodable(x).type_name,
            detail: Some(format!("cannot pickle it: {e}")),
        };
        let b = PICKLE_DUMPS
            .import(py, "pickle", "dumps")
            .and_then(|d| d.call1((x, 5)))
            .map_err(fail)?;
        let b = b.cast::<PyBytes>().map_err(|e| fail(e.into()))?;
        len_bytes(out, PICKLE, b.as_bytes());
        return Ok(());
    }
    Err(unencodable(x))
}

/// The encoding of `x` (what a checkpoint stores).
pub fn encode(x: &Bound<'_, PyAny>, codec: Codec) -> Result<Vec<u8>, Unencodable> {
    let mut out = Vec::new();
    encode_into(&mut out, x, codec, false, 0)?;
    Ok(out)
}

thread_local! {
    /// The buffer keys are encoded into to be hashed (one per thread, reused: no allocation
    /// per element).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The stable routing hash of the key `x`: fixed-seed xxh3 of its normalized encoding.
pub fn stable_hash(x: &Bound<'_, PyAny>, codec: Codec) -> Result<u64, Unencodable> {
    // The common case first: a str key is hashed from its UTF-8 bytes behind the tag and length.
    SCRATCH.with(|buf| {
        let mut buf = buf.borrow_mut();
        buf.clear();
        encode_into(&mut buf, x, codec, true, 0)?;
        Ok(weir_state::stable_hash(&buf))
    })
}

/// Why the latest snapshot of a Python key or value failed (serde's binary formats drop the
/// message): the stage failure raised to Python carries it ([`take_refusal`]).
static REFUSAL: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Records why a key or value could not be checkpointed (and logs it).
pub(crate) fn note_refusal(msg: &str) {
    tracing::error!("{msg}");
    if let Ok(mut r) = REFUSAL.lock() {
        *r = Some(msg.to_owned());
    }
}

/// The reason [`note_refusal`] recorded last, taken.
pub(crate) fn take_refusal() -> Option<String> {
    REFUSAL.lock().ok().and_then(|mut r| r.take())
}

/// Reads a serde byte string (keys and values travel in snapshots as their encoding).
pub(crate) struct BytesVisitor;

impl serde::de::Visitor<'_> for BytesVisitor {
    type Value = Vec<u8>;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the bytes of a weir key or value encoding")
    }
    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
        Ok(v.to_vec())
    }
    fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
        Ok(v)
    }
}

/// A Python value in a snapshot (a keyed accumulator, a window's contents): its
/// [`Codec::Value`] encoding; an object the codec cannot encode refuses the snapshot, naming
/// its type (the engine fails the stage with it: never a checkpoint without the state).
impl serde::Serialize for crate::PyObj {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match crate::gil::with(|py| encode(self.0.bind(py), Codec::Value)) {
            Ok(b) => s.serialize_bytes(&b),
            Err(e) => {
                // Binary formats (postcard) drop a custom message: it is recorded too.
                let msg = format!("cannot checkpoint a value: {e}");
                note_refusal(&msg);
                Err(serde::ser::Error::custom(msg))
            }
        }
    }
}

impl<'de> serde::Deserialize<'de> for crate::PyObj {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let b = d.deserialize_bytes(BytesVisitor)?;
        crate::gil::with(|py| {
            decode(py, &b)
                .map(crate::PyObj::from_bound)
                .map_err(|e| serde::de::Error::custom(format!("cannot restore a value: {e}")))
        })
    }
}
