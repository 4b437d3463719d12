//! External work: batches handed to asyncio coroutines or interpreter pools.

use super::core::{Partial, StageEnv, drain_before, element_failed};
use super::element::extend_from;

use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::future::{BoxFuture, poll_fn};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use weir_graph::{AsyncIo, AsyncLogic, Directive, Event, Flow, StageError};

/// Completes a batch handed to an external executor (an asyncio loop or a worker pool): called
/// from Python with `(outputs, failures)` where `failures` is a list of `(element, exception)`
/// or `(element, exception, outputs_before)` (see `settle`).
#[pyclass(module = "weir._native", name = "BatchDone", frozen)]
pub struct BatchDone {
    tx: Mutex<Option<futures::channel::oneshot::Sender<(Py<PyAny>, Py<PyAny>)>>>,
}

#[pymethods]
impl BatchDone {
    /// Delivers the outcome of the batch (only the first call counts).
    fn __call__(&self, outputs: Py<PyAny>, failures: Py<PyAny>) {
        if let Some(tx) = self.tx.lock().ok().and_then(|mut g| g.take()) {
            let _ = tx.send((outputs, failures));
        }
    }
}

/// What `submit` returned for the batches in flight that can be cancelled (the asyncio
/// futures of `map_async`); cancelled when the stage stops, so no coroutine outlives it.
struct Running {
    handles: Arc<Mutex<Vec<Py<PyAny>>>>,
}

