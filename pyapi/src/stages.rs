//! Python stages: asynchronous weir stages whose user code runs on the run's Python dispatcher,
//! one job per batch.

use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{KeyedObj, PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};
use weir_graph::{
    AsyncIo, AsyncLogic, Clock, Directive, Event, Flow, Sink, Source, StageCx, StageError,
    StageInfo, Supervision, promise,
};

/// What a job needs to apply supervision: the stage's identity, clock and policy.
pub struct StageEnv {
    info: StageInfo,
    clock: Arc<dyn Clock>,
    sup: Option<Supervision>,
    batch: usize,
}

impl StageEnv {
    fn from_io(io: &AsyncIo) -> Arc<Self> {
        Arc::new(Self {
            info: io.info.clone(),
            clock: Arc::clone(&io.clock),
            sup: io.supervision.clone(),
            batch: io.batch_size,
        })
    }
    /// A stage context for reporting element failures.
    pub fn cx(&self) -> StageCx<'_> {
        StageCx::new(&self.info, &*self.clock, self.sup.as_ref(), self.batch)
    }
}

/// Reports a failure of user code on `x` through the stage's supervision (call with the GIL).
pub fn element_failed(
    py: Python<'_>,
    cx: &mut StageCx<'_>,
    err: PyErr,
    x: Option<PyObj>,
) -> Result<(), StageError> {
    let e = user_error(py, err);
    if e.kind() == weir_graph::ErrorKind::Cancelled {
        return Err(e);
    }
    cx.element_failed(
        e,
        x.map(|x| Box::new(x) as Box<dyn std::any::Any + Send>),
        None,
    )
}

