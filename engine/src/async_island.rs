//! The island of an asynchronous stage: its ports (kept by the engine, so a restarted logic gets
//! the same channels), control forwarding for a stage that does not handle control, and
//! supervision Restart, which recreates the logic from the stage's factory.

use crate::channel::{Msg, Receiver, Sender};
use crate::checkpoint::AsyncCheckpoint;
use crate::control::{ControlHub, SharedOutput};
use crate::metrics::StageMetrics;
use crate::ports::{ChannelInput, ControlSink, RoutedOutput};
use crate::shared::RunShared;
use crate::supervise::{StageCommon, panic_error};
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use weir_graph::{
    AsyncFactory, AsyncIo, AsyncLogic, Directive, ErasedInput, ErasedOutput, ErrorKind, InMsg,
    SubMaterializer,
};

/// One input port of the stage, kept by the engine across restarts (`None` once released:
/// it then reads as ended).
struct Port {
    input: Mutex<Option<ChannelInput>>,
    /// The running logic dropped its handle: the port is released (cancelling upstream) once
    /// the logic goes on without it, or kept for a restarted logic.
    dropped: AtomicBool,
}

impl Port {
    fn with<R>(&self, f: impl FnOnce(&mut ChannelInput) -> R, ended: R) -> R {
        match &mut *self.input.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(i) => f(i),
            None => ended,
        }
    }
}

/// The logic's handle on a [`Port`]; it remembers an upstream failure (which is never a
/// reason to restart: the new logic would find its input ended).
struct SharedInput {
    port: Arc<Port>,
    flags: Arc<Flags>,
}

/// What the handles tell the stage's driver.
#[derive(Default)]
struct Flags {
    upstream_failed: AtomicBool,
    /// Some handle was dropped (checked once per poll of the logic that stays pending).
    dropped: AtomicBool,
}

impl SharedInput {
    fn seen(&self, m: Poll<InMsg>) -> Poll<InMsg> {
        if let Poll::Ready(InMsg::Error(_)) = &m {
            self.flags.upstream_failed.store(true, Ordering::Relaxed);
        }
        m
    }
}

impl Drop for SharedInput {
    fn drop(&mut self) {
        self.port.dropped.store(true, Ordering::Relaxed);
        self.flags.dropped.store(true, Ordering::Relaxed);
    }
}

impl ErasedInput for SharedInput {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<InMsg> {
        let m = self.port.with(|i| i.poll_recv(cx), Poll::Ready(InMsg::End));
        self.seen(m)
    }
    fn poll_recv_up_to(&mut self, cx: &mut Context<'_>, max_rows: usize) -> Poll<InMsg> {
        let m = self
            .port
            .with(|i| i.poll_recv_up_to(cx, max_rows), Poll::Ready(InMsg::End));
        self.seen(m)
    }
    fn queued_rows(&self) -> usize {
        self.port.with(|i| i.queued_rows(), 0)
    }
}

/// The ports of one asynchronous stage instance, owned by the engine.
pub(crate) struct AsyncPorts {
    inputs: Vec<Arc<Port>>,
    outputs: Vec<Arc<Mutex<RoutedOutput>>>,
    /// Forwards control for a stage that does not handle it.
    pub(crate) hub: Option<Arc<ControlHub>>,
    flags: Arc<Flags>,
    /// The stage's part in the run's checkpoints (stages of the run's graph, checkpoints on).
    pub(crate) ack: Option<Arc<AsyncCheckpoint>>,
}

impl AsyncPorts {
    /// Ports over the stage's inputs (`make_input` builds each from its channels) and outputs;
    /// unless the stage handles control, its inputs hand controls to a hub over its outputs.
    pub(crate) fn new(
        handles_control: bool,
        rxs: Vec<Vec<Receiver>>,
        routed: Vec<RoutedOutput>,
        ack: Option<Arc<AsyncCheckpoint>>,
        path: &str,
        make_input: impl Fn(Vec<Receiver>) -> ChannelInput,
    ) -> Self {
        let outputs: Vec<_> = routed
            .into_iter()
            .map(|o| Arc::new(Mutex::new(o)))
            .collect();
        let hub = (!handles_control).then(|| {
            Arc::new(ControlHub::new(
                rxs.len(),
                outputs.clone(),
                ack.clone(),
                Arc::from(path),
            ))
        });
        let inputs = rxs
            .into_iter()
            .enumerate()
            .map(|(port, r)| {
                let i = make_input(r);
                let i = match &hub {
                    Some(h) => i.forwarding_to(Arc::clone(h) as Arc<dyn ControlSink>, port),
                    None => i,
                };
                Arc::new(Port {
                    input: Mutex::new(Some(i)),
                    dropped: AtomicBool::new(false),
                })
            })
            .collect();
        Self {
            inputs,
            outputs,
            hub,
            flags: Arc::default(),
            ack,
        }
    }

    /// The running logic dropped some input handles and went on: those ports are released
    /// now, which cancels their upstream (as dropping an `Input` does).
    fn release_dropped(&self) {
        if !self.flags.dropped.swap(false, Ordering::Relaxed) {
            return;
        }
        for p in &self.inputs {
            if p.dropped.load(Ordering::Relaxed) {
                let released = p
                    .input
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                drop(released);
            }
        }
    }

    /// A restarted logic gets every port still held, whatever the failed one dropped on its
    /// way out.
    fn rearm(&self) {
        self.flags.dropped.store(false, Ordering::Relaxed);
        for p in &self.inputs {
            p.dropped.store(false, Ordering::Relaxed);
        }
    }

