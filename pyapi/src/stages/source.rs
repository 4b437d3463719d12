//! `Source.from_iter`: pulls the iterable on the dispatcher, with fused element-wise ops.

use super::PyOp;
use super::cloop::take_list;
use super::core::{JobRx, OpFactory, PIPELINE_DEPTH, Partial, Shared, StageEnv, job_result};
use super::element::ChainOp;
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
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

/// Pulls up to `n` items from `it` into a new list at C speed (`list.extend(islice(it, n))`).
/// When the iterator raises, the items it yielded before stay in the list and come back with
/// the error (named after the stage at `path`).
pub(crate) fn pull_list<'py>(
    py: Python<'py>,
    it: &Py<PyAny>,
    n: usize,
    path: &str,
) -> Partial<Bound<'py, PyList>> {
    let out = PyList::empty(py);
    let r = ISLICE
        .import(py, "itertools", "islice")
        .and_then(|islice| islice.call1((it.bind(py), n)))
        .and_then(|chunk| out.call_method1(pyo3::intern!(py, "extend"), (chunk,)));
    let failure = r.err().map(|e| user_error(py, e).with_stage(path));
    (out, failure)
}

/// Pulls the next batch and runs it through `chain`: the elements, whether the iterator is
/// exhausted, and the failure that cut the batch short (see [`Partial`]).
fn pull_batch(
    py: Python<'_>,
    it: &Py<PyAny>,
    chain: Option<&mut ChainOp>,
    env: &StageEnv,
) -> (Vec<PyObj>, bool, Option<StageError>) {
    let n = env.batch.max(1);
    let (b, pull_failure) = pull_list(py, it, n, &env.info.path);
    let exhausted = pull_failure.is_none() && b.len() < n;
    let mut v = Vec::new();
    let chain_failure = match chain {
        Some(c) if c.list_capable() => {
            let (l, f) = c.apply_list(b, &*env.clock, env.batch);
            take_list(&mut v, &l);
            f
        }
        Some(c) => {
            take_list(&mut v, &b);
            let (out, f) = c.apply(py, v, &*env.clock, env.batch);
            v = out;
            f
        }
        None => {
            take_list(&mut v, &b);
            None
        }
    };
    // The chain failed on elements pulled before the iterator did.
    (v, exhausted, chain_failure.or(pull_failure))
}

impl AsyncLogic for IterSource {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut output = io.output::<PyObj>(0)?;
            let env = StageEnv::from_io(&io);
            let iterable = self.iterable;
            let it = self
                .disp
                .call(move |py| {
                    let r = iterable.bind(py).try_iter().map(|i| i.into_any().unbind());
                    r.map_err(|e| user_error(py, e))
                })
                .await??;
            let state = Shared::new((it, self.chain, false));
            let mut queue: VecDeque<JobRx<Partial<(Vec<PyObj>, bool)>>> = VecDeque::new();
            loop {
                // Keep pulls queued ahead: they run in order, each taking the next batch.
                while queue.len() < PIPELINE_DEPTH {
                    let (st, e) = (Arc::clone(&state), Arc::clone(&env));
                    queue.push_back(self.disp.submit(move |py| {
                        st.run_partial(|(it, chain, exhausted)| {
                            if *exhausted {
                                return ((Vec::new(), true), None);
                            }
                            let (v, done, failure) = pull_batch(py, it, chain.as_mut(), &e);
                            *exhausted = done;
                            ((v, done), failure)
                        })
                    })?);
                }
                let Some(front) = queue.pop_front() else {
                    return Ok(());
                };
                let ((batch, done), failure) = job_result(front.await)?;
                if output.send(batch).await.is_err() {
                    return Ok(());
                }
                if let Some(e) = failure {
                    return Err(e);
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
