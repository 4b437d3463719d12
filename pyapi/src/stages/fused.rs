//! `Source.from_iter(...)` + fused element-wise ops + a Python sink (`collect`, `fold`,
//! `for_each`, `ignore`) as **one** stage.
//!
//! Such a pipeline has no Rust stage in the middle, so nothing is gained by moving batches
//! between tokio tasks: every hop only makes the dispatcher wait for a tokio worker to wake up.
//! This stage instead queues jobs that each pull, transform and fold batches back to back for up
//! to [`SLICE`] with the GIL held, so the dispatcher runs the whole pipeline at the speed of the
//! user's functions. Between slices the serving thread checks signals and a cancelled run stops
//! (queued slices are skipped). The operators keep their own names for errors and supervision
//! (`map#0`, `fold#0`), the materialized value is the sink's future as for a separate sink, and
//! the number of elements pulled is reported as the stage's `elements_out` (through
//! [`AsyncIo::counts`], as nothing passes through its ports). An iterator (`iter(x) is x`) is
//! pulled on a thread of its own ([`super::handoff`]) and each job takes what has arrived, so the
//! sink sees an item as soon as the iterator yields it.

use super::core::{JobRx, Shared, StageEnv, job_result};
use super::element::ChainOp;
use super::handoff::{End, Handoff, Puller};
use super::sinks::{SinkKind, SinkState, sink_list, sink_result};
use super::source::pull_list;
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::{PyIterator, PyList};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};
use weir_graph::{
    AsyncIo, AsyncLogic, Promise, Source, StageCounts, StageError, StageInfo, promise,
};

/// How long one job of a fused pipeline runs before it lets the serving thread check signals
/// and other jobs run.
pub const SLICE: Duration = Duration::from_millis(5);

/// Jobs kept queued (the next slice is always ready when one ends).
const DEPTH: usize = 2;

/// Whether `kind` can end a fused pipeline (it consumes every element).
pub fn fusable_sink(kind: &SinkKind) -> bool {
    matches!(
        kind,
        SinkKind::Collect(_) | SinkKind::Fold(..) | SinkKind::ForEach(_) | SinkKind::Ignore
    )
}

/// Where a fused pipeline's items come from.
enum Pull {
    /// A container's iterator, pulled in the jobs.
    Direct(Py<PyAny>),
    /// An iterator (`iter(x) is x`), pulled on a thread of its own: the jobs take what arrived.
    Handoff(Arc<Handoff>),
}

struct Pipeline {
    src: Pull,
    chain: Option<ChainOp>,
    kind: SinkKind,
    sink: Option<SinkState>,
    exhausted: bool,
}

struct FusedStage {
    iterable: Py<PyAny>,
    chain: Option<ChainOp>,
    kind: SinkKind,
    disp: Arc<Dispatcher>,
    promise: Promise<PyObj>,
}

/// Runs batches for one slice; `Ok(true)` once the iterator is exhausted.
fn slice(
    py: Python<'_>,
    p: &mut Pipeline,
    env: &StageEnv,
    sink_env: &StageEnv,
    pulled: &dyn StageCounts,
) -> Result<bool, StageError> {
    let start = Instant::now();
    let n = env.batch.max(1);
    while !p.exhausted {
        let (b, exhausted, pull_failure) = match &p.src {
            Pull::Direct(it) => {
                let (b, f) = pull_list(py, it, n, &env.info.path);
                let exhausted = f.is_none() && b.len() < n;
                (b, exhausted, f)
            }
            Pull::Handoff(h) => {
                // Nothing arrived yet: the driver waits for the iterator.
                let Some((items, end)) = h.try_take(n) else {
                    return Ok(false);
                };
                let b = PyList::new(py, items.into_iter().map(|o| o.0))
                    .map_err(|e| user_error(py, e).with_stage(&env.info.path))?;
                match end {
                    None => (b, false, None),
                    Some(End::Exhausted) => (b, true, None),
                    Some(End::Failed(e)) => (b, false, Some(e)),
                }
            }
        };
        p.exhausted = exhausted;
        pulled.add_out(b.len() as u64);
        let (b, chain_failure) = match p.chain.as_mut() {
            Some(c) => c.apply_list(b, &*env.clock, env.batch),
            None => (b, None),
        };
        // What was produced before a failure still reaches the sink, ahead of the error.
        if let Some(s) = p.sink.as_mut() {
            sink_list(&p.kind, s, sink_env, &b).map_err(|e| e.with_stage(&sink_env.info.path))?;
        }
        if let Some(e) = chain_failure.or(pull_failure) {
            return Err(e);
        }
        if start.elapsed() >= SLICE {
            break;
        }
    }
    Ok(p.exhausted)
}

