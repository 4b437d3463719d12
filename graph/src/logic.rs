//! The operator-authoring traits: synchronous batch logics for sources, flows and sinks,
//! their type-erased forms used by the engine, and the stage context they receive.

use crate::attributes::{DeadLetter, Directive, Supervision};
use crate::batch::downcast_vec;
use crate::snapshot::stateless;
use crate::{Clock, Control, Snapshot, StageError};
use std::any::Any;
use std::fmt;
use std::task::{Context, Poll};
use std::time::Duration;

/// Identity of one running stage instance (one subtask of one blueprint node).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageInfo {
    /// Stable id of the stage: its uid's hash, or derived from its kind and upstream topology
    /// (see [`crate::Module::stage_ids`]).
    pub id: crate::StageId,
    /// Stage name.
    pub name: String,
    /// Path used in errors and metrics: `name#position`.
    pub path: String,
    /// Position of the node in the flattened blueprint.
    pub index: usize,
    /// Subtask index of this instance.
    pub subtask: usize,
    /// Number of subtasks of this stage.
    pub parallelism: usize,
    /// The run's services (empty outside a run).
    pub services: crate::Services,
}

impl StageInfo {
    /// Info for a stage at `index` named `name`, subtask 0 of 1.
    pub fn new(name: &str, index: usize) -> Self {
        Self {
            id: crate::StageId::derive(name, index),
            name: name.to_owned(),
            path: format!("{name}#{index}"),
            index,
            subtask: 0,
            parallelism: 1,
            services: crate::Services::new(),
        }
    }
}

/// What a stage may use while handling a batch: its identity, time and the supervision policy.
pub struct StageCx<'a> {
    info: &'a StageInfo,
    clock: &'a dyn Clock,
    supervision: Option<&'a Supervision>,
    batch_size: usize,
}

impl fmt::Debug for StageCx<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageCx")
            .field("stage", &self.info.path)
            .finish()
    }
}

impl<'a> StageCx<'a> {
    /// A context for `info` (built by the engine or a test harness).
    pub fn new(
        info: &'a StageInfo,
        clock: &'a dyn Clock,
        supervision: Option<&'a Supervision>,
        batch_size: usize,
    ) -> Self {
        Self {
            info,
            clock,
            supervision,
            batch_size,
        }
    }
    /// The stage's identity.
    pub fn info(&self) -> &StageInfo {
        self.info
    }
    /// The clock's current time.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }
    /// The clock.
    pub fn clock(&self) -> &dyn Clock {
        self.clock
    }
    /// Target batch size in rows.
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }
    /// Whether the stage runs under a supervision policy (one that may Resume or Restart).
    pub fn supervised(&self) -> bool {
        self.supervision.is_some()
    }
    /// What the supervision policy says about `err` (Stop without a policy).
    pub fn decide(&self, err: &StageError) -> Directive {
        self.supervision.map_or(Directive::Stop, |s| s.decide(err))
    }

    /// Reports that user code failed on one element. Under Resume the element goes to the dead-letter
    /// sink and `Ok` lets the stage go on; under Restart it goes there too and the error comes back so
    /// the stage returns it (leaving the rest of its input) and the engine recreates the logic; under
    /// Stop the error comes back (with the stage path and `repr`, the element's rendering) for the
    /// stage to return. Without `repr`, an element whose type renders is rendered here. A
    /// cancellation is not an element failure: it comes back at once, unsupervised.
    pub fn element_failed(
        &mut self,
        error: StageError,
        element: Option<Box<dyn Any + Send>>,
        repr: Option<String>,
    ) -> Result<(), StageError> {
        if error.kind() == crate::ErrorKind::Cancelled {
            return Err(error);
        }
        let error = error.with_stage(&self.info.path);
        let repr = repr.or_else(|| element.as_deref().and_then(|x| crate::render_any(x)));
        let error = match &repr {
            Some(r) => error.with_element(r),
            None => error,
        };
        let directive = self.decide(&error);
        if directive == Directive::Stop {
            return Err(error);
        }
        tracing::warn!(stage = %self.info.path, error = %error, ?directive, "element failure supervised");
        if let Some(dl) = self.supervision.and_then(|s| s.dead_letters()) {
            dl.send(DeadLetter {
                stage: self.info.path.clone(),
                error: error.clone(),
                element,
                repr,
            });
        }
        match directive {
            Directive::Restart => Err(error),
            _ => Ok(()),
        }
    }

    /// Runs `f` on every element of `input`; an element whose `f` fails is handed to
    /// [`StageCx::element_failed`]. Under Stop and Restart, and when `f` panics, the unprocessed
    /// rest stays in `input`.
    pub fn each_fallible<I: Send + 'static>(
        &mut self,
        input: &mut Vec<I>,
        repr: Option<fn(&I) -> String>,
        mut f: impl FnMut(&I) -> Result<Option<()>, StageError>,
        mut keep: impl FnMut(I),
    ) -> Result<(), StageError> {
        crate::consume_ref(input, |it| {
            while let Some(x) = it.as_slice().first() {
                let r = f(x);
                let Some(x) = it.next() else { break };
                match r {
                    Ok(Some(())) => keep(x),
                    Ok(None) => {}
                    Err(e) => {
                        let r = repr.map(|r| r(&x));
                        self.element_failed(e, Some(Box::new(x)), r)?;
                    }
                }
            }
            Ok(())
        })
    }
}

