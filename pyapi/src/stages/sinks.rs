//! Python sinks: the sinks of `weir_operators::sink` over Python objects, with their results
//! made into Python values (collect -> list, optional `finish`; head/last `None` when
//! `optional`); fold and for_each call Python a batch at a time through CPython's own loops.

use super::cloop;
use crate::mat::MatValue;
use crate::obj::{PyObj, user_error};
use pyo3::prelude::*;
use pyo3::types::PyList;
use std::sync::Arc;
use weir_graph::{Sink, SinkFuture, StageCx, StageError};
use weir_operators::sink::SinkCtors;

fn mat(s: Sink<PyObj, SinkFuture<PyObj>>) -> Sink<PyObj, MatValue> {
    s.map_materialized_value(MatValue::Future)
}

fn none() -> PyObj {
    crate::gil::with(|py| PyObj(py.None()))
}

/// `Sink.collect()`: a list of every element, passed through `finish(list)` when given.
pub fn collect(finish: Option<Py<PyAny>>) -> Sink<PyObj, MatValue> {
    let finish = finish.map(Arc::new);
    mat(Sink::collect_then(move |v: Vec<PyObj>| {
        crate::gil::with(|py| {
            let l = cloop::into_list(py, v.into_iter())?.into_any();
            match &finish {
                Some(f) => f.bind(py).call1((l,)).map_err(|e| user_error(py, e)),
                None => Ok(l),
            }
            .map(PyObj::from_bound)
        })
    }))
}

/// `Sink.fold(zero, f)`: `f(acc, x)` over each batch at C speed (`itertools.accumulate`); a
/// failed element leaves the accumulator as it was.
pub fn fold(zero: Py<PyAny>, f: Py<PyAny>) -> Sink<PyObj, MatValue> {
    let (zero, f) = (Arc::new(zero), Arc::new(f));
    let init = move || crate::gil::with(|py| PyObj(zero.clone_ref(py)));
    mat(Sink::fold_batches(
        init,
        move |acc: &mut PyObj, b: &mut Vec<PyObj>, cx: &mut StageCx<'_>| {
            crate::gil::with(|py| {
                let list = cloop::into_list(py, std::mem::take(b).into_iter())?;
                cloop::fold_list(&f, &mut acc.0, &list, cx)
            })
        },
    ))
}

/// `Sink.for_each(f)`: `f(x)` over each batch at C speed (`map` drained into a `deque(maxlen=0)`).
pub fn for_each(f: Py<PyAny>) -> Sink<PyObj, MatValue> {
    let f = Arc::new(f);
    mat(Sink::fold_batches(
        none,
        move |_: &mut PyObj, b: &mut Vec<PyObj>, cx: &mut StageCx<'_>| {
            crate::gil::with(|py| {
                let list: Bound<'_, PyList> = cloop::into_list(py, std::mem::take(b).into_iter())?;
                cloop::for_each_list(&f, &list, cx)
            })
        },
    )
    .named("for_each"))
}

/// `Sink.ignore()`: drops every batch; its result is `None`.
pub fn ignore() -> Sink<PyObj, MatValue> {
    let drop_all = |_: &mut PyObj, b: &mut Vec<PyObj>, _: &mut StageCx<'_>| {
        b.clear();
        Ok(())
    };
    mat(Sink::fold_batches(none, drop_all).named("ignore"))
}

/// `Sink.head()` / `Sink.head_option()` (`optional`: `None` for an empty stream).
pub fn head(optional: bool) -> Sink<PyObj, MatValue> {
    mat(if optional {
        Sink::head_option_then(or_none)
    } else {
        Sink::head_then(Ok)
    })
}

/// `Sink.last()` / `Sink.last_option()` (`optional`: `None` for an empty stream).
pub fn last(optional: bool) -> Sink<PyObj, MatValue> {
    mat(if optional {
        Sink::last_option_then(or_none)
    } else {
        Sink::last_then(Ok)
    })
}

fn or_none(x: Option<PyObj>) -> Result<PyObj, StageError> {
    Ok(x.unwrap_or_else(none))
}
