//! `Source.from_iter`: pulls the iterable on the dispatcher, with fused element-wise ops.

use super::PyOp;
use super::cloop::take_list;
use super::core::{JobRx, OpFactory, PIPELINE_DEPTH, Shared, StageEnv, job_result};
use super::element::ChainOp;
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::type_object::PyTypeInfo;
use pyo3::types::{PyList, PyType};
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{AsyncIo, AsyncLogic, Source, StageError};

struct IterSource {
    iterable: Py<PyAny>,
    chain: Option<ChainOp>,
    disp: Arc<Dispatcher>,
}

static ISLICE: PyOnceLock<Py<PyType>> = PyOnceLock::new();

/// Pulls up to `n` items from `it` into a new list (C-speed `list(islice(it, n))`).
pub(crate) fn pull_list<'py>(
    py: Python<'py>,
    it: &Py<PyAny>,
    n: usize,
) -> PyResult<Bound<'py, PyList>> {
    let chunk = ISLICE
        .import(py, "itertools", "islice")?
        .call1((it.bind(py), n))?;
    Ok(PyList::type_object(py)
        .call1((chunk,))?
        .cast_into::<PyList>()?)
}

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
                            let b = pull_list(py, it, n)
                                .map_err(|err| user_error(py, err).with_stage(&e.info.path))?;
                            *exhausted = b.len() < n;
                            let b = match chain.as_mut() {
                                Some(c) if c.list_capable() => {
                                    c.apply_list(b, &*e.clock, e.batch)?
                                }
                                Some(c) => {
                                    let mut v = Vec::new();
                                    take_list(&mut v, &b);
                                    let v = c.apply(py, v, &*e.clock, e.batch)?;
                                    return Ok((v, *exhausted));
                                }
                                None => b,
                            };
                            let mut v = Vec::new();
                            take_list(&mut v, &b);
                            let b = v;
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
