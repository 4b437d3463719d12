//! Engine implementations of the graph's port traits over credit channels:
//! [`ChannelInput`] merges the channels from every upstream subtask, [`RoutedOutput`] routes
//! batches to every downstream subtask through an edge router.

use crate::channel::{Closed, Msg, Receiver, Sender};
use crate::metrics::StageMetrics;
use std::any::Any;
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{
    Aligner, Cancelled, Control, ErasedInput, ErasedOutput, ErasedRouter, InMsg, StageError,
};

/// Where an input port hands the controls it receives when the engine forwards control for
/// its stage (the stage's `ControlHub`).
pub(crate) trait ControlSink: Send + Sync {
    /// Input port `port` delivered `control` (aligned over its channels).
    fn arrive(&self, port: usize, control: Control);
    /// Input port `port` ended (or was dropped).
    fn end(&self, port: usize);
    /// Whether input port `port` must not be read now (it delivered a barrier that aligns);
    /// registers the waker then.
    fn blocked(&self, port: usize, cx: &mut Context<'_>) -> bool {
        let _ = (port, cx);
        false
    }
    /// The stage read an unblocked port: it delivered data, or the stage waits on it.
    fn read_open(&self) {}
}

/// An input port fed by one channel per upstream subtask.
///
/// Control messages are aligned over the channels: a channel that delivered a control is not
/// read again until every other open channel delivered the same control (or ended), and the
/// control is then delivered once. A port of an asynchronous stage that does not handle control
/// hands it to the stage's [`ControlSink`] instead of delivering it.
pub(crate) struct ChannelInput {
    chans: Vec<Option<Receiver>>,
    next: usize,
    done: bool,
    path: Arc<str>,
    /// Where received elements are counted (ports of task-owning stages; a fused island counts
    /// per stage itself).
    counts: Option<Arc<StageMetrics>>,
    /// Alignment over the channels (only with more than one).
    aligner: Option<Aligner>,
    /// Aligned controls not delivered yet.
    ready: VecDeque<Control>,
    /// The stage's hub and this port's index, when the engine forwards control for the stage.
    hub: Option<(Arc<dyn ControlSink>, usize)>,
}

impl ChannelInput {
    pub(crate) fn new(chans: Vec<Receiver>, path: Arc<str>) -> Self {
        let aligner = (chans.len() > 1).then(|| Aligner::new(chans.len()));
        Self {
            chans: chans.into_iter().map(Some).collect(),
            next: 0,
            done: false,
            path,
            counts: None,
            aligner,
            ready: VecDeque::new(),
            hub: None,
        }
    }

    /// Counts received elements and batches into `m`.
    pub(crate) fn counting_into(mut self, m: Arc<StageMetrics>) -> Self {
        self.counts = Some(m);
        self
    }

    /// Hands controls to `hub` as input port `port` instead of delivering them.
    pub(crate) fn forwarding_to(mut self, hub: Arc<dyn ControlSink>, port: usize) -> Self {
        self.hub = Some((hub, port));
        self
    }

    /// Channel `i` delivered `control`: queues what that aligns.
    fn on_control(&mut self, i: usize, control: Control) {
        match &mut self.aligner {
            None => self.ready.push_back(control),
            Some(a) => self.ready.extend(a.arrive(i, control)),
        }
    }

    /// Channel `i` ended: queues the controls that waited only for it.
    fn on_channel_end(&mut self, i: usize) {
        self.chans[i] = None;
        if let Some(a) = &mut self.aligner {
            self.ready.extend(a.end(i));
        }
    }

    /// The next aligned control, delivered (`Some`) or handed to the hub (`None`).
    fn take_ready(&mut self) -> Option<InMsg> {
        while let Some(c) = self.ready.pop_front() {
            match &self.hub {
                Some((hub, port)) => hub.arrive(*port, c),
                None => {
                    if let Some(m) = &self.counts {
                        m.saw_control(&c);
                    }
                    return Some(InMsg::Control(c));
                }
            }
        }
        None
    }

    /// Whether the stage's hub blocks this port now (it delivered a barrier that aligns).
    fn hub_blocked(&self, cx: &mut Context<'_>) -> bool {
        match &self.hub {
            Some((hub, port)) => hub.blocked(*port, cx),
            None => false,
        }
    }

    /// The port delivered its end: the hub no longer waits for it.
    fn ended(&mut self) {
        if let Some((hub, port)) = self.hub.take() {
            hub.end(port);
        }
    }
}

