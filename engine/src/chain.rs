//! The island interpreter for fused chains: `[source | input] -> flow* -> [sink | output]`,
//! one tokio task, direct calls, one batch at a time. Flushes a partial batch downstream only
//! when its input has nothing more ready, so batching never adds waiting.

use crate::checkpoint::Coordinator;
use crate::metrics::StageMetrics;
use crate::ports::{ChannelInput, RoutedOutput};
use crate::supervise::{FlowSlot, SinkSlot, SourceSlot};
use crate::watch::IslandProbe;
use std::any::Any;
use std::future::poll_fn;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use weir_graph::{Clock, Control, Directive, ErasedInput, ErasedOutput, InMsg, StageError, Step};

pub(crate) enum Head {
    Source(SourceSlot),
    Input(ChannelInput),
}

pub(crate) enum Tail {
    Sink(SinkSlot),
    Output(RoutedOutput),
}

/// How an island ended.
#[derive(Debug, Clone)]
pub(crate) enum Outcome {
    Completed,
    DownstreamGone,
    Cancelled,
    Failed(StageError),
}

pub(crate) struct ChainIsland {
    pub(crate) head: Head,
    pub(crate) flows: Vec<FlowSlot>,
    pub(crate) tail: Tail,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) cancel: CancellationToken,
    /// The run, to tell a sink stopped by another island's failure what that failure was.
    pub(crate) run: Arc<crate::shared::RunShared>,
    pub(crate) metrics: Vec<Arc<StageMetrics>>,
    /// Which stage the island is calling (read when the run cannot stop).
    pub(crate) probe: Arc<IslandProbe>,
    /// The probe's index of `flows[0]` (1 behind a source head, else 0).
    pub(crate) base: usize,
    /// Start of the busy period not yet added to the metrics (clock reads happen only when the
    /// island is about to wait, and every [`ACCOUNT_EVERY`] batches, never per batch).
    pub(crate) mark: Instant,
    /// The island runs on an executor other than tokio, so it yields every
    /// [`BUDGET_EVERY`] batches itself.
    pub(crate) yields: bool,
    /// The last flush woke the task on the other end of a channel, which tokio keeps in this
    /// worker's LIFO slot where no other worker can steal it: the island lets it run before its
    /// own next user call (which might block the worker), and not when about to wait anyway.
    pub(crate) woke: bool,
    /// Controls injected into a source head by the run (`RunHandle::inject`).
    pub(crate) inject: Option<Arc<crate::control::InjectSlot>>,
    /// The run's checkpoint coordinator, when the run checkpoints and the island belongs to the
    /// run's graph: barriers snapshot every stage of the island.
    pub(crate) checkpoint: Option<Arc<Coordinator>>,
}

/// Busy time is published at least once every this many batches.
const ACCOUNT_EVERY: u64 = 64;
/// The island spends one unit of tokio's cooperative budget every this many batches, so it
/// yields to other tasks about once per millisecond of work instead of every few microseconds.
const BUDGET_EVERY: u64 = 8;

/// What a chain with a demand-driven output waited for.
enum Wait {
    /// The output is not demand-driven.
    Free,
    /// Its consumer asked for this many rows.
    Rows(usize),
    /// The input ended or failed first.
    Input(Input),
}

enum Input {
    Batch(Option<weir_graph::BoxBatch>),
    SourceBatch(Step),
    End,
    Error(StageError),
    Control(Control),
}

fn poll_source(
    s: &mut SourceSlot,
    cx: &mut Context<'_>,
    clock: &dyn Clock,
    limit: Option<usize>,
) -> Poll<Result<Step, StageError>> {
    loop {
        let r = {
            let mut scx = match limit {
                None => s.c.cx(clock),
                // A demand-driven output: the source makes no more than was asked for.
                Some(n) => weir_graph::StageCx::new(
                    &s.c.info,
                    clock,
                    s.c.sup.as_ref(),
                    s.c.batch.min(n).max(1),
                ),
            };
            let logic = &mut s.logic;
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                logic.poll_next(cx, &mut scx)
            })) {
                Ok(p) => p,
                Err(p) => Poll::Ready(Err(crate::supervise::panic_error(p))),
            }
        };
        match r {
            Poll::Ready(Err(e)) => {
                let e = e.with_stage(&s.c.info.path);
                match s.c.decide(&e) {
                    Directive::Stop => return Poll::Ready(Err(e)),
                    Directive::Resume => {}
                    Directive::Restart => s.restart()?,
                }
                if s.logic.buffered() > 0 {
                    return Poll::Ready(Ok(Step::More));
                }
            }
            other => return other,
        }
    }
}

