//! The credit channel between islands: single consumer, bounded in rows and bytes (not messages),
//! carrying data and in-band control (end, error, control messages) in order.
//!
//! A batch weighs its rows and its bytes ([`weir_graph::batch_bytes`]: inline size plus the
//! heap bytes of element types that report them), computed once when it is sent; a producer
//! waits while either bound would be exceeded, except into an empty channel (so a channel
//! holds at most its byte capacity, or one batch larger than it).
//!
//! A demand-driven channel ([`channel_on_demand`]) has no capacity of its own: the consumer grants
//! rows when it polls an empty queue, and the producer may send only what was granted, so no more
//! than the consumer asked for is ever in flight. Ordinary channels never take that path.

// The unit tests run the channel under shuttle's scheduler (`channel_shuttle.rs`), which
// explores thread interleavings at every lock and atomic operation; builds use std's.
#[cfg(test)]
use shuttle::sync::{
    Mutex, MutexGuard,
    atomic::{AtomicUsize, Ordering},
};
use std::collections::VecDeque;
use std::sync::Arc;
#[cfg(not(test))]
use std::sync::atomic::{AtomicUsize, Ordering};
#[cfg(not(test))]
use std::sync::{Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use weir_graph::{BoxBatch, Control, StageError};

/// A message on a channel.
pub(crate) enum Msg {
    Data(BoxBatch),
    End,
    Error(StageError),
    /// A control message: no rows, needs no credit, does not end the channel.
    Control(Control),
}

struct State {
    /// Messages with their weight in bytes (0 for control).
    queue: VecDeque<(Msg, usize)>,
    rows: usize,
    bytes: usize,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    /// The producer waiting for the consumer to go (woken only by that, never per batch).
    closed_waker: Option<Waker>,
    rx_dropped: bool,
    terminated: bool,
    /// Demand-driven channels: rows the consumer asked for and has not been sent yet.
    demand: usize,
}

pub(crate) struct ChannelState {
    state: Mutex<State>,
    cap_rows: usize,
    cap_bytes: usize,
    /// Demand-driven: `cap_rows` is the most rows one poll of the consumer grants.
    on_demand: bool,
    senders: AtomicUsize,
    depth: AtomicUsize,
    peak: AtomicUsize,
    peak_bytes: AtomicUsize,
    /// Bytes of the data batches the consumer took so far (their weight when sent).
    received_bytes: AtomicUsize,
}

impl ChannelState {
    fn lock(&self) -> MutexGuard<'_, State> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }
    /// Rows queued now.
    pub(crate) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }
    /// Most rows ever queued at once.
    pub(crate) fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }
    /// Most bytes ever queued at once.
    pub(crate) fn peak_bytes(&self) -> usize {
        self.peak_bytes.load(Ordering::Relaxed)
    }
    /// Bytes of the data batches the consumer took so far.
    pub(crate) fn received_bytes(&self) -> usize {
        self.received_bytes.load(Ordering::Relaxed)
    }
    /// Capacity in rows (for a demand-driven channel: the most rows one poll grants).
    pub(crate) fn capacity(&self) -> usize {
        self.cap_rows
    }
    /// Whether a producer waits for credit now: the queue holds its capacity in rows or bytes.
    pub(crate) fn is_full(&self) -> bool {
        let s = self.lock();
        if self.on_demand {
            return s.rows > 0 && s.demand == 0;
        }
        s.rows > 0 && (s.rows >= self.cap_rows || s.bytes >= self.cap_bytes)
    }
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        WOKE.with(|c| c.set(true));
        w.wake();
    }
}

