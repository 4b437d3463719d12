//! # weir-py: weir's Python API (the Rust side)
//!
//! The same DSL as Rust over Python objects: a blueprint pyclass wrapping `Source`, `Flow`, `Sink`
//! and `RunnableGraph` of [`PyObj`], Python stages that run user code on a per-run
//! [`dispatch::Dispatcher`] (the GIL is taken once per batch, never on tokio worker threads),
//! error mapping to Python exceptions, and the run handle. The `#[pymodule]` lives in the tiny
//! `weir-py-ext` cdylib, which calls [`register`].

pub mod arrow;
pub mod checkpoints;
pub mod codec;
pub mod crdt;
pub mod dispatch;
pub mod dsl;
pub mod errors;
pub mod gil;
pub mod mat;
pub mod obj;
pub mod ops;
pub mod ops_env;
pub mod pool_metrics;
pub mod pyfn;
pub mod run;
pub mod stages;
pub mod testing;

pub use obj::PyObj;

use pyo3::prelude::*;

/// Adds every class, function and exception of the native module to `m`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<dsl::PyBlueprint>()?;
    m.add_class::<dsl::PySupervision>()?;
    m.add_class::<dsl::PyElementOp>()?;
    m.add_class::<dsl::PyGraphBuilder>()?;
    m.add_class::<dsl::PyInlet>()?;
    m.add_class::<dsl::PyOutlet>()?;
    m.add_class::<dsl::PyMatKey>()?;
    m.add_class::<run::PyRun>()?;
    m.add_class::<checkpoints::PySavepoint>()?;
    m.add_class::<run::PySinkFuture>()?;
    m.add_class::<run::PyUniqueKillSwitch>()?;
    m.add_class::<stages::BatchDone>()?;
    m.add("WeirError", py.get_type::<errors::WeirError>())?;
    m.add("StageFailed", py.get_type::<errors::StageFailed>())?;
    m.add("RunCancelled", py.get_type::<errors::RunCancelled>())?;
    m.add("GraphInvalid", py.get_type::<errors::GraphInvalid>())?;
    m.add_function(wrap_pyfunction!(run::start, m)?)?;
    m.add_function(wrap_pyfunction!(ops_env::init_logging, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::source_from_iter, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_identity, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_chain, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_map, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_filter, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_flat_map, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_map_batches, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_scan, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_fold, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_grouped, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_take, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_drop, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_throttle, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_buffer, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_key_count, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::source_from_iter_key_count, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_key_fold, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_external, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::flow_kill_switch, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_collect, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_fold, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_for_each, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_ignore, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_head, m)?)?;
    m.add_function(wrap_pyfunction!(dsl::sink_last, m)?)?;
    m.add_function(wrap_pyfunction!(gil::_gil_on_workers, m)?)?;
    ops::register(m)?;
    arrow::register(m)?;
    codec::register(m)?;
    crdt::register(m)?;
    testing::register(m)?;
    Ok(())
}
