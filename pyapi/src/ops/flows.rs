//! Flows that call Python: `take_while`, `drop_while`, `sliding`, `intersperse`, `zip_with_index`,
//! `inspect`, `recover*`, `flat_map_*`, `group_by`, `split_*`.

use super::*;
use weir_operators::simple;

/// `take_while(pred, inclusive)` (the Rust `try_take_while*`); `sup` supervises it.
#[pyfunction]
#[pyo3(signature = (f, inclusive = false, sup = None))]
pub fn flow_take_while(
    f: Py<PyAny>,
    inclusive: bool,
    sup: Option<&crate::dsl::PySupervision>,
) -> PyBlueprint {
    let f = PyFn::new(f);
    let pred = move |x: &PyObj| f.truthy(x);
    let tw = if inclusive {
        simple::try_take_while_inclusive(pred)
    } else {
        simple::try_take_while(pred)
    };
    let tw = match sup {
        Some(s) => tw.with_supervision(s.0.clone()),
        None => tw,
    };
    flow(unit_mat(tw))
}

/// `drop_while(pred)` (the Rust `try_drop_while`).
#[pyfunction]
pub fn flow_drop_while(f: Py<PyAny>) -> PyBlueprint {
    let f = PyFn::new(f);
    flow(unit_mat(simple::try_drop_while(move |x: &PyObj| {
        f.truthy(x)
    })))
}

/// `sliding(n, step)`: lists (the Rust `sliding`).
#[pyfunction]
#[pyo3(signature = (n, step = 1))]
pub fn flow_sliding(n: usize, step: usize) -> PyBlueprint {
    let w = simple::sliding::<PyObj>(n.max(1), step.max(1));
    flow(unit_mat(w).via(list_flow("sliding")))
}

/// `intersperse(sep, start, end)` (the Rust `intersperse_framed`).
#[pyfunction]
#[pyo3(signature = (sep, start = None, end = None))]
pub fn flow_intersperse(
    sep: Py<PyAny>,
    start: Option<Py<PyAny>>,
    end: Option<Py<PyAny>>,
) -> PyBlueprint {
    let i = simple::intersperse_framed(start.map(PyObj), PyObj(sep), end.map(PyObj));
    flow(unit_mat(i))
}

/// `zip_with_index()`: the Rust `zip_with_index`, pairs as tuples.
#[pyfunction]
pub fn flow_zip_with_index() -> PyBlueprint {
    let tuples = py_flow(
        "zip_with_index",
        factory(|_py| {
            convert(|py, (x, i): (PyObj, u64)| {
                let Ok(i) = i.into_pyobject(py);
                crate::obj::tuple2(py, x.0, i.into_any().unbind())
            })
        }),
    );
    flow(unit_mat(simple::zip_with_index::<PyObj>()).via(tuples))
}

/// `inspect(f, on_complete)` (the Rust `try_inspect`).
#[pyfunction]
#[pyo3(signature = (f, on_complete = None, name = "inspect"))]
pub fn flow_inspect(f: Py<PyAny>, on_complete: Option<Py<PyAny>>, name: &str) -> PyBlueprint {
    let f = PyFn::new(f);
    let done = on_complete.map(PyFn::new);
    let i = simple::try_inspect(
        move |x: &PyObj| f.call1(x).map(drop),
        move || done.as_ref().map_or(Ok(()), PyFn::call0),
    );
    flow(unit_mat(i).named(name))
}

/// `recover(f)`.
#[pyfunction]
pub fn flow_recover(f: Py<PyAny>) -> PyBlueprint {
    flow(stages::recover_flow(f))
}

/// `recover_with_retries(attempts, f)`.
#[pyfunction]
pub fn flow_recover_with_retries(attempts: usize, f: Py<PyAny>) -> PyBlueprint {
    flow(stages::recover_retries_flow(attempts, f))
}

/// `flat_map_concat(f)` (`breadth == 1`) or `flat_map_merge(breadth, f)` (`merge` names the
/// stage `flat_map_merge` whatever the breadth).
#[pyfunction]
#[pyo3(signature = (f, breadth, merge = false))]
pub fn flow_flat_map_sources(f: Py<PyAny>, breadth: usize, merge: bool) -> PyBlueprint {
    let name = if breadth <= 1 && !merge {
        "flat_map_concat"
    } else {
        "flat_map_merge"
    };
    let f = PyFn::new(f);
    let sources = simple::try_map(move |x: &PyObj| {
        crate::pyfn::attempt(x, |py, x| {
            let s = f.get().bind(py).call1((x.0.bind(py),))?;
            Ok(SubSource(to_source(&s)?))
        })
    });
    let sources = unit_mat(sources).named(name);
    let ids = Flow::<SubSource, SubSource, ()>::identity();
    let merged = if breadth <= 1 {
        ids.flat_map_concat(|s: SubSource| s.0)
    } else {
        ids.flat_map_merge(breadth, |s: SubSource| s.0)
    };
    flow(sources.via(unit_mat(merged)))
}

/// `group_by(max_substreams, key).merge_substreams_via(sub)`.
#[pyfunction]
#[pyo3(signature = (max_substreams, key, sub))]
pub fn flow_group_by(
    max_substreams: usize,
    key: Option<Py<PyAny>>,
    sub: &PyBlueprint,
) -> PyResult<PyBlueprint> {
    let sub = untag::<u64>().via(flow_of(sub)?);
    let ids = py_flow(
        "group_by",
        factory(move |py| KeyIdOp {
            f: key.as_ref().map(|k| k.clone_ref(py)),
            ids: PyDict::new(py).unbind(),
        }),
    );
    let grouped = Flow::<(u64, PyObj), (u64, PyObj), ()>::identity()
        .group_by(max_substreams.max(1), |t: &(u64, PyObj)| t.0)
        .merge_substreams_via(sub);
    Ok(flow(ids.via(unit_mat(grouped))))
}

/// `split_when(pred)` / `split_after(pred)` `.merge_substreams_via(sub)`.
#[pyfunction]
pub fn flow_split(pred: Py<PyAny>, after: bool, sub: &PyBlueprint) -> PyResult<PyBlueprint> {
    let name = if after { "split_after" } else { "split_when" };
    let sub = untag::<bool>().via(flow_of(sub)?);
    let ids = Flow::<(bool, PyObj), (bool, PyObj), ()>::identity();
    let split = if after {
        ids.split_after(|t: &(bool, PyObj)| t.0)
            .merge_substreams_via(sub)
    } else {
        ids.split_when(|t: &(bool, PyObj)| t.0)
            .merge_substreams_via(sub)
    };
    Ok(flow(tag_flow(name, pred).via(unit_mat(split))))
}

/// `limit(n)` (generic Rust operator): fails with `StreamLimitReached` past `n` elements.
#[pyfunction]
pub fn flow_limit(n: usize) -> PyBlueprint {
    flow(unit_mat(weir_operators::simple::limit::<PyObj>(n)))
}
