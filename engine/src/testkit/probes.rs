//! [`TestSource`] and [`TestSink`] probes.
//!
//! Both are demand-exact. The probe sink pulls nothing until the test calls
//! [`SinkProbe::request`], and its input channel is demand-driven, so the stage in front of it
//! sees exactly the requested number of rows and no more. The probe source hands downstream only
//! what downstream asks for (splitting offered chunks), so [`SourceProbe::delivered`] counts what
//! the stage actually took.

use futures::FutureExt;
use std::collections::VecDeque;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, mpsc};
use weir_graph::{AsyncFn, Clock, Event, Sink, Source, StageError};

/// How long a probe waits for an expected event before failing the test (real time, a safety net).
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

enum SrcCmd<T> {
    Send(Vec<T>),
    Complete,
    Fail(StageError),
}

/// Drives a [`TestSource`]: push elements, complete or fail it, observe cancellation.
#[derive(Debug)]
pub struct SourceProbe<T> {
    tx: mpsc::UnboundedSender<SrcCmd<T>>,
    cancelled: Arc<AtomicBool>,
    cancel_notify: Arc<Notify>,
    sent: Arc<AtomicU64>,
}

impl<T> std::fmt::Debug for SrcCmd<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SrcCmd")
    }
}

impl<T: Send + 'static> SourceProbe<T> {
    /// Offers one element; it is handed downstream when downstream asks for it.
    pub fn offer(&self, x: T) {
        let _ = self.tx.send(SrcCmd::Send(vec![x]));
    }
    /// Offers elements in order; each is handed downstream when downstream asks for it.
    pub fn offer_all(&self, xs: Vec<T>) {
        let _ = self.tx.send(SrcCmd::Send(xs));
    }
    /// Same as [`SourceProbe::offer`].
    pub fn send(&self, x: T) {
        self.offer(x);
    }
    /// Same as [`SourceProbe::offer_all`].
    pub fn send_all(&self, xs: Vec<T>) {
        self.offer_all(xs);
    }
    /// Completes the source after what was sent.
    pub fn complete(&self) {
        let _ = self.tx.send(SrcCmd::Complete);
    }
    /// Fails the source after what was sent.
    pub fn fail(&self, e: StageError) {
        let _ = self.tx.send(SrcCmd::Fail(e));
    }
    /// Whether downstream cancelled the source.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Acquire)
    }
    /// Elements the source managed to hand downstream (credit permitting).
    pub fn delivered(&self) -> u64 {
        self.sent.load(Ordering::Acquire)
    }
    /// Waits until downstream has taken at least `n` elements in all.
    pub async fn expect_delivered(&self, n: u64) {
        let wait = async {
            while self.delivered() < n {
                tokio::task::yield_now().await;
            }
        };
        if tokio::time::timeout(PROBE_TIMEOUT, wait).await.is_err() {
            panic!(
                "expected downstream to take {n} elements from the test source, it took {}",
                self.delivered()
            );
        }
    }
    /// Waits until downstream cancels the source.
    pub async fn expect_cancellation(&self) {
        let wait = async {
            loop {
                let n = self.cancel_notify.notified();
                if self.is_cancelled() {
                    return;
                }
                n.await;
            }
        };
        if tokio::time::timeout(PROBE_TIMEOUT, wait).await.is_err() {
            panic!("expected the test source to be cancelled");
        }
    }
}

/// A source whose elements the test pushes through a [`SourceProbe`].
#[derive(Debug, Clone, Copy)]
pub struct TestSource;