/// A batch transformation running on the dispatcher with the GIL held.
pub trait PyOp<I, O>: Send + 'static {
    /// Consumes `input`, appending results to `out`. Failures go through `cx.element_failed`.
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<I>,
        out: &mut Vec<O>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError>;
    /// Upstream completed: emit held state.
    fn on_finish(
        &mut self,
        _py: Python<'_>,
        _out: &mut Vec<O>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        Ok(())
    }
    /// Emitted once before the first batch (e.g. `scan`'s zero).
    fn on_start(&mut self, _py: Python<'_>, _out: &mut Vec<O>) {}
    /// Supervision restarted the stage: forget accumulated state.
    fn reset(&mut self, _py: Python<'_>) {}
}

/// Creates a fresh op for each materialization (called with the GIL held).
pub type OpFactory<I, O> = Arc<dyn Fn(Python<'_>, &StageInfo) -> Box<dyn PyOp<I, O>> + Send + Sync>;

/// Applies Restart: a stage error that the policy says to restart resets the op and is dropped.
fn restart_or_fail<I: 'static, O: 'static>(
    py: Python<'_>,
    op: &mut dyn PyOp<I, O>,
    env: &StageEnv,
    r: Result<(), StageError>,
) -> Result<(), StageError> {
    match r {
        Err(e) if env.cx().decide(&e) == Directive::Restart => {
            op.reset(py);
            Ok(())
        }
        other => other,
    }
}

/// How many jobs a Python stage keeps queued on the dispatcher, so the dispatcher never waits
/// for a tokio task to wake up between batches.
pub const PIPELINE_DEPTH: usize = 4;

/// State shared by the jobs of one stage (jobs run one at a time, in order, on the dispatcher,
/// so the mutex is never contended); once a job failed, later jobs are skipped.
struct Shared<T> {
    v: Mutex<T>,
    failed: std::sync::atomic::AtomicBool,
}

impl<T> Shared<T> {
    fn new(v: T) -> Arc<Self> {
        Arc::new(Self {
            v: Mutex::new(v),
            failed: std::sync::atomic::AtomicBool::new(false),
        })
    }
    fn run<R>(&self, f: impl FnOnce(&mut T) -> Result<R, StageError>) -> Result<R, StageError> {
        use std::sync::atomic::Ordering;
        if self.failed.load(Ordering::Relaxed) {
            return Err(StageError::cancelled("an earlier batch failed"));
        }
        let mut g = self
            .v
            .lock()
            .map_err(|_| StageError::internal("python stage state poisoned"))?;
        let r = f(&mut g);
        if r.is_err() {
            self.failed.store(true, Ordering::Relaxed);
        }
        r
    }
}

type JobRx<R> = futures::channel::oneshot::Receiver<Result<R, StageError>>;

enum Step2<T, R> {
    Input(Event<T>),
    Done(Result<Result<R, StageError>, futures::channel::oneshot::Canceled>),
}

/// Waits for the next thing to do: new input (while fewer than `PIPELINE_DEPTH` jobs are queued
/// and upstream is open) or the oldest job's result. `None` when both are exhausted.
async fn next_step<T: Send + 'static, R>(
    input: &mut weir_graph::Input<T>,
    queue: &mut VecDeque<JobRx<R>>,
    upstream_done: bool,
) -> Option<Step2<T, R>> {
    let room = !upstream_done && queue.len() < PIPELINE_DEPTH;
    Some(match (room, queue.front_mut()) {
        (false, None) => return None,
        (true, None) => Step2::Input(input.recv().await),
        (false, Some(front)) => Step2::Done(front.await),
        (true, Some(front)) => {
            let recv = std::pin::pin!(input.recv());
            match futures::future::select(front, recv).await {
                futures::future::Either::Left((r, _)) => Step2::Done(r),
                futures::future::Either::Right((ev, _)) => Step2::Input(ev),
            }
        }
    })
}

fn job_result<R>(
    r: Result<Result<R, StageError>, futures::channel::oneshot::Canceled>,
) -> Result<R, StageError> {
    r.map_err(|_| StageError::cancelled("the Python dispatcher has stopped"))?
}

struct FlowStage<I, O> {
    op: Box<dyn PyOp<I, O>>,
    disp: Arc<Dispatcher>,
}

impl<I: Send + 'static, O: Send + 'static> AsyncLogic for FlowStage<I, O> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<I>(0)?;
            let mut output = io.output::<O>(0)?;
            let env = StageEnv::from_io(&io);
            let disp = self.disp;
            let op = Shared::new(self.op);
            let o = Arc::clone(&op);
            let first = disp
                .call(move |py| {
                    o.run(|op| {
                        let mut out = Vec::new();
                        op.on_start(py, &mut out);
                        Ok(out)
                    })
                })
                .await??;
            if output.send(first).await.is_err() {
                return Ok(());
            }
            let mut queue: VecDeque<JobRx<Vec<O>>> = VecDeque::new();
            let mut upstream_done = false;
            while let Some(step) = next_step(&mut input, &mut queue, upstream_done).await {
                match step {
                    Step2::Input(Event::Batch(b)) => {
                        let (o, e) = (Arc::clone(&op), Arc::clone(&env));
                        queue.push_back(disp.submit(move |py| {
                            o.run(|op| {
                                let mut out = Vec::with_capacity(b.len());
                                let r = op.on_batch(py, b, &mut out, &mut e.cx());
                                restart_or_fail(py, &mut **op, &e, r).map(|()| out)
                            })
                        })?);
                    }
                    Step2::Input(Event::End) => upstream_done = true,
                    Step2::Input(Event::Error(e)) => return Err(e),
                    Step2::Done(r) => {
                        queue.pop_front();
                        if output.send(job_result(r)?).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
            drop(input);
            let (o, e) = (Arc::clone(&op), Arc::clone(&env));
            let last = disp
                .call(move |py| {
                    o.run(|op| {
                        let mut out = Vec::new();
                        op.on_finish(py, &mut out, &mut e.cx()).map(|()| out)
                    })
                })
                .await??;
            let _ = output.send(last).await;
            Ok(())
        }
        .boxed()
    }
}

/// A flow stage running `factory`'s op on the dispatcher, one job per batch.
pub fn py_flow<I: Send + 'static, O: Send + 'static>(
    name: &str,
    factory: OpFactory<I, O>,
) -> Flow<I, O, MatValue> {
    Flow::from_async(name, move |info| {
        let ctx = RunCtx::current()?;
        let op = Python::attach(|py| factory(py, info));
        Ok((
            FlowStage {
                op,
                disp: ctx.dispatcher,
            },
            MatValue::Unit,
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Element-wise ops

/// `map(f)`.
pub struct MapOp(pub Py<PyAny>);

impl PyOp<PyObj, PyObj> for MapOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        // CPython's own `map` iterator calls `f` with vectorcall (abi3 builds of pyo3 cannot), so
        // the loop costs what `map()` costs; failures keep their position.
        let it = c_map(py, &self.0, &input).map_err(|e| user_error(py, e))?;
        let mut elems = input.into_iter();
        for r in it {
            let x = elems.next();
            match r {
                Ok(y) => out.push(PyObj(y.unbind())),
                Err(e) => element_failed(py, cx, e, x)?,
            }
        }
        Ok(())
    }
}

/// `map(f, batch)` as a Python iterator (C-speed calls of `f`).
fn c_map<'py>(
    py: Python<'py>,
    f: &Py<PyAny>,
    input: &[PyObj],
) -> PyResult<Bound<'py, pyo3::types::PyIterator>> {
    let list = PyList::new(py, input.iter().map(|x| x.0.bind(py)))?;
    let map = py.import("builtins")?.getattr("map")?;
    map.call1((f.bind(py), list))?.try_iter()
}

/// `filter(pred)`.
pub struct FilterOp(pub Py<PyAny>);

impl PyOp<PyObj, PyObj> for FilterOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let it = c_map(py, &self.0, &input).map_err(|e| user_error(py, e))?;
        let mut elems = input.into_iter();
        for r in it {
            let Some(x) = elems.next() else { break };
            match r.and_then(|r| r.is_truthy()) {
                Ok(true) => out.push(x),
                Ok(false) => {}
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// Several stateless ops fused into one stage: the batch goes through each op in the same job.
/// Each op keeps its own name (errors and dead letters name it) and supervision.
pub struct ChainOp {
    /// The ops in order, with the identity and policy each reports failures under.
    pub ops: Vec<(Box<dyn PyOp<PyObj, PyObj>>, StageInfo, Option<Supervision>)>,
}

impl ChainOp {
    fn apply(
        &mut self,
        py: Python<'_>,
        mut cur: Vec<PyObj>,
        clock: &dyn Clock,
        batch: usize,
    ) -> Result<Vec<PyObj>, StageError> {
        for (op, info, sup) in &mut self.ops {
            let mut next = Vec::with_capacity(cur.len());
            let mut cx = StageCx::new(info, clock, sup.as_ref(), batch);
            let r = op.on_batch(py, cur, &mut next, &mut cx);
            if let Err(e) = r {
                if cx.decide(&e) != Directive::Restart {
                    return Err(e);
                }
                op.reset(py);
            }
            cur = next;
        }
        Ok(cur)
    }
}

impl PyOp<PyObj, PyObj> for ChainOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let r = self.apply(py, input, cx.clock(), cx.batch_size())?;
        if out.is_empty() {
            *out = r;
        } else {
            out.extend(r);
        }
        Ok(())
    }
}

/// Appends the items of the iterable `it` to `out`.
fn extend_from(out: &mut Vec<PyObj>, it: &Bound<'_, PyAny>) -> PyResult<()> {
    if let Ok(l) = it.cast::<PyList>() {
        out.extend(l.iter().map(PyObj::from_bound));
        return Ok(());
    }
    if let Ok(t) = it.cast::<PyTuple>() {
        out.extend(t.iter().map(PyObj::from_bound));
        return Ok(());
    }
    for y in it.try_iter()? {
        out.push(PyObj::from_bound(y?));
    }
    Ok(())
}

/// `flat_map(f)`: `f` returns an iterable per element.
pub struct FlatMapOp(pub Py<PyAny>);

impl PyOp<PyObj, PyObj> for FlatMapOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.0.bind(py);
        for x in input {
            let n = out.len();
            let r = f
                .call1((x.0.bind(py),))
                .and_then(|it| extend_from(out, &it));
            if let Err(e) = r {
                out.truncate(n);
                element_failed(py, cx, e, Some(x))?;
            }
        }
        Ok(())
    }
}