/// Returns `Pending` once after waking the task, so its executor runs others first.
async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await;
}

fn tail_closed(tail: &mut Tail, cx: &mut Context<'_>) -> Poll<()> {
    match tail {
        Tail::Sink(_) => Poll::Pending,
        Tail::Output(o) => o.poll_closed(cx),
    }
}

/// Pushes a batch through flows[start..] and the tail; on failure returns the failing index.
///
/// A stage that fails in the middle of a batch has already emitted the outputs of the elements
/// before the failing one: those still travel downstream, ahead of the error, exactly as they
/// would have one element at a time.
///
/// `at` is where the probe places `flows[0]` (the island's stage index), so a stage stuck in
/// user code can be named.
fn push_through(
    flows: &mut [FlowSlot],
    start: usize,
    tail: &mut Tail,
    input: &mut dyn Any,
    clock: &dyn Clock,
    at: (&IslandProbe, usize),
) -> Result<(), (usize, StageError)> {
    let (probe, base) = at;
    let n = flows.len();
    let (k, e) = {
        let mut cur: &mut dyn Any = input;
        let mut failed = None;
        for (k, slot) in flows.iter_mut().enumerate().skip(start) {
            probe.at(base + k);
            if let Err(e) = slot.on_batch(cur, clock) {
                failed = Some((k, e));
                break;
            }
            if slot.logic.output_len() == 0 {
                return Ok(());
            }
            cur = slot.logic.output();
        }
        match failed {
            Some(f) => f,
            None => {
                probe.at(base + n);
                return match tail {
                    Tail::Sink(s) => s.on_batch(cur, clock).map_err(|e| (flows.len(), e)),
                    Tail::Output(o) => {
                        o.accept(cur);
                        Ok(())
                    }
                };
            }
        }
    };
    let (left, right) = flows.split_at_mut(k + 1);
    let slot = &mut left[k];
    if slot.logic.output_len() > 0 {
        push_through(
            right,
            0,
            tail,
            slot.logic.output(),
            clock,
            (probe, base + k + 1),
        )
        .map_err(|(i, e2)| (k + 1 + i, e2))?;
    }
    Err((k, e))
}

impl ChainIsland {
    /// Runs the island to its end, then runs every stop hook exactly once.
    pub(crate) async fn run(mut self) -> Outcome {
        self.mark = Instant::now();
        let outcome = self.drive().await;
        self.account(|m| &m.busy_ns);
        if let Outcome::Completed = outcome {
            self.report_finished();
        }
        match &mut self.head {
            Head::Source(s) => s.post_stop(),
            Head::Input(_) => {}
        }
        for f in &mut self.flows {
            f.post_stop();
        }
        if let Tail::Sink(s) = &mut self.tail {
            if let Outcome::Cancelled = outcome {
                let e = self.run.failure.lock().ok().and_then(|f| f.clone());
                s.on_error(&e.unwrap_or_else(|| StageError::cancelled("run was cancelled")));
            }
            s.post_stop();
        }
        outcome
    }

    /// Adds the time since the last mark to `counter` of every stage, and moves the mark to now.
    fn account(&mut self, counter: fn(&StageMetrics) -> &std::sync::atomic::AtomicU64) {
        let now = Instant::now();
        let ns = now.duration_since(self.mark).as_nanos() as u64;
        self.mark = now;
        for m in &self.metrics {
            StageMetrics::add(counter(m), ns);
        }
    }

