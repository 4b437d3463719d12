//! Decoding the codec's bytes back into Python objects (restore, `weir.codec.decode`).

use super::*;
use pyo3::exceptions::PyValueError;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};

/// A malformed encoding.
fn bad(what: impl std::fmt::Display) -> PyErr {
    PyValueError::new_err(format!("cannot decode a weir key or value: {what}"))
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> PyResult<u8> {
        let v = *self.b.get(self.pos).ok_or_else(|| bad("truncated"))?;
        self.pos += 1;
        Ok(v)
    }
    fn varint(&mut self) -> PyResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(bad("varint too long"))
    }
    fn take(&mut self, n: u64) -> PyResult<&'a [u8]> {
        let n = usize::try_from(n).map_err(|_| bad("length too large"))?;
        let end = self
            .pos
            .checked_add(n)
            .ok_or_else(|| bad("length too large"))?;
        let s = self.b.get(self.pos..end).ok_or_else(|| bad("truncated"))?;
        self.pos = end;
        Ok(s)
    }
    fn sized(&mut self) -> PyResult<&'a [u8]> {
        let n = self.varint()?;
        self.take(n)
    }
    fn count(&mut self) -> PyResult<usize> {
        let n = self.varint()?;
        // Every item takes at least one byte: a count beyond the rest is malformed.
        if n > (self.b.len() - self.pos) as u64 {
            return Err(bad("item count beyond the data"));
        }
        Ok(n as usize)
    }

    fn value<'py>(&mut self, py: Python<'py>, depth: usize) -> PyResult<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(bad("nested too deep"));
        }
        Ok(match self.byte()? {
            NONE => py.None().into_bound(py),
            FALSE => PyBool::new(py, false).to_owned().into_any(),
            TRUE => PyBool::new(py, true).to_owned().into_any(),
            INT => {
                let z = self.varint()?;
                let v = ((z >> 1) as i64) ^ -((z & 1) as i64);
                v.into_pyobject(py)?.into_any()
            }
            BIG_INT => {
                let b = PyBytes::new(py, self.sized()?);
                let kw = PyDict::new(py);
                kw.set_item("signed", true)?;
                py.get_type::<PyInt>()
                    .call_method("from_bytes", (b, "little"), Some(&kw))?
            }
            FLOAT => {
                let b = self.take(8)?;
                let mut a = [0u8; 8];
                a.copy_from_slice(b);
                PyFloat::new(py, f64::from_le_bytes(a)).into_any()
            }
            STR => {
                let s = std::str::from_utf8(self.sized()?).map_err(bad)?;
                PyString::new(py, s).into_any()
            }
            BYTES => PyBytes::new(py, self.sized()?).into_any(),
            TUPLE => {
                let n = self.count()?;
                let items = (0..n)
                    .map(|_| self.value(py, depth + 1))
                    .collect::<PyResult<Vec<_>>>()?;
                PyTuple::new(py, items)?.into_any()
            }
            LIST => {
                let n = self.count()?;
                let items = (0..n)
                    .map(|_| self.value(py, depth + 1))
                    .collect::<PyResult<Vec<_>>>()?;
                PyList::new(py, items)?.into_any()
            }
            DICT => {
                let n = self.count()?;
                let d = PyDict::new(py);
                for _ in 0..n {
                    let k = self.value(py, depth + 1)?;
                    let v = self.value(py, depth + 1)?;
                    d.set_item(k, v)?;
                }
                d.into_any()
            }
            PICKLE => {
                let b = PyBytes::new(py, self.sized()?);
                PICKLE_LOADS.import(py, "pickle", "loads")?.call1((b,))?
            }
            tag => return Err(bad(format!("unknown tag 0x{tag:02x}"))),
        })
    }
}

/// The object `bytes` encode (all of them must be used).
pub fn decode<'py>(py: Python<'py>, bytes: &[u8]) -> PyResult<Bound<'py, PyAny>> {
    let mut r = Reader { b: bytes, pos: 0 };
    let v = r.value(py, 0)?;
    if r.pos != bytes.len() {
        return Err(bad(format!("{} trailing bytes", bytes.len() - r.pos)));
    }
    Ok(v)
}
