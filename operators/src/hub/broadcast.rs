//! `BroadcastHub`: a sink whose materialized source can be attached by any number of consumers.

use super::fanout::{FanOut, HubGuard, Producer, hub_stage};
use super::{lock, positive, wake};
use std::collections::{HashMap, VecDeque};
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use weir_graph::{GraphError, Sink, Source, StageError};

/// A dynamic fan-out: see [`BroadcastHub::sink`].
#[derive(Debug, Clone, Copy)]
pub struct BroadcastHub;

struct Consumer {
    /// Offset of the next element this consumer reads.
    offset: u64,
    waker: Option<Waker>,
}

struct State<T> {
    /// Elements not yet read by every consumer; `buf[0]` has offset `head`.
    buf: VecDeque<T>,
    head: u64,
    capacity: usize,
    consumers: HashMap<u64, Consumer>,
    next_id: u64,
    /// Set when upstream completed (Ok) or failed, or the hub stopped early (Err).
    end: Option<Result<(), StageError>>,
    producer: Option<Waker>,
}

impl<T> State<T> {
    fn tail(&self) -> u64 {
        self.head + self.buf.len() as u64
    }
    /// Drops the elements every consumer has read; with no consumer nothing is dropped.
    fn trim(&mut self) {
        let Some(min) = self.consumers.values().map(|c| c.offset).min() else {
            return;
        };
        let n = usize::try_from(min.saturating_sub(self.head)).unwrap_or(usize::MAX);
        let n = n.min(self.buf.len());
        if n > 0 {
            self.buf.drain(..n);
            self.head += n as u64;
            wake(&mut self.producer);
        }
    }
}

type BroadcastHubState<T> = Arc<Mutex<State<T>>>;

impl BroadcastHub {
    /// A sink whose materialized value is a source; every materialization of that source (in
    /// this run or others) is a consumer receiving every element from its attach point on: the
    /// oldest element still buffered, i.e. where the slowest attached consumer is (or, for the
    /// first consumer, everything sent before it attached, up to `buffer_size`).
    ///
    /// Emits when: (each consumer) it has unread elements and downstream demands.
    /// Backpressures when: `buffer_size` elements are unread by the slowest attached consumer,
    /// or by nobody while no consumer is attached.
    /// Completes when: upstream completes; each consumer completes after reading what is left,
    /// and consumers attached later complete after the elements still buffered.
    /// Cancels when: never; a cancelled consumer only leaves the hub (it may release the
    /// slowest position).
    /// Fails when: upstream fails; every consumer (also those attached later) fails after the
    /// elements buffered before the failure.
    pub fn sink<T: Clone + Send + 'static>(
        buffer_size: usize,
    ) -> Result<Sink<T, Source<T, ()>>, GraphError> {
        let capacity = positive("broadcast_hub", "buffer_size", buffer_size)?;
        Ok(Sink::from_async("broadcast_hub", move |_info| {
            let shared: BroadcastHubState<T> = Arc::new(Mutex::new(State {
                buf: VecDeque::new(),
                head: 0,
                capacity,
                consumers: HashMap::new(),
                next_id: 0,
                end: None,
                producer: None,
            }));
            Ok(hub_stage(HubGuard(shared), "broadcast_hub_source"))
        }))
    }
}

impl<T: Clone + Send + 'static> Producer<T> for HubGuard<State<T>> {
    type Hub = State<T>;

    fn hub(&self) -> &BroadcastHubState<T> {
        &self.0
    }

    /// Appends `batch` to the buffer as room frees up.
    async fn push(&mut self, batch: Vec<T>) -> Result<(), StageError> {
        let mut rest = batch.into_iter();
        let mut left = rest.len();
        poll_fn(|cx| {
            let mut st = lock(&self.0);
            let room = st.capacity.saturating_sub(st.buf.len()).min(left);
            if room > 0 {
                st.buf.extend(rest.by_ref().take(room));
                left -= room;
                st.wake_consumers();
            }
            if left == 0 {
                return Poll::Ready(());
            }
            st.producer = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        Ok(())
    }
}

impl<T: Clone + Send + 'static> FanOut for State<T> {
    type Item = T;
    const NAME: &'static str = "broadcast_hub";

    fn attach(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let offset = self.head;
        self.consumers.insert(
            id,
            Consumer {
                offset,
                waker: None,
            },
        );
        id
    }

    fn detach(&mut self, id: u64) {
        if self.consumers.remove(&id).is_some() {
            self.trim();
        }
    }

    fn take(&mut self, id: u64, max: usize, out: &mut Vec<T>) -> Option<(usize, bool)> {
        let (head, tail) = (self.head, self.tail());
        let c = self.consumers.get_mut(&id)?;
        let from = c.offset.max(head);
        let n = usize::try_from(tail - from).unwrap_or(usize::MAX).min(max);
        let at = usize::try_from(from - head).unwrap_or(usize::MAX);
        out.extend(self.buf.range(at..at + n).cloned());
        c.offset = from + n as u64;
        if n > 0 {
            self.trim();
        }
        Some((n, from + n as u64 == tail))
    }

    fn park(&mut self, id: u64, waker: &Waker) {
        if let Some(c) = self.consumers.get_mut(&id) {
            c.waker = Some(waker.clone());
        }
    }

    fn end(&mut self) -> &mut Option<Result<(), StageError>> {
        &mut self.end
    }

    fn wake_consumers(&mut self) {
        for c in self.consumers.values_mut() {
            wake(&mut c.waker);
        }
    }
}
