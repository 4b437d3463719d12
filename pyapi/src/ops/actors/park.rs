//! What a pool actor's proxy (`weir._pool_actor`) needs of its Rust cell: a wake-up that any
//! thread may deliver to the parked actor, and a message's reply address kept for later.

use crate::obj::PyObj;
use pyo3::prelude::*;
use std::sync::Mutex;
use weir_operators::actor::{SenderSlot, Wakeup};

/// Delivers a message to a parked actor ahead of its queue, from any thread
/// (`ActorContext._park()`).
#[pyclass(module = "weir._native", name = "Wakeup", frozen)]
pub struct PyWakeup(pub(crate) Wakeup<PyObj>);

#[pymethods]
impl PyWakeup {
    /// Delivers `msg` (dropped once the actor stopped); the GIL is released meanwhile, so no
    /// lock of the mailbox is ever waited for while holding it.
    fn wake(&self, py: Python<'_>, msg: Py<PyAny>) {
        let msg = PyObj(msg);
        py.detach(|| self.0.wake(msg));
    }
}

/// The reply address of a handled message (`ActorContext._take_sender()`), used once.
#[pyclass(module = "weir._native", name = "SenderSlot", frozen)]
pub struct PySenderSlot(pub(crate) Mutex<SenderSlot>);

impl PySenderSlot {
    /// Takes the address out (an empty slot is left).
    pub(crate) fn take(&self) -> SenderSlot {
        self.0
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or_default()
    }
}

#[pymethods]
impl PySenderSlot {
    /// Whether the message had a sender.
    fn __bool__(&self) -> bool {
        self.0.lock().is_ok_and(|s| s.is_some())
    }
}
