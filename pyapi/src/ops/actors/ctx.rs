//! `weir.ActorContext`: the Python face of the Rust actor context (`weir_operators::actor::Ctx`).
//!
//! The Rust context borrows the actor stage's state for exactly one hook call, so the Python
//! object cannot own it: while a hook of its actor runs, the object holds the address of that
//! context, and each method borrows it for the duration of the method, on the thread that runs
//! the hook. Outside its actor's hooks (kept in a field and used later, from
//! another thread, or re-entered from a callback inside a method) every method raises instead.

#![allow(unsafe_code)]

use super::actor::PyActor;
use super::props::{PropsArgs, py_props};
use super::refs::PyActorRef;
use crate::errors::to_py_err;
use crate::obj::PyObj;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use weir_operators::actor::{ActorId, Ctx, TellError};

static SPAWN_ARGS: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();
static RECEIVE: pyo3::sync::PyOnceLock<Py<PyAny>> = pyo3::sync::PyOnceLock::new();

/// What a hook asked for that the Rust side applies after the Python call.
#[derive(Debug, Default)]
pub(crate) struct Requests {
    /// Stash the message being handled.
    pub(crate) stash: bool,
}

/// A small number naming the calling thread (0 is never used).
fn thread_no() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    thread_local! {
        static NO: usize = NEXT.fetch_add(1, Ordering::Relaxed);
    }
    NO.with(|n| *n)
}

/// The context a `weir.Actor`'s hooks receive: emit downstream, reply, tell, spawn and watch
/// actors, change behaviour, stash, and schedule timers.
#[pyclass(module = "weir._native", name = "ActorContext", frozen)]
pub struct PyActorCtx {
    /// The address of the `Ctx<'_, PyActor>` of the hook running now (0: none, or taken by a
    /// method running now).
    ctx: AtomicUsize,
    /// The thread running that hook ([`thread_no`]).
    thread: AtomicUsize,
    /// `ctx.stash()` was called: the hook stashes its message when it returns.
    stash: AtomicBool,
    /// The refs this actor watches, handed back to `on_terminated`.
    watched: Mutex<HashMap<ActorId, Py<PyAny>>>,
    /// The `weir._actors._Batch` of the actor's batch runs (`brk` ends one early).
    batch: Py<PyAny>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn secs(what: &str, s: f64) -> PyResult<Duration> {
    Duration::try_from_secs_f64(s)
        .map_err(|e| PyValueError::new_err(format!("{what} must be seconds >= 0, got {s}: {e}")))
}

/// Exits the scope when the hook call returns (also when it unwinds).
pub(crate) struct Entered<'a> {
    cx: &'a PyActorCtx,
}

impl Entered<'_> {
    /// Leaves the scope, returning what the hook asked for.
    pub(crate) fn exit(self) -> Requests {
        self.cx.ctx.store(0, Ordering::Release);
        let stash = self.cx.stash.swap(false, Ordering::AcqRel);
        std::mem::forget(self);
        Requests { stash }
    }
}

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.cx.ctx.store(0, Ordering::Release);
        self.cx.stash.store(false, Ordering::Release);
    }
}

impl PyActorCtx {
    /// A context not inside any hook yet, sharing `batch` (a `weir._actors._Batch`) with the
    /// actor's batch runs.
    pub(crate) fn new(batch: Py<PyAny>) -> Self {
        Self {
            batch,
            ctx: AtomicUsize::new(0),
            thread: AtomicUsize::new(0),
            stash: AtomicBool::new(false),
            watched: Mutex::new(HashMap::new()),
        }
    }

    /// Makes `ctx` the context of the methods until the returned guard exits (the caller
    /// does not use `ctx` meanwhile).
    pub(crate) fn enter<'g>(&'g self, ctx: &mut Ctx<'_, PyActor>) -> Entered<'g> {
        let addr = std::ptr::from_mut(ctx) as usize;
        self.stash.store(false, Ordering::Release);
        self.thread.store(thread_no(), Ordering::Release);
        self.ctx.store(addr, Ordering::Release);
        Entered { cx: self }
    }

