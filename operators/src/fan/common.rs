//! Plumbing shared by the junctions: one-slot
//! look-ahead over several inputs ([`Heads`]), and polling helpers for typed outputs.

use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{
    Cancelled, Event, Flow, GraphError, Inlet, Input, NodePorts, Outlet, Output, StageError,
};

/// Typed inlets `0..n` of a junction node.
pub(crate) fn inlets<T>(p: &NodePorts, range: std::ops::Range<usize>) -> Vec<Inlet<T>> {
    range.map(|i| p.inlet(i)).collect()
}

/// Typed outlets `0..n` of a junction node.
pub(crate) fn outlets<T>(p: &NodePorts, range: std::ops::Range<usize>) -> Vec<Outlet<T>> {
    range.map(|i| p.outlet(i)).collect()
}

/// Polls `out` once for sending its buffered rows (waits for credit; `Err` when cancelled).
pub(crate) fn poll_flush<T: Send + 'static>(
    out: &mut Output<T>,
    cx: &mut Context<'_>,
) -> Poll<Result<(), Cancelled>> {
    out.poll_flush(cx, true)
}

/// Pushes `batches[i]` into `outs[i]` and flushes every output concurrently until all are sent.
/// Outputs found cancelled become `None`; returns how many were cancelled by this call.
pub(crate) async fn send_each<T: Send + 'static>(
    outs: &mut [Option<Output<T>>],
    batches: Vec<Vec<T>>,
) -> usize {
    let mut cancelled = 0;
    let mut busy = vec![false; outs.len()];
    for ((slot, batch), busy) in outs.iter_mut().zip(batches).zip(busy.iter_mut()) {
        if let Some(out) = slot {
            if out.is_closed() {
                *slot = None;
                cancelled += 1;
            } else if !batch.is_empty() {
                out.push(batch);
                *busy = true;
            }
        }
    }
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (slot, busy) in outs.iter_mut().zip(busy.iter_mut()) {
            if !*busy {
                continue;
            }
            let Some(out) = slot else {
                *busy = false;
                continue;
            };
            match poll_flush(out, cx) {
                Poll::Ready(Ok(())) => *busy = false,
                Poll::Ready(Err(Cancelled)) => {
                    *busy = false;
                    *slot = None;
                    cancelled += 1;
                }
                Poll::Pending => done = false,
            }
        }
        if done { Poll::Ready(()) } else { Poll::Pending }
    })
    .await;
    cancelled
}

/// Polls every live output for cancellation; cancelled ones become `None`. Returns how many.
pub(crate) fn poll_cancelled<T: Send + 'static>(
    outs: &mut [Option<Output<T>>],
    cx: &mut Context<'_>,
) -> usize {
    let mut n = 0;
    for slot in outs.iter_mut() {
        if let Some(out) = slot
            && out.poll_closed(cx).is_ready()
        {
            *slot = None;
            n += 1;
        }
    }
    n
}

/// When a fan-out junction (`Broadcast`, `Partition`, `Unzip`, `Balance`) stops because its
/// outputs cancelled: by default once the last one did (it keeps serving the others), with
/// `eager` as soon as any one did. Stopping cancels its upstream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct CancelPolicy {
    /// Stop at the first cancelled output.
    pub(crate) eager: bool,
}

impl CancelPolicy {
    /// The policy: eager or not.
    pub(crate) fn new(eager: bool) -> Self {
        Self { eager }
    }

    /// Whether to stop now that `gone` more outputs were found cancelled and `open` remain.
    pub(crate) fn stop(self, gone: usize, open: usize) -> bool {
        (self.eager && gone > 0) || open == 0
    }

    /// [`CancelPolicy::stop`] over typed outputs (cancelled ones are `None`).
    pub(crate) fn stop_outs<T>(self, gone: usize, outs: &[Option<Output<T>>]) -> bool {
        self.stop(gone, outs.iter().filter(|o| o.is_some()).count())
    }
}

