//! Control messages inside the engine: forwarding them for asynchronous stages that do not
//! handle control ([`ControlHub`], aligning over the stage's input ports), and injecting them
//! at the run's source islands ([`Injectors`], behind [`crate::RunHandle::inject`]).

use crate::checkpoint::AsyncCheckpoint;
use crate::ports::{ControlSink, RoutedOutput};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::task::{Context, Poll, Waker};
use weir_graph::StageCheckpoint;
use weir_graph::{Aligner, Cancelled, Control, ErasedOutput, StageError};

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An output of an asynchronous stage that the stage's [`ControlHub`] shares, so a forwarded
/// control goes out after the rows the stage handed over before it (one uncontended lock per
/// call, i.e. per batch).
pub(crate) struct SharedOutput(
    pub(crate) Arc<Mutex<RoutedOutput>>,
    /// Acknowledges a barrier the stage forwards (one that handles control, with checkpoints).
    pub(crate) Option<Arc<AsyncCheckpoint>>,
    /// The stage's hub, told when the stage waits for credit (it is not stalled on input).
    pub(crate) Option<Arc<ControlHub>>,
);

impl SharedOutput {
    fn waited<T>(&self, p: Poll<T>) -> Poll<T> {
        if p.is_pending()
            && let Some(h) = &self.2
        {
            h.read_open();
        }
        p
    }
}

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
        let p = lock(&self.0).poll_flush(cx, force);
        self.waited(p)
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
        if let (Control::Barrier { id }, Some(a)) = (&control, &self.1) {
            // Forwarding a barrier acknowledges it (without state unless the stage
            // acknowledged it with some first).
            a.ack(*id, None);
        }
        lock(&self.0).control(control)
    }
    fn pending_rows(&self) -> usize {
        lock(&self.0).pending_rows()
    }
    fn poll_demand(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cancelled>> {
        let p = lock(&self.0).poll_demand(cx);
        self.waited(p)
    }
}

/// Forwards control for an asynchronous stage that does not handle it: each input port reports
/// the (subtask-aligned) controls it receives, and once every open port delivered a control it
/// goes to every output once. A port that delivered a checkpoint barrier is blocked (reads
/// nothing) until every open port delivered it, so no row behind the barrier passes it; a stage
/// that waits only on blocked ports while another port still holds rows ahead of its barrier
/// (`concat`, or `zip` holding a batch of the other side) cannot align without stalling: the
/// hub declines that checkpoint (it fails, never inexact) and stops blocking for it.
pub(crate) struct ControlHub {
    state: Mutex<HubState>,
    /// Whether a barrier aligns now (ports check it once per read; the lock only then).
    aligning: AtomicBool,
    /// During one poll of the stage: whether it polled a blocked port, and an unblocked one.
    polled_blocked: AtomicBool,
    polled_open: AtomicBool,
    /// During one poll of the stage: whether a release woke a port polled while blocked (the
    /// stage polls again, so waiting on it now is no stall).
    woke_blocked: AtomicBool,
}

struct HubState {
    aligner: Aligner,
    outputs: Vec<Arc<Mutex<RoutedOutput>>>,
    /// Acknowledges forwarded barriers for the stage (stages of the run's graph, with
    /// checkpoints on).
    ack: Option<Arc<AsyncCheckpoint>>,
    path: Arc<str>,
    /// Barriers whose alignment was declined: they no longer block.
    declined: BTreeSet<u64>,
    /// The stage's waker, per blocked port.
    wakers: Vec<Option<Waker>>,
}

impl ControlHub {
    /// A hub over `inputs` ports forwarding to `outputs`.
    pub(crate) fn new(
        inputs: usize,
        outputs: Vec<Arc<Mutex<RoutedOutput>>>,
        ack: Option<Arc<AsyncCheckpoint>>,
        path: Arc<str>,
    ) -> Self {
        Self {
            state: Mutex::new(HubState {
                aligner: Aligner::new(inputs),
                outputs,
                ack,
                path,
                declined: BTreeSet::new(),
                wakers: vec![None; inputs],
            }),
            aligning: AtomicBool::new(false),
            polled_blocked: AtomicBool::new(false),
            polled_open: AtomicBool::new(false),
            woke_blocked: AtomicBool::new(false),
        }
    }