/// Whether a source has more to emit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// More elements may follow.
    More,
    /// The source is exhausted (elements pushed in this call are still delivered).
    Done,
}

/// A source's running logic: fills `out` with up to `scx.batch_size()` elements per poll.
pub trait SourceLogic<T>: Send + 'static {
    /// Pushes ready elements into `out`; `Pending` when none is ready (the waker is registered).
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<T>,
    ) -> Poll<Result<Step, StageError>>;
    /// Ready once the next poll would end the source (complete with nothing left, or fail)
    /// without emitting, so the end needs no demand; registers the waker otherwise.
    fn poll_ended(&mut self, _cx: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
    /// The instance's state, for a checkpoint; `None` (the default) for a stateless stage.
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// Restores the state saved by [`Self::snapshot`] into a fresh instance (before it runs).
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// Restores a fresh instance from every old subtask's state when the job now runs on
    /// another number of processes (a cluster job rescaled through a savepoint): `share` is
    /// this subtask's place among the new ones, and the instance takes the part of the old
    /// states that falls to it (a file source: the files it reads now, with their positions).
    /// The default refuses.
    fn restore_redistributed(
        &mut self,
        _snapshots: &[Snapshot],
        _share: crate::Share,
    ) -> Result<(), StageError> {
        Err(crate::snapshot::not_rescalable())
    }
    /// Called once when the stage stops, whatever the reason.
    fn post_stop(&mut self) {}
}