thread_local! {
    /// Set when a channel operation on this thread woke the task on the other end.
    static WOKE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether a channel operation on this thread woke the task on its other end since the last
/// call (and forgets it). A chain island yields then, so the task it woke, which tokio keeps in
/// this worker's LIFO slot where no other worker can steal it, runs before the island's next
/// user call, which might block the worker.
pub(crate) fn take_woke() -> bool {
    WOKE.with(|c| c.replace(false))
}

fn set_waker(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(w) if w.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

/// Creates a channel holding at most `cap_rows` rows and `cap_bytes` bytes (a single batch larger
/// than the capacity is admitted when the channel is empty).
pub(crate) fn channel(cap_rows: usize, cap_bytes: usize) -> (Sender, Receiver) {
    make(cap_rows, cap_bytes, false)
}

/// Creates a demand-driven channel: the consumer grants up to `grant_rows` rows each time it
/// polls an empty queue (or exactly what it asks for with [`Receiver::poll_recv_up_to`]).
pub(crate) fn channel_on_demand(grant_rows: usize) -> (Sender, Receiver) {
    make(grant_rows, usize::MAX, true)
}

fn make(cap_rows: usize, cap_bytes: usize, on_demand: bool) -> (Sender, Receiver) {
    let shared = Arc::new(ChannelState {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            rows: 0,
            bytes: 0,
            rx_waker: None,
            tx_waker: None,
            closed_waker: None,
            rx_dropped: false,
            terminated: false,
            demand: 0,
        }),
        cap_rows: cap_rows.max(1),
        cap_bytes: cap_bytes.max(1),
        on_demand,
        senders: AtomicUsize::new(1),
        depth: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
        peak_bytes: AtomicUsize::new(0),
        received_bytes: AtomicUsize::new(0),
    });
    (
        Sender {
            shared: Arc::clone(&shared),
        },
        Receiver { shared },
    )
}

/// The consumer went away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Closed;

/// The producing end.
pub(crate) struct Sender {
    shared: Arc<ChannelState>,
}

impl Sender {
    /// The channel's shared state (its queue's metrics).
    pub(crate) fn shared(&self) -> &Arc<ChannelState> {
        &self.shared
    }

