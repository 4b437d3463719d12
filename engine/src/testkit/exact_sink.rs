//! [`ExactSink`]: a probe sink that asks upstream for exactly what the test requested, and stamps
//! every signal with the clock time it arrived at (for exact timing tests on a virtual clock).

use futures::FutureExt;
use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::mpsc;
use weir_graph::{AsyncFn, AsyncIo, Event, Sink, StageError, on_demand_input};

/// One signal an [`ExactProbe`] observed.
#[derive(Debug, Clone)]
pub enum Observed<T> {
    /// An element the test requested.
    Next(T),
    /// Upstream completed.
    Complete,
    /// Upstream failed.
    Error(StageError),
}

/// A signal and the clock time the sink received it at.
pub type Stamped<T> = (Duration, Observed<T>);

#[derive(Debug)]
enum Cmd {
    Request(u64),
    Observe,
    Cancel,
}

/// Drives an [`ExactSink`]: grant demand, cancel, and read what arrived (never waits; settle the
/// run first, e.g. with [`crate::VirtualClock::run_for`]).
#[derive(Debug)]
pub struct ExactProbe<T> {
    cmd: mpsc::UnboundedSender<Cmd>,
    events: Mutex<mpsc::UnboundedReceiver<Stamped<T>>>,
}

impl<T: Send + 'static> ExactProbe<T> {
    /// Grants demand for `n` more elements.
    pub fn request(&self, n: u64) {
        let _ = self.cmd.send(Cmd::Request(n));
    }
    /// Kept for callers that ask to see the end without demand: completion and failure already
    /// arrive without demand, so this only wakes the sink.
    pub fn observe_end(&self) {
        let _ = self.cmd.send(Cmd::Observe);
    }
    /// Cancels upstream.
    pub fn cancel(&self) {
        let _ = self.cmd.send(Cmd::Cancel);
    }
    /// The next signal that arrived, if any.
    pub fn try_next(&self) -> Option<Stamped<T>> {
        self.events.lock().ok()?.try_recv().ok()
    }
    /// Every signal that arrived so far.
    pub fn drain(&self) -> Vec<Stamped<T>> {
        std::iter::from_fn(|| self.try_next()).collect()
    }
}

/// A sink materializing an [`ExactProbe`]: its input channel is demand-driven and it asks
/// upstream for exactly the elements the test requested, so the stage in front of it sees that
/// demand and no more; completion and failure arrive without demand.
#[derive(Debug, Clone, Copy)]
pub struct ExactSink;

impl ExactSink {
    /// A sink materializing an [`ExactProbe`].
    pub fn probe<T: Send + 'static>() -> Sink<T, ExactProbe<T>> {
        let sink: Sink<T, ExactProbe<T>> = Sink::from_async("probe-sink", |_info| {
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel::<Cmd>();
            let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Stamped<T>>();
            let probe = ExactProbe {
                cmd: cmd_tx,
                events: Mutex::new(ev_rx),
            };
            let logic = AsyncFn(move |io: AsyncIo| run(io, cmd_rx, ev_tx).boxed());
            Ok((logic, probe))
        });
        Sink::from_module(on_demand_input(sink.module()))
    }
}

async fn run<T: Send + 'static>(
    mut io: AsyncIo,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    events: mpsc::UnboundedSender<Stamped<T>>,
) -> Result<(), StageError> {
    let mut input = io.input::<T>(0)?;
    let clock = io.clock;
    let mut demand: u64 = 0;
    // Rows beyond the demand (only from an upstream that overshoots its grant).
    let mut held: VecDeque<T> = VecDeque::new();
    let mut ended: Option<Observed<T>> = None;
    loop {
        while demand > 0 {
            let Some(x) = held.pop_front() else { break };
            demand -= 1;
            let _ = events.send((clock.now(), Observed::Next(x)));
        }
        if held.is_empty()
            && let Some(end) = ended.take()
        {
            // The failure is the run's outcome too, as for any sink.
            let outcome = match &end {
                Observed::Error(e) => Err(e.clone()),
                _ => Ok(()),
            };
            let _ = events.send((clock.now(), end));
            return outcome;
        }
        let want = usize::try_from(demand).unwrap_or(usize::MAX);
        tokio::select! {
            biased;
            c = cmds.recv() => match c {
                Some(Cmd::Request(n)) => demand = demand.saturating_add(n),
                Some(Cmd::Observe) => {}
                Some(Cmd::Cancel) | None => return Ok(()),
            },
            ev = input.recv_up_to(want), if held.is_empty() => match ev {
                Event::Batch(b) => held.extend(b),
                Event::End => ended = Some(Observed::Complete),
                Event::Error(e) => ended = Some(Observed::Error(e)),
            },
        }
    }
}