/// A synchronous one-in-one-out logic that processes a whole batch per call.
pub trait FlowLogic<I, O>: Send + 'static {
    /// Consumes `input` (leaving it empty, or leaving the unprocessed rest on error) and appends to `out`.
    fn on_batch(
        &mut self,
        input: &mut Vec<I>,
        out: &mut Vec<O>,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// Upstream completed: emit whatever is held.
    fn on_finish(&mut self, _out: &mut Vec<O>, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        Ok(())
    }
    /// Whether, after an `on_finish`, the stage has more to emit: the engine then sends what it
    /// emitted downstream (waiting for credit, so memory stays bounded by a chunk) and calls
    /// `on_finish` again. Default: everything is emitted by one call.
    fn finishing(&self) -> bool {
        false
    }
    /// Upstream failed: return `Ok` to recover (the stage then completes) or the error to propagate.
    fn on_upstream_error(
        &mut self,
        error: StageError,
        _out: &mut Vec<O>,
        _scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        Err(error)
    }
    /// The stage wants no more input (e.g. `take` reached its count): upstream is cancelled.
    fn is_done(&self) -> bool {
        false
    }
    /// How many more input elements the stage can still use (`take(n)`: what is left of `n`);
    /// bounds what its island asks a demand-driven upstream for. Unbounded by default.
    fn wants(&self) -> usize {
        usize::MAX
    }
    /// Whether one input element may yield several outputs (`flat_map`, `intersperse`,
    /// framing): on a demand-exact path its island then takes one element at a time, so the
    /// stage never takes an element before the consumer asked for what came before it.
    fn expands(&self) -> bool {
        false
    }
    /// A control message reached the stage, after every batch before it: the stage may emit
    /// into `out` first (those rows go downstream ahead of the control), and returns the
    /// control to pass on (the default passes it on unchanged) or `None` to hold it back.
    fn on_control(
        &mut self,
        control: Control,
        _out: &mut Vec<O>,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        Ok(Some(control))
    }
    /// The instance's state, for a checkpoint; `None` (the default) for a stateless stage.
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// Restores the state saved by [`Self::snapshot`] into a fresh instance (before it runs).
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// Restores a fresh instance whose stage runs at another parallelism than the checkpoint's:
    /// `snapshots` holds every old subtask's state, `key_groups` the groups this subtask owns
    /// now. A keyed stage keeps the state of those groups; the default refuses, since state
    /// that is not keyed cannot be split.
    fn restore_rescaled(
        &mut self,
        _snapshots: &[Snapshot],
        _key_groups: crate::KeyGroupRange,
    ) -> Result<(), StageError> {
        Err(crate::snapshot::not_rescalable())
    }
    /// Called once when the stage stops, whatever the reason.
    fn post_stop(&mut self) {}
}

/// A synchronous sink logic consuming whole batches.
pub trait SinkLogic<T>: Send + 'static {
    /// Consumes a batch.
    fn on_batch(&mut self, input: &mut Vec<T>, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// Upstream completed.
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// The stream failed (upstream or this sink): complete the materialized value with the error.
    fn on_error(&mut self, error: &StageError);
    /// The sink wants no more input (e.g. `head`): upstream is cancelled.
    fn is_done(&self) -> bool {
        false
    }
    /// How many more elements the sink can still use (`head`: 1); bounds what its island asks
    /// a demand-driven upstream for. Unbounded by default.
    fn wants(&self) -> usize {
        usize::MAX
    }
    /// A control message reached the sink, after every batch before it (ignored by default).
    fn on_control(&mut self, _control: Control, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        Ok(())
    }
    /// The instance's state, for a checkpoint; `None` (the default) for a stateless stage.
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// Restores the state saved by [`Self::snapshot`] into a fresh instance (before it runs).
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// Called once when the stage stops, whatever the reason.
    fn post_stop(&mut self) {}
}

/// A source logic with its element type erased; it owns its output buffer.
pub trait ErasedSource: Send {
    /// See [`SourceLogic::poll_next`]; fills the buffer returned by [`ErasedSource::buffer`].
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
    ) -> Poll<Result<Step, StageError>>;
    /// The output buffer (a `Vec<T>`).
    fn buffer(&mut self) -> &mut dyn Any;
    /// Rows currently in the buffer.
    fn buffered(&self) -> usize;
    /// See [`SourceLogic::poll_ended`].
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// See [`SourceLogic::snapshot`].
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// See [`SourceLogic::restore`].
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// See [`SourceLogic::restore_redistributed`].
    fn restore_redistributed(
        &mut self,
        _snapshots: &[Snapshot],
        _share: crate::Share,
    ) -> Result<(), StageError> {
        Err(crate::snapshot::not_rescalable())
    }
    /// See [`SourceLogic::post_stop`].
    fn post_stop(&mut self);
}

