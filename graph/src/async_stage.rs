//! Asynchronous stages: a stage that owns its own task (junctions, `map_async`, timers, rate control).
//! It receives erased input and output ports from the engine and wraps them in typed [`Input`]/[`Output`].

use crate::attributes::Supervision;
use crate::batch::BoxBatch;
use crate::{Clock, Control, Module, Snapshot, StageError, StageInfo};
use futures::future::BoxFuture;
use std::any::Any;
use std::fmt;
use std::future::poll_fn;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A message arriving at an input port.
pub enum InMsg {
    /// A batch of elements.
    Data(BoxBatch),
    /// Every upstream completed.
    End,
    /// Upstream failed.
    Error(StageError),
    /// A control message, in order with the data (aligned over the upstream subtasks). Only a
    /// stage that handles control sees it; the engine forwards it for every other.
    Control(Control),
}

impl fmt::Debug for InMsg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Data(b) => write!(f, "Data({} rows)", b.rows()),
            Self::End => f.write_str("End"),
            Self::Error(e) => write!(f, "Error({e})"),
            Self::Control(c) => write!(f, "Control({c:?})"),
        }
    }
}

/// The downstream side is gone: every consumer of this output cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("downstream cancelled")]
pub struct Cancelled;

/// An engine-provided input port (merges the channels from every upstream subtask).
pub trait ErasedInput: Send {
    /// Receives the next message; after `End` or `Error` it keeps returning `End`.
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<InMsg>;
    /// Rows buffered in front of this input (queue depth).
    fn queued_rows(&self) -> usize;
    /// Like [`ErasedInput::poll_recv`], asking a demand-driven upstream for at most `max_rows`
    /// rows in all (including those already requested); other inputs ignore the bound.
    fn poll_recv_up_to(&mut self, cx: &mut Context<'_>, max_rows: usize) -> Poll<InMsg> {
        let _ = max_rows;
        self.poll_recv(cx)
    }
}

/// An engine-provided output port (routes batches to every downstream subtask).
pub trait ErasedOutput: Send {
    /// Moves the rows of `batch` (a `Vec<T>`) into the pending buffers of their destinations.
    fn accept(&mut self, batch: &mut dyn Any);
    /// Sends pending buffers that are full, or all of them when `force`; waits for credit.
    fn poll_flush(&mut self, cx: &mut Context<'_>, force: bool) -> Poll<Result<(), Cancelled>>;
    /// Ready once every downstream consumer is gone.
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()>;
    /// Whether every downstream consumer is gone.
    fn is_closed(&self) -> bool;
    /// Sends end-of-stream (after pending data) without waiting for credit.
    fn finish(&mut self);
    /// Sends a failure (after pending data) without waiting for credit.
    fn fail(&mut self, error: StageError);
    /// Sends a control message to every downstream subtask, after pending data, without
    /// waiting for credit. Ports that carry no control (outside an engine) drop it.
    fn control(&mut self, control: Control) {
        let _ = control;
    }
    /// Rows pending in this output's buffers.
    fn pending_rows(&self) -> usize;
    /// Waits until downstream asks for rows and returns how many it may take now: on a
    /// demand-driven channel exactly what the consumer requested, otherwise the free capacity.
    /// Pending rows are sent first. `Err` once every consumer is gone.
    fn poll_demand(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cancelled>> {
        self.poll_flush(cx, true).map(|r| r.map(|()| usize::MAX))
    }
}

/// Materializes sub-graphs from inside a running stage (`flat_map_merge`, `group_by`).
pub trait SubMaterializer: Send + Sync {
    /// Starts a source blueprint as part of the current run and returns its output as an input port.
    fn source(&self, module: Arc<Module>) -> Result<Box<dyn ErasedInput>, StageError>;
    /// Starts a flow blueprint as part of the current run: returns the port feeding it and its output.
    /// `input` is the router factory for the flow's input element type (`weir_graph::router_for::<T>()`).
    fn flow(
        &self,
        module: Arc<Module>,
        input: Arc<dyn crate::RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError>;
    /// Like [`SubMaterializer::flow`], but a failing sink inside `module` ends only that
    /// sub-graph (its input is cancelled) instead of failing the run; used by `RestartSink`.
    fn flow_detached(
        &self,
        module: Arc<Module>,
        input: Arc<dyn crate::RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        self.flow(module, input)
    }
    /// The failure that stopped the run, once one has (a stage the run dropped may report it).
    fn run_failure(&self) -> Option<StageError> {
        None
    }
}

/// An event seen by a typed input. Control messages never appear here: the engine forwards
/// them for a stage, and a stage that handles control reads them with [`Input::recv_signal`].
#[derive(Debug)]
pub enum Event<T> {
    /// A batch of elements.
    Batch(Vec<T>),
    /// Upstream completed.
    End,
    /// Upstream failed.
    Error(StageError),
}

/// What a stage that handles control reads from an input: an event or a control message.
#[derive(Debug)]
pub enum Signal<T> {
    /// A batch, the end or a failure.
    Event(Event<T>),
    /// A control message, after every batch before it.
    Control(Control),
}

fn typed<T: Send + 'static>(m: InMsg, path: &str) -> Event<T> {
    match m {
        InMsg::Control(_) => Event::Error(StageError::internal(format!(
            "stage '{path}' read a control message with a plain receive"
        ))),
        InMsg::Data(b) => match b.into_any().downcast::<Vec<T>>() {
            Ok(v) => Event::Batch(*v),
            Err(_) => Event::Error(StageError::internal(format!(
                "type mismatch at stage '{path}': expected a batch of {}",
                std::any::type_name::<T>()
            ))),
        },
        InMsg::End => Event::End,
        InMsg::Error(e) => Event::Error(e),
    }
}

/// A typed input port of an asynchronous stage.
pub struct Input<T> {
    inner: Box<dyn ErasedInput>,
    path: Arc<str>,
    _t: PhantomData<fn() -> T>,
}

impl<T> fmt::Debug for Input<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Input")
    }
}