/// `map_batches(f)`: `f` receives the whole batch as a list and returns an iterable of results.
pub struct MapBatchesOp(pub Py<PyAny>);

impl PyOp<PyObj, PyObj> for MapBatchesOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if input.is_empty() {
            return Ok(());
        }
        let list =
            PyList::new(py, input.iter().map(|x| x.0.bind(py))).map_err(|e| user_error(py, e))?;
        let r = self
            .0
            .bind(py)
            .call1((&list,))
            .and_then(|it| extend_from(out, &it));
        if let Err(e) = r {
            element_failed(py, cx, e, Some(PyObj(list.into_any().unbind())))?;
        }
        Ok(())
    }
}

/// `scan(zero, f)`: emits `zero`, then every new accumulator.
pub struct ScanOp {
    /// The initial value.
    pub zero: Py<PyAny>,
    /// The accumulator.
    pub acc: Py<PyAny>,
    /// `f(acc, x)`.
    pub f: Py<PyAny>,
}

impl PyOp<PyObj, PyObj> for ScanOp {
    fn on_start(&mut self, py: Python<'_>, out: &mut Vec<PyObj>) {
        out.push(PyObj(self.acc.clone_ref(py)));
    }
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for x in input {
            match f.call1((self.acc.bind(py), x.0.bind(py))) {
                Ok(y) => {
                    self.acc = y.unbind();
                    out.push(PyObj(self.acc.clone_ref(py)));
                }
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
    fn reset(&mut self, py: Python<'_>) {
        self.acc = self.zero.clone_ref(py);
    }
}

/// `fold(zero, f)` as a flow (emits once on completion) and `reduce(f)` (no zero).
pub struct FoldOp {
    /// The initial value (`None` for reduce).
    pub zero: Option<Py<PyAny>>,
    /// The accumulator.
    pub acc: Option<Py<PyAny>>,
    /// `f(acc, x)`.
    pub f: Py<PyAny>,
}

impl PyOp<PyObj, PyObj> for FoldOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for x in input {
            let Some(acc) = self.acc.take() else {
                self.acc = Some(x.0);
                continue;
            };
            match f.call1((acc.bind(py), x.0.bind(py))) {
                Ok(y) => self.acc = Some(y.unbind()),
                Err(e) => {
                    self.acc = Some(acc);
                    element_failed(py, cx, e, Some(x))?
                }
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        _py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        match self.acc.take() {
            Some(a) => out.push(PyObj(a)),
            None => return Err(StageError::user("reduce of an empty stream")),
        }
        Ok(())
    }
    fn reset(&mut self, py: Python<'_>) {
        self.acc = self.zero.as_ref().map(|z| z.clone_ref(py));
    }
}

/// `grouped(n)`: lists of `n` elements (the last may be shorter).
pub struct GroupedOp {
    /// Group size.
    pub n: usize,
    /// Elements of the current group.
    pub buf: Vec<PyObj>,
}

impl GroupedOp {
    fn emit(&mut self, py: Python<'_>, out: &mut Vec<PyObj>) -> Result<(), StageError> {
        let items = std::mem::take(&mut self.buf);
        let l = PyList::new(py, items.into_iter().map(|x| x.0)).map_err(|e| user_error(py, e))?;
        out.push(PyObj(l.into_any().unbind()));
        Ok(())
    }
}

impl PyOp<PyObj, PyObj> for GroupedOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for x in input {
            self.buf.push(x);
            if self.buf.len() >= self.n {
                self.emit(py, out)?;
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if !self.buf.is_empty() {
            self.emit(py, out)?;
        }
        Ok(())
    }
}

/// Turns pairs (from a zip) into Python tuples.
pub struct TupleOp;

impl PyOp<(PyObj, PyObj), PyObj> for TupleOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<(PyObj, PyObj)>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for (a, b) in input {
            let t = PyTuple::new(py, [a.0, b.0]).map_err(|e| user_error(py, e))?;
            out.push(PyObj(t.into_any().unbind()));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Keyed ops

/// `key_by(f)`: computes each element's key and Python hash (the routing hash).
pub struct KeyOp {
    /// The key function (`None`: the element is its own key).
    pub f: Option<Py<PyAny>>,
    /// Keep the element next to its key (`False` for `count`).
    pub keep_value: bool,
}

impl PyOp<PyObj, KeyedObj> for KeyOp {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<PyObj>,
        out: &mut Vec<KeyedObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.as_ref().map(|f| f.bind(py));
        for x in input {
            let key = match f {
                Some(f) => f.call1((x.0.bind(py),)),
                None => Ok(x.0.bind(py).clone()),
            };
            match key.and_then(|k| k.hash().map(|h| (h, k))) {
                Ok((h, k)) => out.push(KeyedObj {
                    hash: h as u64,
                    key: PyObj::from_bound(k),
                    value: self.keep_value.then_some(x),
                }),
                Err(e) => element_failed(py, cx, e, Some(x))?,
            }
        }
        Ok(())
    }
}

/// A hasher for already-hashed keys (Python's hash): one multiply to spread the bits.
#[derive(Default)]
pub struct PreHashed(u64);

impl Hasher for PreHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (i ^ (i >> 29)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// Per-key state in Rust: buckets by Python hash, keys compared with Python's `==`.
pub struct KeyTable<V> {
    map: HashMap<u64, Vec<(PyObj, V)>, BuildHasherDefault<PreHashed>>,
}

impl<V> Default for KeyTable<V> {
    fn default() -> Self {
        Self {
            map: HashMap::default(),
        }
    }
}

impl<V> KeyTable<V> {
    /// The slot of `key`, created with `init` when new.
    pub fn slot<'a>(
        &'a mut self,
        py: Python<'_>,
        hash: u64,
        key: PyObj,
        init: impl FnOnce() -> V,
    ) -> PyResult<&'a mut V> {
        let bucket = self.map.entry(hash).or_default();
        let k = key.0.bind(py);
        let mut found = None;
        for (i, (other, _)) in bucket.iter().enumerate() {
            let o = other.0.bind(py);
            if o.is(k) || o.eq(k)? {
                found = Some(i);
                break;
            }
        }
        let i = match found {
            Some(i) => i,
            None => {
                bucket.push((key, init()));
                bucket.len() - 1
            }
        };
        Ok(&mut bucket[i].1)
    }
    /// Every (key, value), emptying the table.
    pub fn drain(&mut self) -> impl Iterator<Item = (PyObj, V)> + '_ {
        self.map.drain().flat_map(|(_, b)| b)
    }
    /// Forgets every key.
    pub fn clear(&mut self) {
        self.map.clear();
    }
}