impl Drop for ChannelInput {
    fn drop(&mut self) {
        self.ended();
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
    /// Whether any upstream channel carries exactly this consumer's demand.
    pub(crate) fn is_on_demand(&self) -> bool {
        self.chans.iter().flatten().any(Receiver::is_on_demand)
    }

    /// Ready with `End` or `Error` once that is what every upstream has next (consuming it);
    /// pending while any upstream still has data or nothing queued. Never takes data.
    pub(crate) fn poll_terminal(&mut self, cx: &mut Context<'_>) -> Poll<InMsg> {
        if self.done {
            return Poll::Ready(InMsg::End);
        }
        if !self.ready.is_empty() {
            // An aligned control comes next.
            return Poll::Pending;
        }
        let mut open = 0;
        for i in 0..self.chans.len() {
            let Some(rx) = &self.chans[i] else { continue };
            match rx.poll_terminal(cx) {
                Poll::Ready(Some(Ok(()))) => self.on_channel_end(i),
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
        if open == 0 && self.ready.is_empty() {
            self.done = true;
            self.chans.clear();
            Poll::Ready(InMsg::End)
        } else {
            Poll::Pending
        }
    }

    /// Receives from the channels in turn; `want` bounds what a demand-driven channel is asked for.
    fn poll_inner(&mut self, cx: &mut Context<'_>, want: Option<usize>) -> Poll<InMsg> {
        let r = self.poll_channels(cx, want);
        if let Poll::Ready(InMsg::End | InMsg::Error(_)) = &r {
            self.ended();
        }
        r
    }

    fn poll_channels(&mut self, cx: &mut Context<'_>, want: Option<usize>) -> Poll<InMsg> {
        if let Some(m) = self.take_ready() {
            return Poll::Ready(m);
        }
        if self.done {
            return Poll::Ready(InMsg::End);
        }
        let n = self.chans.len();
        let mut open = 0;
        let mut k = 0;
        while k < n {
            if self.hub_blocked(cx) {
                // Aligning across the stage's ports: nothing behind the barrier is read.
                return Poll::Pending;
            }
            let i = (self.next + k) % n;
            k += 1;
            let Some(rx) = &self.chans[i] else { continue };
            if let Some(a) = &self.aligner
                && a.has_pending()
                && a.is_waiting(i)
            {
                // Aligning: this channel waits for the others to deliver the same control.
                open += 1;
                continue;
            }
            let polled = match want {
                None => rx.poll_recv(cx),
                Some(w) => rx.poll_recv_up_to(cx, w),
            };
            match polled {
                Poll::Ready(Some(Msg::Data(b))) => {
                    self.next = (i + 1) % n;
                    if let Some((hub, _)) = &self.hub {
                        hub.read_open();
                    }
                    if let Some(m) = &self.counts {
                        StageMetrics::add(&m.elements_in, b.rows() as u64);
                        StageMetrics::add(&m.batches_in, 1);
                    }
                    return Poll::Ready(InMsg::Data(b));
                }
                Poll::Ready(Some(Msg::Control(c))) => {
                    self.on_control(i, c);
                    if let Some(m) = self.take_ready() {
                        self.next = (i + 1) % n;
                        return Poll::Ready(m);
                    }
                    // Not aligned yet, or handed to the hub: read on (this channel again too,
                    // unless it now waits), from the start of the round.
                    open = 0;
                    k = 0;
                }
                Poll::Ready(Some(Msg::End)) => {
                    self.on_channel_end(i);
                    if let Some(m) = self.take_ready() {
                        return Poll::Ready(m);
                    }
                }
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
            if let Some((hub, _)) = &self.hub {
                // Waiting on this port is waiting for rows ahead of a barrier, not a stall.
                hub.read_open();
            }
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
    /// A control sent the pending rows ahead of it without credit: the next flush waits until
    /// every channel is back within its capacity (else a stage emitting after each control, a
    /// window firing on watermarks, would fill its channel without bound).
    forced: bool,
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
            forced: false,
            finished: false,
            finish_on_drop: false,
        }
    }

    /// Whether some channel of this output carries exactly its consumer's demand.
    pub(crate) fn is_on_demand(&self) -> bool {
        self.on_demand
    }

    /// Sends pending rows without waiting for credit (what dropping the output does), unless
    /// the output already ended.
    pub(crate) fn release_pending(&mut self) {
        if !self.finished {
            self.force_push_pending();
        }
    }

    /// Whether a flush owes the channels their credit back (see `forced`).
    pub(crate) fn owes_credit(&self) -> bool {
        self.forced
    }

    /// Ready once every open channel (not carrying demand) is within its capacity again.
    fn poll_credit(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = false;
        for tx in self.senders.iter().flatten() {
            if !tx.is_on_demand() && tx.poll_ready(cx, 0, 0).is_pending() {
                pending = true;
            }
        }
        if pending {
            return Poll::Pending;
        }
        self.forced = false;
        Poll::Ready(())
    }

    fn force_push_pending(&mut self) {
        for d in 0..self.senders.len() {
            if let Some(b) = self.router.take(d)
                && let Some(tx) = &self.senders[d]
            {
                let bytes = b.bytes();
                if tx.push_weighed(Msg::Data(b), bytes).is_err() {
                    self.senders[d] = None;
                } else {
                    StageMetrics::add(&self.metrics.batches_out, 1);
                    StageMetrics::add(&self.metrics.bytes_out, bytes as u64);
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
                        StageMetrics::add(&self.metrics.bytes_out, bytes as u64);
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
        } else if pending || (self.forced && self.poll_credit(cx).is_pending()) {
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

    fn control(&mut self, control: Control) {
        if self.finished {
            return;
        }
        // Rows accepted before the control leave ahead of it, whatever the credit (as at
        // the end; the next flush waits for the credit back); the control weighs nothing.
        self.forced |= self.pending_rows() > 0;
        self.force_push_pending();
        for d in 0..self.senders.len() {
            if let Some(tx) = &self.senders[d]
                && tx.push(Msg::Control(control.clone())).is_err()
            {
                self.senders[d] = None;
                self.router.discard(d);
            }
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

#[cfg(test)]
#[path = "ports_tests.rs"]
mod tests;