    /// Another handle to the same channel (used by the engine to terminate it).
    pub(crate) fn control(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Self {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Waits until a batch of `rows`/`bytes` fits.
    pub(crate) fn poll_ready(
        &self,
        cx: &mut Context<'_>,
        rows: usize,
        bytes: usize,
    ) -> Poll<Result<(), Closed>> {
        let mut s = self.shared.lock();
        if s.rx_dropped {
            return Poll::Ready(Err(Closed));
        }
        if self.shared.on_demand {
            return if s.demand > 0 {
                Poll::Ready(Ok(()))
            } else {
                set_waker(&mut s.tx_waker, cx);
                Poll::Pending
            };
        }
        let fits = s.rows == 0
            || (s.rows + rows <= self.shared.cap_rows && s.bytes + bytes <= self.shared.cap_bytes);
        if fits {
            Poll::Ready(Ok(()))
        } else {
            set_waker(&mut s.tx_waker, cx);
            Poll::Pending
        }
    }

    /// Whether this channel carries exactly the consumer's demand.
    pub(crate) fn is_on_demand(&self) -> bool {
        self.shared.on_demand
    }

    /// Waits until the consumer takes rows and returns how many: its open demand on a
    /// demand-driven channel, the free capacity otherwise.
    pub(crate) fn poll_demand(&self, cx: &mut Context<'_>) -> Poll<Result<usize, Closed>> {
        let mut s = self.shared.lock();
        if s.rx_dropped {
            return Poll::Ready(Err(Closed));
        }
        let free = if self.shared.on_demand {
            s.demand
        } else if s.rows == 0 {
            self.shared.cap_rows
        } else {
            self.shared.cap_rows.saturating_sub(s.rows)
        };
        if free > 0 {
            Poll::Ready(Ok(free))
        } else {
            set_waker(&mut s.tx_waker, cx);
            Poll::Pending
        }
    }

    /// Enqueues a message without checking credit (call after `poll_ready`, or for control).
    pub(crate) fn push(&self, msg: Msg) -> Result<(), Closed> {
        let bytes = match &msg {
            Msg::Data(b) => b.bytes(),
            Msg::End | Msg::Error(_) | Msg::Control(_) => 0,
        };
        self.push_weighed(msg, bytes)
    }

    /// [`Sender::push`] of a message whose weight in bytes the caller already computed (the
    /// `bytes` it passed to `poll_ready`).
    pub(crate) fn push_weighed(&self, msg: Msg, bytes: usize) -> Result<(), Closed> {
        let w = {
            let mut s = self.shared.lock();
            if s.rx_dropped {
                return Err(Closed);
            }
            if s.terminated {
                return Ok(());
            }
            match &msg {
                Msg::Data(b) => {
                    s.rows += b.rows();
                    s.bytes += bytes;
                    s.demand = s.demand.saturating_sub(b.rows());
                    self.shared.depth.store(s.rows, Ordering::Relaxed);
                    if s.rows > self.shared.peak.load(Ordering::Relaxed) {
                        self.shared.peak.store(s.rows, Ordering::Relaxed);
                    }
                    if s.bytes > self.shared.peak_bytes.load(Ordering::Relaxed) {
                        self.shared.peak_bytes.store(s.bytes, Ordering::Relaxed);
                    }
                }
                Msg::End | Msg::Error(_) => s.terminated = true,
                Msg::Control(_) => {}
            }
            let bytes = if matches!(msg, Msg::Data(_)) {
                bytes
            } else {
                0
            };
            s.queue.push_back((msg, bytes));
            s.rx_waker.take()
        };
        wake(w);
        Ok(())
    }

    /// Ready once the consumer is gone.
    pub(crate) fn poll_closed(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut s = self.shared.lock();
        if s.rx_dropped {
            Poll::Ready(())
        } else {
            set_waker(&mut s.closed_waker, cx);
            Poll::Pending
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().rx_dropped
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            let w = self.shared.lock().rx_waker.take();
            wake(w);
        }
    }
}

/// The consuming end; dropping it cancels the producer.
pub(crate) struct Receiver {
    shared: Arc<ChannelState>,
}

impl Receiver {
    pub(crate) fn shared(&self) -> &Arc<ChannelState> {
        &self.shared
    }

    /// Whether this channel carries exactly the consumer's demand.
    pub(crate) fn is_on_demand(&self) -> bool {
        self.shared.on_demand
    }

    /// Next message; `None` when every sender vanished without end-of-stream.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        self.poll_recv_up_to(cx, self.shared.cap_rows)
    }

    /// Next message; on a demand-driven channel an empty queue first raises the open demand to
    /// `want` rows (what the consumer is ready for), waking the producer.
    pub(crate) fn poll_recv_up_to(&self, cx: &mut Context<'_>, want: usize) -> Poll<Option<Msg>> {
        let (msg, w) = {
            let mut s = self.shared.lock();
            match s.queue.pop_front() {
                Some((m, bytes)) => {
                    if let Msg::Data(b) = &m {
                        s.rows -= b.rows();
                        s.bytes -= bytes;
                        self.shared.depth.store(s.rows, Ordering::Relaxed);
                        self.shared
                            .received_bytes
                            .fetch_add(bytes, Ordering::Relaxed);
                    }
                    (Poll::Ready(Some(m)), s.tx_waker.take())
                }
                None => {
                    if self.shared.senders.load(Ordering::Acquire) == 0 {
                        (Poll::Ready(None), None)
                    } else {
                        set_waker(&mut s.rx_waker, cx);
                        let mut w = None;
                        if self.shared.on_demand && !s.terminated && s.demand < want {
                            s.demand = want;
                            w = s.tx_waker.take();
                        }
                        (Poll::Pending, w)
                    }
                }
            }
        };
        wake(w);
        msg
    }
}

impl Receiver {
    /// Ready when the next message is end-of-stream (`Some(Ok)`), a failure (`Some(Err)`) or
    /// every sender vanished (`None`), taking it; pending while data comes first or nothing is
    /// queued. Lets a consumer without demand see completion without pulling data.
    pub(crate) fn poll_terminal(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<(), StageError>>> {
        let mut s = self.shared.lock();
        match s.queue.front() {
            // A control waits with the data for the consumer's next demand.
            Some((Msg::Data(_) | Msg::Control(_), _)) => Poll::Pending,
            Some(_) => match s.queue.pop_front() {
                Some((Msg::Error(e), _)) => Poll::Ready(Some(Err(e))),
                _ => Poll::Ready(Some(Ok(()))),
            },
            None if self.shared.senders.load(Ordering::Acquire) == 0 => Poll::Ready(None),
            None => {
                set_waker(&mut s.rx_waker, cx);
                Poll::Pending
            }
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        let w = {
            let mut s = self.shared.lock();
            s.rx_dropped = true;
            s.queue.clear();
            s.rows = 0;
            s.bytes = 0;
            self.shared.depth.store(0, Ordering::Relaxed);
            (s.tx_waker.take(), s.closed_waker.take())
        };
        wake(w.0);
        wake(w.1);
    }
}

#[cfg(test)]
#[path = "channel_shuttle.rs"]
mod shuttle_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use std::task::Waker;

    fn cx() -> Context<'static> {
        Context::from_waker(Waker::noop())
    }