impl<T: Send + 'static> Input<T> {
    /// Wraps an erased input.
    pub fn new(inner: Box<dyn ErasedInput>, path: Arc<str>) -> Self {
        Self {
            inner,
            path,
            _t: PhantomData,
        }
    }
    /// Polls for the next event (control messages are skipped: see [`Input::poll_signal`]).
    pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Event<T>> {
        loop {
            match self.inner.poll_recv(cx) {
                Poll::Ready(InMsg::Control(_)) => continue,
                Poll::Ready(m) => return Poll::Ready(typed(m, &self.path)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
    /// Polls for the next event or control message (a stage that handles control).
    pub fn poll_signal(&mut self, cx: &mut Context<'_>) -> Poll<Signal<T>> {
        let path = &self.path;
        self.inner.poll_recv(cx).map(|m| match m {
            InMsg::Control(c) => Signal::Control(c),
            m => Signal::Event(typed(m, path)),
        })
    }
    /// Receives the next event or control message (a stage that handles control).
    pub async fn recv_signal(&mut self) -> Signal<T> {
        poll_fn(|cx| self.poll_signal(cx)).await
    }
    /// Receives the next event.
    pub async fn recv(&mut self) -> Event<T> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }
    /// Polls for the next event, asking a demand-driven upstream for at most `max_rows` rows.
    pub fn poll_recv_up_to(&mut self, cx: &mut Context<'_>, max_rows: usize) -> Poll<Event<T>> {
        loop {
            match self.inner.poll_recv_up_to(cx, max_rows) {
                Poll::Ready(InMsg::Control(_)) => continue,
                Poll::Ready(m) => return Poll::Ready(typed(m, &self.path)),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
    /// Receives the next event, asking a demand-driven upstream for at most `max_rows` rows.
    pub async fn recv_up_to(&mut self, max_rows: usize) -> Event<T> {
        poll_fn(|cx| self.poll_recv_up_to(cx, max_rows)).await
    }
    /// Rows queued in front of this input.
    pub fn queued_rows(&self) -> usize {
        self.inner.queued_rows()
    }
}

/// A typed output port of an asynchronous stage.
pub struct Output<T> {
    inner: Box<dyn ErasedOutput>,
    done: bool,
    _t: PhantomData<fn(T)>,
}

impl<T> fmt::Debug for Output<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Output")
    }
}

impl<T: Send + 'static> Output<T> {
    /// Wraps an erased output.
    pub fn new(inner: Box<dyn ErasedOutput>) -> Self {
        Self {
            inner,
            done: false,
            _t: PhantomData,
        }
    }
    /// Sends a batch, waiting for credit; `Err(Cancelled)` once every consumer is gone.
    pub async fn send(&mut self, mut batch: Vec<T>) -> Result<(), Cancelled> {
        if self.inner.is_closed() {
            return Err(Cancelled);
        }
        if batch.is_empty() {
            return Ok(());
        }
        self.inner.accept(&mut batch);
        poll_fn(|cx| self.inner.poll_flush(cx, true)).await
    }
    /// Sends one element.
    pub async fn send_one(&mut self, x: T) -> Result<(), Cancelled> {
        self.send(vec![x]).await
    }
    /// Buffers rows without sending (see [`Output::flush`]).
    pub fn push(&mut self, mut batch: Vec<T>) {
        self.inner.accept(&mut batch);
    }
    /// Sends buffered rows that fill a batch (or all when `force`), waiting for credit.
    pub async fn flush(&mut self, force: bool) -> Result<(), Cancelled> {
        poll_fn(|cx| self.inner.poll_flush(cx, force)).await
    }
    /// Polls sending buffered rows that fill a batch (or all when `force`), waiting for credit.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>, force: bool) -> Poll<Result<(), Cancelled>> {
        self.inner.poll_flush(cx, force)
    }
    /// Polls for downstream demand: how many rows downstream takes now (see
    /// [`ErasedOutput::poll_demand`]); pending rows are sent first.
    pub fn poll_demand(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cancelled>> {
        self.inner.poll_demand(cx)
    }
    /// Waits for downstream demand and returns how many rows downstream takes now.
    pub async fn demand(&mut self) -> Result<usize, Cancelled> {
        poll_fn(|cx| self.inner.poll_demand(cx)).await
    }
    /// The demand available right now without waiting (0 when none, or when downstream is gone).
    pub fn demand_now(&mut self) -> usize {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match self.inner.poll_demand(&mut cx) {
            Poll::Ready(Ok(n)) => n,
            _ => 0,
        }
    }
    /// Rows buffered but not sent yet.
    pub fn pending_rows(&self) -> usize {
        self.inner.pending_rows()
    }
    /// Completes once every consumer is gone.
    pub async fn closed(&mut self) {
        poll_fn(|cx| self.inner.poll_closed(cx)).await
    }
    /// Polls for every consumer being gone.
    pub fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.poll_closed(cx)
    }
    /// Whether every consumer is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.is_closed()
    }
    /// Completes this output (the engine does it for outputs left open when the stage returns).
    pub fn complete(&mut self) {
        if !self.done {
            self.done = true;
            self.inner.finish();
        }
    }
    /// Sends a control message downstream after the rows pushed so far (a stage that handles
    /// control forwards it with this).
    pub fn control(&mut self, control: Control) {
        if !self.done {
            self.inner.control(control);
        }
    }
    /// Fails this output.
    pub fn fail(&mut self, e: StageError) {
        if !self.done {
            self.done = true;
            self.inner.fail(e);
        }
    }
}

