//! `Source.from_iter` over an iterable that is not a builtin container: an iterator
//! (`iter(x) is x`: a generator, a file, a socket reader), which may block waiting for outside
//! input, is pulled on a thread of its own by the engine's blocking-iterator source (the GIL
//! taken on that thread, never on a tokio worker); any other iterable is pulled on the run's
//! dispatcher like a container ([`super::iter`]).

use super::core::Partial;
use super::iter::ContainerSource;
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyIterator, PyList, PyType};
use std::sync::Arc;
use std::task::{Context, Poll};
use weir_graph::{Source, SourceLogic, StageCx, StageError, Step};
use weir_operators::source::{BlockingIterLogic, PullThread, ReplayedIterLogic};

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

/// The pulling thread of a Python iterator: it holds the GIL while it pulls and releases it
/// while it waits for the stage to take a batch.
struct GilThread;

impl PullThread for GilThread {
    fn run(&self, pull: &mut dyn FnMut()) {
        Python::attach(|_py| pull());
    }
    fn wait(&self, wait: &mut (dyn FnMut() + Send)) {
        Python::attach(|py| py.detach(wait));
    }
}

/// The items of a Python iterator, pulled on the thread of [`GilThread`] (which holds the GIL,
/// so each `next()` only counts a reference).
struct PyItems {
    it: Py<PyIterator>,
    /// The stage its failures are named after.
    path: String,
}

impl Iterator for PyItems {
    type Item = Result<PyObj, StageError>;
    fn next(&mut self) -> Option<Self::Item> {
        Python::attach(|py| match self.it.bind(py).clone().next()? {
            Ok(x) => Some(Ok(PyObj::from_bound(x))),
            Err(e) => Some(Err(user_error(py, e).with_stage(&self.path))),
        })
    }
}

/// How one run pulls the iterable.
enum IterLogic {
    /// On the dispatcher, a batch at C speed per poll.
    Pulled(ContainerSource),
    /// On a thread of its own.
    Blocking(BlockingIterLogic<PyObj, PyItems>),
    /// On a thread of its own, checkpointed by count (the iterator came from a factory).
    Replayed(ReplayedIterLogic<PyObj, PyItems>),
    /// `iter()` raised: the run fails with it at the first poll.
    Failed(Option<StageError>),
}

impl SourceLogic<PyObj> for IterLogic {
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        scx: &mut StageCx<'_>,
        out: &mut Vec<PyObj>,
    ) -> Poll<Result<Step, StageError>> {
        match self {
            Self::Pulled(l) => l.poll_next(cx, scx, out),
            Self::Blocking(l) => l.poll_next(cx, scx, out),
            Self::Replayed(l) => l.poll_next(cx, scx, out),
            Self::Failed(e) => Poll::Ready(Err(e
                .take()
                .unwrap_or_else(|| StageError::internal("polled after it failed")))),
        }
    }
    fn poll_ended(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        match self {
            Self::Pulled(l) => l.poll_ended(cx),
            Self::Blocking(l) => l.poll_ended(cx),
            Self::Replayed(l) => l.poll_ended(cx),
            Self::Failed(_) => Poll::Ready(()),
        }
    }
    fn post_stop(&mut self) {
        match self {
            Self::Pulled(l) => l.post_stop(),
            Self::Blocking(l) => l.post_stop(),
            Self::Replayed(l) => l.post_stop(),
            Self::Failed(_) => {}
        }
    }
    // A re-iterable object's position is checkpointed; a one-shot iterator's is not (a
    // restored run reads it from wherever the new iterator starts).
    fn snapshot(&self) -> Result<Option<weir_graph::Snapshot>, StageError> {
        match self {
            Self::Pulled(l) => l.snapshot(),
            Self::Replayed(l) => l.snapshot(),
            Self::Blocking(_) | Self::Failed(_) => Ok(None),
        }
    }
    fn restore(&mut self, snapshot: &weir_graph::Snapshot) -> Result<(), StageError> {
        match self {
            Self::Pulled(l) => l.restore(snapshot),
            Self::Replayed(l) => l.restore(snapshot),
            Self::Blocking(_) | Self::Failed(_) => Ok(()),
        }
    }
}

/// How one run pulls `b`: an iterator on a thread of its own (checkpointed by count when
/// `replayed`: it came from a factory), any other iterable on the dispatcher.
fn logic_of(b: &Bound<'_, PyAny>, path: String, replayed: bool) -> IterLogic {
    let py = b.py();
    if super::iter::is_container(b) {
        return match super::iter::container_logic(b) {
            Ok(l) => IterLogic::Pulled(l),
            Err(e) => IterLogic::Failed(Some(e.with_stage(&path))),
        };
    }
    let it = match b.try_iter() {
        Ok(it) => it,
        Err(e) => return IterLogic::Failed(Some(user_error(py, e).with_stage(&path))),
    };
    if !it.is(b) {
        return IterLogic::Pulled(ContainerSource::new(it.into_any().unbind(), true));
    }
    let items = PyItems {
        it: it.unbind(),
        path,
    };
    if replayed {
        IterLogic::Replayed(ReplayedIterLogic::new(Arc::new(GilThread), move || {
            Ok(items)
        }))
    } else {
        IterLogic::Blocking(BlockingIterLogic::new(Arc::new(GilThread), move || {
            Ok(items)
        }))
    }
}

/// `Source.from_iter(iterable)` for an iterable that is not a builtin container: `iter()` is
/// called once per materialization; an iterator is pulled on a thread of its own.
pub fn iter_source(iterable: Py<PyAny>) -> Source<PyObj, MatValue> {
    Source::from_logic("from_iter", move |info| {
        let path = info.path.clone();
        let logic = crate::gil::with(|py| logic_of(iterable.bind(py), path, false));
        Ok((logic, MatValue::Unit))
    })
}

/// `Source.from_iter(factory)`: `factory()` is called once per materialization and its items
/// emitted as `from_iter`'s; an iterator it returns (a generator) is checkpointed by count, a
/// restored run skipping the items the checkpoint counted, since the factory gives the same
/// items again.
pub fn factory_source(factory: Py<PyAny>) -> Source<PyObj, MatValue> {
    Source::from_logic("from_iter", move |info| {
        let path = info.path.clone();
        let logic = crate::gil::with(|py| match factory.bind(py).call0() {
            Ok(made) => logic_of(&made, path, true),
            Err(e) => IterLogic::Failed(Some(user_error(py, e).with_stage(&path))),
        });
        Ok((logic, MatValue::Unit))
    })
}