impl TestSource {
    /// A source materializing a [`SourceProbe`].
    pub fn probe<T: Send + 'static>() -> Source<T, SourceProbe<T>> {
        Source::from_async("test-source", |_info| {
            let (tx, mut rx) = mpsc::unbounded_channel::<SrcCmd<T>>();
            let cancelled = Arc::new(AtomicBool::new(false));
            let cancel_notify = Arc::new(Notify::new());
            let sent = Arc::new(AtomicU64::new(0));
            let probe = SourceProbe {
                tx,
                cancelled: Arc::clone(&cancelled),
                cancel_notify: Arc::clone(&cancel_notify),
                sent: Arc::clone(&sent),
            };
            // Downstream cancelled unless the test completed or failed the source: also when the
            // engine drops the stage (every consumer gone, the run stopped), even before it ran.
            let guard = CancelGuard {
                cancelled: Arc::clone(&cancelled),
                notify: Arc::clone(&cancel_notify),
                armed: true,
            };
            let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
                async move {
                    let mut guard = guard;
                    let mut out = io.output::<T>(0)?;
                    let mark = || {
                        cancelled.store(true, Ordering::Release);
                        cancel_notify.notify_waiters();
                    };
                    loop {
                        let cmd = tokio::select! {
                            biased;
                            _ = out.closed() => { mark(); return Ok(()); }
                            c = rx.recv() => c,
                        };
                        match cmd {
                            Some(SrcCmd::Send(mut xs)) => {
                                // Only what downstream asks for leaves, so `delivered` is exact.
                                while !xs.is_empty() {
                                    let Ok(n) = out.demand().await else {
                                        mark();
                                        return Ok(());
                                    };
                                    let rest = xs.split_off(n.min(xs.len()));
                                    let k = xs.len() as u64;
                                    if out.send(std::mem::replace(&mut xs, rest)).await.is_err() {
                                        mark();
                                        return Ok(());
                                    }
                                    sent.fetch_add(k, Ordering::AcqRel);
                                }
                            }
                            Some(SrcCmd::Complete) | None => {
                                guard.armed = false;
                                return Ok(());
                            }
                            Some(SrcCmd::Fail(e)) => {
                                guard.armed = false;
                                return Err(e);
                            }
                        }
                    }
                }
                .boxed()
            });
            Ok((logic, probe))
        })
    }
}

/// Marks a [`TestSource`] cancelled when its task ends without the test completing or failing
/// it (downstream cancelled, or the engine dropped the task once every consumer was gone).
struct CancelGuard {
    cancelled: Arc<AtomicBool>,
    notify: Arc<Notify>,
    armed: bool,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if self.armed {
            self.cancelled.store(true, Ordering::Release);
            self.notify.notify_waiters();
        }
    }
}

/// What a [`SinkProbe`] observed.
#[derive(Debug, Clone, PartialEq)]
pub enum ProbeEvent<T> {
    /// An element.
    Next(T),
    /// Upstream completed.
    Complete,
    /// Upstream failed.
    Error(String),
}

enum SinkCmd {
    Request(u64),
    Cancel,
}

/// Drives a [`TestSink`]: request elements, expect elements and terminal signals, cancel.
pub struct SinkProbe<T> {
    cmd: mpsc::UnboundedSender<SinkCmd>,
    events: mpsc::UnboundedReceiver<Result<Option<T>, StageError>>,
    /// The run's clock, known once the sink started.
    clock: Arc<std::sync::Mutex<Option<Arc<dyn Clock>>>>,
    terminal_seen: u32,
}

impl<T> std::fmt::Debug for SinkProbe<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkProbe")
            .field("terminal_seen", &self.terminal_seen)
            .finish()
    }
}

impl std::fmt::Debug for SinkCmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SinkCmd")
    }
}

/// Lets every task that can make progress run (on the test's runtime) before checking.
async fn settle() {
    for _ in 0..200 {
        tokio::task::yield_now().await;
    }
}

