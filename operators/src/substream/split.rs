//! `split_when(pred)` / `split_after(pred)` `.merge_substreams_via(flow)`: each segment of the
//! stream runs through its own instance of `flow`; the outputs are concatenated in order.

use crate::Via;
use crate::fan::common::poll_flush;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Directive, Event, Flow, Input, Module, Output, Signal, StageCx,
    StageError, panic_message,
};

/// A stream split into segments by a predicate, waiting for the flow each segment runs through
/// (see [`SubstreamOps::split_when`](super::SubstreamOps::split_when)).
pub struct Split<S, P> {
    stream: S,
    pred: P,
    after: bool,
}

impl<S: std::fmt::Debug, P> std::fmt::Debug for Split<S, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Split")
            .field("stream", &self.stream)
            .field("after", &self.after)
            .finish()
    }
}

impl<S, P> Split<S, P>
where
    S: Via,
    P: FnMut(&S::Out) -> bool + Clone + Send + Sync + 'static,
{
    /// Splits `stream` before (`after == false`) or after each element matching `pred`.
    pub(crate) fn new(stream: S, pred: P, after: bool) -> Self {
        Self {
            stream,
            pred,
            after,
        }
    }

    /// Runs each segment through its own instance of `flow`, one after the other, and
    /// concatenates their outputs in segment order.
    ///
    /// Emits when: the current segment's flow emits.
    /// Backpressures when: downstream backpressures, or the current segment's flow backpressures
    /// (the next segment waits until the current flow's output completes).
    /// Completes when: upstream completes and the last segment's flow completes.
    /// Cancels when: downstream cancels (the open segment is cancelled too).
    /// Fails when: upstream or a segment's flow fails.
    pub fn merge_substreams_via<O: Send + 'static, M: Send + 'static>(
        self,
        flow: Flow<S::Out, O, M>,
    ) -> S::Next<O> {
        let Self {
            stream,
            pred,
            after,
        } = self;
        let module = Arc::clone(flow.module());
        let name = if after { "split_after" } else { "split_when" };
        let stage = Flow::<S::Out, O, ()>::from_async(name, move |_info| {
            super::check_open_ports(&module)?;
            Ok((
                SplitLogic {
                    pred: pred.clone(),
                    after,
                    module: Arc::clone(&module),
                    _t: PhantomData::<fn(S::Out) -> O>,
                },
                (),
            ))
        });
        stream.via_flow(stage)
    }
}

struct SplitLogic<T, O, P> {
    pred: P,
    after: bool,
    module: Arc<Module>,
    _t: PhantomData<fn(T) -> O>,
}

/// The running segment.
struct Seg<T, O> {
    /// `None` once the segment's flow is gone (its remaining elements are dropped).
    feed: Option<Output<T>>,
    /// Still taking elements (the split point has not been reached).
    feeding: bool,
    /// The feed holds rows waiting for credit.
    busy: bool,
    /// `None` once the flow's output completed.
    out: Option<Input<O>>,
    /// Elements given to this segment so far.
    len: usize,
    /// The pending barrier came back out of this segment's flow (or none is pending).
    aligned: bool,
}

enum Wake<T, O> {
    Up(Vec<T>),
    UpEnd,
    UpControl(Control),
    Sub(Vec<O>),
    Progress,
    Cancelled,
}

