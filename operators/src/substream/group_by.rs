//! `group_by(max, key).merge_substreams_via(flow)`: one instance of `flow` per key, outputs merged.

use crate::Via;
use crate::fan::common::poll_flush;
use futures::FutureExt;
use futures::future::BoxFuture;
use std::collections::HashMap;
use std::hash::Hash;
use std::marker::PhantomData;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::task::Poll;
use weir_graph::{
    AsyncIo, AsyncLogic, Control, Directive, Event, Flow, Input, Module, Output, Signal, StageCx,
    StageError, panic_message,
};

/// A stream split by key, waiting for the flow each substream runs through
/// (see [`SubstreamOps::group_by`](super::SubstreamOps::group_by)).
pub struct GroupBy<S, K, F> {
    stream: S,
    max: usize,
    key: F,
    _k: PhantomData<fn() -> K>,
}

impl<S: std::fmt::Debug, K, F> std::fmt::Debug for GroupBy<S, K, F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupBy")
            .field("stream", &self.stream)
            .field("max_substreams", &self.max)
            .finish()
    }
}

impl<S, K, F> GroupBy<S, K, F>
where
    S: Via,
    K: Hash + Eq + Send + 'static,
    F: Fn(&S::Out) -> K + Clone + Send + Sync + 'static,
{
    /// Groups `stream` by `key` into at most `max` substreams.
    pub(crate) fn new(stream: S, max: usize, key: F) -> Self {
        Self {
            stream,
            max,
            key,
            _k: PhantomData,
        }
    }

    /// Runs each key's elements through its own instance of `flow` and merges their outputs.
    ///
    /// Emits when: any substream's flow emits.
    /// Backpressures when: downstream backpressures, or the substream of an element backpressures.
    /// Completes when: upstream completes and every substream's flow completes.
    /// Cancels when: downstream cancels (every substream is cancelled too).
    /// Fails when: upstream or a substream fails, or a key beyond `max_substreams` keys appears.
    pub fn merge_substreams_via<O: Send + 'static, M: Send + 'static>(
        self,
        flow: Flow<S::Out, O, M>,
    ) -> S::Next<O> {
        let Self {
            stream, max, key, ..
        } = self;
        let module = Arc::clone(flow.module());
        let stage = Flow::<S::Out, O, ()>::from_async("group_by", move |_info| {
            super::check_open_ports(&module)?;
            Ok((
                GroupByLogic {
                    max,
                    key: key.clone(),
                    module: Arc::clone(&module),
                    _t: PhantomData::<fn(S::Out) -> (K, O)>,
                },
                (),
            ))
        });
        stream.via_flow(stage.reject(weir_graph::at_least("group_by: max_substreams", max, 1)))
    }
}

struct GroupByLogic<T, K, O, F> {
    max: usize,
    key: F,
    module: Arc<Module>,
    _t: PhantomData<fn(T) -> (K, O)>,
}

/// One running substream: the port feeding its flow and the flow's output.
struct Sub<T, O> {
    /// `None` once the flow cancelled its input: later elements of the key are dropped.
    feed: Option<Output<T>>,
    /// The feed holds rows waiting for credit.
    busy: bool,
    /// `None` once the flow's output completed.
    out: Option<Input<O>>,
    /// The pending barrier came back out of this substream's flow (or none is pending).
    aligned: bool,
}

enum Wake<T, O> {
    Up(Vec<T>),
    UpEnd,
    UpControl(Control),
    Sub(Vec<O>),
    Done,
}