impl<T: Send + Debug + 'static> SinkProbe<T> {
    /// Grants demand for `n` more elements; nothing is pulled from upstream before.
    pub fn request(&self, n: u64) {
        let _ = self.cmd.send(SinkCmd::Request(n));
    }
    /// Cancels upstream.
    pub fn cancel(&self) {
        let _ = self.cmd.send(SinkCmd::Cancel);
    }

    fn event(&mut self, ev: Result<Option<T>, StageError>) -> ProbeEvent<T> {
        match ev {
            Ok(Some(x)) => ProbeEvent::Next(x),
            Ok(None) => {
                self.terminal_seen += 1;
                ProbeEvent::Complete
            }
            Err(e) => {
                self.terminal_seen += 1;
                ProbeEvent::Error(e.to_string())
            }
        }
    }

    /// The next event, waiting for it.
    pub async fn next_event(&mut self) -> ProbeEvent<T> {
        match tokio::time::timeout(PROBE_TIMEOUT, self.events.recv()).await {
            Err(_) => panic!("test sink: no event arrived"),
            Ok(None) => panic!("test sink: the stream ended without a terminal signal"),
            Ok(Some(ev)) => self.event(ev),
        }
    }

    /// The next event if one is already there.
    pub fn try_next_event(&mut self) -> Option<ProbeEvent<T>> {
        match self.events.try_recv() {
            Ok(ev) => Some(self.event(ev)),
            Err(_) => None,
        }
    }

    /// Expects an element and returns it.
    pub async fn expect_next(&mut self) -> T {
        match self.next_event().await {
            ProbeEvent::Next(x) => x,
            other => panic!("expected an element, got {other:?}"),
        }
    }
    /// Expects `n` elements.
    pub async fn expect_next_n(&mut self, n: usize) -> Vec<T> {
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.expect_next().await);
        }
        v
    }
    /// Expects completion.
    pub async fn expect_complete(&mut self) {
        match self.next_event().await {
            ProbeEvent::Complete => {}
            other => panic!("expected completion, got {other:?}"),
        }
    }
    /// Expects failure and returns the error message.
    pub async fn expect_error(&mut self) -> String {
        match self.next_event().await {
            ProbeEvent::Error(e) => e,
            other => panic!("expected an error, got {other:?}"),
        }
    }

    /// Expects no event during `d` of the run's clock (real time with the system clock; with a
    /// [`VirtualClock`](crate::testkit::VirtualClock) use
    /// [`SinkProbe::expect_no_element_advancing`], which moves the clock itself).
    pub async fn expect_no_element(&mut self, d: Duration) {
        settle().await;
        if let Some(ev) = self.try_next_event() {
            panic!("expected no element within {d:?}, got {ev:?}");
        }
        let clock = self.clock.lock().ok().and_then(|c| c.clone());
        let sleep = match clock {
            Some(c) => {
                let deadline = c.now() + d;
                c.sleep_until(deadline)
            }
            None => Box::pin(tokio::time::sleep(d)),
        };
        let wait = async {
            tokio::select! {
                biased;
                ev = self.events.recv() => ev,
                () = sleep => None,
            }
        };
        match tokio::time::timeout(PROBE_TIMEOUT + d, wait).await {
            Err(_) => panic!("expect_no_element: the run's clock did not reach {d:?}"),
            Ok(Some(ev)) => {
                let ev = self.event(ev);
                panic!("expected no element within {d:?}, got {ev:?}");
            }
            Ok(None) => {}
        }
    }

    /// Expects no event while `clock` is advanced by `d` (the run must use `clock`): everything
    /// ready runs before and after the advance, with no real waiting.
    pub async fn expect_no_element_advancing(
        &mut self,
        clock: &crate::testkit::VirtualClock,
        d: Duration,
    ) {
        settle().await;
        if let Some(ev) = self.try_next_event() {
            panic!("expected no element before advancing {d:?}, got {ev:?}");
        }
        clock.advance(d);
        settle().await;
        if let Some(ev) = self.try_next_event() {
            panic!("expected no element within {d:?} of virtual time, got {ev:?}");
        }
    }

    /// Requests everything and collects elements until the stream terminates.
    pub async fn collect_all(&mut self) -> (Vec<T>, ProbeEvent<T>) {
        self.request(u64::MAX / 2);
        let mut v = Vec::new();
        loop {
            match self.next_event().await {
                ProbeEvent::Next(x) => v.push(x),
                other => return (v, other),
            }
        }
    }
}

