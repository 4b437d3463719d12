//! Builds the pipeline a case names: probe sources -> the operator -> probe sinks, with `i64`
//! elements and the case's parameters.

use super::json::Json;
use futures::FutureExt;
use std::fmt::Debug;
use std::sync::Arc;
use weir_engine::testkit::{ProbeEvent, SinkProbe, SourceProbe, TestSink, TestSource};
use weir_graph::{
    Flow, GraphBuilder, Inlet, Outlet, RunnableGraph, Source, StageError, Supervision,
};
use weir_operators::fan::*;
use weir_operators::prelude::*;
use weir_operators::simple;
use weir_operators::source::{OverflowStrategy, QueueOfferResult, SourceQueue};
use weir_operators::time;

/// An output element, normalised for comparison with the case file.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// A number.
    I(i64),
    /// A group, window or pair.
    L(Vec<Val>),
}

impl Val {
    /// The expected form of a JSON value.
    pub fn from_json(j: &Json) -> Result<Val, String> {
        match j {
            Json::Int(i) => Ok(Val::I(*i)),
            Json::Arr(v) => v
                .iter()
                .map(Val::from_json)
                .collect::<Result<_, _>>()
                .map(Val::L),
            other => Err(format!("unsupported element {other:?}")),
        }
    }
}

/// An output type a probe sink can carry.
pub trait OutVal: Send + Debug + Sized + 'static {
    /// The value for comparison.
    fn val(self) -> Val;
    /// Wraps a typed probe.
    fn wrap(p: SinkProbe<Self>) -> Probe;
}

impl OutVal for i64 {
    fn val(self) -> Val {
        Val::I(self)
    }
    fn wrap(p: SinkProbe<Self>) -> Probe {
        Probe::I(p)
    }
}
impl OutVal for Vec<i64> {
    fn val(self) -> Val {
        Val::L(self.into_iter().map(Val::I).collect())
    }
    fn wrap(p: SinkProbe<Self>) -> Probe {
        Probe::L(p)
    }
}
impl OutVal for (i64, i64) {
    fn val(self) -> Val {
        Val::L(vec![Val::I(self.0), Val::I(self.1)])
    }
    fn wrap(p: SinkProbe<Self>) -> Probe {
        Probe::P(p)
    }
}
impl OutVal for (i64, u64) {
    fn val(self) -> Val {
        Val::L(vec![Val::I(self.0), Val::I(self.1 as i64)])
    }
    fn wrap(p: SinkProbe<Self>) -> Probe {
        Probe::U(p)
    }
}

/// A probe sink of any supported output type.
#[derive(Debug)]
pub enum Probe {
    I(SinkProbe<i64>),
    L(SinkProbe<Vec<i64>>),
    P(SinkProbe<(i64, i64)>),
    U(SinkProbe<(i64, u64)>),
}

fn conv<T: OutVal>(e: ProbeEvent<T>) -> ProbeEvent<Val> {
    match e {
        ProbeEvent::Next(x) => ProbeEvent::Next(x.val()),
        ProbeEvent::Complete => ProbeEvent::Complete,
        ProbeEvent::Error(s) => ProbeEvent::Error(s),
    }
}

macro_rules! each_probe {
    ($self:expr, $p:ident => $e:expr) => {
        match $self {
            Probe::I($p) => $e,
            Probe::L($p) => $e,
            Probe::P($p) => $e,
            Probe::U($p) => $e,
        }
    };
}

impl Probe {
    /// Grants demand.
    pub fn request(&self, n: u64) {
        each_probe!(self, p => p.request(n))
    }
    /// Cancels upstream.
    pub fn cancel(&self) {
        each_probe!(self, p => p.cancel())
    }
    /// The next event (the probe's own 10 s safety timeout applies).
    pub async fn next_event(&mut self) -> ProbeEvent<Val> {
        each_probe!(self, p => conv(p.next_event().await))
    }
    /// The next event if one is there.
    pub fn try_next_event(&mut self) -> Option<ProbeEvent<Val>> {
        each_probe!(self, p => p.try_next_event().map(conv))
    }
}

