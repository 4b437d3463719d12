//! Flows that call Python: `take_while`, `drop_while`, `sliding`, `intersperse`, `zip_with_index`,
//! `inspect`, `recover*`, `flat_map_*`, `group_by`, `split_*`.

use super::*;

/// `take_while(pred, inclusive)`; `sup` supervises the stage calling `pred`.
#[pyfunction]
#[pyo3(signature = (f, inclusive = false, sup = None))]
pub fn flow_take_while(
    f: Py<PyAny>,
    inclusive: bool,
    sup: Option<&crate::dsl::NSupervision>,
) -> NBlueprint {
    let name = if inclusive {
        "take_while_inclusive"
    } else {
        "take_while"
    };
    let tags = Flow::<(bool, PyObj), (bool, PyObj), ()>::identity();
    let tw = if inclusive {
        tags.take_while_inclusive(|t: &(bool, PyObj)| t.0)
    } else {
        tags.take_while(|t: &(bool, PyObj)| t.0)
    };
    let mut tags = tag_flow(name, f, true);
    if let Some(s) = sup {
        tags = tags.with_supervision(s.0.clone());
    }
    flow(tags.via(tw.via(untag())))
}

/// `drop_while(pred)`.
#[pyfunction]
pub fn flow_drop_while(f: Py<PyAny>) -> NBlueprint {
    flow(py_flow(
        "drop_while",
        factory(move |py| DropWhileOp {
            f: f.clone_ref(py),
            passing: false,
        }),
    ))
}

/// `sliding(n, step)`.
#[pyfunction]
#[pyo3(signature = (n, step = 1))]
pub fn flow_sliding(n: usize, step: usize) -> NBlueprint {
    flow(py_flow(
        "sliding",
        factory(move |_py| SlidingOp::new(n, step)),
    ))
}

/// `intersperse(sep, start, end)`.
#[pyfunction]
#[pyo3(signature = (sep, start = None, end = None))]
pub fn flow_intersperse(
    sep: Py<PyAny>,
    start: Option<Py<PyAny>>,
    end: Option<Py<PyAny>>,
) -> NBlueprint {
    flow(py_flow(
        "intersperse",
        factory(move |py| IntersperseOp {
            sep: sep.clone_ref(py),
            start: start.as_ref().map(|s| s.clone_ref(py)),
            end: end.as_ref().map(|s| s.clone_ref(py)),
            first: true,
        }),
    ))
}

/// `zip_with_index()`.
#[pyfunction]
pub fn flow_zip_with_index() -> NBlueprint {
    flow(py_flow(
        "zip_with_index",
        factory(|_py| {
            let mut next = 0u64;
            convert(move |py, x: PyObj| {
                let Ok(i) = next.into_pyobject(py);
                next += 1;
                tuple2(py, x.0, i.into_any().unbind())
            })
        }),
    ))
}

/// `inspect(f, on_complete)`.
#[pyfunction]
#[pyo3(signature = (f, on_complete = None, name = "inspect"))]
pub fn flow_inspect(f: Py<PyAny>, on_complete: Option<Py<PyAny>>, name: &str) -> NBlueprint {
    flow(py_flow(
        name,
        factory(move |py| InspectOp {
            f: f.clone_ref(py),
            on_complete: on_complete.as_ref().map(|c| c.clone_ref(py)),
        }),
    ))
}

/// `recover(f)`.
#[pyfunction]
pub fn flow_recover(f: Py<PyAny>) -> NBlueprint {
    flow(stages::recover_flow(f))
}

/// `recover_with_retries(attempts, f)`.
#[pyfunction]
pub fn flow_recover_with_retries(attempts: usize, f: Py<PyAny>) -> NBlueprint {
    flow(stages::recover_retries_flow(attempts, f))
}

/// `flat_map_concat(f)` (`breadth == 1`) or `flat_map_merge(breadth, f)` (`merge` names the
/// stage `flat_map_merge` whatever the breadth).
#[pyfunction]
#[pyo3(signature = (f, breadth, merge = false))]
pub fn flow_flat_map_sources(f: Py<PyAny>, breadth: usize, merge: bool) -> NBlueprint {
    let name = if breadth <= 1 && !merge {
        "flat_map_concat"
    } else {
        "flat_map_merge"
    };
    let sources = py_flow(
        name,
        factory(move |py| {
            let f = f.clone_ref(py);
            each_fallible(move |py, x: &PyObj| {
                let s = f.bind(py).call1((x.0.bind(py),))?;
                Ok(SubSource(to_source(&s)?))
            })
        }),
    );
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
    sub: &NBlueprint,
) -> PyResult<NBlueprint> {
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
pub fn flow_split(pred: Py<PyAny>, after: bool, sub: &NBlueprint) -> PyResult<NBlueprint> {
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
    Ok(flow(tag_flow(name, pred, false).via(unit_mat(split))))
}

/// `limit(n)` (generic Rust operator): fails with `StreamLimitReached` past `n` elements.
#[pyfunction]
pub fn flow_limit(n: usize) -> NBlueprint {
    flow(unit_mat(weir_operators::simple::limit::<PyObj>(n)))
}