/// A flow logic with its element types erased; it owns its output buffer.
pub trait ErasedFlow: Send {
    /// Processes `input` (a `Vec<I>`) into the own output buffer.
    fn on_batch(&mut self, input: &mut dyn Any, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// See [`FlowLogic::on_finish`].
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// See [`FlowLogic::finishing`].
    fn finishing(&self) -> bool {
        false
    }
    /// See [`FlowLogic::on_upstream_error`].
    fn on_upstream_error(
        &mut self,
        error: StageError,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// The output buffer (a `Vec<O>`).
    fn output(&mut self) -> &mut dyn Any;
    /// Rows currently in the output buffer.
    fn output_len(&self) -> usize;
    /// Moves the rows of `other` (a `Vec<O>`, e.g. the buffer of a replaced instance) into this output.
    fn adopt_output(&mut self, other: &mut dyn Any);
    /// Rows of the input type currently held in `input`.
    fn input_len(&self, input: &mut dyn Any) -> usize;
    /// Drops the rows held in `input` (a stage that fails without consuming them).
    fn clear_input(&self, input: &mut dyn Any);
    /// See [`FlowLogic::is_done`].
    fn is_done(&self) -> bool;
    /// See [`FlowLogic::wants`].
    fn wants(&self) -> usize;
    /// See [`FlowLogic::expands`].
    fn expands(&self) -> bool;
    /// See [`FlowLogic::on_control`]; emits into the own output buffer.
    fn on_control(
        &mut self,
        control: Control,
        _scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        Ok(Some(control))
    }
    /// See [`FlowLogic::snapshot`].
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// See [`FlowLogic::restore`].
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// See [`FlowLogic::restore_rescaled`].
    fn restore_rescaled(
        &mut self,
        _snapshots: &[Snapshot],
        _key_groups: crate::KeyGroupRange,
    ) -> Result<(), StageError> {
        Err(crate::snapshot::not_rescalable())
    }
    /// See [`FlowLogic::post_stop`].
    fn post_stop(&mut self);
}

/// A sink logic with its element type erased.
pub trait ErasedSink: Send {
    /// Consumes `input` (a `Vec<T>`).
    fn on_batch(&mut self, input: &mut dyn Any, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// See [`SinkLogic::on_finish`].
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError>;
    /// See [`SinkLogic::on_error`].
    fn on_error(&mut self, error: &StageError);
    /// Rows of the input type currently held in `input`.
    fn input_len(&self, input: &mut dyn Any) -> usize;
    /// Drops the rows held in `input`.
    fn clear_input(&self, input: &mut dyn Any);
    /// See [`SinkLogic::is_done`].
    fn is_done(&self) -> bool;
    /// See [`SinkLogic::wants`].
    fn wants(&self) -> usize;
    /// See [`SinkLogic::on_control`].
    fn on_control(&mut self, _control: Control, _scx: &mut StageCx<'_>) -> Result<(), StageError> {
        Ok(())
    }
    /// See [`SinkLogic::snapshot`].
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        Ok(None)
    }
    /// See [`SinkLogic::restore`].
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(stateless())
    }
    /// See [`SinkLogic::post_stop`].
    fn post_stop(&mut self);
}

pub(crate) struct SourceAdapter<T, L> {
    pub(crate) logic: L,
    pub(crate) buf: Vec<T>,
}

impl<T: Send + 'static, L: SourceLogic<T>> ErasedSource for SourceAdapter<T, L> {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
    ) -> Poll<Result<Step, StageError>> {
        self.logic.poll_next(cx, scx, &mut self.buf)
    }
    fn buffer(&mut self) -> &mut dyn Any {
        &mut self.buf
    }
    fn buffered(&self) -> usize {
        self.buf.len()
    }
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.logic.poll_ended(cx)
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        self.logic.snapshot()
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.logic.restore(snapshot)
    }
    fn restore_redistributed(
        &mut self,
        snapshots: &[Snapshot],
        share: crate::Share,
    ) -> Result<(), StageError> {
        self.logic.restore_redistributed(snapshots, share)
    }
    fn post_stop(&mut self) {
        self.logic.post_stop()
    }
}