impl<T, K, O, F> AsyncLogic for GroupByLogic<T, K, O, F>
where
    T: Send + 'static,
    K: Hash + Eq + Send + 'static,
    O: Send + 'static,
    F: Fn(&T) -> K + Send + Sync + 'static,
{
    /// A checkpoint barrier goes through every running substream's flow and on once it came
    /// out of all of them (or they completed), after their rows; nothing is read meanwhile, so
    /// no row before it is still in a substream when it leaves. Other controls go on at once.
    fn handles_control(&self) -> bool {
        true
    }

    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        let Self {
            max, key, module, ..
        } = *self;
        async move {
            let path: Arc<str> = Arc::from(io.info.path.as_str());
            let sub = Arc::clone(&io.sub);
            let mut input = io.input::<T>(0)?;
            let mut out = io.output::<O>(0)?;
            let mut keys: HashMap<K, usize> = HashMap::new();
            let mut subs: Vec<Sub<T, O>> = Vec::new();
            let mut up_ended = false;
            let mut next = 0usize;
            // A failure on an element: the elements before it still go through their
            // substreams, whose outputs are emitted ahead of it.
            let mut failure: Option<StageError> = None;
            // The barrier sent into the substreams, waiting to come out of all of them.
            let mut barrier: Option<Control> = None;
            let (info, clock, sup, batch) = (
                io.info.clone(),
                Arc::clone(&io.clock),
                io.supervision.clone(),
                io.batch_size,
            );
            let result: Result<(), StageError> = async {
                loop {
                    if subs.iter().all(|s| s.aligned || s.out.is_none())
                        && let Some(c) = barrier.take()
                    {
                        out.control(c);
                    }
                    let waiting = barrier.is_some();
                    let wake = std::future::poll_fn(|cx| {
                        if out.poll_closed(cx).is_ready() {
                            return Poll::Ready(Ok(Wake::Done));
                        }
                        let mut blocked = false;
                        for s in subs.iter_mut().filter(|s| s.busy) {
                            let Some(feed) = s.feed.as_mut() else {
                                s.busy = false;
                                continue;
                            };
                            match poll_flush(feed, cx) {
                                Poll::Ready(Ok(())) => s.busy = false,
                                Poll::Ready(Err(_)) => {
                                    s.busy = false;
                                    s.feed = None;
                                }
                                Poll::Pending => blocked = true,
                            }
                        }
                        let n = subs.len();
                        for k in 0..n {
                            let i = (next + k) % n;
                            let Some(o) = subs[i].out.as_mut() else {
                                continue;
                            };
                            // A substream's own controls stay inside; the barrier sent in aligns.
                            if let Poll::Ready(sig) = o.poll_signal(cx) {
                                match sig {
                                    Signal::Event(Event::Batch(v)) => {
                                        next = i + 1;
                                        return Poll::Ready(Ok(Wake::Sub(v)));
                                    }
                                    Signal::Event(Event::End) => subs[i].out = None,
                                    Signal::Event(Event::Error(e)) => return Poll::Ready(Err(e)),
                                    Signal::Control(c) => {
                                        if barrier.as_ref() == Some(&c) {
                                            subs[i].aligned = true;
                                            return Poll::Ready(Ok(Wake::Sub(Vec::new())));
                                        }
                                        cx.waker().wake_by_ref();
                                    }
                                }
                            }
                        }
                        if !blocked && !up_ended && !waiting {
                            return input.poll_signal(cx).map(|e| match e {
                                Signal::Event(Event::Batch(v)) => Ok(Wake::Up(v)),
                                Signal::Event(Event::End) => Ok(Wake::UpEnd),
                                Signal::Event(Event::Error(e)) => Err(e),
                                Signal::Control(c) => Ok(Wake::UpControl(c)),
                            });
                        }
                        if up_ended && subs.iter().all(|s| s.out.is_none()) {
                            return Poll::Ready(Ok(Wake::Done));
                        }
                        Poll::Pending
                    })
                    .await?;
                    match wake {
                        Wake::Done => return failure.take().map_or(Ok(()), Err),
                        Wake::Sub(v) => {
                            if !v.is_empty() && out.send(v).await.is_err() {
                                return Ok(());
                            }
                        }
                        Wake::UpControl(c @ Control::Barrier { .. }) => {
                            // Into every substream still fed, after the rows pushed into it.
                            for s in &mut subs {
                                s.aligned = s.feed.is_none();
                                if let Some(feed) = s.feed.as_mut() {
                                    feed.control(c.clone());
                                }
                            }
                            barrier = Some(c);
                        }
                        Wake::UpControl(c) => out.control(c),
                        Wake::UpEnd => {
                            up_ended = true;
                            for s in &mut subs {
                                s.busy = false;
                                if let Some(feed) = s.feed.as_mut() {
                                    feed.complete();
                                }
                            }
                        }
                        Wake::Up(v) => {
                            let mut per: Vec<Vec<T>> = subs.iter().map(|_| Vec::new()).collect();
                            for x in v {
                                let k = match catch_unwind(AssertUnwindSafe(|| key(&x))) {
                                    Ok(k) => k,
                                    Err(p) => {
                                        let e = StageError::internal(format!(
                                            "panicked: {}",
                                            panic_message(&*p)
                                        ));
                                        let mut cx =
                                            StageCx::new(&info, &*clock, sup.as_ref(), batch);
                                        match cx.element_failed(e, Some(Box::new(x)), None) {
                                            Err(e) if cx.decide(&e) == Directive::Stop => {
                                                failure = Some(e);
                                                break;
                                            }
                                            _ => continue,
                                        }
                                    }
                                };
                                let i = match keys.get(&k) {
                                    Some(&i) => i,
                                    None => {
                                        if subs.len() >= max {
                                            failure = Some(
                                                StageError::user(format!(
                                                    "group_by: cannot open substream #{} at \
                                                     stage '{path}': too many substreams open \
                                                     (max_substreams = {max})",
                                                    subs.len() + 1
                                                ))
                                                .with_stage(&path),
                                            );
                                            break;
                                        }
                                        let (feed, output) = sub
                                            .flow(
                                                Arc::clone(&module),
                                                weir_graph::router_for::<T>(),
                                            )
                                            .map_err(|e| e.with_stage(&path))?;
                                        subs.push(Sub {
                                            feed: Some(Output::new(feed)),
                                            busy: false,
                                            out: Some(Input::new(output, Arc::clone(&path))),
                                            aligned: true,
                                        });
                                        per.push(Vec::new());
                                        keys.insert(k, subs.len() - 1);
                                        subs.len() - 1
                                    }
                                };
                                per[i].push(x);
                            }
                            for (s, rows) in subs.iter_mut().zip(per) {
                                if rows.is_empty() {
                                    continue;
                                }
                                if let Some(feed) = s.feed.as_mut() {
                                    feed.push(rows);
                                    s.busy = true;
                                }
                            }
                            if failure.is_some() {
                                // Stop taking input; complete the substreams once fed.
                                up_ended = true;
                                for s in &mut subs {
                                    s.busy = false;
                                    if let Some(feed) = s.feed.as_mut() {
                                        feed.complete();
                                    }
                                }
                            }
                        }
                    }
                }
            }
            .await;
            for s in &mut subs {
                if let Some(feed) = s.feed.as_mut() {
                    match &result {
                        Ok(()) => feed.complete(),
                        Err(e) => feed.fail(e.clone()),
                    }
                }
            }
            result
        }
        .boxed()
    }
}
