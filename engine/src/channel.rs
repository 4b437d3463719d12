//! The credit channel between islands: single consumer, bounded in rows and bytes (not messages),
//! carrying data and in-band control (end, error) in order.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use weir_graph::{BoxBatch, StageError};

/// A message on a channel.
pub(crate) enum Msg {
    Data(BoxBatch),
    End,
    Error(StageError),
}

struct State {
    queue: VecDeque<Msg>,
    rows: usize,
    bytes: usize,
    rx_waker: Option<Waker>,
    tx_waker: Option<Waker>,
    rx_dropped: bool,
    terminated: bool,
}

pub(crate) struct Shared {
    state: Mutex<State>,
    cap_rows: usize,
    cap_bytes: usize,
    senders: AtomicUsize,
    depth: AtomicUsize,
    peak: AtomicUsize,
}

impl Shared {
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
}

fn wake(w: Option<Waker>) {
    if let Some(w) = w {
        w.wake();
    }
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
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            rows: 0,
            bytes: 0,
            rx_waker: None,
            tx_waker: None,
            rx_dropped: false,
            terminated: false,
        }),
        cap_rows: cap_rows.max(1),
        cap_bytes: cap_bytes.max(1),
        senders: AtomicUsize::new(1),
        depth: AtomicUsize::new(0),
        peak: AtomicUsize::new(0),
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
    shared: Arc<Shared>,
}

impl Sender {
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
        let fits = s.rows == 0
            || (s.rows + rows <= self.shared.cap_rows && s.bytes + bytes <= self.shared.cap_bytes);
        if fits {
            Poll::Ready(Ok(()))
        } else {
            set_waker(&mut s.tx_waker, cx);
            Poll::Pending
        }
    }

    /// Enqueues a message without checking credit (call after `poll_ready`, or for control).
    pub(crate) fn push(&self, msg: Msg) -> Result<(), Closed> {
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
                    s.bytes += b.bytes();
                    self.shared.depth.store(s.rows, Ordering::Relaxed);
                    if s.rows > self.shared.peak.load(Ordering::Relaxed) {
                        self.shared.peak.store(s.rows, Ordering::Relaxed);
                    }
                }
                Msg::End | Msg::Error(_) => s.terminated = true,
            }
            s.queue.push_back(msg);
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
            set_waker(&mut s.tx_waker, cx);
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
    shared: Arc<Shared>,
}

impl Receiver {
    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Next message; `None` when every sender vanished without end-of-stream.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Msg>> {
        let (msg, w) = {
            let mut s = self.shared.lock();
            match s.queue.pop_front() {
                Some(m) => {
                    if let Msg::Data(b) = &m {
                        s.rows -= b.rows();
                        s.bytes -= b.bytes();
                        self.shared.depth.store(s.rows, Ordering::Relaxed);
                    }
                    (Poll::Ready(Some(m)), s.tx_waker.take())
                }
                None => {
                    if self.shared.senders.load(Ordering::Acquire) == 0 {
                        (Poll::Ready(None), None)
                    } else {
                        set_waker(&mut s.rx_waker, cx);
                        (Poll::Pending, None)
                    }
                }
            }
        };
        wake(w);
        msg
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
            s.tx_waker.take()
        };
        wake(w);
    }
}