impl Running {
    /// Keeps `h` if it can be cancelled, dropping the handles of batches already done.
    fn track(&self, py: Python<'_>, h: Bound<'_, PyAny>) {
        let Ok(mut v) = self.handles.lock() else {
            return;
        };
        v.retain(|x| {
            !x.bind(py)
                .call_method0(pyo3::intern!(py, "done"))
                .and_then(|d| d.is_truthy())
                .unwrap_or(true)
        });
        if h.hasattr(pyo3::intern!(py, "cancel")).unwrap_or(false) {
            v.push(h.unbind());
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let handles = self
            .handles
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        if handles.is_empty() {
            return;
        }
        if !crate::dispatch::on_dispatcher() {
            // Dropped off the run's thread (the run is over): the handles just go.
            return;
        }
        crate::gil::with(|py| {
            for h in handles {
                // Best effort: a batch that finished meanwhile ignores it.
                let _ = h.bind(py).call_method0(pyo3::intern!(py, "cancel"));
            }
        });
    }
}

struct ExternalStage {
    submit: Py<PyAny>,
    max_inflight: usize,
    ordered: bool,
}

type Pending = futures::channel::oneshot::Receiver<(Py<PyAny>, Py<PyAny>)>;
type Outcome = Result<(Py<PyAny>, Py<PyAny>), futures::channel::oneshot::Canceled>;

/// Batches handed out and not settled yet: settled in input order, or as they complete.
enum Inflight {
    Ordered(VecDeque<Pending>),
    Unordered(FuturesUnordered<Pending>),
}

impl Inflight {
    fn new(ordered: bool) -> Self {
        if ordered {
            Self::Ordered(VecDeque::new())
        } else {
            Self::Unordered(FuturesUnordered::new())
        }
    }
    fn len(&self) -> usize {
        match self {
            Self::Ordered(q) => q.len(),
            Self::Unordered(s) => s.len(),
        }
    }
    fn push(&mut self, p: Pending) {
        match self {
            Self::Ordered(q) => q.push_back(p),
            Self::Unordered(s) => s.push(p),
        }
    }
    /// The next outcome to emit (pending while there is none, or while the oldest batch of an
    /// ordered stage is not done).
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Outcome> {
        match self {
            Self::Ordered(q) => {
                let Some(front) = q.front_mut() else {
                    return Poll::Pending;
                };
                let r = std::task::ready!(front.poll_unpin(cx));
                q.pop_front();
                Poll::Ready(r)
            }
            Self::Unordered(s) => match s.poll_next_unpin(cx) {
                Poll::Ready(Some(r)) => Poll::Ready(r),
                _ => Poll::Pending,
            },
        }
    }
}

/// Turns an outcome into output elements, routing failures through supervision. A failure is
/// `(element, exception)` or `(element, exception, outputs_before)`: when supervision stops
/// the stage, the outputs produced before the failing element are emitted ahead of the error.
fn settle(
    py: Python<'_>,
    env: &StageEnv,
    outputs: Py<PyAny>,
    failures: Py<PyAny>,
) -> Result<Partial<Vec<PyObj>>, StageError> {
    let mut out = Vec::new();
    let o = outputs.bind(py);
    if !o.is_none() {
        extend_from(&mut out, o).map_err(|e| user_error(py, e))?;
    }
    let mut cx = env.cx();
    let fails = failures.bind(py);
    if fails.is_none() {
        return Ok((out, None));
    }
    for f in fails.try_iter().map_err(|e| user_error(py, e))? {
        let f = f.map_err(|e| user_error(py, e))?;
        let t = f.cast::<PyTuple>().map_err(|e| user_error(py, e.into()))?;
        let (elem, exc) = (
            t.get_item(0).map_err(|e| user_error(py, e))?,
            t.get_item(1).map_err(|e| user_error(py, e))?,
        );
        let before: usize = match t.len() {
            3.. => t
                .get_item(2)
                .and_then(|b| b.extract())
                .map_err(|e| user_error(py, e))?,
            _ => 0,
        };
        let elem = (!elem.is_none()).then(|| PyObj::from_bound(elem));
        if let Err(e) = element_failed(py, &mut cx, PyErr::from_value(exc), elem) {
            // A stateless stage has nothing to reset: Restart goes on like Resume.
            if cx.decide(&e) != Directive::Restart {
                out.truncate(before);
                return Ok((out, Some(e)));
            }
        }
    }
    Ok((out, None))
}

enum Next {
    Input(Event<PyObj>),
    Outcome(Outcome),
}

impl AsyncLogic for ExternalStage {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut input = io.input::<PyObj>(0)?;
            let mut output = io.output::<PyObj>(0)?;
            let env = StageEnv::from_io(&io);
            let submit = Arc::new(self.submit);
            let mut inflight = Inflight::new(self.ordered);
            // Input not handed out yet: batches are re-cut to this stage's batch size, so
            // `.batch_size(n)` on a pooled stage sets the unit of work a worker receives.
            let chunk = io.batch_size.max(1);
            let mut backlog: VecDeque<PyObj> = VecDeque::new();
            let running = Arc::new(Running {
                handles: Arc::new(Mutex::new(Vec::new())),
            });
            let mut upstream_done = false;
            let mut upstream_error = None;
            loop {
                let free = self.max_inflight.saturating_sub(inflight.len());
                if free > 0 && !backlog.is_empty() {
                    let mut chunks = Vec::new();
                    while chunks.len() < free && !backlog.is_empty() {
                        let k = chunk.min(backlog.len());
                        chunks.push(backlog.drain(..k).collect::<Vec<_>>());
                    }
                    let mut txs = Vec::with_capacity(chunks.len());
                    for _ in 0..chunks.len() {
                        let (tx, rx) = futures::channel::oneshot::channel();
                        txs.push(tx);
                        inflight.push(rx);
                    }
                    let s = Arc::clone(&submit);
                    let e = Arc::clone(&env);
                    let run = Arc::clone(&running);
                    // The stage is polled on the dispatcher: hand out every chunk there is room for.
                    crate::gil::with(|py| -> Result<(), StageError> {
                        for (b, tx) in chunks.into_iter().zip(txs) {
                            let done = Bound::new(
                                py,
                                BatchDone {
                                    tx: Mutex::new(Some(tx)),
                                },
                            )
                            .map_err(|err| user_error(py, err))?;
                            let list = PyList::new(py, b.into_iter().map(|x| x.0))
                                .map_err(|err| user_error(py, err))?;
                            let h = s
                                .bind(py)
                                .call1((list, done))
                                .map_err(|err| user_error(py, err).with_stage(&e.info.path))?;
                            run.track(py, h);
                        }
                        Ok(())
                    })?;
                    continue;
                }
                let room = !upstream_done && backlog.is_empty() && free > 0;
                let next = match (room, inflight.len()) {
                    (false, 0) => return upstream_error.map_or(Ok(()), Err),
                    (true, 0) => Next::Input(input.recv().await),
                    (false, _) => Next::Outcome(poll_fn(|cx| inflight.poll_next(cx)).await),
                    (true, _) => {
                        let recv = std::pin::pin!(input.recv());
                        let done = poll_fn(|cx| inflight.poll_next(cx));
                        match futures::future::select(done, recv).await {
                            futures::future::Either::Left((r, _)) => Next::Outcome(r),
                            futures::future::Either::Right((ev, _)) => Next::Input(ev),
                        }
                    }
                };
                match next {
                    Next::Input(Event::Batch(b)) => backlog.extend(b),
                    Next::Input(Event::End) => upstream_done = true,
                    Next::Input(Event::Error(e)) => {
                        if let Some(e) = drain_before(e, &mut upstream_done, &mut upstream_error) {
                            return Err(e);
                        }
                    }
                    Next::Outcome(r) => {
                        let (outputs, failures) = r.map_err(|_| {
                            StageError::internal("an external batch was dropped without an outcome")
                        })?;
                        let e = Arc::clone(&env);
                        let (out, failure) =
                            crate::gil::with(|py| settle(py, &e, outputs, failures))?;
                        if output.send(out).await.is_err() {
                            return Ok(());
                        }
                        if let Some(e) = failure {
                            return Err(e);
                        }
                    }
                }
            }
        }
        .boxed()
    }
}

/// A stage that hands each batch to `submit(batch, completion)` (an asyncio loop or a worker
/// pool) with at most `max_inflight` batches outstanding, and emits outcomes in input order
/// (`ordered`) or as they complete.
pub fn external_flow(
    name: &str,
    submit: Py<PyAny>,
    max_inflight: usize,
    ordered: bool,
) -> Flow<PyObj, PyObj, MatValue> {
    Flow::from_async(name, move |_info| {
        let submit = crate::gil::with(|py| submit.clone_ref(py));
        Ok((
            ExternalStage {
                submit,
                max_inflight: max_inflight.max(1),
                ordered,
            },
            MatValue::Unit,
        ))
    })
}
