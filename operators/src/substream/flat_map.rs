//! `flat_map_merge` and `flat_map_concat`: each element becomes a source, run inside the stream.

use crate::time::held::HeldControls;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::VecDeque;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Directive, Event, Flow, Input, Signal, Source, StageError,
    panic_message,
};

/// The flow behind `flat_map_merge(breadth, f)` (`flat_map_concat` is breadth 1, named apart).
pub(crate) fn flow<T, O, M, F>(name: &str, breadth: usize, f: F) -> Flow<T, O, ()>
where
    T: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    F: FnMut(T) -> Source<O, M> + Clone + Send + Sync + 'static,
{
    let invalid = weir_graph::at_least(&format!("{name}: breadth"), breadth, 1);
    let breadth = breadth.max(1);
    Flow::from_async(name, move |_info| {
        Ok((
            FlatMapLogic {
                breadth,
                f: f.clone(),
                _t: PhantomData::<fn(T) -> (O, M)>,
            },
            (),
        ))
    })
    .reject(invalid)
}

struct FlatMapLogic<T, O, M, F> {
    breadth: usize,
    f: F,
    _t: PhantomData<fn(T) -> (O, M)>,
}

enum Wake<T, O> {
    Up(Vec<T>),
    UpEnd,
    UpControl(Control),
    Sub(Vec<O>),
    SubEnd(usize),
    Cancelled,
}

impl<T, O, M, F> AsyncLogic for FlatMapLogic<T, O, M, F>
where
    T: Send + 'static,
    O: Send + 'static,
    M: Send + 'static,
    F: FnMut(T) -> Source<O, M> + Send + 'static,
{
    /// A control (checkpoint barrier, watermark) leaves once every substream of the elements
    /// before it completed; while a barrier waits no element is read, so no substream of an
    /// element after it emits ahead of it and a checkpoint through the stage is exact.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self { breadth, mut f, .. } = *self;
        async move {
            let path: Arc<str> = Arc::from(io.info.path.as_str());
            let sub = Arc::clone(&io.sub);
            let mut input = io.input::<T>(0)?;
            let mut out = io.output::<O>(0)?;
            let mut queue: VecDeque<T> = VecDeque::new();
            let mut up_ended = false;
            // Running substreams with their element's number, oldest first (with breadth 1:
            // strictly one after the other).
            let mut active: Vec<(u64, Input<O>)> = Vec::new();
            let mut next = 0usize;
            // Elements received; controls wait for the substreams of the elements before them.
            let mut received = 0u64;
            let mut controls = HeldControls::default();
            loop {
                while active.len() < breadth
                    && let Some(x) = queue.pop_front()
                {
                    let number = received - queue.len() as u64 - 1;
                    // A panic in `f` goes through supervision like an element failure (the
                    // element went into `f`; Restart acts as Resume, `f` is kept).
                    let source = match catch_unwind(AssertUnwindSafe(|| f(x))) {
                        Ok(s) => s,
                        Err(p) => {
                            let e =
                                StageError::internal(format!("panicked: {}", panic_message(&*p)));
                            if let Err(e) = io.stage_cx().element_failed(e, None, None)
                                && io.stage_cx().decide(&e) == Directive::Stop
                            {
                                return Err(e);
                            }
                            continue;
                        }
                    };
                    let inner = sub
                        .source(Arc::clone(source.module()))
                        .map_err(|e| e.with_stage(&path))?;
                    active.push((number, Input::new(inner, Arc::clone(&path))));
                }
                // Every element before the oldest running substream or queued element is done.
                let first_queued = received - queue.len() as u64;
                let done = active.iter().map(|(n, _)| *n).fold(first_queued, u64::min);
                controls.release(done, &mut out);
                if up_ended && queue.is_empty() && active.is_empty() {
                    return Ok(());
                }
                let want_up = queue.is_empty() && !up_ended && !controls.barrier_held();
                let wake = std::future::poll_fn(|cx| {
                    if out.poll_closed(cx).is_ready() {
                        return Poll::Ready(Ok(Wake::Cancelled));
                    }
                    let n = active.len();
                    for k in 0..n {
                        let i = (next + k) % n;
                        match active[i].1.poll_recv(cx) {
                            Poll::Ready(Event::Batch(v)) => {
                                next = i + 1;
                                return Poll::Ready(Ok(Wake::Sub(v)));
                            }
                            Poll::Ready(Event::End) => return Poll::Ready(Ok(Wake::SubEnd(i))),
                            Poll::Ready(Event::Error(e)) => return Poll::Ready(Err(e)),
                            Poll::Pending => {}
                        }
                    }
                    if want_up {
                        return input.poll_signal(cx).map(|e| match e {
                            Signal::Event(Event::Batch(v)) => Ok(Wake::Up(v)),
                            Signal::Event(Event::End) => Ok(Wake::UpEnd),
                            Signal::Event(Event::Error(e)) => Err(e),
                            Signal::Control(c) => Ok(Wake::UpControl(c)),
                        });
                    }
                    Poll::Pending
                })
                .await?;
                match wake {
                    Wake::Up(v) => {
                        received += v.len() as u64;
                        queue.extend(v);
                    }
                    Wake::UpEnd => up_ended = true,
                    Wake::UpControl(c) => controls.arrive(received, c),
                    Wake::Sub(v) => {
                        if out.send(v).await.is_err() {
                            return Ok(());
                        }
                    }
                    // `remove` keeps the order, which flat_map_concat relies on.
                    Wake::SubEnd(i) => drop(active.remove(i)),
                    Wake::Cancelled => return Ok(()),
                }
            }
        }
        .boxed()
    }
}
