//! `weir._native`: the extension module of the `weir` Python package. Everything lives in the
//! `weir-py` crate; this crate only declares the module.

use pyo3::prelude::*;

/// The native half of the `weir` package.
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    weir_py::register(m)
}
