//! `Source.from_iter`: pulls a container on the dispatcher and an iterator on a thread of its
//! own ([`super::handoff`]), with fused element-wise ops.

use super::PyOp;
use super::cloop::take_list;
use super::core::{
    Batch, JobRx, OpFactory, PIPELINE_DEPTH, Partial, Shared, StageEnv, job_result, run_op,
};
use super::element::ChainOp;
use super::handoff::{End, Handoff};
use crate::dispatch::{Dispatcher, RunCtx};
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use futures::FutureExt;
use futures::future::BoxFuture;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyIterator, PyList, PyType};
use std::collections::VecDeque;
use std::sync::Arc;
use weir_graph::{AsyncIo, AsyncLogic, Source, StageCx, StageError, StageInfo, Supervision};

/// `from_iter` + fused ops, ending in `term`: an op that consumes the chain's output in the
/// same job (the identity, or `key_by(f)` of a `count()`), reporting failures as its own stage.
struct IterSource<O> {
    iterable: Py<PyAny>,
    chain: Option<ChainOp>,
    term: Term<O>,
    disp: Arc<Dispatcher>,
}

/// The op ending an iterator source, with the identity it reports failures under.
struct Term<O> {
    op: Box<dyn PyOp<PyObj, O>>,
    info: StageInfo,
    /// The supervision of the terminal op's user code (`key_by(f, supervision=...)`).
    sup: Option<Supervision>,
    /// Set when the op is the identity: the items as the op's output, without the GIL.
    pass: Option<fn(Vec<PyObj>) -> Vec<O>>,
}

/// The chain's output as it is.
struct Identity;

impl PyOp<PyObj, PyObj> for Identity {
    fn on_batch(
        &mut self,
        _py: Python<'_>,
        input: &mut Batch<PyObj>,
        out: &mut Vec<PyObj>,
        _cx: &mut StageCx<'_>,
    ) -> Result<(), StageError> {
        if out.is_empty() {
            // Reuses the batch's buffer (nothing was taken from it yet).
            *out = input.collect();
        } else {
            out.extend(input);
        }
        Ok(())
    }
}

impl<O: Send + 'static> Term<O> {
    /// Feeds `v` to the op (and finishes it once the iterator is `done`); a failure of the op
    /// comes before `failure`, which happened later in the stream.
    fn feed(
        &mut self,
        py: Python<'_>,
        v: Vec<PyObj>,
        done: bool,
        failure: Option<StageError>,
        env: &StageEnv,
    ) -> Partial<Vec<O>> {
        let mut out = Vec::new();
        let mut cx = StageCx::new(&self.info, &*env.clock, self.sup.as_ref(), env.batch);
        if let Err(e) = run_op(py, &mut *self.op, v, &mut out, &mut cx) {
            return (out, Some(e.with_stage(&self.info.path)));
        }
        if failure.is_none()
            && done
            && let Err(e) = self.op.on_finish(py, &mut out, &mut cx)
        {
            return (out, Some(e.with_stage(&self.info.path)));
        }
        (out, failure)
    }
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

/// Runs a batch pulled into `b` through `chain`: the elements and the chain's failure.
fn apply_chain(
    py: Python<'_>,
    b: Bound<'_, PyList>,
    chain: Option<&mut ChainOp>,
    env: &StageEnv,
) -> Partial<Vec<PyObj>> {
    let mut v = Vec::new();
    let failure = match chain {
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
    (v, failure)
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
    let (v, chain_failure) = apply_chain(py, b, chain, env);
    // The chain failed on elements pulled before the iterator did.
    (v, exhausted, chain_failure.or(pull_failure))
}

/// What an iterator source's jobs share: the iterator, the fused chain, the terminal op, and
/// whether the iterator is exhausted.
type IterState<O> = (Py<PyAny>, Option<ChainOp>, Term<O>, bool);

/// Pulls the next batch through the chain and the terminal op (one job, the GIL held).
fn pull_job<O: Send + 'static>(
    py: Python<'_>,
    st: &Shared<IterState<O>>,
    e: &StageEnv,
) -> Result<Partial<(Vec<O>, bool)>, StageError> {
    st.run_partial(|(it, chain, term, exhausted)| {
        if *exhausted {
            return ((Vec::new(), true), None);
        }
        let (v, done, failure) = pull_batch(py, it, chain.as_mut(), e);
        *exhausted = done;
        let (out, failure) = term.feed(py, v, done, failure, e);
        ((out, done), failure)
    })
}

