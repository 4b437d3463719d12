//! `recover` and `recover_with_retries` over the Rust operators, and the wrapper that lets
//! generic substream operators start Python stages.

use super::pyops::to_source;
use crate::dispatch::RunCtx;
use crate::mat::MatValue;
use crate::obj::{PyObj, py_cause, user_error};
use crate::pyfn::PyFn;
use crate::stages::unit_mat;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use std::sync::Arc;
use weir_graph::{
    AsyncIo, AsyncLogic, ErasedInput, ErasedOutput, ErrorKind, Flow, Module, NodeKind,
    RouterFactory, StageError, SubMaterializer,
};
use weir_operators::simple::try_recover;
use weir_operators::substream::try_recover_with_retries;

// ---------------------------------------------------------------------------------------------
// Run context for substreams

struct CtxSub {
    inner: Arc<dyn SubMaterializer>,
    ctx: RunCtx,
}

impl SubMaterializer for CtxSub {
    fn source(&self, module: Arc<Module>) -> Result<Box<dyn ErasedInput>, StageError> {
        self.ctx.enter(|| self.inner.source(module))
    }
    fn flow(
        &self,
        module: Arc<Module>,
        input: Arc<dyn RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        self.ctx.enter(|| self.inner.flow(module, input))
    }
    fn flow_detached(
        &self,
        module: Arc<Module>,
        input: Arc<dyn RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        self.ctx.enter(|| self.inner.flow_detached(module, input))
    }
}

struct CtxLogic {
    inner: Box<dyn AsyncLogic>,
    ctx: Option<RunCtx>,
}

impl AsyncLogic for CtxLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        if let Some(ctx) = self.ctx {
            io.sub = Arc::new(CtxSub { inner: io.sub, ctx });
        }
        self.inner.run(io)
    }
}

/// `m` with the logic of each asynchronous stage wrapped by `wrap`, given the Python run
/// current when the stage materializes.
pub fn wrap_async_stages(
    m: &Module,
    wrap: fn(Box<dyn AsyncLogic>, Option<RunCtx>) -> Box<dyn AsyncLogic>,
) -> Module {
    let mut m = m.clone();
    for node in &mut m.nodes {
        if let NodeKind::Async(f) = &node.kind {
            let f = Arc::clone(f);
            node.kind = NodeKind::Async(Arc::new(move |info| {
                let ctx = RunCtx::current().ok();
                let (inner, mat) = f(info)?;
                Ok((wrap(inner, ctx), mat))
            }));
        }
    }
    m
}

/// Makes the asynchronous stages of `flow` materialize their substreams inside the Python run
/// that materialized them (Python stages find their dispatcher through [`RunCtx`]).
pub fn with_run_ctx<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    flow: Flow<I, O, M>,
) -> Flow<I, O, M> {
    let m = wrap_async_stages(flow.module(), |inner, ctx| {
        Box::new(CtxLogic { inner, ctx })
    });
    Flow::from_module(Arc::new(m))
}

/// The Python exception for a stage error: the original one when user code raised it.
pub fn exception_of(py: Python<'_>, e: &StageError) -> Py<PyAny> {
    match py_cause(e) {
        Some(c) => c.value(py).clone().into_any().unbind(),
        None => crate::errors::to_py_err(py, e)
            .value(py)
            .clone()
            .into_any()
            .unbind(),
    }
}

// ---------------------------------------------------------------------------------------------
// recover

/// `f(exception)` for an upstream failure `e`: `None` when it returned `None` (or for a
/// cancellation, which is never recovered); its exception when it raised.
fn call_recovery<'py>(
    py: Python<'py>,
    f: &PyFn,
    e: &StageError,
) -> Result<Option<Bound<'py, PyAny>>, StageError> {
    if e.kind() == ErrorKind::Cancelled {
        return Ok(None);
    }
    let v = f
        .get()
        .bind(py)
        .call1((exception_of(py, e),))
        .map_err(|x| user_error(py, x))?;
    Ok((!v.is_none()).then_some(v))
}

/// `recover(f)`: on upstream failure emits `f(exception)` and completes (`None` propagates);
/// the Rust `try_recover`.
pub fn recover_flow(f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    let f = PyFn::new(f);
    let r = try_recover(move |e: &StageError| {
        crate::gil::with(|py| Ok(call_recovery(py, &f, e)?.map(PyObj::from_bound)))
    });
    unit_mat(r)
}

/// `recover_with_retries(attempts, f)`: on failure continues with the source `f(exception)`;
/// the Rust `try_recover_with_retries`, materializing the source in the Python run.
pub fn recover_retries_flow(attempts: usize, f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    let f = PyFn::new(f);
    let r = try_recover_with_retries(attempts, move |e: &StageError| {
        crate::gil::with(|py| match call_recovery(py, &f, e)? {
            Some(v) => to_source(&v).map(Some).map_err(|x| user_error(py, x)),
            None => Ok(None),
        })
    });
    unit_mat(with_run_ctx(r))
}