fn pair(py: Python<'_>, k: PyObj, v: Py<PyAny>) -> Result<PyObj, StageError> {
    PyTuple::new(py, [k.0, v])
        .map(|t| PyObj(t.into_any().unbind()))
        .map_err(|e| user_error(py, e))
}

/// `key_by(f).count()`: counts in Rust, one `(key, count)` tuple per key on completion.
#[derive(Default)]
pub struct CountAgg(KeyTable<u64>);

impl PyOp<KeyedObj, PyObj> for CountAgg {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        for k in input {
            match self.0.slot(py, k.hash, k.key, || 0) {
                Ok(c) => *c += 1,
                Err(e) => element_failed(py, cx, e, None)?,
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let items: Vec<_> = self.0.drain().collect();
        for (k, c) in items {
            let Ok(c) = c.into_pyobject(py);
            out.push(pair(py, k, c.into_any().unbind())?);
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.0.clear();
    }
}

/// `key_by(f).fold(zero, g)` (with a zero) or `.reduce(g)` (without).
pub struct FoldAgg {
    /// The initial accumulator of every key (`None` for reduce).
    pub zero: Option<Py<PyAny>>,
    /// `g(acc, x)`.
    pub f: Py<PyAny>,
    /// Accumulators.
    pub table: KeyTable<Option<Py<PyAny>>>,
}

impl PyOp<KeyedObj, PyObj> for FoldAgg {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: Vec<KeyedObj>,
        _out: &mut Vec<PyObj>,
        cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let f = self.f.bind(py);
        for k in input {
            let Some(x) = k.value else { continue };
            let zero = &self.zero;
            let slot = match self
                .table
                .slot(py, k.hash, k.key, || zero.as_ref().map(|z| z.clone_ref(py)))
            {
                Ok(s) => s,
                Err(e) => {
                    element_failed(py, cx, e, Some(x))?;
                    continue;
                }
            };
            let Some(acc) = slot.take() else {
                *slot = Some(x.0);
                continue;
            };
            match f.call1((acc.bind(py), x.0.bind(py))) {
                Ok(y) => *slot = Some(y.unbind()),
                Err(e) => {
                    *slot = Some(acc);
                    element_failed(py, cx, e, Some(x))?;
                }
            }
        }
        Ok(())
    }
    fn on_finish(
        &mut self,
        py: Python<'_>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        let items: Vec<_> = self.table.drain().collect();
        for (k, v) in items {
            if let Some(v) = v {
                out.push(pair(py, k, v)?);
            }
        }
        Ok(())
    }
    fn reset(&mut self, _py: Python<'_>) {
        self.table.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Sources

struct IterSource {
    iterable: Py<PyAny>,
    chain: Option<ChainOp>,
    disp: Arc<Dispatcher>,
}

/// Pulls up to `n` items from `it` (C-speed `list(islice(it, n))`).
fn pull(py: Python<'_>, it: &Py<PyAny>, n: usize) -> PyResult<Vec<PyObj>> {
    let islice = py.import("itertools")?.getattr("islice")?;
    let chunk = islice.call1((it.bind(py), n))?;
    let list = PyList::type_object(py).call1((chunk,))?;
    let list = list.cast_into::<PyList>()?;
    Ok(list.iter().map(PyObj::from_bound).collect())
}

use pyo3::type_object::PyTypeInfo;

impl AsyncLogic for IterSource {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut output = io.output::<PyObj>(0)?;
            let env = StageEnv::from_io(&io);
            let n = io.batch_size.max(1);
            let iterable = self.iterable;
            let it = self
                .disp
                .call(move |py| {
                    let r = iterable.bind(py).try_iter().map(|i| i.into_any().unbind());
                    r.map_err(|e| user_error(py, e))
                })
                .await??;
            let state = Shared::new((it, self.chain, false));
            let mut queue: VecDeque<JobRx<(Vec<PyObj>, bool)>> = VecDeque::new();
            loop {
                // Keep pulls queued ahead: they run in order, each taking the next `n` items.
                while queue.len() < PIPELINE_DEPTH {
                    let (st, e) = (Arc::clone(&state), Arc::clone(&env));
                    queue.push_back(self.disp.submit(move |py| {
                        st.run(|(it, chain, exhausted)| {
                            if *exhausted {
                                return Ok((Vec::new(), true));
                            }
                            let b = pull(py, it, n)
                                .map_err(|err| user_error(py, err).with_stage(&e.info.path))?;
                            *exhausted = b.len() < n;
                            let b = match chain.as_mut() {
                                Some(c) => c.apply(py, b, &*e.clock, e.batch)?,
                                None => b,
                            };
                            Ok((b, *exhausted))
                        })
                    })?);
                }
                let Some(front) = queue.pop_front() else {
                    return Ok(());
                };
                let (batch, done) = job_result(front.await)?;
                if output.send(batch).await.is_err() {
                    return Ok(());
                }
                if done {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}

/// `Source.from_iter(iterable)`: `iter(iterable)` per materialization, pulled a batch per job,
/// with the stateless ops of `chain` fused in (applied in the same job).
pub fn iter_source(
    iterable: Py<PyAny>,
    chain: Option<OpFactory<PyObj, PyObj>>,
) -> Source<PyObj, MatValue> {
    Source::from_async("from_iter", move |info| {
        let ctx = RunCtx::current()?;
        let (iterable, chain) = Python::attach(|py| {
            let c = chain.as_ref().map(|f| f(py, info));
            (iterable.clone_ref(py), c)
        });
        let chain = chain.map(|op| ChainOp {
            ops: vec![(op, info.clone(), None)],
        });
        Ok((
            IterSource {
                iterable,
                chain,
                disp: ctx.dispatcher,
            },
            MatValue::Unit,
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// Sinks

/// What a Python sink does with batches.
pub enum SinkKind {
    /// Keep every element; a list on completion, passed through `finish(list)` when given.
    Collect(Option<Py<PyAny>>),
    /// Fold with `f(acc, x)` from `zero`.
    Fold(Py<PyAny>, Py<PyAny>),
    /// Call `f(x)` for every element.
    ForEach(Py<PyAny>),
    /// Drop every element.
    Ignore,
    /// The first element (`None` if empty when `optional`).
    Head(bool),
    /// The last element (`None` if empty when `optional`).
    Last(bool),
}

impl SinkKind {
    fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Self::Collect(f) => Self::Collect(f.as_ref().map(|f| f.clone_ref(py))),
            Self::Fold(z, f) => Self::Fold(z.clone_ref(py), f.clone_ref(py)),
            Self::ForEach(f) => Self::ForEach(f.clone_ref(py)),
            Self::Ignore => Self::Ignore,
            Self::Head(o) => Self::Head(*o),
            Self::Last(o) => Self::Last(*o),
        }
    }
    fn name(&self) -> &'static str {
        match self {
            Self::Collect(_) => "collect",
            Self::Fold(..) => "fold",
            Self::ForEach(_) => "for_each",
            Self::Ignore => "ignore",
            Self::Head(_) => "head",
            Self::Last(_) => "last",
        }
    }
}

struct SinkStage {
    kind: SinkKind,
    disp: Arc<Dispatcher>,
    promise: weir_graph::Promise<PyObj>,
}

enum SinkState {
    Items(Vec<PyObj>),
    Acc(Option<Py<PyAny>>),
}

/// Folds or visits one batch on the dispatcher.
fn sink_batch(
    py: Python<'_>,
    kind: &SinkKind,
    state: &mut SinkState,
    env: &StageEnv,
    b: Vec<PyObj>,
) -> Result<(), StageError> {
    let mut cx = env.cx();
    match (kind, state) {
        (SinkKind::Fold(_, f), SinkState::Acc(acc)) => {
            let f = f.bind(py);
            for x in b {
                let Some(cur) = acc.take() else { break };
                match f.call1((cur.bind(py), x.0.bind(py))) {
                    Ok(y) => *acc = Some(y.unbind()),
                    Err(err) => {
                        *acc = Some(cur);
                        element_failed(py, &mut cx, err, Some(x))?;
                    }
                }
            }
            Ok(())
        }
        (SinkKind::ForEach(f), _) => {
            let it = c_map(py, f, &b).map_err(|e| user_error(py, e))?;
            let mut elems = b.into_iter();
            for r in it {
                let x = elems.next();
                if let Err(err) = r {
                    element_failed(py, &mut cx, err, x)?;
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The sink's result once upstream completed.
fn sink_result(py: Python<'_>, kind: &SinkKind, state: SinkState) -> Result<PyObj, StageError> {
    let v = match (kind, state) {
        (SinkKind::Collect(finish), SinkState::Items(v)) => {
            let l = PyList::new(py, v.into_iter().map(|x| x.0))
                .map_err(|e| user_error(py, e))?
                .into_any();
            match finish {
                Some(f) => f.bind(py).call1((l,)).map_err(|e| user_error(py, e))?,
                None => l,
            }
            .unbind()
        }
        (SinkKind::Head(opt) | SinkKind::Last(opt), SinkState::Items(mut v)) => match v.pop() {
            Some(x) => x.0,
            None if *opt => py.None(),
            None => {
                return Err(StageError::user("the stream completed without any element"));
            }
        },
        (SinkKind::Fold(..), SinkState::Acc(a)) => a.unwrap_or_else(|| py.None()),
        _ => py.None(),
    };
    Ok(PyObj(v))
}

impl SinkStage {
    async fn drive(
        kind: Arc<SinkKind>,
        disp: &Dispatcher,
        env: &Arc<StageEnv>,
        io: &mut AsyncIo,
    ) -> Result<PyObj, StageError> {
        let mut input = io.input::<PyObj>(0)?;
        let init = match &*kind {
            SinkKind::Fold(..) => {
                let k = Arc::clone(&kind);
                let z = disp
                    .call(move |py| match &*k {
                        SinkKind::Fold(z, _) => Some(z.clone_ref(py)),
                        _ => None,
                    })
                    .await?;
                SinkState::Acc(z)
            }
            _ => SinkState::Items(Vec::new()),
        };
        let state = Shared::new(Some(init));
        let mut queue: VecDeque<JobRx<()>> = VecDeque::new();
        let mut upstream_done = false;
        while let Some(step) = next_step(&mut input, &mut queue, upstream_done).await {
            match step {
                Step2::Input(Event::Batch(b)) => match &*kind {
                    SinkKind::Fold(..) | SinkKind::ForEach(_) => {
                        let (st, k, e) = (Arc::clone(&state), Arc::clone(&kind), Arc::clone(env));
                        queue.push_back(disp.submit(move |py| {
                            st.run(|s| match s.as_mut() {
                                Some(s) => sink_batch(py, &k, s, &e, b),
                                None => Ok(()),
                            })
                        })?);
                    }
                    SinkKind::Ignore => disp.post(move |_py| drop(b)),
                    SinkKind::Collect(_) | SinkKind::Head(_) | SinkKind::Last(_) => {
                        let head = matches!(&*kind, SinkKind::Head(_));
                        let full = state.run(|s| {
                            if let Some(SinkState::Items(v)) = s.as_mut() {
                                match &*kind {
                                    SinkKind::Head(_) if v.is_empty() => {
                                        v.extend(b.into_iter().take(1))
                                    }
                                    SinkKind::Head(_) => {}
                                    SinkKind::Last(_) => {
                                        if let Some(x) = b.into_iter().last() {
                                            v.clear();
                                            v.push(x);
                                        }
                                    }
                                    _ => v.extend(b),
                                }
                                return Ok(!v.is_empty());
                            }
                            Ok(false)
                        })?;
                        if head && full {
                            // Head has its element: stop consuming (upstream is cancelled).
                            break;
                        }
                    }
                },
                Step2::Input(Event::End) => upstream_done = true,
                Step2::Input(Event::Error(e)) => return Err(e),
                Step2::Done(r) => {
                    queue.pop_front();
                    job_result(r)?;
                }
            }
        }
        drop(input);
        for rx in queue {
            job_result(rx.await)?;
        }
        let (st, k) = (Arc::clone(&state), Arc::clone(&kind));
        disp.call(move |py| {
            let s = st.run(|s| Ok(s.take()))?;
            match s {
                Some(s) => sink_result(py, &k, s),
                None => Ok(PyObj(py.None())),
            }
        })
        .await?
    }
}

impl AsyncLogic for SinkStage {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let SinkStage {
                kind,
                disp,
                mut promise,
            } = *self;
            let env = StageEnv::from_io(&io);
            let r = SinkStage::drive(Arc::new(kind), &disp, &env, &mut io)
                .await
                .map_err(|e| e.with_stage(&env.info.path));
            let failed = r.as_ref().err().cloned();
            promise.complete(r);
            match failed {
                Some(e) => Err(e),
                None => Ok(()),
            }
        }
        .boxed()
    }
}

/// A Python sink whose materialized value is the future of its result.
pub fn py_sink(kind: SinkKind) -> Sink<PyObj, MatValue> {
    let name = kind.name();
    Sink::from_async(name, move |_info| {
        let ctx = RunCtx::current()?;
        let kind = Python::attach(|py| kind.clone_ref(py));
        let (promise, fut) = promise::<PyObj>();
        Ok((
            SinkStage {
                kind,
                disp: ctx.dispatcher,
                promise,
            },
            MatValue::Future(fut),
        ))
    })
}

// ---------------------------------------------------------------------------------------------
// External work: asyncio coroutines and interpreter pools

/// Completes a batch handed to an external executor (an asyncio loop or a worker pool): called
/// from Python with `(outputs, failures)` where `failures` is a list of `(element, exception)`.
#[pyclass(module = "weir._native", name = "BatchDone", frozen)]
pub struct Completion {
    tx: Mutex<Option<futures::channel::oneshot::Sender<(Py<PyAny>, Py<PyAny>)>>>,
}

#[pymethods]
impl Completion {
    /// Delivers the outcome of the batch (only the first call counts).
    fn __call__(&self, outputs: Py<PyAny>, failures: Py<PyAny>) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send((outputs, failures));
        }
    }
}

struct ExternalStage {
    submit: Py<PyAny>,
    max_inflight: usize,
    disp: Arc<Dispatcher>,
}

type Pending = futures::channel::oneshot::Receiver<(Py<PyAny>, Py<PyAny>)>;

/// Turns an outcome into output elements, routing failures through supervision.
fn settle(
    py: Python<'_>,
    env: &StageEnv,
    outputs: Py<PyAny>,
    failures: Py<PyAny>,
) -> Result<Vec<PyObj>, StageError> {
    let mut cx = env.cx();
    let fails = failures.bind(py);
    if !fails.is_none() {
        let it = fails.try_iter().map_err(|e| user_error(py, e))?;
        for f in it {
            let f = f.map_err(|e| user_error(py, e))?;
            let (elem, exc): (Bound<'_, PyAny>, Bound<'_, PyAny>) =
                f.extract().map_err(|e: PyErr| user_error(py, e))?;
            let err = PyErr::from_value(exc);
            let elem = (!elem.is_none()).then(|| PyObj::from_bound(elem));
            element_failed(py, &mut cx, err, elem)?;
        }
    }
    let mut out = Vec::new();
    let o = outputs.bind(py);
    if !o.is_none() {
        extend_from(&mut out, o).map_err(|e| user_error(py, e))?;
    }
    Ok(out)
}

enum Next {
    Input(Event<PyObj>),
    Outcome(Result<(Py<PyAny>, Py<PyAny>), futures::channel::oneshot::Canceled>),
}

impl AsyncLogic for ExternalStage {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<PyObj>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            let env = StageEnv::from_io(&io);
            let disp = self.disp;
            let submit = Arc::new(self.submit);
            let mut inflight: VecDeque<Pending> = VecDeque::new();
            let mut upstream_done = false;
            loop {
                let room = !upstream_done && inflight.len() < self.max_inflight;
                let next = match (room, inflight.front_mut()) {
                    (false, None) => return Ok(()),
                    (true, None) => Next::Input(input.recv().await),
                    (false, Some(front)) => Next::Outcome(front.await),
                    (true, Some(front)) => {
                        let recv = std::pin::pin!(input.recv());
                        match futures::future::select(front, recv).await {
                            futures::future::Either::Left((r, _)) => Next::Outcome(r),
                            futures::future::Either::Right((ev, _)) => Next::Input(ev),
                        }
                    }
                };
                match next {
                    Next::Input(Event::Batch(b)) => {
                        if b.is_empty() {
                            continue;
                        }
                        let (tx, rx) = futures::channel::oneshot::channel();
                        let s = Arc::clone(&submit);
                        let e = Arc::clone(&env);
                        disp.call(move |py| -> Result<(), StageError> {
                            let done = Bound::new(
                                py,
                                Completion {
                                    tx: Mutex::new(Some(tx)),
                                },
                            )
                            .map_err(|err| user_error(py, err))?;
                            let list = PyList::new(py, b.into_iter().map(|x| x.0))
                                .map_err(|err| user_error(py, err))?;
                            s.bind(py)
                                .call1((list, done))
                                .map(|_| ())
                                .map_err(|err| user_error(py, err).with_stage(&e.info.path))
                        })
                        .await??;
                        inflight.push_back(rx);
                    }
                    Next::Input(Event::End) => upstream_done = true,
                    Next::Input(Event::Error(e)) => return Err(e),
                    Next::Outcome(r) => {
                        inflight.pop_front();
                        let (outputs, failures) = r.map_err(|_| {
                            StageError::internal("an external batch was dropped without an outcome")
                        })?;
                        let e = Arc::clone(&env);
                        let out = disp
                            .call(move |py| settle(py, &e, outputs, failures))
                            .await??;
                        if output.send(out).await.is_err() {
                            return Ok(());
                        }
                    }
                }
            }
        }
        .boxed()
    }
}

/// A stage that hands each batch to `submit(batch, completion)` (an asyncio loop or a worker
/// pool) with at most `max_inflight` batches outstanding, and emits outcomes in input order.
pub fn external_flow(
    name: &str,
    submit: Py<PyAny>,
    max_inflight: usize,
) -> Flow<PyObj, PyObj, MatValue> {
    Flow::from_async(name, move |_info| {
        let ctx = RunCtx::current()?;
        let submit = Python::attach(|py| submit.clone_ref(py));
        Ok((
            ExternalStage {
                submit,
                max_inflight: max_inflight.max(1),
                disp: ctx.dispatcher,
            },
            MatValue::Unit,
        ))
    })
}

/// A generic flow over `T` (e.g. a Rust operator) with its materialized value dropped.
pub fn unit_mat<I: Send + 'static, O: Send + 'static, M: Send + 'static>(
    f: Flow<I, O, M>,
) -> Flow<I, O, MatValue> {
    f.map_materialized_value(|_| MatValue::Unit)
}
