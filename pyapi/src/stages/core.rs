//! The generic machinery of Python stages: the supervision environment of asynchronous ones,
//! the `PyOp` trait and [`py_flow`], which runs a `PyOp` as a flow logic the engine fuses.

use crate::mat::MatValue;
use crate::obj::{PyObj, short_repr, user_error_on};
use pyo3::prelude::*;
use std::sync::Arc;
use weir_graph::{
    AsyncIo, Clock, Directive, Flow, FlowLogic, StageCx, StageError, StageInfo, Supervision,
};

/// What a job needs to apply supervision: the stage's identity, clock and policy.
pub struct StageEnv {
    pub(crate) info: StageInfo,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) sup: Option<Supervision>,
    pub(crate) batch: usize,
}

impl StageEnv {
    pub(crate) fn from_io(io: &AsyncIo) -> Arc<Self> {
        Arc::new(Self {
            info: io.info.clone(),
            clock: Arc::clone(&io.clock),
            sup: io.supervision.clone(),
            batch: io.batch_size,
        })
    }
    /// A stage context for reporting element failures.
    pub fn cx(&self) -> StageCx<'_> {
        StageCx::new(&self.info, &*self.clock, self.sup.as_ref(), self.batch)
    }
}

/// Reports a failure of user code on `x` through the stage's supervision (call with the GIL).
pub fn element_failed(
    py: Python<'_>,
    cx: &mut StageCx<'_>,
    err: PyErr,
    x: Option<PyObj>,
) -> Result<(), StageError> {
    let e = user_error_on(py, err, x.as_ref());
    if e.kind() == weir_graph::ErrorKind::Cancelled {
        return Err(e);
    }
    let repr = x.as_ref().map(|x| short_repr(py, x));
    cx.element_failed(
        e,
        x.map(|x| Box::new(x) as Box<dyn std::any::Any + Send>),
        repr,
    )
}

/// The elements of a batch an op consumes: what it leaves (returning early on an error) stays
/// for the engine, which feeds it to the op again after a Resume (or to a new op after a Restart).
pub type Batch<I> = std::vec::IntoIter<I>;

/// A batch transformation running on the dispatcher with the GIL held.
pub trait PyOp<I, O>: Send + 'static {
    /// Takes elements from `input`, appending results to `out`. Failures go through
    /// `cx.element_failed`; an error returned from it is returned at once, leaving the elements
    /// after the failing one in `input`.
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut Batch<I>,
        out: &mut Vec<O>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// Upstream completed: emit held state.
    fn on_finish(
        &mut self,
        _py: Python<'_>,
        _out: &mut Vec<O>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        Ok(())
    }
    /// Emitted once before the first batch (or ahead of the end or a failure, when none came).
    fn on_start(&mut self, _py: Python<'_>, _out: &mut Vec<O>) {}
    /// See [`FlowLogic::expands`] (`flat_map`).
    fn expands(&self) -> bool {
        false
    }
}

/// Creates a fresh op for each materialization (called with the GIL held).
pub type OpFactory<I, O> = Arc<dyn Fn(Python<'_>, &StageInfo) -> Box<dyn PyOp<I, O>> + Send + Sync>;

/// Reports a failure inside a stateless per-element loop, where Restart is the same as Resume:
/// the element is dead-lettered and the loop goes on (Stop returns the error).
pub(crate) fn element_failed_stateless(
    py: Python<'_>,
    cx: &mut StageCx<'_>,
    err: PyErr,
    x: Option<PyObj>,
) -> Result<(), StageError> {
    match element_failed(py, cx, err, x) {
        Err(e)
            if e.kind() != weir_graph::ErrorKind::Cancelled
                && cx.decide(&e) == Directive::Restart =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Output of a piece of work, and the failure that ended it early (if any): what came before
/// the failing element is emitted ahead of the error, as it would be one element at a time.
pub(crate) type Partial<R> = (R, Option<StageError>);

/// Upstream failed with `e`: batches that arrived before it are still processed (a stage's queued
/// jobs finish and their output is emitted) and the stage fails with `e` once they are done, so
/// what reaches downstream does not depend on timing. A cancellation is returned at once.
pub(crate) fn drain_before(
    e: StageError,
    upstream_done: &mut bool,
    upstream_error: &mut Option<StageError>,
) -> Option<StageError> {
    if e.kind() == weir_graph::ErrorKind::Cancelled {
        return Some(e);
    }
    *upstream_done = true;
    *upstream_error = Some(e);
    None
}

/// A [`PyOp`] as a synchronous flow logic: the engine fuses it with its neighbours and calls
/// it on the run's Python dispatcher, whose serving thread holds the GIL.
struct OpLogic<I, O> {
    op: Box<dyn PyOp<I, O>>,
    started: bool,
}

impl<I: Send + 'static, O: Send + 'static> OpLogic<I, O> {
    fn start(&mut self, py: Python<'_>, out: &mut Vec<O>) {
        if !self.started {
            self.started = true;
            self.op.on_start(py, out);
        }
    }
}

impl<I: Send + 'static, O: Send + 'static> FlowLogic<I, O> for OpLogic<I, O> {
    fn expands(&self) -> bool {
        self.op.expands()
    }

    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.start(py, out);
            let mut it = std::mem::take(input).into_iter();
            let r = self.op.on_batch(py, &mut it, out, cx);
            if r.is_err() {
                // The rest goes back to the engine, which feeds it on after a Resume/Restart.
                input.extend(it);
            }
            r
        })
    }

    fn on_finish(&mut self, out: &mut Vec<O>, cx: &mut StageCx<'_>) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.start(py, out);
            self.op.on_finish(py, out, cx)
        })
    }

    fn on_upstream_error(
        &mut self,
        error: StageError,
        out: &mut Vec<O>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // What the stage emits when it starts (`scan`'s zero) comes ahead of the failure.
        crate::gil::with(|py| self.start(py, out));
        Err(error)
    }
}

/// A flow stage running `factory`'s op in the engine's fused chain on the run's dispatcher.
pub fn py_flow<I: Send + 'static, O: Send + 'static>(
    name: &str,
    factory: OpFactory<I, O>,
) -> Flow<I, O, MatValue> {
    Flow::from_logic(name, move |info| {
        let op = crate::gil::with(|py| factory(py, info));
        Ok((OpLogic { op, started: false }, MatValue::Unit))
    })
}

/// A generic flow over `T` (e.g. a Rust operator) with its materialized value dropped.
pub fn unit_mat<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    f: Flow<I, O, M>,
) -> Flow<I, O, MatValue> {
    f.map_materialized_value(|_| MatValue::Unit)
}
