//! The argument tuple of handler calls, reused from one message to the next.
//!
//! The extension targets the stable ABI of Python 3.10 (abi3), which has no vectorcall: every
//! call from Rust builds a tuple of its arguments. A handler call is `f(actor, ctx, msg)` with
//! the same first two arguments for every message of an actor, so the tuple is made once and
//! only its last item is replaced, as long as nothing else holds it (a handler taking `*args`
//! and keeping them makes the next call build a new one).

#![allow(unsafe_code)]

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyTuple;

static RETURNED: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Hands what a handler returned (when not `None`) to `weir._actors._returned`, which runs the
/// coroutine of an `async def` handler up to its first `await ctx.receive(...)`.
pub(crate) fn returned(
    py: Python<'_>,
    ctx: &Bound<'_, PyAny>,
    r: Bound<'_, PyAny>,
) -> PyResult<()> {
    if r.is_none() {
        return Ok(());
    }
    RETURNED
        .import(py, "weir._actors", "_returned")?
        .call1((ctx, r))
        .map(drop)
}

/// The number of references to `t`.
fn refcnt(t: &Py<PyTuple>) -> isize {
    // SAFETY: `t` is a live object (a reference is held), so reading its count is sound.
    unsafe { pyo3::ffi::Py_REFCNT(t.as_ptr()) }
}

/// `(actor, ctx, msg)` for one actor's handler calls.
#[derive(Default)]
pub(crate) struct HandlerArgs(Option<Py<PyTuple>>);

impl HandlerArgs {
    /// Calls `f(inst, ctx, msg)`.
    pub(crate) fn call(
        &mut self,
        py: Python<'_>,
        f: &Bound<'_, PyAny>,
        inst: &Bound<'_, PyAny>,
        ctx: &Bound<'_, PyAny>,
        msg: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let args = match self.0.take() {
            Some(t) if refcnt(&t) == 1 => t,
            _ => PyTuple::new(py, [inst, ctx, &py.None().into_bound(py)])?.unbind(),
        };
        Self::set_last(py, &args, msg)?;
        let r = f.call(args.bind(py), None);
        // Not kept alive by the tuple until the next message.
        if refcnt(&args) == 1 {
            Self::set_last(py, &args, &py.None().into_bound(py))?;
            self.0 = Some(args);
        }
        returned(py, ctx, r?)
    }

    /// Replaces the last item of `args`, which nothing else references.
    fn set_last(py: Python<'_>, args: &Py<PyTuple>, x: &Bound<'_, PyAny>) -> PyResult<()> {
        let item = x.clone().into_ptr();
        // SAFETY: `args` is a live 3-tuple; `PyTuple_SetItem` steals the new reference `item`
        // (also when it fails) and releases the old item. It refuses (returns -1, raising
        // `SystemError`) a tuple referenced elsewhere, so a tuple seen by Python code is never
        // changed; the callers only pass a tuple whose only reference they hold.
        let rc = unsafe { pyo3::ffi::PyTuple_SetItem(args.as_ptr(), 2, item) };
        if rc == 0 {
            Ok(())
        } else {
            Err(PyErr::fetch(py))
        }
    }
}
