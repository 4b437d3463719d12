//! Python sinks: collect, fold, for_each, ignore, head, last.

use super::cloop;
use super::core::{JobRx, Shared, StageEnv, Step2, drain_before, job_result, next_step};
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{AsyncIo, AsyncLogic, Event, Sink, StageError, promise};

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
    pub(crate) fn clone_ref(&self, py: Python<'_>) -> Self {
        match self {
            Self::Collect(f) => Self::Collect(f.as_ref().map(|f| f.clone_ref(py))),
            Self::Fold(z, f) => Self::Fold(z.clone_ref(py), f.clone_ref(py)),
            Self::ForEach(f) => Self::ForEach(f.clone_ref(py)),
            Self::Ignore => Self::Ignore,
            Self::Head(o) => Self::Head(*o),
            Self::Last(o) => Self::Last(*o),
        }
    }
    pub(crate) fn name(&self) -> &'static str {
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

pub(crate) enum SinkState {
    Items(Vec<PyObj>),
    Acc(Option<Py<PyAny>>),
}

/// Folds or visits one batch on the dispatcher.
pub(crate) fn sink_batch(
    py: Python<'_>,
    kind: &SinkKind,
    state: &mut SinkState,
    env: &StageEnv,
    b: Vec<PyObj>,
) -> Result<(), StageError> {
    match (kind, state) {
        (SinkKind::Collect(_), SinkState::Items(v)) => {
            v.extend(b);
            Ok(())
        }
        (SinkKind::Fold(..) | SinkKind::ForEach(_), s) => {
            sink_list(kind, s, env, &cloop::to_list(py, &b)?)
        }
        _ => Ok(()),
    }
}

/// Folds, visits or collects one batch held in a Python list (C-speed loops).
pub(crate) fn sink_list(
    kind: &SinkKind,
    state: &mut SinkState,
    env: &StageEnv,
    b: &Bound<'_, PyList>,
) -> Result<(), StageError> {
    let mut cx = env.cx();
    match (kind, state) {
        (SinkKind::Fold(_, f), SinkState::Acc(Some(acc))) => cloop::fold_list(f, acc, b, &mut cx),
        (SinkKind::ForEach(f), _) => cloop::for_each_list(f, b, &mut cx),
        (SinkKind::Collect(_), SinkState::Items(v)) => {
            cloop::take_list(v, b);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The sink's result once upstream completed.
pub(crate) fn sink_result(
    py: Python<'_>,
    kind: &SinkKind,
    state: SinkState,
) -> Result<PyObj, StageError> {
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
        let mut upstream_error = None;
        // `head` uses one element: it asks a demand-driven upstream for exactly one.
        let one = matches!(&*kind, SinkKind::Head(_));
        loop {
            let step = if one && !upstream_done {
                Step2::Input(input.recv_up_to(1).await)
            } else {
                match next_step(&mut input, &mut queue, upstream_done).await {
                    Some(step) => step,
                    None => break,
                }
            };
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
                Step2::Input(Event::Error(e)) => {
                    if let Some(e) = drain_before(e, &mut upstream_done, &mut upstream_error) {
                        return Err(e);
                    }
                }
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
        if let Some(e) = upstream_error {
            return Err(e);
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
        let kind = crate::gil::with(|py| kind.clone_ref(py));
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
