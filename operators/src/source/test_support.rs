//! Test helpers shared by the source and sink unit tests: a virtual clock and harnesses that
//! drive a stage's logic straight from its blueprint, without the engine.

use futures::channel::mpsc;
use futures::future::BoxFuture;
use futures::task::{ArcWake, noop_waker_ref, waker};
use futures::{FutureExt, StreamExt};
use std::any::Any;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;
use weir_graph::{
    AsyncIo, AsyncLogic, Clock, ErasedInput, ErasedOutput, ErasedSink, ErasedSource, InMsg, Module,
    NodeKind, Sink, Source, StageCx, StageError, StageInfo, Step, SubMaterializer,
};

/// A manually advanced clock.
#[derive(Default)]
pub(crate) struct TestClock {
    now: Mutex<Duration>,
    wakers: Mutex<Vec<Waker>>,
}

impl TestClock {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }
    pub(crate) fn advance(&self, d: Duration) {
        *self.now.lock().unwrap() += d;
        for w in self.wakers.lock().unwrap().drain(..) {
            w.wake();
        }
    }
}

struct ClockRef(Arc<TestClock>);

impl Clock for ClockRef {
    fn now(&self) -> Duration {
        *self.0.now.lock().unwrap()
    }
    fn sleep_until(&self, deadline: Duration) -> BoxFuture<'static, ()> {
        let c = Arc::clone(&self.0);
        std::future::poll_fn(move |cx| {
            if *c.now.lock().unwrap() >= deadline {
                Poll::Ready(())
            } else {
                c.wakers.lock().unwrap().push(cx.waker().clone());
                Poll::Pending
            }
        })
        .boxed()
    }
}

/// A waker that records whether it was woken.
#[derive(Default)]
pub(crate) struct Flag(AtomicBool);

impl ArcWake for Flag {
    fn wake_by_ref(arc_self: &Arc<Self>) {
        arc_self.0.store(true, Ordering::SeqCst);
    }
}

impl Flag {
    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

fn info() -> StageInfo {
    StageInfo::new("test", 0)
}

fn cast<M: 'static>(m: Box<dyn Any + Send>) -> M {
    *m.downcast::<M>().unwrap()
}

/// Drives a source logic built from a blueprint's first node.
pub(crate) struct SourceHarness<T> {
    pub(crate) logic: Box<dyn ErasedSource>,
    info: StageInfo,
    pub(crate) clock: Arc<TestClock>,
    pub(crate) batch: usize,
    pub(crate) flag: Arc<Flag>,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// Instantiates `src` (a single-node source) with batch size `batch`.
pub(crate) fn source<T: Send + 'static, M: Send + 'static>(
    src: &Source<T, M>,
    batch: usize,
) -> (SourceHarness<T>, M) {
    let NodeKind::Source(f) = &src.module().nodes[0].kind else {
        panic!("not a sync source")
    };
    let (logic, mat) = f(&info()).unwrap();
    let h = SourceHarness {
        logic,
        info: info(),
        clock: TestClock::new(),
        batch,
        flag: Arc::new(Flag::default()),
        _t: std::marker::PhantomData,
    };
    (h, cast(mat))
}

impl<T: Send + 'static> SourceHarness<T> {
    /// One poll: the elements pushed and the step, or `None` when pending.
    pub(crate) fn poll(&mut self) -> Option<Result<(Vec<T>, Step), StageError>> {
        let clock = ClockRef(Arc::clone(&self.clock));
        let mut scx = StageCx::new(&self.info, &clock, None, self.batch);
        let w = waker(Arc::clone(&self.flag));
        let mut cx = Context::from_waker(&w);
        let r = self.logic.poll_next(&mut cx, &mut scx);
        let buf = self.logic.buffer().downcast_mut::<Vec<T>>().unwrap();
        let got = std::mem::take(buf);
        match r {
            Poll::Ready(Ok(step)) => Some(Ok((got, step))),
            Poll::Ready(Err(e)) => Some(Err(e)),
            Poll::Pending => {
                assert!(got.is_empty(), "pending with elements");
                None
            }
        }
    }
    /// Polls until `Done`; panics if the source is pending.
    pub(crate) fn drain(&mut self) -> Result<Vec<T>, StageError> {
        let mut all = Vec::new();
        loop {
            let (mut v, step) = self.poll().expect("source pending")?;
            assert!(v.len() <= self.batch, "batch overfilled");
            all.append(&mut v);
            if step == Step::Done {
                return Ok(all);
            }
        }
    }
    pub(crate) fn post_stop(&mut self) {
        self.logic.post_stop();
    }
}

