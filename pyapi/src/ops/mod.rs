//! The operators added to the Python API on top of the core set in [`crate::dsl`]: sources
//! (`tick`, `queue`), flows (`take_while`, `sliding`, `recover`, substreams, time operators, fan
//! operators), junctions (`Partition`, `MergePreferred`, ...) and `Sink.queue`.
//!
//! Every operator is the generic Rust operator over [`PyObj`] (cloning an element is a new
//! reference, taken on the dispatcher); user functions are its closures, calling Python through
//! [`PyFn`] (or a tag computed per element, `(flag, PyObj)`, when the generic operator routes on
//! a key). What remains here only converts (tuples, lists, sources) or interns keys.

pub mod actors;
mod bidi;
pub mod cluster;
mod columnar_files;
mod connectors;
mod fan;
mod files;
mod flows;
pub mod handles;
mod hubs;
mod junctions;
mod keyed;
mod lifecycle;
mod persistence;
mod process;
pub mod pyops;
mod sources;
pub mod stages;
mod timed;
pub mod topics;
mod windows;

use crate::dsl::{Bp, PyBlueprint, PyGraphBuilder, PyInlet, PyOutlet, wrap};
use crate::errors::graph_err;
use crate::mat::MatValue;
use crate::obj::PyObj;
use crate::obj::user_error;
use crate::pyfn::PyFn;
use crate::stages::{OpFactory, PyOp, convert, py_flow, unit_mat};
use handles::{PyCancellable, PySinkQueue, PySourceQueue};
use pyo3::exceptions::{PyIndexError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use pyops::*;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use weir_graph::{Flow, GraphBuilder, Inlet, MatKey, Outlet, Sink, Source, StageError};
use weir_operators::fan::{
    Broadcast, Interleave, MergePreferred, MergePrioritized, MergeSortedBy, Partition, Unzip,
    WireTap, ZipLatest,
};
use weir_operators::prelude::*;

fn factory<I: Send + 'static, O: Send + 'static, P: PyOp<I, O>>(
    f: impl Fn(Python<'_>) -> P + Send + Sync + 'static,
) -> OpFactory<I, O> {
    Arc::new(move |py, _info| Box::new(f(py)) as Box<dyn PyOp<I, O>>)
}

fn flow(f: Flow<PyObj, PyObj, MatValue>) -> PyBlueprint {
    wrap(Bp::Flow(f))
}

/// `s` seconds as a duration; a `ValueError` for a negative or non-finite value.
pub(crate) fn secs(s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s).map_err(|e| PyValueError::new_err(format!("{s}: {e}")))
}

fn source_of(b: &PyBlueprint) -> PyResult<Source<PyObj, MatValue>> {
    match &b.bp {
        Bp::Source(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Source")),
    }
}

fn flow_of(b: &PyBlueprint) -> PyResult<Flow<PyObj, PyObj, MatValue>> {
    match &b.bp {
        Bp::Flow(f) => Ok(f.clone()),
        _ => Err(PyTypeError::new_err("expected a Flow")),
    }
}

fn sink_of(b: &PyBlueprint) -> PyResult<Sink<PyObj, MatValue>> {
    match &b.bp {
        Bp::Sink(s) => Ok(s.clone()),
        _ => Err(PyTypeError::new_err("expected a Sink")),
    }
}

/// `(bool(pred(x)), x)` per element (the Rust `try_map`), for the generic operators that route
/// or split on a flag (`split_*`, `divert_to`).
fn tag_flow(name: &str, pred: Py<PyAny>) -> Flow<PyObj, (bool, PyObj), MatValue> {
    let pred = PyFn::new(pred);
    let tags =
        weir_operators::simple::try_map(move |x: &PyObj| pred.truthy(x).map(|b| (b, x.clone())));
    unit_mat(tags).named(name)
}

fn untag<K: Send + 'static>() -> Flow<(K, PyObj), PyObj, ()> {
    Flow::<(K, PyObj), (K, PyObj), ()>::identity().map(|t: (K, PyObj)| t.1)
}

pub use crate::stages::convert::{list_flow, overflow, tuple_flow};

use fan::*;
use flows::*;
use hubs::*;
use junctions::*;
use sources::*;
use timed::*;

/// Adds this module's classes and functions to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    cluster::register(m)?;
    m.add_class::<PySourceQueue>()?;
    m.add_class::<PySinkQueue>()?;
    m.add_class::<PyCancellable>()?;
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
    m.add_function(wrap_pyfunction!(windows::flow_assign_timestamps, m)?)?;
    m.add_function(wrap_pyfunction!(windows::flow_window, m)?)?;
    m.add_function(wrap_pyfunction!(windows::flow_processing_window, m)?)?;
    m.add_function(wrap_pyfunction!(windows::flow_join, m)?)?;
    m.add_function(wrap_pyfunction!(process::flow_key_process, m)?)?;
    m.add_function(wrap_pyfunction!(keyed::flow_key_aggregate, m)?)?;
    m.add_class::<process::PyProcessContext>()?;
    actors::register(m)?;
    persistence::register(m)?;
    connectors::register(m)?;
    bidi::register(m)?;
    files::register(m)?;
    columnar_files::register(m)?;
    lifecycle::register(m)?;
    topics::register(m)?;
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
