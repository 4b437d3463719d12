//! Python-specific pieces behind the operators of [`super`]: tuples, the key interning of
//! `group_by` (a [`PyOp`] on the dispatcher) and sources made from what user code returned.

use crate::dsl::{Bp, PyBlueprint};
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::stages::{Batch, PyOp, element_failed, iter_source};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use weir_graph::{Source, StageCx, StageError};

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
    let native = if obj.is_instance_of::<PyBlueprint>() {
        Some(obj.clone())
    } else if obj.hasattr("_flush")? && obj.hasattr("_n")? {
        Some(obj.getattr("_n")?)
    } else {
        None
    };
    if let Some(n) = native {
        let n = n.cast::<PyBlueprint>()?;
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