    fn data(v: Vec<u32>) -> Msg {
        Msg::Data(Box::new(v))
    }

    fn rows(m: Poll<Option<Msg>>) -> Vec<u32> {
        match m {
            Poll::Ready(Some(Msg::Data(b))) => match b.into_any().downcast::<Vec<u32>>() {
                Ok(v) => *v,
                Err(_) => panic!("not a batch of u32"),
            },
            _ => panic!("expected data"),
        }
    }

    #[test]
    fn a_demand_channel_carries_only_what_the_consumer_asked_for() {
        shuttle::check_random(
            || {
                let (tx, rx) = channel_on_demand(8);
                let mut cx = cx();
                // Nothing asked yet: no demand, no credit.
                assert!(tx.poll_demand(&mut cx).is_pending());
                assert!(tx.poll_ready(&mut cx, 1, 0).is_pending());
                // The consumer polls an empty queue asking for 3.
                assert!(rx.poll_recv_up_to(&mut cx, 3).is_pending());
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(3)));
                tx.push(data(vec![1, 2])).unwrap();
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(1)));
                assert_eq!(rows(rx.poll_recv_up_to(&mut cx, 1)), vec![1, 2]);
                // Asking for 1 while 1 is still open grants nothing more.
                assert!(rx.poll_recv_up_to(&mut cx, 1).is_pending());
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(1)));
                tx.push(data(vec![3])).unwrap();
                assert!(tx.poll_demand(&mut cx).is_pending());
                assert_eq!(rows(rx.poll_recv(&mut cx)), vec![3]);
                // A plain poll grants the consumer's batch (the channel's grant size).
                assert!(rx.poll_recv(&mut cx).is_pending());
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(8)));
            },
            1,
        );
    }

    #[test]
    fn end_and_errors_need_no_demand_and_are_seen_without_taking_data() {
        shuttle::check_random(
            || {
                let (tx, rx) = channel_on_demand(4);
                let mut cx = cx();
                assert!(rx.poll_terminal(&mut cx).is_pending());
                assert!(rx.poll_recv_up_to(&mut cx, 1).is_pending());
                tx.push(data(vec![7])).unwrap();
                tx.push(Msg::End).unwrap();
                // Data comes first: the terminal peek waits.
                assert!(rx.poll_terminal(&mut cx).is_pending());
                assert_eq!(rows(rx.poll_recv(&mut cx)), vec![7]);
                assert!(matches!(
                    rx.poll_terminal(&mut cx),
                    Poll::Ready(Some(Ok(())))
                ));

                let (tx, rx) = channel_on_demand(4);
                tx.push(Msg::Error(StageError::user("boom"))).unwrap();
                assert!(matches!(
                    rx.poll_terminal(&mut cx),
                    Poll::Ready(Some(Err(_)))
                ));
                drop(tx);
                assert!(matches!(rx.poll_terminal(&mut cx), Poll::Ready(None)));
            },
            1,
        );
    }

    #[test]
    fn ordinary_channels_report_free_capacity_as_demand() {
        shuttle::check_random(
            || {
                let (tx, rx) = channel(10, usize::MAX);
                let mut cx = cx();
                assert!(!tx.is_on_demand());
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(10)));
                tx.push(data(vec![1, 2, 3, 4])).unwrap();
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Ok(6)));
                tx.push(data((0..6).collect())).unwrap();
                assert!(tx.poll_demand(&mut cx).is_pending());
                assert_eq!(rows(rx.poll_recv(&mut cx)), vec![1, 2, 3, 4]);
                drop(rx);
                assert_eq!(tx.poll_demand(&mut cx), Poll::Ready(Err(Closed)));
            },
            1,
        );
    }
}