    /// Waits until a demand-driven output's consumer asks for rows (how many it asked for),
    /// or, for an input head, until the input ends or fails (which needs no demand).
    async fn demand(&mut self) -> Result<Wait, Outcome> {
        let Self {
            head,
            tail,
            cancel,
            inject,
            ..
        } = self;
        let Tail::Output(o) = tail else {
            return Ok(Wait::Free);
        };
        if !o.is_on_demand() {
            return Ok(Wait::Free);
        }
        let inject = inject.as_deref();
        // `wait`: registers for injected controls (the fast path only looks).
        let mut poll = |cx: &mut Context<'_>, wait: bool| {
            if let Poll::Ready(r) = o.poll_demand(cx) {
                return Poll::Ready(r.map(Wait::Rows).map_err(|_| Outcome::DownstreamGone));
            }
            // A control injected while the source waits for demand (a barrier) leaves now,
            // not behind the next row downstream asks for.
            if let Some(slot) = inject {
                let c = match (wait, slot.is_pending()) {
                    (true, _) => match slot.poll_take(cx) {
                        Poll::Ready(c) => Some(c),
                        Poll::Pending => None,
                    },
                    (false, true) => slot.take(),
                    (false, false) => None,
                };
                if let Some(c) = c {
                    return Poll::Ready(Ok(Wait::Input(Input::Control(c))));
                }
            }
            match head {
                Head::Input(i) => i.poll_terminal(cx).map(|m| Ok(Wait::Input(map_in(m)))),
                // The next poll ends the source without emitting: it needs no demand.
                Head::Source(s) => s.logic.poll_ended(cx).map(|()| Ok(Wait::Rows(1))),
            }
        };
        let now = {
            let mut noop = Context::from_waker(Waker::noop());
            poll(&mut noop, false)
        };
        match now {
            Poll::Ready(r) => r,
            Poll::Pending => {
                let cancel = &*cancel;
                tokio::select! {
                    biased;
                    _ = cancel.cancelled() => Err(Outcome::Cancelled),
                    r = poll_fn(|cx| poll(cx, true)) => r,
                }
            }
        }
    }

    /// The most input rows the island's stages can still use (`take(n)`: what is left, `head`:
    /// 1), `None` when unbounded. Read once per batch, never per element.
    fn wants(&self) -> Option<usize> {
        let sink = match &self.tail {
            Tail::Sink(s) => s.logic.wants(),
            Tail::Output(_) => usize::MAX,
        };
        let n = self
            .flows
            .iter()
            .map(|f| f.logic.wants())
            .fold(sink, usize::min);
        (n != usize::MAX).then_some(n.max(1))
    }

    /// Whether the island is on a demand-exact path (its output or its input channel is
    /// demand-driven) with a stage that may turn one element into several: it then takes one
    /// element at a time, as Akka's `mapConcat` pulls the next element only after the last
    /// expansion was handed out (checked once per batch).
    fn one_at_a_time(&self) -> bool {
        let exact = match (&self.head, &self.tail) {
            (_, Tail::Output(o)) if o.is_on_demand() => true,
            (Head::Input(i), _) => i.is_on_demand(),
            _ => false,
        };
        exact && self.flows.iter().any(|f| f.logic.expands())
    }

    async fn next_input(&mut self) -> Result<Input, Outcome> {
        let limit = match self.demand().await? {
            Wait::Free => None,
            Wait::Rows(n) => Some(n),
            Wait::Input(i) => return Ok(i),
        };
        // Ask for no more than the stages can use, so a demand-driven upstream keeps the rest.
        let limit = match (limit, self.wants()) {
            (Some(n), Some(w)) => Some(n.min(w)),
            (l, w) => l.or(w),
        };
        let limit = match limit {
            Some(_) if self.one_at_a_time() => Some(1),
            l => l,
        };
        if let Head::Source(_) = self.head {
            self.probe.at(0);
            // Polling a source runs user code.
            if std::mem::take(&mut self.woke) {
                yield_once().await;
            }
        }
        let Self {
            head, clock, woke, ..
        } = self;
        let clock = &**clock;
        // Fast path: something is ready now.
        let ready = {
            let mut noop = Context::from_waker(Waker::noop());
            match head {
                Head::Source(s) => poll_source(s, &mut noop, clock, limit).map(|r| match r {
                    Ok(step) => Input::SourceBatch(step),
                    Err(e) => Input::Error(e),
                }),
                Head::Input(i) => poll_head_input(i, &mut noop, limit).map(map_in),
            }
        };
        if let Poll::Ready(x) = ready {
            if std::mem::take(woke) {
                // The batch taken from the input goes to user code next.
                yield_once().await;
            }
            return Ok(x);
        }
        // Nothing ready: flush partial batches downstream, then wait (the task woken last
        // runs then, no yield needed).
        *woke = false;
        self.account(|m| &m.busy_ns);
        let Self {
            head,
            tail,
            clock,
            cancel,
            inject,
            ..
        } = self;
        let clock = &**clock;
        if let Tail::Output(o) = tail {
            let r = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Err(Outcome::Cancelled),
                r = poll_fn(|cx| o.poll_flush(cx, true)) => r,
            };
            if r.is_err() {
                return Err(Outcome::DownstreamGone);
            }
        }
        let cancel = &*cancel;
        let inject = inject.as_deref();
        let r = {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => Err(Outcome::Cancelled),
                _ = poll_fn(|cx| tail_closed(tail, cx)) => Err(Outcome::DownstreamGone),
                c = poll_fn(|cx| inject.map_or(Poll::Pending, |s| s.poll_take(cx))) => Ok(Input::Control(c)),
                r = poll_fn(|cx| match head {
                    Head::Source(s) => poll_source(s, cx, clock, limit).map(|r| match r {
                        Ok(step) => Input::SourceBatch(step),
                        Err(e) => Input::Error(e),
                    }),
                    Head::Input(i) => poll_head_input(i, cx, limit).map(map_in),
                }) => Ok(r),
            }
        };
        self.account(|m| &m.idle_ns);
        r
    }

    async fn flush(&mut self, force: bool) -> Result<(), Outcome> {
        let Tail::Output(o) = &mut self.tail else {
            return Ok(());
        };
        if !force && o.pending_rows() == 0 && !o.owes_credit() {
            return Ok(());
        }
        // Fast path: credit is available, no waiting to account for.
        let ready = {
            let mut noop = Context::from_waker(Waker::noop());
            o.poll_flush(&mut noop, force)
        };
        match ready {
            Poll::Ready(r) => return r.map_err(|_| Outcome::DownstreamGone),
            Poll::Pending => {}
        }
        self.account(|m| &m.busy_ns);
        let Tail::Output(o) = &mut self.tail else {
            return Ok(());
        };
        let cancel = &self.cancel;
        let r = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Err(Outcome::Cancelled),
            r = poll_fn(|cx| o.poll_flush(cx, force)) => r,
        };
        self.account(|m| &m.backpressured_ns);
        r.map_err(|_| Outcome::DownstreamGone)
    }

    async fn drive(&mut self) -> Outcome {
        // A stage that wants nothing from the start (`take(0)`) completes at once, without
        // waiting for an input that may never come.
        let done = self.flows.iter().position(|f| f.logic.is_done());
        if let Some(k) = done {
            return Box::pin(self.finish_from(k)).await;
        }
        if let Tail::Sink(s) = &self.tail
            && s.logic.is_done()
        {
            return Box::pin(self.finish_from(self.flows.len())).await;
        }
        let mut batches: u64 = 0;
        loop {
            let input = match self.next_input().await {
                Ok(i) => i,
                Err(o) => return o,
            };
            let clock = Arc::clone(&self.clock);
            let res = match input {
                Input::SourceBatch(step) => {
                    let Head::Source(s) = &mut self.head else {
                        return Outcome::Failed(StageError::internal("source step without source"));
                    };
                    let rows = s.logic.buffered() as u64;
                    StageMetrics::add(&s.c.m.elements_out, rows);
                    let r = push_through(
                        &mut self.flows,
                        0,
                        &mut self.tail,
                        s.logic.buffer(),
                        &*clock,
                        (&*self.probe, self.base),
                    );
                    let r = match (&self.inject, r) {
                        (Some(slot), Ok(())) if slot.is_pending() => {
                            match self.injected(slot.clone()) {
                                Ok(r) => r,
                                Err(e) => return Box::pin(self.fail_from(0, e)).await,
                            }
                        }
                        (_, r) => r,
                    };
                    if step == Step::Done && r.is_ok() {
                        return Box::pin(self.finish_from(0)).await;
                    }
                    r
                }
                Input::Control(c) => {
                    if let Err(e) = self.source_barrier(&c) {
                        return Box::pin(self.fail_from(0, e)).await;
                    }
                    control_through(
                        &mut self.flows,
                        0,
                        &mut self.tail,
                        c,
                        &*clock,
                        (&*self.probe, self.base),
                        self.checkpoint.as_deref(),
                    )
                }
                Input::Batch(Some(mut b)) => push_through(
                    &mut self.flows,
                    0,
                    &mut self.tail,
                    b.as_any_mut(),
                    &*clock,
                    (&*self.probe, self.base),
                ),
                Input::Batch(None) => Ok(()),
                Input::End => return Box::pin(self.finish_from(0)).await,
                Input::Error(e) => return Box::pin(self.fail_from(0, e)).await,
            };
            batches += 1;
            if batches.is_multiple_of(ACCOUNT_EVERY) {
                self.account(|m| &m.busy_ns);
            }
            if let Err((k, e)) = res {
                // A stage after the failing one that got all it wants from the outputs before
                // the failing element (a `take` now full) completes the stream instead: one
                // element at a time, the failure would never have reached it.
                let done = self
                    .flows
                    .iter()
                    .skip(k + 1)
                    .position(|f| f.logic.is_done());
                if let Some(j) = done {
                    return Box::pin(self.finish_from(k + 1 + j)).await;
                }
                if let Tail::Sink(s) = &self.tail
                    && k < self.flows.len()
                    && s.logic.is_done()
                {
                    return Box::pin(self.finish_from(self.flows.len())).await;
                }
                return Box::pin(self.fail_from(k + 1, e)).await;
            }
            // A stage that wants no more input completes everything downstream of it.
            let done = self.flows.iter().position(|f| f.logic.is_done());
            if let Some(k) = done {
                return Box::pin(self.finish_from(k)).await;
            }
            if let Tail::Sink(s) = &self.tail
                && s.logic.is_done()
            {
                return Box::pin(self.finish_from(self.flows.len())).await;
            }
            if let Err(o) = self.flush(false).await {
                return o;
            }
            if !self.yields && crate::channel::take_woke() {
                // `next_input` wakes itself before the next user call, which moves the task
                // just woken out of this worker's LIFO slot into its stealable queue.
                self.woke = true;
            }
            // An always-ready island never reaches the waiting paths that watch for
            // cancellation, so it checks here too.
            if self.cancel.is_cancelled() {
                return Outcome::Cancelled;
            }
            if batches.is_multiple_of(BUDGET_EVERY) {
                if self.yields {
                    // Another executor has no cooperative budget: give its other tasks a turn.
                    yield_once().await;
                } else {
                    tokio::task::consume_budget().await;
                }
            }
        }
    }

    /// Passes every control injected so far through the island, after the batch just pushed;
    /// the outer error is the source head's (its snapshot failed).
    fn injected(
        &mut self,
        slot: Arc<crate::control::InjectSlot>,
    ) -> Result<Result<(), (usize, StageError)>, StageError> {
        let clock = Arc::clone(&self.clock);
        while let Some(c) = slot.take() {
            self.source_barrier(&c)?;
            if let Err(e) = control_through(
                &mut self.flows,
                0,
                &mut self.tail,
                c,
                &*clock,
                (&*self.probe, self.base),
                self.checkpoint.as_deref(),
            ) {
                return Ok(Err(e));
            }
        }
        Ok(Ok(()))
    }

    /// A barrier leaves the source head: the source's state goes to the coordinator first.
    fn source_barrier(&self, control: &Control) -> Result<(), StageError> {
        let (Control::Barrier { id }, Some(ck), Head::Source(s)) =
            (control, &self.checkpoint, &self.head)
        else {
            return Ok(());
        };
        let snap = s
            .logic
            .snapshot()
            .map_err(|e| e.with_stage(&s.c.info.path))?;
        ck.ack(*id, s.c.info.id, s.c.info.subtask, snap);
        Ok(())
    }

    /// The island completed: its stages' final states stand in for them in later checkpoints.
    fn report_finished(&self) {
        let Some(ck) = &self.checkpoint else { return };
        let report = |info: &weir_graph::StageInfo, snap: Result<_, StageError>| match snap {
            Ok(s) => ck.finished(info.id, info.subtask, s),
            Err(e) => tracing::warn!(stage = %info.path, error = %e, "final snapshot failed"),
        };
        if let Head::Source(s) = &self.head {
            report(&s.c.info, s.logic.snapshot());
        }
        for f in &self.flows {
            report(&f.c.info, f.logic.snapshot());
        }
        if let Tail::Sink(s) = &self.tail {
            report(&s.c.info, s.logic.snapshot());
        }
    }

    /// Completes flows[k..] in order (each may emit on finish) and then the tail.
    async fn finish_from(&mut self, k: usize) -> Outcome {
        let clock = Arc::clone(&self.clock);
        for j in k..self.flows.len() {
            loop {
                let (left, right) = self.flows.split_at_mut(j + 1);
                let slot = &mut left[j];
                self.probe.at(self.base + j);
                if let Err(e) = slot.on_finish(&*clock) {
                    return Box::pin(self.fail_from(j + 1, e)).await;
                }
                if slot.logic.output_len() > 0
                    && let Err((i, e)) = push_through(
                        right,
                        0,
                        &mut self.tail,
                        slot.logic.output(),
                        &*clock,
                        (&*self.probe, self.base + j + 1),
                    )
                {
                    return Box::pin(self.fail_from(j + 1 + i + 1, e)).await;
                }
                if !slot.logic.finishing() {
                    break;
                }
                // A stage finishing in chunks: what it emitted leaves (credit permitting)
                // before it emits more.
                if let Err(o) = self.flush(false).await {
                    return o;
                }
            }
        }
        self.probe.at(self.base + self.flows.len());
        match &mut self.tail {
            Tail::Sink(s) => match s.on_finish(&*clock) {
                Ok(()) => Outcome::Completed,
                Err(e) => {
                    s.on_error(&e);
                    Outcome::Failed(e)
                }
            },
            Tail::Output(_) => {
                if let Err(o) = self.flush(true).await {
                    return o;
                }
                if let Tail::Output(o) = &mut self.tail {
                    o.finish();
                }
                Outcome::Completed
            }
        }
    }

    /// Offers an error to flows[k..]; the first that recovers completes the rest, else the tail fails.
    async fn fail_from(&mut self, k: usize, mut e: StageError) -> Outcome {
        let clock = Arc::clone(&self.clock);
        for j in k..self.flows.len() {
            match self.flows[j].on_upstream_error(e.clone(), &*clock) {
                Ok(()) => {
                    let (left, right) = self.flows.split_at_mut(j + 1);
                    let slot = &mut left[j];
                    if slot.logic.output_len() > 0
                        && let Err((i, e2)) = push_through(
                            right,
                            0,
                            &mut self.tail,
                            slot.logic.output(),
                            &*clock,
                            (&*self.probe, self.base + j + 1),
                        )
                    {
                        return Box::pin(self.fail_from(j + 1 + i + 1, e2)).await;
                    }
                    return Box::pin(self.finish_from(j + 1)).await;
                }
                Err(e2) => {
                    // What the stage emitted on seeing the failure goes ahead of it.
                    let (left, right) = self.flows.split_at_mut(j + 1);
                    let slot = &mut left[j];
                    if slot.logic.output_len() > 0
                        && let Err((i, e3)) = push_through(
                            right,
                            0,
                            &mut self.tail,
                            slot.logic.output(),
                            &*clock,
                            (&*self.probe, self.base + j + 1),
                        )
                    {
                        return Box::pin(self.fail_from(j + 1 + i + 1, e3)).await;
                    }
                    // A later stage that got all it wants from that output (a `take_while`
                    // ended by a scan's zero) completes the stream instead of the failure.
                    let done = self
                        .flows
                        .iter()
                        .skip(j + 1)
                        .position(|f| f.logic.is_done());
                    if let Some(d) = done {
                        return Box::pin(self.finish_from(j + 1 + d)).await;
                    }
                    if let Tail::Sink(s) = &self.tail
                        && s.logic.is_done()
                    {
                        return Box::pin(self.finish_from(self.flows.len())).await;
                    }
                    e = e2;
                }
            }
        }
        if let Tail::Sink(s) = &mut self.tail {
            s.on_error(&e);
        } else {
            let _ = self.flush(true).await;
            if let Tail::Output(o) = &mut self.tail {
                o.fail(e.clone());
            }
        }
        Outcome::Failed(e)
    }
}

