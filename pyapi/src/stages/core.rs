//! The generic machinery of Python stages: supervision environment, the `PyOp` trait, shared
//! job state, the job pipeline and the generic flow stage.

use crate::mat::MatValue;
use crate::obj::{PyObj, short_repr, user_error_on};
use pyo3::prelude::*;
use pyo3::types::PyList;
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
/// for [`run_op`], which feeds it to the op again after a Restart.
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
    /// `on_batch` over a Python list, appending to the list `out` (partial output stays there
    /// when an element fails), for ops that run at C speed on lists (`map`, `filter`): a fused
    /// group of such ops never converts a batch to a `Vec` in between. `None`: not supported.
    fn on_list<'py>(
        &mut self,
        _input: &Bound<'py, PyList>,
        _out: &Bound<'py, PyList>,
        _cx: &mut StageCx<'_>,
    ) -> Option<Result<(), StageError>> {
        None
    }
    /// Whether [`PyOp::on_list`] is supported.
    fn list_capable(&self) -> bool {
        false
    }
    /// Emitted once before the first batch (e.g. `scan`'s zero).
    fn on_start(&mut self, _py: Python<'_>, _out: &mut Vec<O>) {}
    /// Supervision restarted the stage: forget accumulated state.
    fn reset(&mut self, _py: Python<'_>) {}
}

/// Creates a fresh op for each materialization (called with the GIL held).
pub type OpFactory<I, O> = Arc<dyn Fn(Python<'_>, &StageInfo) -> Box<dyn PyOp<I, O>> + Send + Sync>;

/// Runs `op` over `input` under `cx`'s supervision: when the op stops on an error the policy
/// says to restart (the failing element already dead-lettered), the op is reset and goes on with
/// the rest of the batch, so only the failing element is gone; any other error is returned (the
/// output before the failing element stays in `out`).
pub fn run_op<I: 'static, O: 'static>(
    py: Python<'_>,
    op: &mut dyn PyOp<I, O>,
    input: Vec<I>,
    out: &mut Vec<O>,
    cx: &mut StageCx<'_>,
) -> Result<(), StageError> {
    let mut it = input.into_iter();
    loop {
        let before = it.len();
        match op.on_batch(py, &mut it, out, cx) {
            Err(e)
                if e.kind() != weir_graph::ErrorKind::Cancelled
                    && cx.decide(&e) == Directive::Restart =>
            {
                op.reset(py);
                if it.len() >= before && it.len() > 0 {
                    // Restarting without having taken an element would never end: fail loudly
                    // rather than drop the rest.
                    return Err(e);
                }
                if it.len() == 0 {
                    return Ok(());
                }
            }
            other => return other,
        }
    }
}

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

/// How many jobs a Python stage keeps queued on the dispatcher, so the dispatcher never waits
/// for a tokio task to wake up between batches.
pub const PIPELINE_DEPTH: usize = 4;

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
