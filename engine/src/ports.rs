//! Engine implementations of the graph's port traits over credit channels:
//! [`ChannelInput`] merges the channels from every upstream subtask, [`RoutedOutput`] routes
//! batches to every downstream subtask through an edge router.

use crate::channel::{Closed, Msg, Receiver, Sender};
use crate::metrics::StageMetrics;
use std::any::Any;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{Cancelled, ErasedInput, ErasedOutput, ErasedRouter, InMsg, StageError};

/// An input port fed by one channel per upstream subtask.
pub(crate) struct ChannelInput {
    chans: Vec<Option<Receiver>>,
    next: usize,
    done: bool,
    path: Arc<str>,
    /// Where received elements are counted (ports of task-owning stages; a fused island counts
    /// per stage itself).
    counts: Option<Arc<StageMetrics>>,
}

impl ChannelInput {
    pub(crate) fn new(chans: Vec<Receiver>, path: Arc<str>) -> Self {
        Self {
            chans: chans.into_iter().map(Some).collect(),
            next: 0,
            done: false,
            path,
            counts: None,
        }
    }

    /// Counts received elements and batches into `m`.
    pub(crate) fn counting_into(mut self, m: Arc<StageMetrics>) -> Self {
        self.counts = Some(m);
        self
    }
}

impl ErasedInput for ChannelInput {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<InMsg> {
        self.poll_inner(cx, None)
    }

    fn poll_recv_up_to(&mut self, cx: &mut Context<'_>, max_rows: usize) -> Poll<InMsg> {
        self.poll_inner(cx, Some(max_rows))
    }

    fn queued_rows(&self) -> usize {
        self.chans
            .iter()
            .flatten()
            .map(|r| r.shared().depth())
            .sum()
    }
}

impl ChannelInput {
    /// Ready with `End` or `Error` once that is what every upstream has next (consuming it);
    /// pending while any upstream still has data or nothing queued. Never takes data.
    pub(crate) fn poll_terminal(&mut self, cx: &mut Context<'_>) -> Poll<InMsg> {
        if self.done {
            return Poll::Ready(InMsg::End);
        }
        let mut open = 0;
        for slot in &mut self.chans {
            let Some(rx) = slot else { continue };
            match rx.poll_terminal(cx) {
                Poll::Ready(Some(Ok(()))) => *slot = None,
                Poll::Ready(Some(Err(e))) => {
                    self.done = true;
                    self.chans.clear();
                    return Poll::Ready(InMsg::Error(e));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    self.chans.clear();
                    return Poll::Ready(InMsg::Error(StageError::cancelled(format!(
                        "upstream of '{}' stopped without completing",
                        self.path
                    ))));
                }
                Poll::Pending => open += 1,
            }
        }
        if open == 0 {
            self.done = true;
            self.chans.clear();
            Poll::Ready(InMsg::End)
        } else {
            Poll::Pending
        }
    }

    /// Receives from the channels in turn; `want` bounds what a demand-driven channel is asked for.
    fn poll_inner(&mut self, cx: &mut Context<'_>, want: Option<usize>) -> Poll<InMsg> {
        if self.done {
            return Poll::Ready(InMsg::End);
        }
        let n = self.chans.len();
        let mut open = 0;
        for k in 0..n {
            let i = (self.next + k) % n;
            let Some(rx) = &self.chans[i] else { continue };
            let polled = match want {
                None => rx.poll_recv(cx),
                Some(w) => rx.poll_recv_up_to(cx, w),
            };
            match polled {
                Poll::Ready(Some(Msg::Data(b))) => {
                    self.next = (i + 1) % n;
                    if let Some(m) = &self.counts {
                        StageMetrics::add(&m.elements_in, b.rows() as u64);
                        StageMetrics::add(&m.batches_in, 1);
                    }
                    return Poll::Ready(InMsg::Data(b));
                }
                Poll::Ready(Some(Msg::End)) => self.chans[i] = None,
                Poll::Ready(Some(Msg::Error(e))) => {
                    self.done = true;
                    self.chans.clear();
                    return Poll::Ready(InMsg::Error(e));
                }
                Poll::Ready(None) => {
                    self.done = true;
                    self.chans.clear();
                    return Poll::Ready(InMsg::Error(StageError::cancelled(format!(
                        "upstream of '{}' stopped without completing",
                        self.path
                    ))));
                }
                Poll::Pending => open += 1,
            }
        }
        if open == 0 {
            self.done = true;
            self.chans.clear();
            Poll::Ready(InMsg::End)
        } else {
            Poll::Pending
        }
    }
}

/// An output port routing batches over one channel per downstream subtask.
pub(crate) struct RoutedOutput {
    router: Box<dyn ErasedRouter>,
    senders: Vec<Option<Sender>>,
    batch_size: usize,
    metrics: Arc<StageMetrics>,
    /// Whether accepted elements count as the stage's output (ports of task-owning stages).
    count_elements: bool,
    finished: bool,
    finish_on_drop: bool,
    /// Some channel carries exactly its consumer's demand: pending rows go out as soon as it
    /// asks, whatever their number.
    on_demand: bool,
}