/// The probe sink's event sender; a probe the run drops after another sink's failure (its own
/// failure still on the way) reports that failure as its end.
struct Unended<T> {
    tx: mpsc::UnboundedSender<Result<Option<T>, StageError>>,
    sub: Arc<dyn weir_graph::SubMaterializer>,
    armed: bool,
}

impl<T> Unended<T> {
    /// Reports the end the probe saw itself.
    fn end(&mut self, end: Result<(), StageError>) {
        let _ = self.tx.send(end.map(|()| None));
        self.armed = false;
    }
}

impl<T> Drop for Unended<T> {
    fn drop(&mut self) {
        if self.armed
            && let Some(e) = self.sub.run_failure()
        {
            let _ = self.tx.send(Err(e));
        }
    }
}

/// A sink that pulls only what the test requests through a [`SinkProbe`]: its input channel is
/// demand-driven, so upstream sends exactly the requested rows; completion and failure are seen
/// without demand (after the elements already received). A failure is reported to the test and
/// fails the run as at any other sink: the run's `wait()` returns it.
#[derive(Debug, Clone, Copy)]
pub struct TestSink;

impl TestSink {
    /// A sink materializing a [`SinkProbe`].
    pub fn probe<T: Send + 'static>() -> Sink<T, SinkProbe<T>> {
        let sink: Sink<T, SinkProbe<T>> = Sink::from_async("test-sink", |_info| {
            let (cmd_tx, mut cmd_rx) = mpsc::unbounded_channel::<SinkCmd>();
            let (ev_tx, ev_rx) = mpsc::unbounded_channel::<Result<Option<T>, StageError>>();
            let clock_slot: Arc<std::sync::Mutex<Option<Arc<dyn Clock>>>> =
                Arc::new(std::sync::Mutex::new(None));
            let probe = SinkProbe {
                cmd: cmd_tx,
                events: ev_rx,
                clock: Arc::clone(&clock_slot),
                terminal_seen: 0,
            };
            let logic = AsyncFn(move |mut io: weir_graph::AsyncIo| {
                // Made before the first poll: a run that fails elsewhere may drop the stage
                // before it ever ran.
                let mut ev_tx = Unended {
                    tx: ev_tx,
                    sub: Arc::clone(&io.sub),
                    armed: true,
                };
                async move {
                    if let Ok(mut c) = clock_slot.lock() {
                        *c = Some(Arc::clone(&io.clock));
                    }
                    let mut input = io.input::<T>(0)?;
                    let mut demand: u64 = 0;
                    // Rows received beyond the demand (only from an upstream that overshoots).
                    let mut held: VecDeque<T> = VecDeque::new();
                    let mut ended: Option<Result<(), StageError>> = None;
                    loop {
                        while demand > 0 {
                            let Some(x) = held.pop_front() else { break };
                            demand -= 1;
                            let _ = ev_tx.tx.send(Ok(Some(x)));
                        }
                        if held.is_empty()
                            && let Some(end) = ended.take()
                        {
                            // Reported to the test, then the run ends as at any other sink:
                            // a failure fails it.
                            ev_tx.end(end.clone());
                            return end;
                        }
                        let want = usize::try_from(demand).unwrap_or(usize::MAX);
                        let open = ended.is_none() && held.is_empty();
                        tokio::select! {
                            biased;
                            c = cmd_rx.recv() => match c {
                                Some(SinkCmd::Request(n)) => demand = demand.saturating_add(n),
                                Some(SinkCmd::Cancel) | None => return Ok(()),
                            },
                            ev = input.recv_up_to(want), if open => match ev {
                                Event::Batch(b) => held.extend(b),
                                Event::End => ended = Some(Ok(())),
                                Event::Error(e) => ended = Some(Err(e)),
                            },
                        }
                    }
                }
                .boxed()
            });
            Ok((logic, probe))
        });
        Sink::from_module(weir_graph::on_demand_input(sink.module()))
    }
}