/// Receives from a chain's input; under a demand-driven output only what its consumer asked
/// for is requested from a demand-driven upstream.
fn poll_head_input(
    i: &mut ChannelInput,
    cx: &mut Context<'_>,
    limit: Option<usize>,
) -> Poll<InMsg> {
    match limit {
        None => i.poll_recv(cx),
        Some(n) => i.poll_recv_up_to(cx, n),
    }
}

fn map_in(m: InMsg) -> Input {
    match m {
        InMsg::Data(b) => Input::Batch(Some(b)),
        InMsg::End => Input::End,
        InMsg::Error(e) => Input::Error(e),
        InMsg::Control(c) => Input::Control(c),
    }
}

/// Passes `control` through flows[start..] (each may emit first, or hold it back) and the
/// tail; on failure returns the failing index.
fn control_through(
    flows: &mut [FlowSlot],
    start: usize,
    tail: &mut Tail,
    control: Control,
    clock: &dyn Clock,
    at: (&IslandProbe, usize),
    ck: Option<&Coordinator>,
) -> Result<(), (usize, StageError)> {
    let (probe, base) = at;
    let barrier = match (&control, ck) {
        (Control::Barrier { id }, Some(ck)) => Some((*id, ck)),
        _ => None,
    };
    let mut control = control;
    for j in start..flows.len() {
        probe.at(base + j);
        let (left, right) = flows.split_at_mut(j + 1);
        let slot = &mut left[j];
        let next = slot.on_control(control, clock).map_err(|e| (j, e))?;
        if slot.logic.output_len() > 0 {
            push_through(
                right,
                0,
                tail,
                slot.logic.output(),
                clock,
                (probe, base + j + 1),
            )
            .map_err(|(i, e)| (j + 1 + i, e))?;
        }
        if let Some((id, ck)) = barrier {
            // After the stage saw the barrier (and what it emitted went ahead of it).
            let snap = slot
                .logic
                .snapshot()
                .map_err(|e| (j, e.with_stage(&slot.c.info.path)))?;
            ck.ack(id, slot.c.info.id, slot.c.info.subtask, snap);
        }
        match next {
            Some(c) => control = c,
            None => return Ok(()),
        }
    }
    probe.at(base + flows.len());
    match tail {
        Tail::Sink(s) => {
            s.on_control(control, clock).map_err(|e| (flows.len(), e))?;
            if let Some((id, ck)) = barrier {
                // A sink pre-commits on the barrier: its snapshot holds what it staged.
                let snap = s
                    .logic
                    .snapshot()
                    .map_err(|e| (flows.len(), e.with_stage(&s.c.info.path)))?;
                ck.ack(id, s.c.info.id, s.c.info.subtask, snap);
            }
            Ok(())
        }
        Tail::Output(o) => {
            o.control(control);
            Ok(())
        }
    }
}
