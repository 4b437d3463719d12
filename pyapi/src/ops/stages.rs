//! Python stages with their own driving loop: `recover`, `recover_with_retries`, `merge_sorted`.

use super::pyops::to_source;
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, py_cause, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{
    AsyncIo, AsyncLogic, ErrorKind, Event, Flow, Input, Junction, Node, NodePorts, StageError,
    async_node, router_for,
};

/// The Python exception for a stage error: the original one when user code raised it.
pub fn exception_of(py: Python<'_>, e: &StageError) -> Py<PyAny> {
    match py_cause(e) {
        Some(c) => c.value(py).clone().into_any().unbind(),
        None => crate::errors::to_py_err(py, e)
            .value(py)
            .clone()
            .into_any()
            .unbind(),
    }
}

// ---------------------------------------------------------------------------------------------
// recover

struct RecoverLogic {
    f: Py<PyAny>,
    disp: Arc<Dispatcher>,
}

impl AsyncLogic for RecoverLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<PyObj>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            let path = io.info.path.clone();
            loop {
                match input.recv().await {
                    Event::Batch(b) => {
                        if output.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) if e.kind() == ErrorKind::Cancelled => return Err(e),
                    Event::Error(e) => {
                        drop(input);
                        let f = self.f;
                        let err = e.clone();
                        let r = self
                            .disp
                            .call(move |py| -> Result<Option<PyObj>, StageError> {
                                let exc = exception_of(py, &err);
                                let v = f
                                    .bind(py)
                                    .call1((exc,))
                                    .map_err(|x| user_error(py, x).with_stage(&path))?;
                                Ok((!v.is_none()).then(|| PyObj::from_bound(v)))
                            })
                            .await??;
                        return match r {
                            Some(v) => {
                                let _ = output.send(vec![v]).await;
                                Ok(())
                            }
                            None => Err(e),
                        };
                    }
                }
            }
        }
        .boxed()
    }
}

/// `recover(f)`: on upstream failure emits `f(exception)` and completes (`None` propagates).
pub fn recover_flow(f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    Flow::from_async("recover", move |info| {
        let ctx = RunCtx::of(info)?;
        let f = crate::gil::with(|py| f.clone_ref(py));
        Ok((
            RecoverLogic {
                f,
                disp: Arc::clone(&ctx.dispatcher),
            },
            MatValue::Unit,
        ))
    })
}

struct RetriesLogic {
    f: Py<PyAny>,
    attempts: usize,
    ctx: Arc<RunCtx>,
}

impl AsyncLogic for RetriesLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<PyObj>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            let path = io.info.path.clone();
            let f = Arc::new(self.f);
            let mut left = self.attempts;
            loop {
                match input.recv().await {
                    Event::Batch(b) => {
                        if output.send(b).await.is_err() {
                            return Ok(());
                        }
                    }
                    Event::End => return Ok(()),
                    Event::Error(e) if e.kind() == ErrorKind::Cancelled || left == 0 => {
                        return Err(e);
                    }
                    Event::Error(e) => {
                        left -= 1;
                        let (f2, err, p) = (Arc::clone(&f), e.clone(), path.clone());
                        let src = self
                            .ctx
                            .dispatcher
                            .call(move |py| -> Result<_, StageError> {
                                let exc = exception_of(py, &err);
                                let v = f2
                                    .bind(py)
                                    .call1((exc,))
                                    .map_err(|x| user_error(py, x).with_stage(&p))?;
                                if v.is_none() {
                                    return Ok(None);
                                }
                                to_source(&v)
                                    .map(Some)
                                    .map_err(|x| user_error(py, x).with_stage(&p))
                            })
                            .await??;
                        let Some(src) = src else { return Err(e) };
                        let module = Arc::clone(src.module());
                        let inner = io.sub.source(module)?;
                        input = Input::new(inner, Arc::from(path.as_str()));
                    }
                }
            }
        }
        .boxed()
    }
}

/// `recover_with_retries(attempts, f)`: on failure continues with the source `f(exception)`.
pub fn recover_retries_flow(attempts: usize, f: Py<PyAny>) -> Flow<PyObj, PyObj, MatValue> {
    Flow::from_async("recover_with_retries", move |info| {
        let ctx = RunCtx::of(info)?;
        let f = crate::gil::with(|py| f.clone_ref(py));
        Ok((RetriesLogic { f, attempts, ctx }, MatValue::Unit))
    })
}

// ---------------------------------------------------------------------------------------------
// MergeSorted

/// Merges two inputs sorted ascending (compared with Python's `<`) into one sorted output; on
/// ties the left element goes first. Ports: inlets 0 and 1, outlet 0.
#[derive(Debug, Clone, Copy)]
pub struct PyMergeSorted;

struct MergeSortedLogic(Arc<Dispatcher>);

impl Junction for PyMergeSorted {
    type Ports = NodePorts;
    fn node(self) -> Node {
        async_node("merge_sorted", 2, vec![router_for::<PyObj>()], |info| {
            let ctx = RunCtx::of(info)?;
            Ok((MergeSortedLogic(Arc::clone(&ctx.dispatcher)), ()))
        })
    }
    fn ports(p: NodePorts) -> NodePorts {
        p
    }
}

/// Merges the fronts of `a` and `b` until one is empty (or both, when `flush`).
fn merge_fronts(
    py: Python<'_>,
    a: &mut VecDeque<PyObj>,
    b: &mut VecDeque<PyObj>,
) -> PyResult<Vec<PyObj>> {
    let mut out = Vec::with_capacity(a.len() + b.len());
    while let (Some(x), Some(y)) = (a.front(), b.front()) {
        let take_b = y.0.bind(py).lt(x.0.bind(py))?;
        let v = if take_b { b.pop_front() } else { a.pop_front() };
        out.extend(v);
    }
    Ok(out)
}

impl AsyncLogic for MergeSortedLogic {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut ins = [io.input::<PyObj>(0)?, io.input::<PyObj>(1)?];
            let mut out = io.output::<PyObj>(0)?;
            let path = io.info.path.clone();
            let mut bufs: [VecDeque<PyObj>; 2] = [VecDeque::new(), VecDeque::new()];
            let mut done = [false, false];
            loop {
                // Wait for an input whose buffer is empty and still open.
                let need = (0..2).find(|&i| bufs[i].is_empty() && !done[i]);
                if let Some(i) = need {
                    match ins[i].recv().await {
                        Event::Batch(v) => bufs[i].extend(v),
                        Event::End => done[i] = true,
                        Event::Error(e) => return Err(e),
                    }
                    continue;
                }
                let batch: Vec<PyObj> = if bufs[0].is_empty() || bufs[1].is_empty() {
                    // One side is exhausted: the other flows through.
                    let i = usize::from(bufs[0].is_empty());
                    bufs[i].drain(..).collect()
                } else {
                    let [mut a, mut b] = std::mem::take(&mut bufs);
                    let p = path.clone();
                    let (r, a, b) = self
                        .0
                        .call(move |py| {
                            let r = merge_fronts(py, &mut a, &mut b)
                                .map_err(|e| user_error(py, e).with_stage(&p));
                            (r, a, b)
                        })
                        .await?;
                    bufs = [a, b];
                    r?
                };
                if batch.is_empty() {
                    if done[0] && done[1] {
                        return Ok(());
                    }
                    continue;
                }
                if out.send(batch).await.is_err() {
                    return Ok(());
                }
            }
        }
        .boxed()
    }
}