impl FusedStage {
    async fn drive(
        iterable: Py<PyAny>,
        chain: Option<ChainOp>,
        kind: SinkKind,
        disp: &Dispatcher,
        io: &mut AsyncIo,
    ) -> Result<PyObj, StageError> {
        let env = StageEnv::from_io(io);
        let pulled = Arc::clone(&io.counts);
        let mut sink_info: StageInfo = io.info.clone();
        sink_info.name = kind.name().to_owned();
        sink_info.path = format!("{}#{}", sink_info.name, io.info.index);
        let sink_env = StageEnv::with_info(&env, sink_info);
        let path = env.info.path.clone();
        let batch = env.batch;
        let (mut p, iterator) = disp
            .call(
                move |py| -> Result<(Pipeline, Option<Py<PyIterator>>), StageError> {
                    let b = iterable.bind(py);
                    let it = b
                        .try_iter()
                        .map_err(|e| user_error(py, e).with_stage(&path))?;
                    // An iterator may block waiting for outside input: pulled off the dispatcher.
                    let iterator = it.is(b).then(|| it.clone().unbind());
                    let src = Pull::Direct(it.into_any().unbind());
                    let sink = Some(match &kind {
                        SinkKind::Fold(z, _) => SinkState::Acc(Some(z.clone_ref(py))),
                        _ => SinkState::Items(Vec::new()),
                    });
                    let p = Pipeline {
                        src,
                        chain,
                        kind,
                        sink,
                        exhausted: false,
                    };
                    Ok((p, iterator))
                },
            )
            .await??;
        let puller: Option<Puller> =
            iterator.map(|it| Handoff::start(it, batch.max(1), env.info.path.clone()));
        if let Some(h) = &puller {
            p.src = Pull::Handoff(h.handoff());
        }
        let state = Shared::new(p);
        let mut queue: VecDeque<JobRx<bool>> = VecDeque::new();
        loop {
            // An iterator's items are processed once they arrive, one job at a time.
            let depth = match &puller {
                Some(h) => {
                    if queue.is_empty() {
                        h.ready().await;
                    }
                    1
                }
                None => DEPTH,
            };
            while queue.len() < depth {
                let (st, e, se, c) = (
                    Arc::clone(&state),
                    Arc::clone(&env),
                    Arc::clone(&sink_env),
                    Arc::clone(&pulled),
                );
                queue.push_back(disp.submit(move |py| st.run(|p| slice(py, p, &e, &se, &*c)))?);
            }
            let Some(front) = queue.pop_front() else {
                break;
            };
            if job_result(front.await)? {
                break;
            }
        }
        // Later slices see the exhausted iterator and return at once.
        for rx in queue {
            job_result(rx.await)?;
        }
        let sink_path = sink_env.info.path.clone();
        disp.call(move |py| {
            let r = state.run(|p| Ok((p.sink.take(), p.kind.clone_ref(py))))?;
            match r {
                (Some(s), kind) => sink_result(py, &kind, s),
                (None, _) => Ok(PyObj(py.None())),
            }
            .map_err(|e| e.with_stage(&sink_path))
        })
        .await?
    }
}

impl AsyncLogic for FusedStage {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let FusedStage {
                iterable,
                chain,
                kind,
                disp,
                mut promise,
            } = *self;
            let r = FusedStage::drive(iterable, chain, kind, &disp, &mut io).await;
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

/// `Source.from_iter(iterable)` with the ops made by `chain` and the sink `kind` in one stage
/// (see the module docs). Its materialized value is the sink's future; connect it to a sink that
/// ignores its (absent) output.
pub fn fused_iter_sink(
    name: &str,
    iterable: Py<PyAny>,
    chain: Option<super::core::OpFactory<PyObj, PyObj>>,
    kind: SinkKind,
) -> Source<PyObj, MatValue> {
    Source::from_async(name, move |info| {
        let ctx = RunCtx::current()?;
        let (iterable, chain, kind) = crate::gil::with(|py| {
            let c = chain.as_ref().map(|f| f(py, info));
            (iterable.clone_ref(py), c, kind.clone_ref(py))
        });
        let chain = chain.map(|op| ChainOp {
            ops: vec![(op, info.clone(), None)],
        });
        let (promise, fut) = promise::<PyObj>();
        Ok((
            FusedStage {
                iterable,
                chain,
                kind,
                disp: ctx.dispatcher,
                promise,
            },
            MatValue::Future(fut),
        ))
    })
}