/// Element counts a task-owning stage reports for work its ports do not see (the engine counts
/// what passes through [`Input`] and [`Output`] itself), e.g. a stage that fuses a source, its
/// operators and a sink consumes elements without sending any.
pub trait StageCounts: Send + Sync {
    /// Adds `n` elements received.
    fn add_in(&self, n: u64);
    /// Adds `n` elements emitted.
    fn add_out(&self, n: u64);
}

/// Counts that go nowhere (a stage driven outside an engine).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoCounts;

impl StageCounts for NoCounts {
    fn add_in(&self, _n: u64) {}
    fn add_out(&self, _n: u64) {}
}

/// Everything an asynchronous stage receives when it starts.
pub struct AsyncIo {
    /// Erased inputs in port order (take them with [`AsyncIo::input`]).
    pub inputs: Vec<Option<Box<dyn ErasedInput>>>,
    /// Erased outputs in port order (take them with [`AsyncIo::output`]).
    pub outputs: Vec<Option<Box<dyn ErasedOutput>>>,
    /// Identity of the stage instance.
    pub info: StageInfo,
    /// The run's clock.
    pub clock: Arc<dyn Clock>,
    /// Supervision policy of the stage.
    pub supervision: Option<Supervision>,
    /// Target batch size in rows.
    pub batch_size: usize,
    /// Starts sub-graphs inside this run.
    pub sub: Arc<dyn SubMaterializer>,
    /// The stage's element counters in the run's metrics.
    pub counts: Arc<dyn StageCounts>,
    /// The run's checkpoints, for a stage that handles control (`None` without checkpoints).
    pub checkpoint: Option<Arc<dyn crate::StageCheckpoint>>,
}

impl fmt::Debug for AsyncIo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncIo")
            .field("stage", &self.info.path)
            .finish()
    }
}

