//! Python actors: `weir.Flow.actor`, `weir.Sink.actor` and `weir.Source.actor` are the Rust
//! actor stage (`weir_operators::actor`) hosting [`PyActor`]s, each a `weir.Actor` instance
//! whose hooks are called on the run's Python dispatcher. Nothing of the actor runtime is
//! re-implemented here: [`ctx`] adapts the Rust context, [`refs`] the Rust `ActorRef`,
//! [`strategy`] the Rust supervisor strategies, [`props`] the props.

mod actor;
mod args;
mod ctx;
mod park;
mod props;
mod refs;
mod strategy;

pub use actor::PyActor;
pub use ctx::PyActorCtx;
pub use refs::PyActorRef;
pub use strategy::PySupervisorStrategy;

use crate::dsl::{Bp, PyBlueprint, wrap};
use crate::mat::MatValue;
use props::{PropsArgs, py_props};
use pyo3::prelude::*;
use weir_operators::actor::{ActorRef, actor_flow, actor_sink, actor_source, ask_flow};

use crate::obj::PyObj;

/// The materialized value of an actor stage: its root's `weir.ActorRef`.
fn ref_mat(r: ActorRef<PyObj>) -> MatValue {
    MatValue::Lazy(Box::new(move |py| {
        Ok(Py::new(py, PyActorRef(r))?.into_any())
    }))
}

/// The props from the Python arguments shared by the three stages.
#[allow(clippy::too_many_arguments)]
fn args(
    name: String,
    capacity: usize,
    overflow: &str,
    redirect: Option<PyRef<'_, PyActorRef>>,
    throughput: Option<usize>,
    max_actors: Option<usize>,
    stash_capacity: Option<usize>,
    priority: Option<Py<PyAny>>,
    checkpointed: bool,
    handler_time_limit: Option<f64>,
    mailbox_budget: Option<usize>,
) -> PropsArgs {
    PropsArgs {
        name,
        capacity,
        overflow: overflow.to_owned(),
        redirect: redirect.map(|r| r.0.clone()),
        throughput,
        max_actors,
        stash_capacity,
        priority,
        checkpointed,
        handler_time_limit,
        mailbox_budget,
    }
}

/// `Flow.actor(cls)`, `Sink.actor(cls)` or `Source.actor(cls)` (`kind` `"flow"`, `"sink"` or
/// `"source"`): the Rust actor stage whose root actor `factory()` makes. In a flow, stream
/// elements are messages to the root and what the actors emit goes downstream; a sink drops
/// what they emit; a source emits it while the root handles what is told to its ref. Each
/// materializes the root's `ActorRef`.
#[pyfunction]
#[pyo3(signature = (kind, factory, name, capacity, overflow, redirect = None, throughput = None, max_actors = None, stash_capacity = None, priority = None, checkpointed = false, handler_time_limit = None, mailbox_budget = None))]
#[allow(clippy::too_many_arguments)]
pub fn actor_stage(
    kind: &str,
    factory: Py<PyAny>,
    name: String,
    capacity: usize,
    overflow: &str,
    redirect: Option<PyRef<'_, PyActorRef>>,
    throughput: Option<usize>,
    max_actors: Option<usize>,
    stash_capacity: Option<usize>,
    priority: Option<Py<PyAny>>,
    checkpointed: bool,
    handler_time_limit: Option<f64>,
    mailbox_budget: Option<usize>,
) -> PyResult<PyBlueprint> {
    let a = args(
        name,
        capacity,
        overflow,
        redirect,
        throughput,
        max_actors,
        stash_capacity,
        priority,
        checkpointed,
        handler_time_limit,
        mailbox_budget,
    );
    let props = py_props(factory, a)?;
    let bp = match kind {
        "flow" => Bp::Flow(actor_flow(props).map_materialized_value(ref_mat)),
        "sink" => Bp::Sink(actor_sink(props).map_materialized_value(ref_mat)),
        "source" => Bp::Source(actor_source(props).map_materialized_value(ref_mat)),
        other => {
            return Err(pyo3::exceptions::PyValueError::new_err(format!(
                "an actor stage is a 'flow', 'sink' or 'source', not {other:?}"
            )));
        }
    };
    Ok(wrap(bp))
}

