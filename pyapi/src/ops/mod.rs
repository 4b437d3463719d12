//! The operators added to the Python API on top of the core set in [`crate::dsl`]: sources
//! (`tick`, `queue`), flows (`take_while`, `sliding`, `recover`, substreams, time operators, fan
//! operators), junctions (`Partition`, `MergePreferred`, ...) and `Sink.queue`.
//!
//! Operators that never call Python run the generic Rust operators on [`PyObj`] (or on
//! `(tag, PyObj)` pairs and [`pyops::Shared`] references when the generic operator needs a key
//! or clones elements); operators calling Python compute what Rust needs (a predicate's result,
//! a key id, a source) in a [`PyOp`](crate::stages::PyOp) on the dispatcher, one job per batch.

mod bidi;
mod fan;
mod flows;
pub mod handles;
mod hubs;
mod junctions;
mod lifecycle;
pub mod pyops;
mod sources;
pub mod stages;
mod timed;

use crate::dsl::{Bp, NBlueprint, NBuilder, NInlet, NOutlet, wrap};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::obj::user_error;
use crate::stages::{OpFactory, PyOp, convert, each_fallible, py_flow, unit_mat};
use handles::{NCancellable, NSinkQueue, NSourceQueue};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use pyops::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_graph::{Flow, GraphBuilder, Inlet, MatKey, Outlet, Sink, Source, StageError};
use weir_operators::fan::{
    Broadcast, Interleave, MergePreferred, MergePrioritized, Partition, Unzip, WireTap, ZipLatest,
};
use weir_operators::prelude::*;
use weir_operators::source::OverflowStrategy;

fn factory<I: Send + 'static, O: Send + 'static, P: PyOp<I, O>>(
    f: impl Fn(Python<'_>) -> P + Send + Sync + 'static,
) -> OpFactory<I, O> {
    Arc::new(move |py, _info| Box::new(f(py)) as Box<dyn PyOp<I, O>>)
}

fn flow(f: Flow<PyObj, PyObj, MatValue>) -> NBlueprint {
    wrap(Bp::Flow(f))
}

fn secs(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| PyValueError::new_err(format!("{s}: {e}")))
}

fn source_of(b: &NBlueprint) -> PyResult<Source<PyObj, MatValue>> {
    match &b.bp {
        Bp::Source(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Source")),
    }
}

fn flow_of(b: &NBlueprint) -> PyResult<Flow<PyObj, PyObj, MatValue>> {
    match &b.bp {
        Bp::Flow(f) => Ok(f.clone()),
        _ => Err(PyTypeError::new_err("expected a Flow")),
    }
}

fn sink_of(b: &NBlueprint) -> PyResult<Sink<PyObj, MatValue>> {
    match &b.bp {
        Bp::Sink(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Sink")),
    }
}

/// Parses an overflow strategy name.
pub fn overflow(s: &str) -> PyResult<OverflowStrategy> {
    Ok(match s {
        "backpressure" => OverflowStrategy::Backpressure,
        "drop_head" => OverflowStrategy::DropHead,
        "drop_tail" => OverflowStrategy::DropTail,
        "drop_buffer" => OverflowStrategy::DropBuffer,
        "drop_new" => OverflowStrategy::DropNew,
        "fail" => OverflowStrategy::Fail,
        other => {
            return Err(PyValueError::new_err(format!(
                "unknown overflow strategy {other:?}"
            )));
        }
    })
}

fn tag_flow(name: &str, f: Py<PyAny>, stop: bool) -> Flow<PyObj, (bool, PyObj), MatValue> {
    py_flow(
        name,
        factory(move |py| TagOp {
            f: f.clone_ref(py),
            stop_after_false: stop,
            stopped: false,
        }),
    )
}

fn untag<K: Send + 'static>() -> Flow<(K, PyObj), PyObj, ()> {
    Flow::<(K, PyObj), (K, PyObj), ()>::identity().map(|t: (K, PyObj)| t.1)
}

fn share() -> Flow<PyObj, Shared, ()> {
    Flow::<PyObj, PyObj, ()>::identity().map(Arc::new)
}

fn unshare_flow(name: &str) -> Flow<Shared, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| convert(|py, s: Shared| Ok(unshare(py, s)))),
    )
}