impl<O: Send + 'static> AsyncLogic for IterSource<O> {
    fn run(self: Box<Self>, mut io: AsyncIo) -> BoxFuture<'static, Result<(), StageError>> {
        async move {
            let mut output = io.output::<O>(0)?;
            let env = StageEnv::from_io(&io);
            let iterable = self.iterable;
            let (it, own_thread) = self
                .disp
                .call(move |py| {
                    let b = iterable.bind(py);
                    let r = b.try_iter().map(|i| {
                        // An iterator (`iter(x) is x`: a generator, a file, a socket reader)
                        // may block waiting for outside input.
                        let is_iterator = i.is(b);
                        (i.unbind(), is_iterator)
                    });
                    r.map_err(|e| user_error(py, e))
                })
                .await??;
            if own_thread {
                return pull_on_own_thread(it, self.chain, self.term, env, output).await;
            }
            let state = Shared::new((it.into_any(), self.chain, self.term, false));
            let mut queue: VecDeque<JobRx<Partial<(Vec<O>, bool)>>> = VecDeque::new();
            loop {
                // Keep pulls queued ahead: they run in order, each taking the next batch.
                while queue.len() < PIPELINE_DEPTH {
                    let (st, e) = (Arc::clone(&state), Arc::clone(&env));
                    queue.push_back(self.disp.submit(move |py| pull_job(py, &st, &e))?);
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

/// Pulls an iterator on a blocking thread of its own ([`Handoff`]) and emits whatever has
/// arrived (at most a batch) each time downstream takes the previous batch, waiting only while
/// nothing has: an iterator that waits for outside input then holds up neither the items it
/// yielded before, nor the dispatcher (which serves the other Python stages of the run), nor the
/// run's end (once downstream is gone the stage stops at once and the blocked call is left to
/// return). The fused ops and the terminal op run on another blocking thread, a batch per call;
/// without them the items go out without taking the GIL.
async fn pull_on_own_thread<O: Send + 'static>(
    it: Py<PyIterator>,
    chain: Option<ChainOp>,
    term: Term<O>,
    env: Arc<StageEnv>,
    mut output: weir_graph::Output<O>,
) -> Result<(), StageError> {
    let n = env.batch.max(1);
    let puller = Handoff::start(it, n, env.info.path.clone());
    let pass = term.pass.filter(|_| chain.is_none());
    let state = Shared::new((chain, term));
    loop {
        let (items, end) = puller.take(n).await;
        let (done, pull_failure) = match end {
            None => (false, None),
            Some(End::Exhausted) => (true, None),
            Some(End::Failed(e)) => (false, Some(e)),
        };
        let (batch, failure) = match pass {
            Some(pass) => (pass(items), pull_failure),
            None => {
                let (st, e) = (Arc::clone(&state), Arc::clone(&env));
                tokio::task::spawn_blocking(move || {
                    crate::gil::with(|py| {
                        st.run_partial(|(chain, term)| {
                            let (v, chain_failure) =
                                match PyList::new(py, items.into_iter().map(|o| o.0)) {
                                    Ok(b) => apply_chain(py, b, chain.as_mut(), &e),
                                    Err(err) => (
                                        Vec::new(),
                                        Some(user_error(py, err).with_stage(&e.info.path)),
                                    ),
                                };
                            // The chain failed on elements pulled before the iterator did.
                            term.feed(py, v, done, chain_failure.or(pull_failure), &e)
                        })
                    })
                })
                .await
                .map_err(|err| {
                    StageError::internal(format!("running the fused ops panicked: {err}"))
                        .with_stage(&env.info.path)
                })??
            }
        };
        if !batch.is_empty() && output.send(batch).await.is_err() {
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

/// `Source.from_iter(iterable)`: `iter(iterable)` per materialization, pulled a batch per job,
/// with the stateless ops of `chain` fused in (applied in the same job).
pub fn iter_source(
    iterable: Py<PyAny>,
    chain: Option<OpFactory<PyObj, PyObj>>,
) -> Source<PyObj, MatValue> {
    let term: OpFactory<PyObj, PyObj> =
        Arc::new(|_py, _info| Box::new(Identity) as Box<dyn PyOp<PyObj, PyObj>>);
    iter_source_with("from_iter", iterable, chain, None, term, Some(|v| v))
}

/// The iterator source ending in `term`, with `pass` set when `term` is the identity.
fn iter_source_with<O: Send + 'static>(
    name: &str,
    iterable: Py<PyAny>,
    chain: Option<OpFactory<PyObj, PyObj>>,
    term_name: Option<(&'static str, Option<Supervision>)>,
    term: OpFactory<PyObj, O>,
    pass: Option<fn(Vec<PyObj>) -> Vec<O>>,
) -> Source<O, MatValue> {
    Source::from_async(name, move |info| {
        let ctx = RunCtx::current()?;
        let (iterable, chain, op) = crate::gil::with(|py| {
            let c = chain.as_ref().map(|f| f(py, info));
            (iterable.clone_ref(py), c, term(py, info))
        });
        let chain = chain.map(|op| ChainOp {
            ops: vec![(op, info.clone(), None)],
        });
        let mut term_info = info.clone();
        let mut sup = None;
        if let Some((n, s)) = &term_name {
            term_info.name = (*n).to_owned();
            term_info.path = format!("{n}#{}", info.index);
            sup.clone_from(s);
        }
        Ok((
            IterSource {
                iterable,
                chain,
                term: Term {
                    op,
                    info: term_info,
                    sup,
                    pass,
                },
                disp: ctx.dispatcher,
            },
            MatValue::Unit,
        ))
    })
}
