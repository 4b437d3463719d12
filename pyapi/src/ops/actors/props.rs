//! Props of Python actors: the class or factory, the mailbox and the name from Python.

use super::actor::PyActor;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Arc;
use weir_operators::actor::{ActorRef, MailboxConfig, Overflow, Props};

use crate::obj::PyObj;

/// What Python passes to make props.
pub(crate) struct PropsArgs {
    pub(crate) name: String,
    pub(crate) capacity: usize,
    pub(crate) overflow: String,
    pub(crate) redirect: Option<ActorRef<PyObj>>,
    pub(crate) throughput: Option<usize>,
    pub(crate) max_actors: Option<usize>,
    pub(crate) stash_capacity: Option<usize>,
    /// `rank(msg) -> int`: a priority mailbox (higher first; a control-aware one ranks 1 or 0).
    pub(crate) priority: Option<Py<PyAny>>,
    /// Saved at checkpoints (`snapshot_state` / `restore_state` through the value codec).
    pub(crate) checkpointed: bool,
    /// Seconds a hook may run before it fails (checked by Python as positive).
    pub(crate) handler_time_limit: Option<f64>,
    /// Bytes the stage's mailboxes hold together (root props only).
    pub(crate) mailbox_budget: Option<usize>,
}

/// The mailbox `capacity` messages long with the overflow policy named `overflow`
/// (`"drop_new"`, `"drop_old"`, `"fail"` or `"redirect"` to `redirect`).
fn mailbox(
    capacity: usize,
    overflow: &str,
    redirect: Option<ActorRef<PyObj>>,
) -> PyResult<MailboxConfig> {
    let policy = match (overflow, redirect) {
        ("drop_new", None) => Overflow::DropNew,
        ("drop_old", None) => Overflow::DropOld,
        ("fail", None) => Overflow::Fail,
        ("redirect", Some(to)) => Overflow::redirect(to),
        ("redirect", None) => {
            return Err(PyValueError::new_err(
                "a mailbox with overflow 'redirect' needs redirect_to= (an ActorRef)",
            ));
        }
        (other, _) => {
            return Err(PyValueError::new_err(format!(
                "a mailbox overflow is 'drop_new', 'drop_old', 'fail' or 'redirect', not {other:?}"
            )));
        }
    };
    Ok(MailboxConfig::bounded(capacity).overflow(policy))
}

/// The priority of `msg` by the Python `rank`: its int clamped to 0..=255. Run by the sender
/// before it takes the mailbox's lock. A `rank` that raises or returns no int gives the lowest
/// priority (the message is kept) and a warning naming the actor and the message.
fn priority_of(py: Python<'_>, rank: &Py<PyAny>, actor: &str, msg: &PyObj) -> u8 {
    match rank
        .call1(py, (msg.0.clone_ref(py),))
        .and_then(|r| r.extract::<i64>(py))
    {
        Ok(p) => p.clamp(0, 255) as u8,
        Err(e) => {
            tracing::warn!(
                actor,
                message = %crate::obj::short_repr(py, msg),
                error = %e,
                "the mailbox's priority function failed: lowest priority"
            );
            0
        }
    }
}

/// Props making a `PyActor` around what `factory()` returns, once per start and restart.
pub(crate) fn py_props(factory: Py<PyAny>, a: PropsArgs) -> PyResult<Props<PyActor>> {
    if a.capacity == 0 {
        return Err(PyValueError::new_err(
            "a mailbox capacity must be at least 1",
        ));
    }
    let factory = Arc::new(factory);
    let factory_again = Arc::clone(&factory);
    let mut config = mailbox(a.capacity, &a.overflow, a.redirect)?;
    if let Some(rank) = a.priority {
        let actor = a.name.clone();
        config = config
            .priority(move |m: &PyObj| crate::gil::with(|py| priority_of(py, &rank, &actor, m)));
    }
    let mut props = Props::new(move || PyActor::make(&factory))
        .with_name(&a.name)
        .with_mailbox(config);
    if let Some(n) = a.throughput {
        props = props.with_throughput(n);
    }
    if let Some(n) = a.max_actors {
        props = props.with_max_actors(n);
    }
    if let Some(n) = a.stash_capacity {
        props = props.with_stash_capacity(n);
    }
    if let Some(s) = a.handler_time_limit {
        let limit = std::time::Duration::try_from_secs_f64(s).map_err(|e| {
            PyValueError::new_err(format!("handler_time_limit must be positive seconds: {e}"))
        })?;
        props = props.with_handler_time_limit(limit);
    }
    if let Some(b) = a.mailbox_budget {
        props = props.with_mailbox_budget(b);
    }
    if a.checkpointed {
        let name = a.name.clone();
        props = props.checkpointed_with(
            move |actor: &PyActor| actor.snapshot(&name),
            move |bytes: &[u8]| PyActor::restored(&factory_again, bytes),
        );
    }
    Ok(props)
}