/// Pairs of [`Shared`] objects (from `ZipLatest`) as tuples.
fn shared_pair(py: Python<'_>, (a, b): (Shared, Shared)) -> Result<PyObj, StageError> {
    let (a, b) = (unshare(py, a), unshare(py, b));
    tuple2(py, a.0, b.0)
}

fn list_flow(name: &str) -> Flow<Vec<PyObj>, PyObj, MatValue> {
    py_flow(
        name,
        factory(|_py| {
            convert(|py, v: Vec<PyObj>| {
                let l =
                    PyList::new(py, v.into_iter().map(|x| x.0)).map_err(|e| user_error(py, e))?;
                Ok(PyObj(l.into_any().unbind()))
            })
        }),
    )
}

use fan::*;
use flows::*;
use hubs::*;
use junctions::*;
use sources::*;
use timed::*;

/// Adds this module's classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NSourceQueue>()?;
    m.add_class::<NSinkQueue>()?;
    m.add_class::<NCancellable>()?;
    m.add_function(wrap_pyfunction!(source_tick, m)?)?;
    m.add_function(wrap_pyfunction!(source_queue, m)?)?;
    m.add_function(wrap_pyfunction!(sink_queue, m)?)?;
    m.add_function(wrap_pyfunction!(flow_take_while, m)?)?;
    m.add_function(wrap_pyfunction!(flow_drop_while, m)?)?;
    m.add_function(wrap_pyfunction!(flow_sliding, m)?)?;
    m.add_function(wrap_pyfunction!(flow_intersperse, m)?)?;
    m.add_function(wrap_pyfunction!(flow_zip_with_index, m)?)?;
    m.add_function(wrap_pyfunction!(flow_inspect, m)?)?;
    m.add_function(wrap_pyfunction!(flow_recover, m)?)?;
    m.add_function(wrap_pyfunction!(flow_recover_with_retries, m)?)?;
    m.add_function(wrap_pyfunction!(flow_flat_map_sources, m)?)?;
    m.add_function(wrap_pyfunction!(flow_group_by, m)?)?;
    m.add_function(wrap_pyfunction!(flow_split, m)?)?;
    m.add_function(wrap_pyfunction!(flow_timed, m)?)?;
    m.add_function(wrap_pyfunction!(flow_limit, m)?)?;
    m.add_function(wrap_pyfunction!(flow_grouped_within, m)?)?;
    m.add_function(wrap_pyfunction!(timed::flow_throttle_mode, m)?)?;
    m.add_function(wrap_pyfunction!(timed::flow_keep_alive, m)?)?;
    m.add_function(wrap_pyfunction!(timed::flow_initial_delay, m)?)?;
    m.add_function(wrap_pyfunction!(flow_batch_lists, m)?)?;
    m.add_function(wrap_pyfunction!(flow_expand, m)?)?;
    m.add_function(wrap_pyfunction!(flow_also_to, m)?)?;
    m.add_function(wrap_pyfunction!(flow_divert_to, m)?)?;
    m.add_function(wrap_pyfunction!(flow_merge_sorted, m)?)?;
    m.add_function(wrap_pyfunction!(flow_interleave, m)?)?;
    m.add_function(wrap_pyfunction!(flow_zip_latest, m)?)?;
    m.add_function(wrap_pyfunction!(builder_add_junction, m)?)?;
    bidi::register(m)?;
    lifecycle::register(m)?;
    register_hubs(m)
}

/// Hubs and restart wrappers.
fn register_hubs(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(merge_hub_source, m)?)?;
    m.add_function(wrap_pyfunction!(broadcast_hub_sink, m)?)?;
    m.add_function(wrap_pyfunction!(partition_hub_sink, m)?)?;
    m.add_function(wrap_pyfunction!(restart, m)?)?;
    Ok(())
}