/// Drives a synchronous sink logic.
pub(crate) struct SinkHarness<T> {
    logic: Box<dyn ErasedSink>,
    info: StageInfo,
    _t: std::marker::PhantomData<fn(T)>,
}

/// Instantiates `sink` (a single-node sync sink).
pub(crate) fn sink<T: Send + 'static, M: Send + 'static>(s: &Sink<T, M>) -> (SinkHarness<T>, M) {
    let NodeKind::Sink(f) = &s.module().nodes[0].kind else {
        panic!("not a sync sink")
    };
    let (logic, mat) = f(&info()).unwrap();
    let h = SinkHarness {
        logic,
        info: info(),
        _t: std::marker::PhantomData,
    };
    (h, cast(mat))
}

impl<T: Send + 'static> SinkHarness<T> {
    fn with_cx<R>(&mut self, f: impl FnOnce(&mut dyn ErasedSink, &mut StageCx<'_>) -> R) -> R {
        let clock = ClockRef(TestClock::new());
        let mut scx = StageCx::new(&self.info, &clock, None, 16);
        f(&mut *self.logic, &mut scx)
    }
    /// Feeds a batch; returns what is left of it.
    pub(crate) fn batch(&mut self, mut v: Vec<T>) -> Result<Vec<T>, StageError> {
        self.with_cx(|l, scx| l.on_batch(&mut v, scx))?;
        Ok(v)
    }
    pub(crate) fn finish(&mut self) -> Result<(), StageError> {
        self.with_cx(|l, scx| l.on_finish(scx))
    }
    pub(crate) fn error(&mut self, e: &StageError) {
        self.logic.on_error(e)
    }
    pub(crate) fn is_done(&self) -> bool {
        self.logic.is_done()
    }
}

struct ChanInput(mpsc::UnboundedReceiver<InMsg>);

impl ErasedInput for ChanInput {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<InMsg> {
        self.0.poll_next_unpin(cx).map(|m| m.unwrap_or(InMsg::End))
    }
    fn queued_rows(&self) -> usize {
        0
    }
}

struct NoSub;

impl SubMaterializer for NoSub {
    fn source(&self, _: Arc<Module>) -> Result<Box<dyn ErasedInput>, StageError> {
        Err(StageError::internal("no sub"))
    }
    fn flow(
        &self,
        _: Arc<Module>,
        _: Arc<dyn weir_graph::RouterFactory>,
    ) -> Result<(Box<dyn ErasedOutput>, Box<dyn ErasedInput>), StageError> {
        Err(StageError::internal("no sub"))
    }
}

/// Feeds messages into an async sink under test.
pub(crate) struct Feed(mpsc::UnboundedSender<InMsg>);

impl Feed {
    pub(crate) fn batch<T: Send + 'static>(&self, v: Vec<T>) {
        let _ = self.0.unbounded_send(InMsg::Data(Box::new(v)));
    }
    pub(crate) fn end(&self) {
        let _ = self.0.unbounded_send(InMsg::End);
    }
    pub(crate) fn error(&self, e: StageError) {
        let _ = self.0.unbounded_send(InMsg::Error(e));
    }
    /// Whether the stage dropped its input (cancelled upstream).
    pub(crate) fn is_cancelled(&self) -> bool {
        self.0.is_closed()
    }
}

/// Instantiates an async single-input sink: its future, the feed and the materialized value.
pub(crate) fn async_sink<T: Send + 'static, M: Send + 'static>(
    s: &Sink<T, M>,
) -> (
    impl Future<Output = Result<(), StageError>> + Send + 'static,
    Feed,
    M,
) {
    let NodeKind::Async(f) = &s.module().nodes[0].kind else {
        panic!("not an async sink")
    };
    let (logic, mat): (Box<dyn AsyncLogic>, _) = f(&info()).unwrap();
    let (tx, rx) = mpsc::unbounded();
    let io = AsyncIo {
        inputs: vec![Some(Box::new(ChanInput(rx)))],
        outputs: vec![],
        info: info(),
        clock: Arc::new(ClockRef(TestClock::new())),
        supervision: None,
        batch_size: 16,
        sub: Arc::new(NoSub),
        counts: Arc::new(weir_graph::NoCounts),
        checkpoint: None,
    };
    (logic.run(io), Feed(tx), cast(mat))
}

/// Polls a future once with a no-op waker.
pub(crate) fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(noop_waker_ref()))
}

use std::pin::Pin;