    /// Updates the fast flag the ports read.
    fn set_aligning(&self, s: &HubState) {
        let n = s.wakers.len();
        let any = n > 1
            && (0..n).any(|p| {
                s.aligner
                    .waiting_barriers(p)
                    .any(|id| !s.declined.contains(&id))
            });
        self.aligning.store(any, Ordering::Release);
    }

    /// A control injected at this (source) stage: to every output at once.
    fn inject(&self, control: &Control) {
        lock(&self.state).forward(vec![control.clone()]);
    }

    /// The stage is about to be polled.
    pub(crate) fn begin_poll(&self) {
        self.polled_blocked.store(false, Ordering::Relaxed);
        self.polled_open.store(false, Ordering::Relaxed);
        self.woke_blocked.store(false, Ordering::Relaxed);
    }

    /// The stage's poll returned pending: if it waited only on blocked ports, with nothing
    /// left to send and none of them released during the poll, it would stall; the barriers
    /// blocking them are declined.
    pub(crate) fn end_poll(&self) {
        if !self.aligning.load(Ordering::Acquire) {
            return;
        }
        if !self.polled_blocked.load(Ordering::Relaxed)
            || self.polled_open.load(Ordering::Relaxed)
            || self.woke_blocked.load(Ordering::Relaxed)
        {
            return;
        }
        let mut s = lock(&self.state);
        if s.outputs.iter().any(|o| lock(o).pending_rows() > 0) {
            // Waiting for credit, not for input.
            return;
        }
        let mut ids = BTreeSet::new();
        for p in 0..s.wakers.len() {
            ids.extend(s.aligner.waiting_barriers(p));
        }
        ids.retain(|id| !s.declined.contains(id));
        for id in ids {
            if let Some(a) = &s.ack {
                a.ck.decline(id, &s.path);
            }
            s.declined.insert(id);
        }
        self.set_aligning(&s);
        s.wake();
    }
}

impl ControlSink for ControlHub {
    fn arrive(&self, port: usize, control: Control) {
        let mut s = lock(&self.state);
        let released = s.aligner.arrive(port, control);
        if s.forward(released) {
            self.woke_blocked.store(true, Ordering::Relaxed);
        }
        self.set_aligning(&s);
    }

    fn end(&self, port: usize) {
        let mut s = lock(&self.state);
        let released = s.aligner.end(port);
        if s.forward(released) {
            self.woke_blocked.store(true, Ordering::Relaxed);
        }
        self.set_aligning(&s);
    }

    fn blocked(&self, port: usize, cx: &mut Context<'_>) -> bool {
        if !self.aligning.load(Ordering::Acquire) {
            return false;
        }
        let mut s = lock(&self.state);
        let s = &mut *s;
        let blocked = s
            .aligner
            .waiting_barriers(port)
            .any(|id| !s.declined.contains(&id));
        if blocked {
            self.polled_blocked.store(true, Ordering::Relaxed);
            if let Some(w) = s.wakers.get_mut(port) {
                *w = Some(cx.waker().clone());
            }
        }
        blocked
    }

    fn read_open(&self) {
        self.polled_open.store(true, Ordering::Relaxed);
    }
}

impl HubState {
    /// Forwards `released` to every output; whether that woke a port polled while blocked.
    fn forward(&mut self, released: Vec<Control>) -> bool {
        if released.is_empty() {
            return false;
        }
        for c in released {
            if let Control::Barrier { id } = c
                && !self.declined.remove(&id)
                && let Some(a) = &self.ack
            {
                // Junctions hold no state: the barrier passing is the acknowledgement.
                a.ack(id, None);
            }
            for o in &self.outputs {
                lock(o).control(c.clone());
            }
        }
        self.wake()
    }

    /// Wakes the stage for every port polled while blocked; whether there was one.
    fn wake(&mut self) -> bool {
        let mut woke = false;
        for w in &mut self.wakers {
            if let Some(w) = w.take() {
                w.wake();
                woke = true;
            }
        }
        woke
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
