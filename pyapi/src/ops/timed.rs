//! Time and rate operators: the generic Rust operators over Python objects.

use super::*;
use std::sync::atomic::{AtomicBool, Ordering};

/// `delay`, `idle_timeout`, `completion_timeout` or `initial_timeout` (`kind`) of `seconds`.
#[pyfunction]
#[pyo3(signature = (kind, seconds, capacity = 0))]
pub fn flow_timed(kind: &str, seconds: f64, capacity: usize) -> PyResult<PyBlueprint> {
    let d = secs(seconds)?;
    let f = match kind {
        "delay" if capacity > 0 => weir_operators::time::delay_with_capacity::<PyObj>(d, capacity),
        "delay" => weir_operators::time::delay::<PyObj>(d),
        "idle_timeout" => weir_operators::time::idle_timeout::<PyObj>(d),
        "completion_timeout" => weir_operators::time::completion_timeout::<PyObj>(d),
        "initial_timeout" => weir_operators::time::initial_timeout::<PyObj>(d),
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown timed flow {other:?}"
            )));
        }
    };
    Ok(flow(unit_mat(f)))
}

/// `grouped_within(n, seconds)`: lists.
#[pyfunction]
pub fn flow_grouped_within(n: usize, seconds: f64) -> PyResult<PyBlueprint> {
    let g = weir_operators::time::grouped_within::<PyObj>(n.max(1), secs(seconds)?);
    // Groups become lists only on demand, so a group still filling sees the consumer's real
    // demand instead of a conversion stage's prefetch.
    let lists = list_flow("grouped_within");
    let lists: Flow<Vec<PyObj>, PyObj, MatValue> = Flow::from_module(
        weir_graph::on_demand_outputs(&weir_graph::on_demand_input(lists.module())),
    );
    Ok(flow(unit_mat(g).via(lists)))
}

/// Lists of the elements that arrived while downstream was busy: at most `max` per list
/// (`batch`), unbounded when `max == 0` (`conflate`). With `fold`, each list is folded by
/// `fold(list)`, in stages whose output is demand-driven too: the consumer's demand reaches the
/// Rust aggregation, so a silent consumer gets one aggregate.
#[pyfunction]
#[pyo3(signature = (max, fold = None))]
pub fn flow_batch_lists(max: usize, fold: Option<Py<PyAny>>) -> PyBlueprint {
    let seed = |x: PyObj| vec![x];
    let agg = |mut v: Vec<PyObj>, x: PyObj| {
        v.push(x);
        v
    };
    let (b, name) = if max == 0 {
        (
            weir_operators::time::conflate_with_seed(seed, agg),
            "conflate",
        )
    } else {
        (weir_operators::time::batch(max, seed, agg), "batch")
    };
    let Some(fold) = fold else {
        return flow(unit_mat(b).via(list_flow(name)));
    };
    // Each group as a Python list, folded by the Rust `try_map` (a raising fold goes through
    // the stage's supervision with the list as the element).
    let fold = PyFn::new(fold);
    let folds = weir_operators::simple::try_map(move |l: &PyObj| fold.call1(l));
    let folded = list_flow(name).via(unit_mat(folds).named(name));
    let folded: Flow<Vec<PyObj>, PyObj, MatValue> =
        Flow::from_module(weir_graph::on_demand_outputs(folded.module()));
    flow(unit_mat(b).via_mat(folded, |_, m| m))
}