/// What one input holds in front of a junction.
enum Slot<T> {
    /// Nothing buffered: poll the input.
    Empty,
    /// One batch received and not yet taken.
    Ready(Vec<T>),
    /// The input completed (or was cancelled by the junction).
    Ended,
}

/// One batch of look-ahead per input, so a junction can see which inputs are ready, and notice
/// errors and completions of inputs it is not reading from.
pub(crate) struct Heads<T> {
    inputs: Vec<Option<Input<T>>>,
    slots: Vec<Slot<T>>,
}

impl<T: Send + 'static> Heads<T> {
    /// Look-ahead over `inputs`, all empty.
    pub(crate) fn new(inputs: Vec<Input<T>>) -> Self {
        let slots = inputs.iter().map(|_| Slot::Empty).collect();
        Self {
            inputs: inputs.into_iter().map(Some).collect(),
            slots,
        }
    }

    /// Number of inputs.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Polls every input whose slot is empty and for which `want` holds; the first error returns.
    pub(crate) fn poll_fill(
        &mut self,
        cx: &mut Context<'_>,
        want: impl Fn(usize) -> bool,
    ) -> Result<(), StageError> {
        for i in 0..self.slots.len() {
            if !want(i) {
                continue;
            }
            while matches!(self.slots[i], Slot::Empty) {
                let Some(input) = self.inputs[i].as_mut() else {
                    self.slots[i] = Slot::Ended;
                    break;
                };
                match input.poll_recv(cx) {
                    Poll::Ready(Event::Batch(v)) if v.is_empty() => {}
                    Poll::Ready(Event::Batch(v)) => self.slots[i] = Slot::Ready(v),
                    Poll::Ready(Event::End) => {
                        self.slots[i] = Slot::Ended;
                        self.inputs[i] = None;
                    }
                    Poll::Ready(Event::Error(e)) => return Err(e),
                    Poll::Pending => break,
                }
            }
        }
        Ok(())
    }

    /// Whether input `i` holds a batch.
    pub(crate) fn has(&self, i: usize) -> bool {
        matches!(self.slots.get(i), Some(Slot::Ready(_)))
    }

    /// Whether input `i` completed and holds nothing.
    pub(crate) fn ended(&self, i: usize) -> bool {
        matches!(self.slots.get(i), Some(Slot::Ended))
    }

    /// Whether any input completed.
    pub(crate) fn any_ended(&self) -> bool {
        (0..self.len()).any(|i| self.ended(i))
    }

    /// Whether every input completed and nothing is buffered.
    pub(crate) fn all_ended(&self) -> bool {
        (0..self.len()).all(|i| self.ended(i))
    }

    /// Takes the batch held for input `i`.
    pub(crate) fn take(&mut self, i: usize) -> Vec<T> {
        match self.slots.get_mut(i) {
            Some(slot @ Slot::Ready(_)) => match std::mem::replace(slot, Slot::Empty) {
                Slot::Ready(v) => v,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    /// Takes at most `n` elements held for input `i`.
    pub(crate) fn take_up_to(&mut self, i: usize, n: usize) -> Vec<T> {
        match self.slots.get_mut(i) {
            Some(Slot::Ready(v)) if v.len() > n => {
                let rest = v.split_off(n);
                std::mem::replace(v, rest)
            }
            _ => self.take(i),
        }
    }
}

/// Unwraps a flow built with `GraphBuilder`; a build error becomes a flow failing at run time
/// (materializing `M::default()`).
pub(crate) fn built<I: Send + 'static, O: Send + 'static, M: Default + Send + 'static>(
    name: &str,
    flow: Result<Flow<I, O, M>, GraphError>,
) -> Flow<I, O, M> {
    match flow {
        Ok(f) => f,
        Err(e) => {
            // An out-of-range parameter stays one, reported when the outer graph is validated.
            let rejected = match &e {
                GraphError::InvalidParameter { reason, .. } => Some(reason.clone()),
                _ => None,
            };
            let msg: Arc<str> = Arc::from(format!("{name}: invalid graph: {e}"));
            Flow::from_async(name, move |_info| {
                let msg = Arc::clone(&msg);
                Ok((
                    weir_graph::AsyncFn(move |_io| {
                        Box::pin(async move { Err(StageError::internal(msg.to_string())) })
                            as futures::future::BoxFuture<'static, Result<(), StageError>>
                    }),
                    M::default(),
                ))
            })
            .reject(rejected)
        }
    }
}

/// One side of a two-input junction: its input (until it ends) and its buffered elements.
pub(crate) struct Side<T> {
    pub(crate) input: Option<Input<T>>,
    pub(crate) buf: VecDeque<T>,
}

impl<T: Send + 'static> Side<T> {
    /// A side reading `input`.
    pub(crate) fn new(input: Input<T>) -> Self {
        Self {
            input: Some(input),
            buf: VecDeque::new(),
        }
    }

    /// Whether the input completed.
    pub(crate) fn ended(&self) -> bool {
        self.input.is_none()
    }

    /// Whether the input completed and nothing is buffered.
    pub(crate) fn exhausted(&self) -> bool {
        self.ended() && self.buf.is_empty()
    }

    /// Polls the input once if open: `Ready(Ok(true))` on progress, `Ready(Err)` on failure.
    pub(crate) fn poll_once(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<Result<bool, StageError>> {
        let Some(input) = self.input.as_mut() else {
            return Poll::Ready(Ok(false));
        };
        match input.poll_recv(cx) {
            Poll::Ready(Event::Batch(v)) => {
                self.buf.extend(v);
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Event::End) => {
                self.input = None;
                Poll::Ready(Ok(true))
            }
            Poll::Ready(Event::Error(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Fake inputs for the unit tests of the junctions.
#[cfg(test)]
pub(crate) mod testing {
    use std::collections::VecDeque;
    use std::sync::Arc;
    use std::task::{Context, Poll};
    use weir_graph::{ErasedInput, InMsg, Input};

    struct Fake(VecDeque<InMsg>);

    impl ErasedInput for Fake {
        fn poll_recv(&mut self, _cx: &mut Context<'_>) -> Poll<InMsg> {
            self.0.pop_front().map_or(Poll::Pending, Poll::Ready)
        }
        fn queued_rows(&self) -> usize {
            0
        }
    }

    /// An input that yields `msgs` and then stays pending.
    pub(crate) fn input<T: Send + 'static>(msgs: Vec<InMsg>) -> Input<T> {
        Input::new(Box::new(Fake(msgs.into())), Arc::from("fake#0"))
    }

    /// A data message.
    pub(crate) fn data<T: Send + 'static>(v: Vec<T>) -> InMsg {
        InMsg::Data(Box::new(v))
    }

    /// A context whose waker does nothing.
    pub(crate) fn cx() -> Context<'static> {
        Context::from_waker(futures::task::noop_waker_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{cx, data, input};
    use super::*;
    use weir_graph::InMsg;

    #[test]
    fn heads_hold_one_batch_per_input_and_see_ends_and_errors() {
        let mut h = Heads::<u8>::new(vec![
            input(vec![data(vec![1u8, 2, 3]), InMsg::End]),
            input(vec![InMsg::End]),
            input(vec![data(Vec::<u8>::new())]),
        ]);
        let mut cx = cx();
        h.poll_fill(&mut cx, |_| true).unwrap();
        assert!(h.has(0) && h.ended(1) && !h.has(2) && !h.ended(2));
        assert!(h.any_ended() && !h.all_ended());
        assert_eq!(h.take_up_to(0, 2), vec![1, 2]);
        assert_eq!(h.take_up_to(0, 2), vec![3]);
        h.poll_fill(&mut cx, |i| i == 0).unwrap();
        assert!(h.ended(0));
        let mut h = Heads::<u8>::new(vec![input(vec![InMsg::Error(StageError::user("x"))])]);
        assert!(h.poll_fill(&mut cx, |_| true).is_err());
    }
}
