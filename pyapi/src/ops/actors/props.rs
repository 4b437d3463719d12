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

/// Props making a `PyActor` around what `factory()` returns, once per start and restart.
pub(crate) fn py_props(factory: Py<PyAny>, a: PropsArgs) -> PyResult<Props<PyActor>> {
    if a.capacity == 0 {
        return Err(PyValueError::new_err(
            "a mailbox capacity must be at least 1",
        ));
    }
    let factory = Arc::new(factory);
    let mut props = Props::new(move || PyActor::make(&factory))
        .with_name(&a.name)
        .with_mailbox(mailbox(a.capacity, &a.overflow, a.redirect)?);
    if let Some(n) = a.throughput {
        props = props.with_throughput(n);
    }
    if let Some(n) = a.max_actors {
        props = props.with_max_actors(n);
    }
    if let Some(n) = a.stash_capacity {
        props = props.with_stash_capacity(n);
    }
    Ok(props)
}