impl<T, O, P> AsyncLogic for SplitLogic<T, O, P>
where
    T: Send + 'static,
    O: Send + 'static,
    P: FnMut(&T) -> bool + Send + 'static,
{
    /// A checkpoint barrier goes through the open segment's flow and on once it came out of it
    /// (or the segment completed), after its rows; nothing is read meanwhile. Other controls go
    /// on at once.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self {
            mut pred,
            after,
            module,
            ..
        } = *self;
        async move {
            let path: Arc<str> = Arc::from(io.info.path.as_str());
            let sub = Arc::clone(&io.sub);
            let mut input = io.input::<T>(0)?;
            let mut out = io.output::<O>(0)?;
            let mut queue: VecDeque<T> = VecDeque::new();
            let mut up_ended = false;
            // split_when: the front element was tested already and starts a new segment.
            let mut head_splits = false;
            let mut seg: Option<Seg<T, O>> = None;
            // `pred` panicked under Stop: the segment so far is completed and its output
            // emitted, then the stage fails with this.
            let mut failure: Option<StageError> = None;
            // The barrier sent into the open segment, waiting to come out of it.
            let mut barrier: Option<Control> = None;
            let (info, clock, sup, batch) = (
                io.info.clone(),
                Arc::clone(&io.clock),
                io.supervision.clone(),
                io.batch_size,
            );
            let result: Result<(), StageError> = async {
                loop {
                    if barrier.is_some()
                        && seg.as_ref().is_none_or(|s| s.aligned || s.out.is_none())
                        && let Some(c) = barrier.take()
                    {
                        out.control(c);
                    }
                    if seg.is_none() && !queue.is_empty() {
                        let (feed, output) = sub
                            .flow(Arc::clone(&module), weir_graph::router_for::<T>())
                            .map_err(|e| e.with_stage(&path))?;
                        seg = Some(Seg {
                            feed: Some(Output::new(feed)),
                            feeding: true,
                            busy: false,
                            out: Some(Input::new(output, Arc::clone(&path))),
                            len: 0,
                            aligned: true,
                        });
                    }
                    if let Some(s) = seg.as_mut() {
                        if s.feeding && !s.busy {
                            let mut rows = Vec::new();
                            while let Some(x) = queue.front() {
                                let tested = if after || !head_splits {
                                    catch_unwind(AssertUnwindSafe(|| pred(x)))
                                } else {
                                    Ok(true)
                                };
                                let split = match tested {
                                    Ok(split) => split,
                                    Err(p) => {
                                        let e = StageError::internal(format!(
                                            "panicked: {}",
                                            panic_message(&*p)
                                        ));
                                        let el = queue.pop_front().map(|x| Box::new(x) as _);
                                        let mut cx =
                                            StageCx::new(&info, &*clock, sup.as_ref(), batch);
                                        match cx.element_failed(e, el, None) {
                                            Err(e) if cx.decide(&e) == Directive::Stop => {
                                                failure = Some(e);
                                                queue.clear();
                                                up_ended = true;
                                                s.feeding = false;
                                                break;
                                            }
                                            _ => continue,
                                        }
                                    }
                                };
                                if !after {
                                    if split && s.len + rows.len() > 0 {
                                        head_splits = true;
                                        s.feeding = false;
                                        break;
                                    }
                                    head_splits = false;
                                    rows.extend(queue.pop_front());
                                } else {
                                    rows.extend(queue.pop_front());
                                    if split {
                                        s.feeding = false;
                                        break;
                                    }
                                }
                            }
                            s.len += rows.len();
                            if up_ended && queue.is_empty() {
                                s.feeding = false;
                            }
                            if let Some(feed) = s.feed.as_mut() {
                                if !rows.is_empty() {
                                    feed.push(rows);
                                    s.busy = true;
                                }
                                if !s.feeding {
                                    feed.complete();
                                    s.busy = false;
                                }
                            }
                        }
                        if !s.feeding && s.out.is_none() {
                            seg = None;
                            continue;
                        }
                    } else if up_ended {
                        return failure.take().map_or(Ok(()), Err);
                    }
                    let want_up = queue.is_empty() && !up_ended && barrier.is_none();
                    let wake = std::future::poll_fn(|cx| {
                        if out.poll_closed(cx).is_ready() {
                            return Poll::Ready(Ok(Wake::Cancelled));
                        }
                        let mut busy = false;
                        if let Some(s) = seg.as_mut() {
                            if s.busy
                                && let Some(feed) = s.feed.as_mut()
                            {
                                match poll_flush(feed, cx) {
                                    Poll::Ready(Ok(())) => {
                                        s.busy = false;
                                        return Poll::Ready(Ok(Wake::Progress));
                                    }
                                    Poll::Ready(Err(_)) => {
                                        s.busy = false;
                                        s.feed = None;
                                        return Poll::Ready(Ok(Wake::Progress));
                                    }
                                    Poll::Pending => busy = true,
                                }
                            }
                            if let Some(o) = s.out.as_mut() {
                                let sig = match o.poll_signal(cx) {
                                    // The segment's own controls stay inside; the barrier
                                    // sent in aligns.
                                    Poll::Ready(Signal::Control(c)) => {
                                        if barrier.as_ref() == Some(&c) {
                                            s.aligned = true;
                                            return Poll::Ready(Ok(Wake::Progress));
                                        }
                                        cx.waker().wake_by_ref();
                                        Poll::Pending
                                    }
                                    Poll::Ready(Signal::Event(e)) => Poll::Ready(e),
                                    Poll::Pending => Poll::Pending,
                                };
                                match sig {
                                    Poll::Ready(Event::Batch(v)) => {
                                        return Poll::Ready(Ok(Wake::Sub(v)));
                                    }
                                    Poll::Ready(Event::End) => {
                                        // The flow is done: drop the rest of its segment.
                                        s.out = None;
                                        if let Some(mut feed) = s.feed.take() {
                                            feed.complete();
                                        }
                                        s.busy = false;
                                        return Poll::Ready(Ok(Wake::Progress));
                                    }
                                    Poll::Ready(Event::Error(e)) => return Poll::Ready(Err(e)),
                                    Poll::Pending => {}
                                }
                            }
                        }
                        if want_up && !busy {
                            return input.poll_signal(cx).map(|e| match e {
                                Signal::Event(Event::Batch(v)) => Ok(Wake::Up(v)),
                                Signal::Event(Event::End) => Ok(Wake::UpEnd),
                                Signal::Event(Event::Error(e)) => Err(e),
                                Signal::Control(c) => Ok(Wake::UpControl(c)),
                            });
                        }
                        Poll::Pending
                    })
                    .await;
                    let wake = wake?;
                    match wake {
                        Wake::Up(v) => queue.extend(v),
                        Wake::UpEnd => up_ended = true,
                        Wake::UpControl(c @ Control::Barrier { .. }) => {
                            // Into the open segment, after the rows pushed into it.
                            if let Some(s) = seg.as_mut().filter(|s| s.out.is_some()) {
                                s.aligned = false;
                                if s.feeding
                                    && let Some(feed) = s.feed.as_mut()
                                {
                                    feed.control(c.clone());
                                }
                            }
                            barrier = Some(c);
                        }
                        Wake::UpControl(c) => out.control(c),
                        Wake::Progress => {}
                        Wake::Sub(v) => {
                            if out.send(v).await.is_err() {
                                return Ok(());
                            }
                        }
                        Wake::Cancelled => return Ok(()),
                    }
                }
            }
            .await;
            if let Some(feed) = seg.as_mut().and_then(|s| s.feed.as_mut()) {
                match &result {
                    Ok(()) => feed.complete(),
                    Err(e) => feed.fail(e.clone()),
                }
            }
            result
        }
        .boxed()
    }
}