    /// The ports handed to one logic instance.
    fn io(&self, c: &StageCommon, shared: &RunShared, sub: &Arc<dyn SubMaterializer>) -> AsyncIo {
        AsyncIo {
            inputs: self
                .inputs
                .iter()
                .map(|p| {
                    Some(Box::new(SharedInput {
                        port: Arc::clone(p),
                        flags: Arc::clone(&self.flags),
                    }) as Box<dyn ErasedInput>)
                })
                .collect(),
            outputs: self
                .outputs
                .iter()
                .map(|o| {
                    // A stage that handles control acknowledges the barriers it forwards.
                    let ack = self.hub.is_none().then(|| self.ack.clone()).flatten();
                    Some(Box::new(SharedOutput(Arc::clone(o), ack, self.hub.clone()))
                        as Box<dyn ErasedOutput>)
                })
                .collect(),
            info: c.info.clone(),
            clock: Arc::clone(&shared.clock),
            supervision: c.sup.clone(),
            batch_size: c.batch,
            sub: Arc::clone(sub),
            counts: Arc::clone(&c.m) as Arc<dyn weir_graph::StageCounts>,
            checkpoint: self
                .ack
                .clone()
                .map(|a| a as Arc<dyn weir_graph::StageCheckpoint>),
        }
    }
}

/// One running asynchronous stage instance and everything needed to restart it.
pub(crate) struct AsyncStage {
    pub(crate) logic: Box<dyn AsyncLogic>,
    pub(crate) factory: AsyncFactory,
    pub(crate) ports: AsyncPorts,
    /// Handles to every output channel, to end or fail them once the stage is done.
    pub(crate) controls: Vec<Sender>,
    pub(crate) c: StageCommon,
    pub(crate) terminal: bool,
    pub(crate) stop: tokio_util::sync::CancellationToken,
    pub(crate) shared: Arc<RunShared>,
    pub(crate) sub: Arc<dyn SubMaterializer>,
}

impl AsyncStage {
    /// Runs the logic, recreating it from its factory when it fails under Restart.
    pub(crate) async fn run(self) {
        let Self {
            mut logic,
            factory,
            ports,
            controls,
            c,
            terminal,
            stop,
            shared,
            sub,
        } = self;
        // Once every consumer is gone the stage has nobody to work for: whatever it awaits
        // (outside input, a timer, user futures) is dropped at once, which cancels its own
        // inputs in turn.
        let watch = !terminal && !controls.is_empty();
        let outcome = loop {
            let io = ports.io(&c, &shared, &sub);
            let mut run = AssertUnwindSafe(logic.run(io)).catch_unwind();
            let fut = std::future::poll_fn(|cx| {
                if let Some(h) = &ports.hub {
                    h.begin_poll();
                }
                let r = run.poll_unpin(cx);
                if r.is_pending() {
                    ports.release_dropped();
                    if let Some(h) = &ports.hub {
                        h.end_poll();
                    }
                }
                r
            });
            let gone = std::future::poll_fn(|cx| all_closed(&controls, cx));
            let r = tokio::select! {
                biased;
                _ = stop.cancelled() => None,
                r = fut => Some(r),
                () = gone, if watch => {
                    if let (Some(a), Some(_)) = (&ports.ack, &ports.hub) {
                        // Nobody downstream: a junction (stateless) sees no more barriers.
                        a.ck.finished(a.stage, a.sub, None);
                    }
                    None
                }
            };
            let e = match r {
                None => break None,
                Some(Ok(Ok(()))) => break Some(Ok(())),
                Some(Ok(Err(e))) => e,
                Some(Err(p)) => panic_error(p),
            }
            .with_stage(&c.info.path);
            // An upstream failure or a cancellation passes through; the stage's own failure
            // goes to its supervision.
            let own = e.kind() != ErrorKind::Cancelled
                && !ports.flags.upstream_failed.load(Ordering::Relaxed);
            let restart = if own {
                c.decide(&e) == Directive::Restart
            } else {
                StageMetrics::add(&c.m.failures, 1);
                false
            };
            if !restart {
                break Some(Err(e));
            }
            match factory(&c.info) {
                Ok((fresh, _mat)) => {
                    ports.rearm();
                    tracing::debug!(stage = %c.info.path, error = %e, "async stage restarted");
                    StageMetrics::add(&c.m.restarts, 1);
                    logic = fresh;
                }
                Err(e2) => break Some(Err(e2.with_stage(&c.info.path))),
            }
        };
        if let (Some(Ok(())), Some(a)) = (&outcome, &ports.ack)
            && !a.finished.load(Ordering::Acquire)
        {
            // A completed stage that reported nothing holds no state.
            a.ck.finished(a.stage, a.sub, None);
        }
        // The ports go first: rows their outputs still hold leave before the end.
        drop(ports);
        match outcome {
            None => {}
            Some(Ok(())) => {
                for s in &controls {
                    let _ = s.push(Msg::End);
                }
            }
            Some(Err(e)) => {
                for s in &controls {
                    let _ = s.push(Msg::Error(e.clone()));
                }
                if terminal {
                    shared.record_failure(&e);
                }
            }
        }
        c.stopped();
    }
}

/// Ready once every channel behind `controls` lost its consumer.
fn all_closed(controls: &[Sender], cx: &mut Context<'_>) -> Poll<()> {
    let mut open = false;
    for s in controls {
        open |= s.poll_closed(cx).is_pending();
    }
    if open { Poll::Pending } else { Poll::Ready(()) }
}
