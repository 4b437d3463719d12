//! Python sinks: collect, fold, for_each, ignore, head, last.

use super::cloop;
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::PyList;
use weir_graph::{Promise, Sink, SinkLogic, StageCx, StageError, promise};

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

pub(crate) enum SinkState {
    Items(Vec<PyObj>),
    Acc(Option<Py<PyAny>>),
}

/// Folds or visits one batch on the dispatcher.
pub(crate) fn sink_batch(
    py: Python<'_>,
    kind: &SinkKind,
    state: &mut SinkState,
    cx: &mut StageCx<'_>,
    b: &mut Vec<PyObj>,
) -> Result<(), StageError> {
    match (kind, state) {
        (SinkKind::Collect(_), SinkState::Items(v)) => {
            v.append(b);
            Ok(())
        }
        (SinkKind::Head(_), SinkState::Items(v)) => {
            if v.is_empty() && !b.is_empty() {
                v.push(b.swap_remove(0));
            }
            b.clear();
            Ok(())
        }
        (SinkKind::Last(_), SinkState::Items(v)) => {
            if let Some(x) = b.pop() {
                *v = vec![x];
            }
            b.clear();
            Ok(())
        }
        (SinkKind::Fold(..) | SinkKind::ForEach(_), s) => {
            let list = cloop::into_list(py, std::mem::take(b).into_iter())?;
            sink_list(kind, s, cx, &list)
        }
        _ => {
            b.clear();
            Ok(())
        }
    }
}

/// Folds, visits or collects one batch held in a Python list (C-speed loops).
pub(crate) fn sink_list(
    kind: &SinkKind,
    state: &mut SinkState,
    cx: &mut StageCx<'_>,
    b: &Bound<'_, PyList>,
) -> Result<(), StageError> {
    match (kind, state) {
        (SinkKind::Fold(_, f), SinkState::Acc(Some(acc))) => cloop::fold_list(f, acc, b, cx),
        (SinkKind::ForEach(f), _) => cloop::for_each_list(f, b, cx),
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

/// A Python sink as a synchronous logic the engine fuses at the tail of a chain on the run's
/// dispatcher; its promise completes with the result.
struct SinkStage {
    kind: SinkKind,
    state: Option<SinkState>,
    promise: Promise<PyObj>,
}

impl SinkLogic<PyObj> for SinkStage {
    fn on_batch(&mut self, input: &mut Vec<PyObj>, cx: &mut StageCx<'_>) -> Result<(), StageError> {
        let Some(state) = self.state.as_mut() else {
            input.clear();
            return Ok(());
        };
        crate::gil::with(|py| sink_batch(py, &self.kind, state, cx, input))
    }

    fn on_finish(&mut self, cx: &mut StageCx<'_>) -> Result<(), StageError> {
        let Some(state) = self.state.take() else {
            return Ok(());
        };
        let r = crate::gil::with(|py| sink_result(py, &self.kind, state))
            .map_err(|e| e.with_stage(&cx.info().path));
        self.promise.complete(r);
        Ok(())
    }

    fn on_error(&mut self, error: &StageError) {
        self.state = None;
        self.promise.complete(Err(error.clone()));
    }

    fn is_done(&self) -> bool {
        matches!(
            (&self.kind, &self.state),
            (SinkKind::Head(_), Some(SinkState::Items(v))) if !v.is_empty()
        )
    }

    fn wants(&self) -> usize {
        // `head` uses one element: it asks a demand-driven upstream for exactly one.
        match self.kind {
            SinkKind::Head(_) => usize::from(!self.is_done()),
            _ => usize::MAX,
        }
    }
}

/// A Python sink whose materialized value is the future of its result.
pub fn py_sink(kind: SinkKind) -> Sink<PyObj, MatValue> {
    let name = kind.name();
    Sink::from_logic(name, move |_info| {
        let (kind, state) = crate::gil::with(|py| {
            let state = match &kind {
                SinkKind::Fold(z, _) => SinkState::Acc(Some(z.clone_ref(py))),
                _ => SinkState::Items(Vec::new()),
            };
            (kind.clone_ref(py), state)
        });
        let (promise, fut) = promise::<PyObj>();
        Ok((
            SinkStage {
                kind,
                state: Some(state),
                promise,
            },
            MatValue::Future(fut),
        ))
    })
}
