//! `weir._native`: the extension module of the `weir` Python package. Everything lives in the
//! `weir-py` crate; this crate only declares the module.

use pyo3::prelude::*;

/// The native half of the `weir` package.
// `gil_used = true` stays until there is a free-threaded build: the abi3 wheel cannot load on
// free-threaded 3.13t/3.14t, and the Python layer still relies on the GIL between its threads
// (docs/python.md, "Free-threaded CPython").
#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    weir_py::register(m)
}