impl RoutedOutput {
    /// Makes dropping this output complete its consumers (ports handed out for substreams,
    /// which have no engine task to terminate them).
    pub(crate) fn finishing_on_drop(mut self) -> Self {
        self.finish_on_drop = true;
        self
    }

    /// Counts accepted elements as the stage's `elements_out`.
    pub(crate) fn counting_elements(mut self) -> Self {
        self.count_elements = true;
        self
    }

    pub(crate) fn new(
        router: Box<dyn ErasedRouter>,
        senders: Vec<Sender>,
        batch_size: usize,
        metrics: Arc<StageMetrics>,
    ) -> Self {
        let on_demand = senders.iter().any(Sender::is_on_demand);
        Self {
            router,
            on_demand,
            senders: senders.into_iter().map(Some).collect(),
            batch_size: batch_size.max(1),
            metrics,
            count_elements: false,
            finished: false,
            finish_on_drop: false,
        }
    }

    /// Whether some channel of this output carries exactly its consumer's demand.
    pub(crate) fn is_on_demand(&self) -> bool {
        self.on_demand
    }

    fn force_push_pending(&mut self) {
        for d in 0..self.senders.len() {
            if let Some(b) = self.router.take(d)
                && let Some(tx) = &self.senders[d]
            {
                if tx.push(Msg::Data(b)).is_err() {
                    self.senders[d] = None;
                } else {
                    StageMetrics::add(&self.metrics.batches_out, 1);
                }
            }
        }
    }
}

impl ErasedOutput for RoutedOutput {
    fn accept(&mut self, batch: &mut dyn Any) {
        let rows = self.router.route(batch);
        if self.count_elements {
            StageMetrics::add(&self.metrics.elements_out, rows as u64);
        }
    }

    fn poll_flush(&mut self, cx: &mut Context<'_>, force: bool) -> Poll<Result<(), Cancelled>> {
        let mut pending = false;
        let mut open = 0;
        for d in 0..self.senders.len() {
            let Some(tx) = &self.senders[d] else {
                self.router.discard(d);
                continue;
            };
            let rows = self.router.pending(d);
            if rows == 0 || (!force && !self.on_demand && rows < self.batch_size) {
                open += 1;
                continue;
            }
            // Weighed once here (O(1) for fixed-size elements), then carried with the batch.
            let bytes = self.router.pending_bytes(d);
            match tx.poll_ready(cx, rows, bytes) {
                Poll::Ready(Ok(())) => {
                    if let Some(b) = self.router.take(d) {
                        if tx.push_weighed(Msg::Data(b), bytes) == Err(Closed) {
                            self.senders[d] = None;
                            self.router.discard(d);
                            continue;
                        }
                        StageMetrics::add(&self.metrics.batches_out, 1);
                    }
                    open += 1;
                }
                Poll::Ready(Err(Closed)) => {
                    self.senders[d] = None;
                    self.router.discard(d);
                }
                Poll::Pending => {
                    open += 1;
                    pending = true;
                }
            }
        }
        if open == 0 {
            Poll::Ready(Err(Cancelled))
        } else if pending {
            Poll::Pending
        } else {
            Poll::Ready(Ok(()))
        }
    }

    fn poll_closed(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut open = 0;
        for s in &mut self.senders {
            if let Some(tx) = s {
                if tx.poll_closed(cx).is_ready() {
                    *s = None;
                } else {
                    open += 1;
                }
            }
        }
        if open == 0 {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }

    fn is_closed(&self) -> bool {
        self.senders.iter().flatten().all(Sender::is_closed)
    }

    fn finish(&mut self) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.force_push_pending();
        for tx in self.senders.iter().flatten() {
            let _ = tx.push(Msg::End);
        }
    }

    fn fail(&mut self, error: StageError) {
        if self.finished {
            return;
        }
        self.finished = true;
        self.force_push_pending();
        for tx in self.senders.iter().flatten() {
            let _ = tx.push(Msg::Error(error.clone()));
        }
    }

    fn pending_rows(&self) -> usize {
        (0..self.senders.len())
            .map(|d| self.router.pending(d))
            .sum()
    }

    fn poll_demand(&mut self, cx: &mut Context<'_>) -> Poll<Result<usize, Cancelled>> {
        // What is pending was decided on earlier demand: it leaves first.
        match self.poll_flush(cx, true) {
            Poll::Ready(Ok(())) => {}
            other => return other.map(|r| r.map(|()| 0)),
        }
        let (mut total, mut open) = (0usize, 0usize);
        for d in 0..self.senders.len() {
            let Some(tx) = &self.senders[d] else { continue };
            match tx.poll_demand(cx) {
                Poll::Ready(Ok(n)) => {
                    open += 1;
                    total = total.saturating_add(n);
                }
                Poll::Ready(Err(Closed)) => {
                    self.senders[d] = None;
                    self.router.discard(d);
                }
                Poll::Pending => open += 1,
            }
        }
        if open == 0 {
            Poll::Ready(Err(Cancelled))
        } else if total > 0 {
            Poll::Ready(Ok(total))
        } else {
            Poll::Pending
        }
    }
}

impl Drop for RoutedOutput {
    fn drop(&mut self) {
        // Rows accepted but not flushed are delivered, never lost.
        if self.finish_on_drop {
            self.finish();
        } else if !self.finished {
            self.force_push_pending();
        }
    }
}