/// `expand(extrapolate=None)`: the Rust `expand`. Without `extrapolate` it repeats the last
/// element; with it, `iter(extrapolate(x))` is made on the dispatcher, the Rust operator emits
/// a handle to that iterator once per requested item, and `next()` on the dispatcher turns each
/// handle into the item (a handle of an exhausted iterator yields nothing and stops its
/// extrapolation).
#[pyfunction]
#[pyo3(signature = (extrapolate = None))]
pub fn flow_expand(extrapolate: Option<Py<PyAny>>) -> PyBlueprint {
    let Some(f) = extrapolate else {
        let e = weir_operators::time::expand(|x: PyObj| std::iter::repeat(x));
        return flow(unit_mat(e));
    };
    let f = PyFn::new(f);
    let start = weir_operators::simple::try_map(move |x: &PyObj| {
        crate::pyfn::attempt(x, |py, x| {
            let it = f.get().bind(py).call1((x.0.bind(py),))?.try_iter()?;
            Ok(Arc::new(Extrapolation {
                it: PyObj(it.into_any().unbind()),
                done: AtomicBool::new(false),
            }))
        })
    });
    let start = unit_mat(start).named("expand");
    let e = weir_operators::time::expand(|h: Arc<Extrapolation>| {
        std::iter::from_fn(move || (!h.done.load(Ordering::Acquire)).then(|| Arc::clone(&h)))
    });
    // Items are made on demand too, so no more than the consumer asked for is extrapolated.
    let next = py_flow("expand", factory(|_py| NextItem));
    let next: Flow<Arc<Extrapolation>, PyObj, MatValue> =
        Flow::from_module(weir_graph::on_demand_outputs(next.module()));
    flow(start.via(e).via_mat(next, |m, _| m))
}

/// One element's extrapolation: its Python iterator, and whether it ran out.
pub struct Extrapolation {
    it: PyObj,
    done: AtomicBool,
}

/// Takes the next item of each emitted iterator handle (none once it is exhausted).
struct NextItem;

impl PyOp<Arc<Extrapolation>, PyObj> for NextItem {
    fn on_batch(
        &mut self,
        py: Python<'_>,
        input: &mut crate::stages::Batch<Arc<Extrapolation>>,
        out: &mut Vec<PyObj>,
        cx: &mut weir_graph::StageCx<'_>,
    ) -> Result<(), StageError> {
        for h in input.by_ref() {
            if h.done.load(Ordering::Acquire) {
                continue;
            }
            match h.it.0.bind(py).call_method0(pyo3::intern!(py, "__next__")) {
                Ok(v) => out.push(PyObj(v.unbind())),
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => {
                    h.done.store(true, Ordering::Release);
                }
                Err(e) => {
                    h.done.store(true, Ordering::Release);
                    crate::stages::element_failed(py, cx, e, None)?;
                }
            }
        }
        Ok(())
    }
}

/// `throttle(elements, per, burst, mode)`: Akka's token bucket; `mode` is `"shaping"` (delays)
/// or `"enforcing"` (fails when an element comes before its token).
#[pyfunction]
pub fn flow_throttle_mode(
    elements: usize,
    per_seconds: f64,
    burst: usize,
    mode: &str,
) -> PyResult<PyBlueprint> {
    use weir_operators::time::ThrottleMode;
    let mode = match mode {
        "shaping" => ThrottleMode::Shaping,
        "enforcing" => ThrottleMode::Enforcing,
        other => {
            return Err(PyValueError::new_err(format!(
                "throttle: mode must be \"shaping\" or \"enforcing\", not {other:?}"
            )));
        }
    };
    let t = weir_operators::time::throttle_with_mode::<PyObj>(
        elements,
        secs(per_seconds)?,
        burst,
        mode,
    );
    Ok(flow(unit_mat(t)))
}

/// `keep_alive(seconds, element)`: injects `element` after `seconds` without one.
#[pyfunction]
pub fn flow_keep_alive(seconds: f64, element: Py<PyAny>) -> PyResult<PyBlueprint> {
    let inject = PyObj(element);
    let k = weir_operators::time::keep_alive::<PyObj, _>(secs(seconds)?, move || inject.clone());
    Ok(flow(unit_mat(k)))
}

/// `initial_delay(seconds)`: nothing passes before `seconds` after the start.
#[pyfunction]
pub fn flow_initial_delay(seconds: f64) -> PyResult<PyBlueprint> {
    let d = weir_operators::time::initial_delay::<PyObj>(secs(seconds)?);
    Ok(flow(unit_mat(d)))
}