    /// The state of the actor's batch runs.
    pub(crate) fn batch(&self) -> &Py<PyAny> {
        &self.batch
    }

    /// Ends a batch run after the message being handled.
    fn interrupt(&self, py: Python<'_>) -> PyResult<()> {
        self.batch.bind(py).setattr("brk", true)
    }

    /// The ref `on_terminated` hands back for `who` (the one given to `watch`), forgotten.
    pub(crate) fn take_watched(&self, who: ActorId) -> Option<Py<PyAny>> {
        lock(&self.watched).remove(&who)
    }

    /// Runs `f` on the running hook's context; raises outside its actor's hooks.
    fn with<R>(&self, f: impl FnOnce(&mut Ctx<'_, PyActor>) -> R) -> PyResult<R> {
        let addr = if self.thread.load(Ordering::Acquire) == thread_no() {
            self.ctx.swap(0, Ordering::AcqRel)
        } else {
            0
        };
        if addr == 0 {
            return Err(PyRuntimeError::new_err(
                "the actor context is only usable inside its actor's hooks (handle, on_<type>, \
                 pre_start, ...), on the thread that runs them",
            ));
        }
        // SAFETY: `addr` is the address of the `Ctx` that `enter` was given, and the hook that
        // entered it runs on this thread, inside the Python call this method is called from:
        // it neither uses that `Ctx` nor returns before the call does (the guard clears the
        // address when the hook call ends, also by unwinding). The check of the thread and the
        // taking of the address cannot interleave with `enter` or `exit` of another thread:
        // all of them run attached to the interpreter without releasing the GIL, which one
        // thread holds at a time (the extension is built for GIL interpreters: abi3). The
        // address is taken out while `f` runs, so a nested call (a callback run by `f`) finds
        // none and raises: this is the only reference to the `Ctx` while it lives.
        let ctx = unsafe { &mut *(addr as *mut Ctx<'static, PyActor>) };
        let r = f(ctx);
        self.ctx.store(addr, Ordering::Release);
        Ok(r)
    }
}

/// A tell's outcome as Python sees it.
pub(crate) fn tell_result(r: Result<(), TellError>) -> &'static str {
    match r {
        Ok(()) => "enqueued",
        Err(TellError::Full { .. }) => "dropped",
        Err(TellError::Stopped { .. }) => "stopped",
        Err(TellError::Overflowed { .. }) => "overflowed",
    }
}

#[pymethods]
impl PyActorCtx {
    /// Sends `x` downstream (held until the stage's output has room).
    #[pyo3(signature = (x, /))]
    fn emit(&self, x: Py<PyAny>) -> PyResult<()> {
        self.with(|c| c.emit(PyObj(x)))
    }

    /// Sends every element of `xs` downstream.
    fn emit_all(&self, xs: &Bound<'_, PyAny>) -> PyResult<()> {
        let items = xs
            .try_iter()?
            .map(|x| x.map(PyObj::from_bound))
            .collect::<PyResult<Vec<_>>>()?;
        self.with(|c| c.emit_all(items))
    }

    /// Answers the message being handled (to its `ask`, or to the sending actor); `False` (and
    /// a dead letter) when nobody takes the answer.
    fn reply(&self, x: Py<PyAny>) -> PyResult<bool> {
        self.with(|c| c.reply(PyObj(x)))
    }

    /// The sender of the message being handled: the sending actor's path, `"ask"` for an ask
    /// from outside the stage, `None` for a message without sender (stream elements, `tell`).
    #[getter]
    fn sender(&self) -> PyResult<Option<String>> {
        self.with(|c| {
            c.sender()
                .map(|s| s.path().map_or_else(|| "ask".to_owned(), str::to_owned))
        })
    }

    /// A ref to this actor (a ref kept by a source's root actor counts as a ref from outside:
    /// the source then completes only when the root stops).
    #[getter]
    fn self_ref(&self, py: Python<'_>) -> PyResult<Py<PyActorRef>> {
        Py::new(py, PyActorRef(self.with(|c| c.self_ref())?))
    }

    /// This actor's path (`stage/root/child`).
    #[getter]
    fn path(&self) -> PyResult<String> {
        self.with(|c| c.path().to_owned())
    }

    /// Seconds on the run's clock since the run started (virtual in `weir.testing` runs).
    fn now(&self) -> PyResult<f64> {
        self.with(|c| c.now().as_secs_f64())
    }

    /// Sends `msg` to `to` with this actor as its sender (a reply comes back to this actor);
    /// never waits: a full mailbox applies its overflow policy. Returns `"enqueued"`,
    /// `"dropped"`, `"stopped"` or `"overflowed"` (the message went to dead letters).
    fn tell(&self, to: PyRef<'_, PyActorRef>, msg: Py<PyAny>) -> PyResult<&'static str> {
        let r = to.0.clone();
        self.with(|c| tell_result(c.tell(&r, PyObj(msg))))
    }

    /// Sends `msg` to `to` keeping the current message's sender as its sender.
    fn forward(&self, to: PyRef<'_, PyActorRef>, msg: Py<PyAny>) -> PyResult<&'static str> {
        let r = to.0.clone();
        self.with(|c| tell_result(c.forward(&r, PyObj(msg))))
    }

    /// Starts a child actor (a `weir.Actor` class or a zero-argument factory, with an optional
    /// name and `weir.Mailbox`) supervised by this one with its `supervisor_strategy`; its
    /// `pre_start` runs after this hook returns; `pool=` runs its hooks in that interpreter
    /// pool. Raises `StageFailed` when the stage holds its maximum number of actors.
    #[pyo3(signature = (factory, name = None, mailbox = None, throughput = None, stash_capacity = None, checkpointed = false, handler_time_limit = None, pool = None))]
    #[allow(clippy::too_many_arguments)]
    fn spawn(
        &self,
        py: Python<'_>,
        factory: Py<PyAny>,
        name: Option<String>,
        mailbox: Option<Py<PyAny>>,
        throughput: Option<usize>,
        stash_capacity: Option<usize>,
        checkpointed: bool,
        handler_time_limit: Option<Py<PyAny>>,
        pool: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyActorRef>> {
        let args = SPAWN_ARGS
            .import(py, "weir._actors", "props_args")?
            .call1((
                factory,
                name,
                mailbox,
                throughput,
                stash_capacity,
                checkpointed,
                handler_time_limit,
                pool,
            ))?;
        #[allow(clippy::type_complexity)]
        let (
            factory,
            name,
            capacity,
            overflow,
            redirect,
            throughput,
            stash_capacity,
            priority,
            checkpointed,
            handler_time_limit,
        ): (
            Py<PyAny>,
            String,
            usize,
            String,
            Option<PyRef<'_, PyActorRef>>,
            Option<usize>,
            Option<usize>,
            Option<Py<PyAny>>,
            bool,
            Option<f64>,
        ) = args.extract()?;
        let args = PropsArgs {
            name,
            capacity,
            overflow,
            redirect: redirect.map(|r| r.0.clone()),
            throughput,
            max_actors: None,
            stash_capacity,
            priority,
            checkpointed,
            handler_time_limit,
            mailbox_budget: None,
        };
        let props = py_props(factory, args)?;
        let r = self.with(|c| c.spawn(props))?;
        match r {
            Ok(r) => Py::new(py, PyActorRef(r)),
            Err(e) => Err(to_py_err(py, &e)),
        }
    }

    /// Stops `child` (a ref of one of this actor's children), or this actor when `None`, after
    /// the current message (children stop first).
    #[pyo3(signature = (child = None))]
    fn stop(&self, py: Python<'_>, child: Option<PyRef<'_, PyActorRef>>) -> PyResult<()> {
        let id = child.map(|r| r.0.id());
        self.with(|c| match id {
            Some(id) => c.stop_child(id),
            None => c.stop(),
        })?;
        if id.is_none() {
            self.interrupt(py)?;
        }
        Ok(())
    }

    /// Calls `on_terminated(ctx, who)` with `who` (a ref of an actor of this stage) once it
    /// stops; at once when it already stopped.
    fn watch(&self, who: Py<PyActorRef>) -> PyResult<()> {
        let id = who.get().0.id();
        self.with(|c| c.watch(id))?;
        lock(&self.watched).insert(id, who.into_any());
        Ok(())
    }

    /// Cancels a `watch`.
    fn unwatch(&self, who: PyRef<'_, PyActorRef>) -> PyResult<()> {
        let id = who.0.id();
        self.with(|c| c.unwatch(id))?;
        lock(&self.watched).remove(&id);
        Ok(())
    }

    /// Handles the next messages with `behavior(ctx, msg)` instead of the actor's handlers
    /// (kept underneath: `unbecome` goes back).
    fn r#become(&self, py: Python<'_>, behavior: Py<PyAny>) -> PyResult<()> {
        self.with(|c| {
            c.become_(move |a: &mut PyActor, c, msg| a.call_behavior(&behavior, c, msg));
        })?;
        self.interrupt(py)
    }

    /// `await ctx.receive(matcher, timeout=None)` in an `async def` handler: the next message
    /// that matches (a type, a tuple of types or a predicate); the others wait in order and
    /// are handled after it; `TimeoutError` after `timeout` seconds on the run's clock.
    #[pyo3(signature = (matcher, timeout = None))]
    fn receive(
        &self,
        py: Python<'_>,
        matcher: Py<PyAny>,
        timeout: Option<Py<PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        RECEIVE
            .import(py, "weir._actors", "_Receive")?
            .call1((matcher, timeout))
            .map(Bound::unbind)
    }

    /// Starts the Rust receive for a suspended handler: `matcher(msg)` picks the message and
    /// `then(ctx, msg, timed_out)` resumes the handler.
    fn _receive_then(
        &self,
        py: Python<'_>,
        matcher: Py<PyAny>,
        timeout: Option<f64>,
        then: Py<PyAny>,
    ) -> PyResult<()> {
        let timeout = timeout
            .map(std::time::Duration::try_from_secs_f64)
            .transpose()
            .map_err(|e| pyo3::exceptions::PyValueError::new_err(format!("receive: {e}")))?;
        let r = self.with(|c| {
            let path = c.path().to_owned();
            c.receive(
                move |m: &PyObj| {
                    crate::gil::with(|py| {
                        match matcher.bind(py).call1((m.0.bind(py),)).and_then(|r| r.is_truthy()) {
                            Ok(yes) => yes,
                            Err(e) => {
                                tracing::warn!(actor = %path, error = %e, "a receive's matcher raised: no match");
                                false
                            }
                        }
                    })
                },
                timeout,
                move |a: &mut PyActor, c, msg| a.call_receive(&then, c, msg),
            )
        })?;
        r.map_err(|e| crate::errors::to_py_err(py, &e))?;
        self.interrupt(py)
    }

    /// Goes back to the behaviour before the last `become`.
    fn unbecome(&self) -> PyResult<()> {
        self.with(|c| c.unbecome())
    }

    /// Keeps the message being handled (with its sender) for `unstash_all`; the handler fails
    /// when the stash is full (the message then goes to dead letters).
    fn stash(&self, py: Python<'_>) -> PyResult<()> {
        self.with(|_| self.stash.store(true, Ordering::Release))?;
        self.interrupt(py)
    }

    /// Puts every stashed message back in front of the mailbox, in the order they were stashed.
    fn unstash_all(&self, py: Python<'_>) -> PyResult<()> {
        self.with(|c| c.unstash_all())?;
        self.interrupt(py)
    }

    /// Messages in the stash.
    fn stashed(&self) -> PyResult<usize> {
        self.with(|c| c.stashed())
    }

    /// Delivers `msg` to this actor once, `delay` seconds from now on the run's clock
    /// (replacing a timer of the same key).
    fn schedule_once(&self, key: String, delay: f64, msg: Py<PyAny>) -> PyResult<()> {
        let d = secs("delay", delay)?;
        self.with(|c| c.schedule_once(key, d, PyObj(msg)))
    }

    /// Delivers `msg` to this actor every `interval` seconds until cancelled (replacing a timer
    /// of the same key).
    fn schedule_periodically(&self, key: String, interval: f64, msg: Py<PyAny>) -> PyResult<()> {
        let d = secs("interval", interval)?;
        self.with(|c| c.schedule_periodically(key, d, PyObj(msg)))
    }

    /// Cancels the timer `key`; `True` when one was active.
    fn cancel_timer(&self, key: String) -> PyResult<bool> {
        self.with(|c| c.cancel_timer(key))
    }

    /// Whether the timer `key` is active.
    fn is_timer_active(&self, key: String) -> PyResult<bool> {
        self.with(|c| c.is_timer_active(key))
    }

    /// Parks the actor (its handler runs in a pool process): until `_unpark` it is handed only
    /// what the returned wake-up delivers.
    fn _park(&self) -> PyResult<super::park::PyWakeup> {
        self.with(|c| super::park::PyWakeup(c.park()))
    }

    /// Ends the park: what waited is handled from the next turn, in order.
    fn _unpark(&self) -> PyResult<()> {
        self.with(|c| c.unpark())
    }

    /// Takes the reply address of the message being handled (for a later `_restore_sender`).
    fn _take_sender(&self) -> PyResult<super::park::PySenderSlot> {
        self.with(|c| super::park::PySenderSlot(Mutex::new(c.take_sender())))
    }

    /// Makes `slot` the reply address of the message being handled.
    fn _restore_sender(&self, slot: PyRef<'_, super::park::PySenderSlot>) -> PyResult<()> {
        let s = slot.take();
        self.with(|c| c.restore_sender(s))
    }

    /// Puts `msgs` back in front of the queue after this call, in order (behind what
    /// `unstash_all` puts back), each with its `SenderSlot` from `slots` (`None`: no sender).
    fn _requeue(&self, msgs: &Bound<'_, PyAny>, slots: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut items = Vec::new();
        for (m, s) in msgs.try_iter()?.zip(slots.try_iter()?) {
            let (m, s) = (m?, s?);
            let slot = if s.is_none() {
                weir_operators::actor::SenderSlot::default()
            } else {
                s.cast::<super::park::PySenderSlot>()?.get().take()
            };
            items.push((PyObj::from_bound(m), slot));
        }
        self.with(|c| c.requeue(items))
    }

    /// Stashes `msg` (with the current reply address); raises when the stash is full.
    fn _stash_message(&self, py: Python<'_>, msg: Py<PyAny>) -> PyResult<()> {
        self.with(|c| c.stash(PyObj(msg)))?
            .map_err(|e| to_py_err(py, &e))
    }

    /// Sends `msg` to dead letters as a message this actor does not handle (the fallback of
    /// `weir.Actor.handle`).
    fn _unhandled(&self, py: Python<'_>, msg: Py<PyAny>) -> PyResult<()> {
        let tp = msg
            .bind(py)
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string());
        let reason = format!("no handler for a message of type '{tp}'");
        self.with(|c| c.dead_letter(PyObj(msg), &reason))
    }

    fn __repr__(&self) -> String {
        match self.with(|c| c.path().to_owned()) {
            Ok(p) => format!("ActorContext({p})"),
            Err(_) => "ActorContext(outside its actor's hooks)".to_owned(),
        }
    }
}