impl AsyncIo {
    /// Takes input port `i` as a typed input.
    pub fn input<T: Send + 'static>(&mut self, i: usize) -> Result<Input<T>, StageError> {
        let inner = self
            .inputs
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| {
                StageError::internal(format!("stage '{}' has no input {i}", self.info.path))
            })?;
        Ok(Input::new(inner, Arc::from(self.info.path.as_str())))
    }
    /// Takes output port `i` as a typed output.
    pub fn output<T: Send + 'static>(&mut self, i: usize) -> Result<Output<T>, StageError> {
        let inner = self
            .outputs
            .get_mut(i)
            .and_then(Option::take)
            .ok_or_else(|| {
                StageError::internal(format!("stage '{}' has no output {i}", self.info.path))
            })?;
        Ok(Output::new(inner))
    }
    /// Takes every input as typed inputs of one type.
    pub fn all_inputs<T: Send + 'static>(&mut self) -> Result<Vec<Input<T>>, StageError> {
        (0..self.inputs.len()).map(|i| self.input(i)).collect()
    }
    /// Takes every output as typed outputs of one type.
    pub fn all_outputs<T: Send + 'static>(&mut self) -> Result<Vec<Output<T>>, StageError> {
        (0..self.outputs.len()).map(|i| self.output(i)).collect()
    }
    /// What the supervision policy says about `err`.
    pub fn decide(&self, err: &StageError) -> crate::Directive {
        self.supervision
            .as_ref()
            .map_or(crate::Directive::Stop, |s| s.decide(err))
    }
    /// A synchronous context for reporting element failures (see [`crate::StageCx::element_failed`]).
    pub fn stage_cx(&self) -> crate::StageCx<'_> {
        crate::StageCx::new(
            &self.info,
            &*self.clock,
            self.supervision.as_ref(),
            self.batch_size,
        )
    }
}

/// The running logic of an asynchronous stage: one future that drives its ports until done.
pub trait AsyncLogic: Send + 'static {
    /// Runs the stage. Returning `Ok` completes outputs left open; `Err` fails them.
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>>;
    /// Whether the stage reads control messages itself ([`Input::recv_signal`]) and forwards
    /// them ([`Output::control`]). By default (`false`) the engine aligns control over the
    /// stage's inputs and forwards each one once to every output, after the rows the stage
    /// handed to its outputs before it arrived.
    fn handles_control(&self) -> bool {
        false
    }
    /// Restores state saved from an earlier instance into this one before it runs (a stage
    /// that handles control snapshots itself when a control asks it to).
    fn restore(&mut self, _snapshot: &Snapshot) -> Result<(), StageError> {
        Err(crate::snapshot::stateless())
    }
    /// Restores a fresh instance whose stage runs at another parallelism than the checkpoint's
    /// (as [`crate::FlowLogic::restore_rescaled`]: every old subtask's state, the key groups
    /// this subtask owns now); the default refuses, since state that is not keyed cannot be
    /// split.
    fn restore_rescaled(
        &mut self,
        _snapshots: &[Snapshot],
        _key_groups: crate::KeyGroupRange,
    ) -> Result<(), StageError> {
        Err(crate::snapshot::not_rescalable())
    }
    /// Restores a fresh instance from every old subtask's state when the job now runs on
    /// another number of processes (as [`crate::SourceLogic::restore_redistributed`]: a sink
    /// finishes the commits of the old states that fall to `share`); the default is
    /// [`Self::restore_rescaled`] with `key_groups` (those this subtask and its node own).
    fn restore_redistributed(
        &mut self,
        snapshots: &[Snapshot],
        key_groups: crate::KeyGroupRange,
        _share: crate::Share,
    ) -> Result<(), StageError> {
        self.restore_rescaled(snapshots, key_groups)
    }
}

/// A copy of `module` whose stages all emit on demand (see [`crate::Node::demand_outputs`]).
pub fn on_demand_outputs(module: &Arc<Module>) -> Arc<Module> {
    let mut m = Module::clone(module);
    for n in &mut m.nodes {
        n.demand_outputs = true;
    }
    Arc::new(m)
}

/// A copy of `module` whose stages all receive exactly their demand (see
/// [`crate::Node::demand_input`]).
pub fn on_demand_input(module: &Arc<Module>) -> Arc<Module> {
    let mut m = Module::clone(module);
    for n in &mut m.nodes {
        n.demand_input = true;
    }
    Arc::new(m)
}

/// An [`AsyncLogic`] made from a closure.
pub struct AsyncFn<F>(pub F);

impl<F> AsyncLogic for AsyncFn<F>
where
    F: FnOnce(AsyncIo) -> BoxFuture<'static, Result<(), StageError>> + Send + 'static,
{
    fn run(self: Box<Self>, io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        (self.0)(io)
    }
}
