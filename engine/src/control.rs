//! Control messages inside the engine: forwarding them for asynchronous stages that do not
//! handle control ([`ControlHub`], aligning over the stage's input ports), and injecting them
//! at the run's source islands ([`Injectors`], behind [`crate::RunHandle::inject`]).

use crate::ports::{ControlSink, RoutedOutput};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use weir_graph::{Aligner, Cancelled, Control, ErasedOutput, StageError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An output of an asynchronous stage that the stage's [`ControlHub`] shares, so a forwarded
/// control goes out after the rows the stage handed over before it (one uncontended lock per
/// call, i.e. per batch).
pub(crate) struct SharedOutput(pub(crate) Arc<Mutex<RoutedOutput>>);

impl Drop for SharedOutput {
    fn drop(&mut self) {
        // As when a stage drops its own output: accepted rows leave, never lost or held.
        lock(&self.0).release_pending();
    }
}

impl ErasedOutput for SharedOutput {
    fn accept(&mut self, batch: &mut dyn std::any::Any) {
        lock(&self.0).accept(batch)
    }
    fn poll_flush(&mut self, cx: &mut Context<'_>, force: bool) -> Poll<Result<(), Cancelled>> {
        lock(&self.0).poll_flush(cx, force)
    }
    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        lock(&self.0).poll_closed(cx)
    }
    fn is_closed(&self) -> bool {
        lock(&self.0).is_closed()
    }
    fn finish(&mut self) {
        lock(&self.0).finish()
    }
    fn fail(&mut self, error: StageError) {
        lock(&self.0).fail(error)
    }
    fn control(&mut self, control: Control) {
        lock(&self.0).control(control)
    }
    fn pending_rows(&self) -> usize {
        lock(&self.0).pending_rows()
    }
    fn poll_demand(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cancelled>> {
        lock(&self.0).poll_demand(cx)
    }
}

/// Forwards control for an asynchronous stage that does not handle it: each input port reports
/// the (subtask-aligned) controls it receives, and once every open port delivered a control it
/// goes to every output once. Ports are not blocked while they wait (the stage chooses which
/// input it reads, so blocking one could stall it, e.g. `concat`).
pub(crate) struct ControlHub {
    state: Mutex<HubState>,
}

struct HubState {
    aligner: Aligner,
    outputs: Vec<Arc<Mutex<RoutedOutput>>>,
}

impl ControlHub {
    /// A hub over `inputs` ports forwarding to `outputs`.
    pub(crate) fn new(inputs: usize, outputs: Vec<Arc<Mutex<RoutedOutput>>>) -> Self {
        Self {
            state: Mutex::new(HubState {
                aligner: Aligner::new(inputs),
                outputs,
            }),
        }
    }

    /// A control injected at this (source) stage: to every output at once.
    fn inject(&self, control: &Control) {
        lock(&self.state).forward(vec![control.clone()]);
    }
}

impl ControlSink for ControlHub {
    fn arrive(&self, port: usize, control: Control) {
        let mut s = lock(&self.state);
        let released = s.aligner.arrive(port, control);
        s.forward(released);
    }

    fn end(&self, port: usize) {
        let mut s = lock(&self.state);
        let released = s.aligner.end(port);
        s.forward(released);
    }
}

impl HubState {
    fn forward(&mut self, released: Vec<Control>) {
        for c in released {
            for o in &self.outputs {
                lock(o).control(c.clone());
            }
        }
    }
}

/// Controls injected into one source island, taken by the island after the batch it is
/// producing (one relaxed load per batch when none is pending).
#[derive(Default)]
pub(crate) struct InjectSlot {
    pending: AtomicBool,
    queue: Mutex<VecDeque<Control>>,
    waker: Mutex<Option<Waker>>,
}

impl InjectSlot {
    fn push(&self, control: Control) {
        lock(&self.queue).push_back(control);
        self.pending.store(true, Ordering::Release);
        if let Some(w) = lock(&self.waker).take() {
            w.wake();
        }
    }

    /// Whether a control waits (cheap: checked once per batch).
    pub(crate) fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// Takes the next injected control, if any.
    pub(crate) fn take(&self) -> Option<Control> {
        let mut q = lock(&self.queue);
        let c = q.pop_front();
        if q.is_empty() {
            self.pending.store(false, Ordering::Release);
        }
        c
    }

    /// Ready with the next injected control; registers the waker otherwise.
    pub(crate) fn poll_take(&self, cx: &mut Context<'_>) -> Poll<Control> {
        *lock(&self.waker) = Some(cx.waker().clone());
        match self.take() {
            Some(c) => Poll::Ready(c),
            None => Poll::Pending,
        }
    }
}

enum Injector {
    /// A fused chain headed by a source.
    Chain(Weak<InjectSlot>),
    /// An asynchronous stage without inputs: its outputs directly.
    Async(Weak<ControlHub>),
}

/// The run's source islands that injected controls reach.
#[derive(Default)]
pub(crate) struct Injectors(Mutex<Vec<Injector>>);

impl Injectors {
    /// Registers a chain island headed by a source.
    pub(crate) fn add_chain(&self, slot: &Arc<InjectSlot>) {
        lock(&self.0).push(Injector::Chain(Arc::downgrade(slot)));
    }

    /// Registers an asynchronous source stage.
    pub(crate) fn add_async(&self, hub: &Arc<ControlHub>) {
        lock(&self.0).push(Injector::Async(Arc::downgrade(hub)));
    }

    /// Hands `control` to every source island still running; returns how many it reached.
    pub(crate) fn inject(&self, control: &Control) -> usize {
        let mut v = lock(&self.0);
        let mut reached = 0;
        v.retain(|i| match i {
            Injector::Chain(w) => w.upgrade().is_some_and(|s| {
                s.push(control.clone());
                reached += 1;
                true
            }),
            Injector::Async(w) => w.upgrade().is_some_and(|h| {
                h.inject(control);
                reached += 1;
                true
            }),
        });
        reached
    }
}