pub(crate) struct FlowAdapter<I, O, L> {
    pub(crate) logic: L,
    pub(crate) out: Vec<O>,
    pub(crate) _i: std::marker::PhantomData<fn(I)>,
}

impl<I: Send + 'static, O: Send + 'static, L: FlowLogic<I, O>> ErasedFlow for FlowAdapter<I, O, L> {
    fn on_batch(&mut self, input: &mut dyn Any, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let input = downcast_vec::<I>(input, &scx.info().path)?;
        self.logic.on_batch(input, &mut self.out, scx)
    }
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.logic.on_finish(&mut self.out, scx)
    }
    fn finishing(&self) -> bool {
        self.logic.finishing()
    }
    fn on_upstream_error(
        &mut self,
        error: StageError,
        scx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        self.logic.on_upstream_error(error, &mut self.out, scx)
    }
    fn output(&mut self) -> &mut dyn Any {
        &mut self.out
    }
    fn output_len(&self) -> usize {
        self.out.len()
    }
    fn adopt_output(&mut self, other: &mut dyn Any) {
        if let Some(v) = other.downcast_mut::<Vec<O>>() {
            self.out.append(v);
        }
    }
    fn input_len(&self, input: &mut dyn Any) -> usize {
        input.downcast_mut::<Vec<I>>().map_or(0, |v| v.len())
    }
    fn clear_input(&self, input: &mut dyn Any) {
        if let Some(v) = input.downcast_mut::<Vec<I>>() {
            v.clear();
        }
    }
    fn is_done(&self) -> bool {
        self.logic.is_done()
    }
    fn wants(&self) -> usize {
        self.logic.wants()
    }
    fn expands(&self) -> bool {
        self.logic.expands()
    }
    fn on_control(
        &mut self,
        control: Control,
        scx: &mut StageCx<'_>,
    ) -> Result<Option<Control>, StageError> {
        self.logic.on_control(control, &mut self.out, scx)
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        self.logic.snapshot()
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.logic.restore(snapshot)
    }
    fn restore_rescaled(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: crate::KeyGroupRange,
    ) -> Result<(), StageError> {
        self.logic.restore_rescaled(snapshots, key_groups)
    }
    fn post_stop(&mut self) {
        self.logic.post_stop()
    }
}

pub(crate) struct SinkAdapter<T, L> {
    pub(crate) logic: L,
    pub(crate) _t: std::marker::PhantomData<fn(T)>,
}

impl<T: Send + 'static, L: SinkLogic<T>> ErasedSink for SinkAdapter<T, L> {
    fn on_batch(&mut self, input: &mut dyn Any, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        let input = downcast_vec::<T>(input, &scx.info().path)?;
        self.logic.on_batch(input, scx)
    }
    fn on_finish(&mut self, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.logic.on_finish(scx)
    }
    fn on_error(&mut self, error: &StageError) {
        self.logic.on_error(error)
    }
    fn input_len(&self, input: &mut dyn Any) -> usize {
        input.downcast_mut::<Vec<T>>().map_or(0, |v| v.len())
    }
    fn clear_input(&self, input: &mut dyn Any) {
        if let Some(v) = input.downcast_mut::<Vec<T>>() {
            v.clear();
        }
    }
    fn is_done(&self) -> bool {
        self.logic.is_done()
    }
    fn wants(&self) -> usize {
        self.logic.wants()
    }
    fn on_control(&mut self, control: Control, scx: &mut StageCx<'_>) -> Result<(), StageError> {
        self.logic.on_control(control, scx)
    }
    fn snapshot(&self) -> Result<Option<Snapshot>, StageError> {
        self.logic.snapshot()
    }
    fn restore(&mut self, snapshot: &Snapshot) -> Result<(), StageError> {
        self.logic.restore(snapshot)
    }
    fn post_stop(&mut self) {
        self.logic.post_stop()
    }
}