/// `.ask(ref, parallelism, timeout)`: every element is asked of the actor behind `to` (the
/// Rust `ask_flow`), at most `parallelism` in flight; the replies go downstream in input order.
#[pyfunction]
pub fn flow_ask(
    to: PyRef<'_, PyActorRef>,
    parallelism: usize,
    timeout: f64,
) -> PyResult<PyBlueprint> {
    let t = std::time::Duration::try_from_secs_f64(timeout).map_err(|e| {
        pyo3::exceptions::PyValueError::new_err(format!(
            "ask: timeout must be seconds >= 0, got {timeout}: {e}"
        ))
    })?;
    if parallelism == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "ask: parallelism must be at least 1",
        ));
    }
    let f = ask_flow::<PyObj, PyObj>(to.0.clone(), parallelism, t);
    Ok(wrap(Bp::Flow(crate::stages::unit_mat(f))))
}

/// Adds the actor classes and stage constructors to the native module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyActorRef>()?;
    m.add_class::<refs::PyScheduled>()?;
    m.add_class::<PyActorCtx>()?;
    m.add_class::<park::PyWakeup>()?;
    m.add_class::<park::PySenderSlot>()?;
    m.add_class::<PySupervisorStrategy>()?;
    m.add_function(wrap_pyfunction!(actor_stage, m)?)?;
    m.add_function(wrap_pyfunction!(flow_ask, m)?)?;
    m.add_function(wrap_pyfunction!(flow_sharded, m)?)?;
    Ok(())
}

/// `Flow.sharded(factory, entity_id, ...)`: the Rust shard region; each entity is a `PyActor`
/// made by `factory(id)` on the first message whose `str(entity_id(msg))` is `id`.
#[pyfunction]
#[pyo3(signature = (factory, entity_id, capacity, passivate_after = None, parallelism = 1, shard_buffer = weir_operators::actor::DEFAULT_SHARD_BUFFER))]
pub fn flow_sharded(
    factory: Py<PyAny>,
    entity_id: Py<PyAny>,
    capacity: usize,
    passivate_after: Option<f64>,
    parallelism: usize,
    shard_buffer: usize,
) -> PyResult<PyBlueprint> {
    use std::sync::Arc;
    use weir_operators::actor::{MailboxConfig, Props, RegionSettings, try_sharded};
    if capacity == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a mailbox capacity must be at least 1",
        ));
    }
    if shard_buffer == 0 {
        return Err(pyo3::exceptions::PyValueError::new_err(
            "a shard buffer must hold at least 1 message",
        ));
    }
    let mut settings = RegionSettings::default()
        .parallelism(parallelism)
        .shard_buffer(shard_buffer);
    if let Some(s) = passivate_after {
        let d = std::time::Duration::try_from_secs_f64(s)
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("{s}: {e}")))?;
        settings = settings.passivate_after(d);
    }
    let factory = Arc::new(factory);
    let entity = move |k: &String| {
        // A factory bound to the entity's id, called on every start and restart.
        let bound = crate::gil::with(|py| {
            py.import("functools")
                .and_then(|f| f.getattr("partial")?.call1((factory.bind(py), k.as_str())))
                .map(Bound::unbind)
        });
        let made = Arc::new(bound);
        Props::new(move || match made.as_ref() {
            Ok(f) => PyActor::make(f),
            Err(e) => crate::gil::with(|py| PyActor::failed(e.clone_ref(py))),
        })
        .with_mailbox(MailboxConfig::bounded(capacity))
    };
    let id_of = move |m: &PyObj| -> Result<String, weir_graph::StageError> {
        crate::gil::with(|py| {
            entity_id
                .bind(py)
                .call1((m.0.bind(py),))
                .and_then(|k| k.str()?.extract::<String>())
                .map_err(|e| crate::obj::user_error(py, e))
        })
    };
    let f = try_sharded(entity, id_of, settings).map_materialized_value(|_| MatValue::Unit);
    Ok(wrap(Bp::Flow(f)))
}