/// An input port: a probe source, or a `Source::queue` (a source parked on outside input).
#[derive(Debug)]
pub enum Input {
    Probe(SourceProbe<i64>),
    Queue(SourceQueue<i64>),
}

impl Input {
    /// Hands `xs` to the input (a queue: offered one by one, waiting at most `EVENT`).
    pub async fn send_all(&self, xs: Vec<i64>) -> Result<(), String> {
        match self {
            Input::Probe(p) => p.send_all(xs),
            Input::Queue(q) => {
                for x in xs {
                    tokio::time::timeout(std::time::Duration::from_secs(3), q.offer(x))
                        .await
                        .map_err(|_| "offer waited 3s".to_owned())?
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    }
    /// Completes the input.
    pub fn complete(&self) {
        match self {
            Input::Probe(p) => p.complete(),
            Input::Queue(q) => q.complete(),
        }
    }
    /// Fails the input with `e`.
    pub fn fail(&self, e: StageError) {
        match self {
            Input::Probe(p) => p.fail(e),
            Input::Queue(q) => q.fail(e),
        }
    }
    /// The probe, for checks only a probe can make.
    pub fn probe(&self) -> Result<&SourceProbe<i64>, String> {
        match self {
            Input::Probe(p) => Ok(p),
            Input::Queue(_) => Err("a queue input cannot observe this; use a probe".into()),
        }
    }
    /// Whether the input was cancelled, waiting up to `wait`. A probe saw its output close or its
    /// task dropped before the case ended it. A queue is asked with one
    /// more offer (so only once its outputs are done): cancelled when it says `QueueClosed`.
    pub async fn cancelled_within(&self, wait: std::time::Duration) -> bool {
        match self {
            Input::Probe(p) => {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    if p.is_cancelled() {
                        return true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                }
            }
            Input::Queue(q) => {
                let deadline = tokio::time::Instant::now() + wait;
                loop {
                    let r = q.offer(i64::MIN).now_or_never();
                    if matches!(r, Some(Ok(QueueOfferResult::QueueClosed))) {
                        return true;
                    }
                    if tokio::time::Instant::now() >= deadline {
                        return false;
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            }
        }
    }
}

/// What a built case materializes: its inputs and probe sinks, in port order.
pub type Probes = (Vec<Input>, Vec<Probe>);

/// The source of a linear case's input: a probe, or `Source::queue(capacity, strategy)`.
#[derive(Debug, Clone)]
pub enum SrcKind {
    Probe,
    Queue(usize, OverflowStrategy),
}

impl SrcKind {
    /// From a case's `"source"` member (`{"queue": [capacity, "strategy"]}`).
    pub fn parse(j: Option<&Json>) -> Result<SrcKind, String> {
        let Some(j) = j else {
            return Ok(SrcKind::Probe);
        };
        let q = j
            .get("queue")
            .and_then(Json::as_arr)
            .ok_or("source: {\"queue\": [capacity, strategy]}")?;
        let cap = q.first().and_then(Json::as_i64).ok_or("queue capacity")? as usize;
        let st = q.get(1).and_then(Json::as_str).unwrap_or("backpressure");
        Ok(SrcKind::Queue(cap, strategy(st)?))
    }
}

/// Parameters of a case, with typed accessors that name what is missing.
pub struct Params<'a>(pub &'a Json);

impl Params<'_> {
    fn raw(&self, k: &str) -> Option<&Json> {
        self.0.get(k)
    }
    fn int(&self, k: &str) -> Result<i64, String> {
        self.raw(k)
            .and_then(Json::as_i64)
            .ok_or_else(|| format!("parameter {k:?} (integer) missing"))
    }
    fn usize(&self, k: &str) -> Result<usize, String> {
        let v = self.int(k)?;
        usize::try_from(v).map_err(|_| format!("parameter {k:?} = {v} is not a count"))
    }
    fn int_or(&self, k: &str, d: i64) -> Result<i64, String> {
        self.raw(k).map_or(Ok(d), |_| self.int(k))
    }
    fn flag(&self, k: &str) -> bool {
        self.raw(k).and_then(Json::as_bool).unwrap_or(false)
    }
    fn str(&self, k: &str) -> Result<&str, String> {
        self.raw(k)
            .and_then(Json::as_str)
            .ok_or_else(|| format!("parameter {k:?} (string) missing"))
    }
    fn ints(&self, k: &str) -> Result<Vec<i64>, String> {
        self.raw(k)
            .and_then(Json::as_arr)
            .ok_or_else(|| format!("parameter {k:?} (array) missing"))?
            .iter()
            .map(|j| j.as_i64().ok_or_else(|| format!("{k:?}: integers only")))
            .collect()
    }
    fn fail_on(&self) -> Option<i64> {
        self.raw("fail_on").and_then(Json::as_i64)
    }
    fn func(&self, k: &str) -> Result<(String, Vec<i64>), String> {
        let a = self
            .raw(k)
            .and_then(Json::as_arr)
            .ok_or_else(|| format!("parameter {k:?} (function) missing"))?;
        let name = a
            .first()
            .and_then(Json::as_str)
            .ok_or_else(|| format!("{k:?}: a function is [name, args...]"))?;
        let args = a[1..]
            .iter()
            .map(|j| {
                j.as_i64()
                    .ok_or_else(|| format!("{k:?}: integer arguments only"))
            })
            .collect::<Result<_, _>>()?;
        Ok((name.to_owned(), args))
    }
}

type Unary = Arc<dyn Fn(i64) -> i64 + Send + Sync>;
type Pred = Arc<dyn Fn(i64) -> bool + Send + Sync>;
type Binary = Arc<dyn Fn(i64, i64) -> i64 + Send + Sync>;
type Many = Arc<dyn Fn(i64) -> Vec<i64> + Send + Sync>;

fn arg(args: &[i64], i: usize, f: &str) -> Result<i64, String> {
    args.get(i)
        .copied()
        .ok_or_else(|| format!("function {f} needs argument {i}"))
}

/// The user function fails (panics, as Rust user code does) on the element `fail_on`.
fn guard(fail_on: Option<i64>, x: i64) {
    if fail_on == Some(x) {
        panic!("boom on {x}");
    }
}

fn unary(p: &Params, k: &str) -> Result<Unary, String> {
    let (f, a) = p.func(k)?;
    let fail = p.fail_on();
    let g: Unary = match f.as_str() {
        "add" => {
            let k = arg(&a, 0, &f)?;
            Arc::new(move |x| x + k)
        }
        "mul" => {
            let k = arg(&a, 0, &f)?;
            Arc::new(move |x| x * k)
        }
        "id" => Arc::new(|x| x),
        _ => return Err(format!("unknown unary function {f}")),
    };
    Ok(Arc::new(move |x| {
        guard(fail, x);
        g(x)
    }))
}

fn pred(p: &Params, k: &str) -> Result<Pred, String> {
    let (f, a) = p.func(k)?;
    let fail = p.fail_on();
    let g: Pred = match f.as_str() {
        "lt" => {
            let k = arg(&a, 0, &f)?;
            Arc::new(move |x| x < k)
        }
        "gt" => {
            let k = arg(&a, 0, &f)?;
            Arc::new(move |x| x > k)
        }
        "ne" => {
            let k = arg(&a, 0, &f)?;
            Arc::new(move |x| x != k)
        }
        "even" => Arc::new(|x| x % 2 == 0),
        "odd" => Arc::new(|x| x % 2 != 0),
        _ => return Err(format!("unknown predicate {f}")),
    };
    Ok(Arc::new(move |x| {
        guard(fail, x);
        g(x)
    }))
}

fn binary(p: &Params, k: &str) -> Result<Binary, String> {
    let (f, _) = p.func(k)?;
    let fail = p.fail_on();
    let g: Binary = match f.as_str() {
        "sum" => Arc::new(|a, x| a + x),
        "max" => Arc::new(|a: i64, x: i64| a.max(x)),
        // Order-sensitive: shows which side is the accumulator.
        "digits" => Arc::new(|a, x| a * 10 + x),
        _ => return Err(format!("unknown binary function {f}")),
    };
    Ok(Arc::new(move |a, x| {
        guard(fail, x);
        g(a, x)
    }))
}

fn many(p: &Params, k: &str) -> Result<Many, String> {
    let (f, a) = p.func(k)?;
    let fail = p.fail_on();
    let g: Many = match f.as_str() {
        "repeat" => {
            let k = usize::try_from(arg(&a, 0, &f)?).map_err(|e| e.to_string())?;
            Arc::new(move |x| vec![x; k])
        }
        "range" => Arc::new(|x| (0..x).collect()),
        _ => return Err(format!("unknown iterable function {f}")),
    };
    Ok(Arc::new(move |x| {
        guard(fail, x);
        g(x)
    }))
}

fn supervision(p: &Params) -> Result<Option<Supervision>, String> {
    Ok(match p.raw("supervision").and_then(Json::as_str) {
        None => None,
        Some("stop") => Some(Supervision::stop()),
        Some("resume") => Some(Supervision::resume()),
        Some("restart") => Some(Supervision::restart()),
        Some(s) => return Err(format!("unknown supervision {s}")),
    })
}

fn strategy(s: &str) -> Result<OverflowStrategy, String> {
    Ok(match s {
        "backpressure" => OverflowStrategy::Backpressure,
        "drop_head" => OverflowStrategy::DropHead,
        "drop_tail" => OverflowStrategy::DropTail,
        "drop_buffer" => OverflowStrategy::DropBuffer,
        "drop_new" => OverflowStrategy::DropNew,
        "fail" => OverflowStrategy::Fail,
        _ => return Err(format!("unknown overflow strategy {s}")),
    })
}

/// The recovery source of `recover_with_retries`: `with`, then (if `fails`) a failure.
fn err_source(with: Vec<i64>, fails: bool) -> Source<i64> {
    let end = i64::MIN;
    let mut items = with;
    if fails {
        items.push(end);
    }
    Source::from_iter(items).via(simple::try_map(move |x: &i64| {
        if *x == end { Err("boom again") } else { Ok(*x) }
    }))
}

/// One input (`SRC`) -> `flow` -> one probe sink.
fn linear<O: OutVal>(flow: Flow<i64, O>) -> Result<RunnableGraph<Probes>, String> {
    let kind = SRC.with(|k| k.borrow().clone());
    let mut b = GraphBuilder::new();
    let (si, kk) = b.add_sink(TestSink::probe::<O>());
    let (fi, fo, _) = b.add_flow(flow);
    b.connect(fo, si).map_err(|e| e.to_string())?;
    match kind {
        SrcKind::Probe => {
            let (src, ks) = b.add_source(TestSource::probe::<i64>());
            b.connect(src, fi).map_err(|e| e.to_string())?;
            b.build_mat(move |m| {
                let s = m.take(ks).expect("source probe");
                let k = m.take(kk).expect("sink probe");
                (vec![Input::Probe(s)], vec![O::wrap(k)])
            })
        }
        SrcKind::Queue(cap, st) => {
            let (src, ks) = b.add_source(Source::<i64>::queue(cap, st));
            b.connect(src, fi).map_err(|e| e.to_string())?;
            b.build_mat(move |m| {
                let s = m.take(ks).expect("source queue");
                let k = m.take(kk).expect("sink probe");
                (vec![Input::Queue(s)], vec![O::wrap(k)])
            })
        }
    }
    .map_err(|e| e.to_string())
}

thread_local! {
    /// The input kind `linear` builds (set by `build_with`).
    static SRC: std::cell::RefCell<SrcKind> = const { std::cell::RefCell::new(SrcKind::Probe) };
}

/// [`build`] with the input of a linear case made by `kind`.
pub fn build_with(op: &str, p: &Params, kind: SrcKind) -> Result<RunnableGraph<Probes>, String> {
    SRC.with(|k| *k.borrow_mut() = kind);
    let r = build(op, p);
    SRC.with(|k| *k.borrow_mut() = SrcKind::Probe);
    r
}

fn probes_only() -> Result<(), String> {
    if SRC.with(|k| matches!(*k.borrow(), SrcKind::Probe)) {
        Ok(())
    } else {
        Err("a queue source is for linear cases".into())
    }
}

/// `n` probe sources into `inlets`, `outlet` into one probe sink.
fn fan_in<O: OutVal>(
    mut b: GraphBuilder,
    inlets: Vec<Inlet<i64>>,
    outlet: Outlet<O>,
) -> Result<RunnableGraph<Probes>, String> {
    probes_only()?;
    let mut keys = Vec::new();
    for i in inlets {
        let (src, ks) = b.add_source(TestSource::probe::<i64>());
        b.connect(src, i).map_err(|e| e.to_string())?;
        keys.push(ks);
    }
    let (si, kk) = b.add_sink(TestSink::probe::<O>());
    b.connect(outlet, si).map_err(|e| e.to_string())?;
    b.build_mat(move |m| {
        let s = keys
            .iter()
            .map(|k| Input::Probe(m.take(*k).expect("source probe")))
            .collect();
        (s, vec![O::wrap(m.take(kk).expect("sink probe"))])
    })
    .map_err(|e| e.to_string())
}

/// One probe source into `inlet`, every outlet into a probe sink.
fn fan_out(
    mut b: GraphBuilder,
    inlet: Inlet<i64>,
    outlets: Vec<Outlet<i64>>,
) -> Result<RunnableGraph<Probes>, String> {
    probes_only()?;
    let (src, ks) = b.add_source(TestSource::probe::<i64>());
    b.connect(src, inlet).map_err(|e| e.to_string())?;
    let mut keys = Vec::new();
    for o in outlets {
        let (si, kk) = b.add_sink(TestSink::probe::<i64>());
        b.connect(o, si).map_err(|e| e.to_string())?;
        keys.push(kk);
    }
    b.build_mat(move |m| {
        let s = m.take(ks).expect("source probe");
        let k = keys
            .iter()
            .map(|k| Probe::I(m.take(*k).expect("sink probe")))
            .collect();
        (vec![Input::Probe(s)], k)
    })
    .map_err(|e| e.to_string())
}

/// Applies the case's stage attributes: supervision, `parallelism`, `batch_size`, `buffer_rows`.
fn sup<I: Send + 'static, O: Send + 'static>(
    f: Flow<I, O>,
    p: &Params,
) -> Result<Flow<I, O>, String> {
    let mut f = match supervision(p)? {
        Some(s) => f.with_supervision(s),
        None => f,
    };
    if p.raw("parallelism").is_some() {
        f = f.parallelism(p.usize("parallelism")?);
    }
    if p.raw("batch_size").is_some() {
        f = f.batch_size(p.usize("batch_size")?);
    }
    if p.raw("buffer_rows").is_some() {
        f = f.buffer_rows(p.usize("buffer_rows")?);
    }
    Ok(f)
}

/// The graph for operator `op` with parameters `p`.
pub fn build(op: &str, p: &Params) -> Result<RunnableGraph<Probes>, String> {
    match op {
        "map" => {
            let f = unary(p, "fn")?;
            linear(sup(simple::map(move |x| f(x)), p)?)
        }
        "try_map" => {
            let fail = p.fail_on();
            let base = unary(&Params(&strip_fail(p.0)), "fn")?;
            linear(sup(
                simple::try_map(move |x: &i64| {
                    if fail == Some(*x) {
                        Err(format!("boom on {x}"))
                    } else {
                        Ok(base(*x))
                    }
                }),
                p,
            )?)
        }
        "filter" => {
            let f = pred(p, "fn")?;
            linear(sup(simple::filter(move |x: &i64| f(*x)), p)?)
        }
        "take" => linear(simple::take::<i64>(p.usize("n")?)),
        "limit" => linear(simple::limit::<i64>(p.usize("n")?)),
        "drop" => linear(simple::drop::<i64>(p.usize("n")?)),
        "take_while" => {
            let f = pred(p, "fn")?;
            if p.flag("inclusive") {
                linear(simple::take_while_inclusive(move |x: &i64| f(*x)))
            } else {
                linear(simple::take_while(move |x: &i64| f(*x)))
            }
        }
        "drop_while" => {
            let f = pred(p, "fn")?;
            linear(simple::drop_while(move |x: &i64| f(*x)))
        }
        "grouped" => linear(simple::grouped::<i64>(p.usize("n")?)),
        "sliding" => linear(simple::sliding::<i64>(
            p.usize("n")?,
            p.int_or("step", 1)? as usize,
        )),
        "scan" => {
            let f = binary(p, "fn")?;
            linear(sup(
                simple::scan(p.int("zero")?, move |a: &i64, x| f(*a, x)),
                p,
            )?)
        }
        "fold" => {
            let f = binary(p, "fn")?;
            linear(sup(simple::fold(p.int("zero")?, move |a, x| f(a, x)), p)?)
        }
        "reduce" => {
            let f = binary(p, "fn")?;
            linear(sup(simple::reduce(move |a, x| f(a, x)), p)?)
        }
        "intersperse" => {
            let sep = p.int("sep")?;
            match (p.raw("start"), p.raw("end")) {
                (None, None) => linear(simple::intersperse(sep)),
                _ => linear(simple::intersperse_around(
                    p.int("start")?,
                    sep,
                    p.int("end")?,
                )),
            }
        }
        "map_concat" | "flat_map" => {
            let f = many(p, "fn")?;
            linear(sup(simple::map_concat(move |x| f(x)), p)?)
        }
        "identity" => linear(Flow::<i64, i64>::identity()),
        "zip_with_index" => linear(simple::zip_with_index::<i64>()),
        "recover" => {
            let v = p.raw("value").and_then(Json::as_i64);
            linear(simple::recover(move |_e: &StageError| v))
        }
        "recover_with_retries" => {
            let (with, fails) = (p.ints("with")?, p.flag("with_fails"));
            let f = Flow::<i64, i64>::identity();
            linear(
                f.recover_with_retries(p.usize("attempts")?, move |_e: &StageError| {
                    Some(err_source(with.clone(), fails))
                }),
            )
        }
        "buffer" => linear(time::buffer::<i64>(
            p.usize("size")?,
            strategy(p.str("strategy")?)?,
        )),
        "conflate" => {
            let f = binary(p, "fn")?;
            linear(time::conflate(move |a, x| f(a, x)))
        }
        "batch" => linear(time::batch(
            p.usize("max")?,
            |x: i64| vec![x],
            |mut v: Vec<i64>, x| {
                v.push(x);
                v
            },
        )),
        "expand" => {
            let (f, _) = p.func("fn")?;
            match f.as_str() {
                "repeat_last" => linear(time::expand(std::iter::repeat::<i64>)),
                "count_from" => linear(time::expand(|x: i64| x..)),
                _ => Err(format!("unknown expand function {f}")),
            }
        }
        "throttle" => linear(time::throttle::<i64>(
            p.usize("elements")?,
            ms(p.int("per_ms")?),
            p.usize("burst")?,
        )),
        "grouped_within" => linear(time::grouped_within::<i64>(
            p.usize("n")?,
            ms(p.int("within_ms")?),
        )),
        "delay" => linear(time::delay::<i64>(ms(p.int("ms")?))),
        "idle_timeout" => linear(time::idle_timeout::<i64>(ms(p.int("ms")?))),
        "initial_timeout" => linear(time::initial_timeout::<i64>(ms(p.int("ms")?))),
        "completion_timeout" => linear(time::completion_timeout::<i64>(ms(p.int("ms")?))),
        "map_async" | "map_async_unordered" => {
            let f = unary(&Params(&strip_fail(p.0)), "fn")?;
            let fail = p.fail_on();
            let call = move |x: i64| {
                let f = Arc::clone(&f);
                async move {
                    if fail == Some(x) {
                        Err(StageError::user(format!("boom on {x}")))
                    } else {
                        Ok(f(x))
                    }
                }
            };
            let n = p.usize("parallelism")?;
            // `parallelism` is the operator's own (futures in flight), not the stage attribute:
            // two subtasks would not keep the input order map_async promises.
            let attrs = without(p.0, "parallelism");
            let attrs = Params(&attrs);
            if op == "map_async" {
                linear(sup(weir_operators::async_ops::map_async(n, call), &attrs)?)
            } else {
                linear(sup(
                    weir_operators::async_ops::map_async_unordered(n, call),
                    &attrs,
                )?)
            }
        }
        "merge" | "merge_preferred" | "merge_prioritized" | "concat" | "interleave" => {
            let n = p.usize("inputs")?;
            let mut b = GraphBuilder::new();
            let eager = p.flag("eager_complete");
            let (inlets, outlet) = match op {
                "merge" => {
                    let j = b.add(Merge::<i64>::new(n).eager_complete(eager));
                    (j.inlets, j.outlet)
                }
                "merge_preferred" => {
                    let j = b.add(MergePreferred::<i64>::new(n - 1).eager_complete(eager));
                    let mut v = vec![j.preferred];
                    v.extend(j.inlets);
                    (v, j.outlet)
                }
                "merge_prioritized" => {
                    let pr = p.ints("priorities")?.into_iter().map(|x| x as usize);
                    let j = b.add(MergePrioritized::<i64>::new(pr).eager_complete(eager));
                    (j.inlets, j.outlet)
                }
                "concat" => {
                    let j = b.add(Concat::<i64>::new(n));
                    (j.inlets, j.outlet)
                }
                _ => {
                    let j = b.add(Interleave::<i64>::new(n, p.usize("segment")?));
                    (j.inlets, j.outlet)
                }
            };
            fan_in(b, inlets, outlet)
        }
        "zip" | "zip_latest" => {
            let mut b = GraphBuilder::new();
            let j = if op == "zip" {
                b.add(Zip::<i64, i64>::new())
            } else {
                b.add(ZipLatest::<i64, i64>::new())
            };
            fan_in(b, vec![j.left, j.right], j.outlet)
        }
        "zip_with" => {
            let f = binary(p, "fn")?;
            let mut b = GraphBuilder::new();
            let j = b.add(ZipWith::new(move |a: i64, x: i64| f(a, x)));
            fan_in(b, vec![j.left, j.right], j.outlet)
        }
        "merge_sorted" => {
            let mut b = GraphBuilder::new();
            let j = b.add(MergeSorted::<i64>::new());
            fan_in(b, vec![j.left, j.right], j.outlet)
        }
        "broadcast" => {
            let mut b = GraphBuilder::new();
            let j = b.add(
                Broadcast::<i64>::new(p.usize("outputs")?).eager_cancel(p.flag("eager_cancel")),
            );
            fan_out(b, j.inlet, j.outlets)
        }
        "balance" => {
            let mut b = GraphBuilder::new();
            let j = b
                .add(Balance::<i64>::new(p.usize("outputs")?).eager_cancel(p.flag("eager_cancel")));
            fan_out(b, j.inlet, j.outlets)
        }
        "partition" => {
            let (f, a) = p.func("fn")?;
            let k = match f.as_str() {
                "mod" => arg(&a, 0, &f)?,
                "index" => 0,
                _ => return Err(format!("unknown partition function {f}")),
            };
            let choose = move |x: &i64| {
                if k == 0 {
                    *x as usize
                } else {
                    x.rem_euclid(k) as usize
                }
            };
            let mut b = GraphBuilder::new();
            let j = b.add(
                Partition::new(p.usize("outputs")?, choose).eager_cancel(p.flag("eager_cancel")),
            );
            fan_out(b, j.inlet, j.outlets)
        }
        "unzip" => {
            // Each element x enters the unzip as the pair (x, x * k).
            let k = p.int("k")?;
            let mut b = GraphBuilder::new();
            let (fi, fo, _) = b.add_flow(simple::map(move |x: i64| (x, x * k)));
            let j = b.add(Unzip::<i64, i64>::new().eager_cancel(p.flag("eager_cancel")));
            b.connect(fo, j.inlet).map_err(|e| e.to_string())?;
            fan_out(b, fi, vec![j.left, j.right])
        }
        _ => Err(format!("no such operator: {op}")),
    }
}

fn ms(v: i64) -> std::time::Duration {
    std::time::Duration::from_millis(v.max(0) as u64)
}

fn strip_fail(j: &Json) -> Json {
    without(j, "fail_on")
}

/// The parameters without `key`.
fn without(j: &Json, key: &str) -> Json {
    match j {
        Json::Obj(m) => {
            let mut m = m.clone();
            m.remove(key);
            Json::Obj(m)
        }
        other => other.clone(),
    }
}
