//! `PyActor`: a `weir.Actor` instance as a Rust [`Actor`] over Python objects, so Python actors
//! run inside the one Rust actor stage (`weir_operators::actor`): supervision, mailboxes, stash,
//! timers and the stage loop are the Rust ones; this only calls the Python hooks.
//!
//! Every hook runs on the run's Python dispatcher, whose serving thread holds the GIL while it
//! polls the actor stage's island. A batch of stream elements is one Python call
//! (`handle_batch`: `weir._actors._run_batch` loops over it); a message told to a ref (it has
//! a sender) is one call of its handler. A message's handler is the instance class's
//! `on_<snake_case(type(msg).__name__)>` method or its `handle`, resolved once per class and
//! type by `weir._actors._resolve` and kept here (and in `_run_batch`'s cache) by type.

use super::args::HandlerArgs;
use super::ctx::PyActorCtx;
use super::strategy::PySupervisorStrategy;
use crate::obj::{PyObj, py_cause, short_repr, user_error_traced};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyList, PyType};
use weir_graph::{SnapshotError, StageError};
use weir_operators::actor::{Actor, ActorId, Ctx, SupervisorStrategy};

/// Message types whose handlers an instance keeps (more are resolved through the class cache).
const KEPT_TYPES: usize = 16;

/// The handlers of an actor by message type, and the tuple their calls reuse.
#[derive(Default)]
pub(crate) struct Handlers {
    by_type: Vec<(Py<PyType>, Py<PyAny>)>,
    args: HandlerArgs,
}

/// A Python actor instance inside the Rust actor stage.
pub struct PyActor {
    /// The instance, or the exception its factory raised (`pre_start` fails with it).
    inst: Result<Py<PyAny>, PyErr>,
    /// The context object its hooks receive (one per instance).
    ctx: Option<Py<PyActorCtx>>,
    strategy: SupervisorStrategy,
    /// Handlers by message type (the type object kept alive with them), and their arguments.
    handlers: Handlers,
    /// The state a checkpoint saved, handed to `restore_state` after `pre_start`.
    restored: Option<PyObj>,
}

static RESOLVE: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static RUN_BATCH: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// The instance's `supervisor_strategy` (a `weir.SupervisorStrategy`, or `None` for the default).
fn strategy_of(inst: &Bound<'_, PyAny>) -> PyResult<SupervisorStrategy> {
    let s = inst.getattr("supervisor_strategy")?;
    if s.is_none() {
        return Ok(SupervisorStrategy::default());
    }
    match s.cast::<PySupervisorStrategy>() {
        Ok(s) => Ok(s.get().0.clone()),
        Err(_) => Err(pyo3::exceptions::PyTypeError::new_err(format!(
            "supervisor_strategy must be a weir.SupervisorStrategy or None, not {}",
            s.get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |n| n.to_string())
        ))),
    }
}

/// The stage error for `err` raised by `what` of actor `path` (on message `msg`), with the
/// Python traceback in its message.
fn failure(py: Python<'_>, err: PyErr, what: &str, path: &str, msg: Option<&PyObj>) -> StageError {
    let e = user_error_traced(py, err, msg, true);
    if e.kind() == weir_graph::ErrorKind::Cancelled {
        return e;
    }
    let e = e.with_stage(path);
    let e = match msg {
        Some(m) => e.with_element(&short_repr(py, m)),
        None => e,
    };
    tracing::debug!(actor = path, what, error = %e, "Python actor hook raised");
    e
}

/// The context object of an instance, made at its first hook.
fn context<'a>(
    py: Python<'_>,
    slot: &'a mut Option<Py<PyActorCtx>>,
) -> PyResult<&'a Py<PyActorCtx>> {
    if slot.is_none() {
        let batch = BATCH
            .import(py, "weir._actors", "_Batch")?
            .call0()?
            .unbind();
        *slot = Some(Py::new(py, PyActorCtx::new(batch))?);
    }
    slot.as_ref()
        .ok_or_else(|| pyo3::exceptions::PyRuntimeError::new_err("no actor context"))
}

impl PyActor {
    /// An actor whose instance could not be made (every hook fails with `error`).
    pub(crate) fn failed(error: PyErr) -> Self {
        Self {
            inst: Err(error),
            ctx: None,
            strategy: SupervisorStrategy::default(),
            handlers: Handlers::default(),
            restored: None,
        }
    }
    /// A fresh instance from `factory()` (called by the props on every start and restart).
    pub(crate) fn make(factory: &Py<PyAny>) -> Self {
        crate::gil::with(|py| {
            let made = factory
                .bind(py)
                .call0()
                .and_then(|i| strategy_of(&i).map(|s| (i.unbind(), s)));
            let (inst, strategy) = match made {
                Ok((i, s)) => (Ok(i), s),
                Err(e) => (Err(e), SupervisorStrategy::default()),
            };
            Self {
                inst,
                ctx: None,
                strategy,
                handlers: Handlers::default(),
                restored: None,
            }
        })
    }

    /// What a checkpoint saves of actor `path`: `snapshot_state()` in the value codec.
    pub(crate) fn snapshot(&self, path: &str) -> Result<Vec<u8>, SnapshotError> {
        crate::gil::with(|py| {
            let inst = self
                .inst
                .as_ref()
                .map_err(|e| SnapshotError::Encode(format!("actor '{path}': {e}")))?;
            let state = inst.bind(py).call_method0("snapshot_state").map_err(|e| {
                SnapshotError::Encode(format!("actor '{path}': snapshot_state raised {e}"))
            })?;
            crate::codec::encode(&state, crate::codec::Codec::Value).map_err(|e| {
                SnapshotError::Encode(format!("actor '{path}': cannot checkpoint a value: {e}"))
            })
        })
    }

    /// A fresh instance from `factory()` that gets the state in `bytes` after `pre_start`.
    pub(crate) fn restored(factory: &Py<PyAny>, bytes: &[u8]) -> Result<Self, SnapshotError> {
        let mut actor = Self::make(factory);
        let state = crate::gil::with(|py| crate::codec::decode(py, bytes).map(PyObj::from_bound))
            .map_err(|e| SnapshotError::Decode {
            ty: "a Python actor's state",
            reason: e.to_string(),
        })?;
        actor.restored = Some(state);
        Ok(actor)
    }

    /// Calls the handler of `msg`'s type (kept here, or resolved through the class cache) as
    /// `f(inst, ctx, msg)`.
    fn dispatch(
        py: Python<'_>,
        handlers: &mut Handlers,
        inst: &Bound<'_, PyAny>,
        pc: &Py<PyActorCtx>,
        msg: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let pc = pc.bind(py).as_any();
        let tp = msg.get_type_ptr();
        if let Some((_, f)) = handlers
            .by_type
            .iter()
            .find(|(t, _)| t.as_ptr().cast() == tp)
        {
            return handlers.args.call(py, f.bind(py), inst, pc, msg);
        }
        let tp = msg.get_type();
        let resolve = RESOLVE.import(py, "weir._actors", "_resolve")?;
        let f = resolve.call1((inst.get_type(), &tp))?;
        if handlers.by_type.len() < KEPT_TYPES {
            handlers.by_type.push((tp.unbind(), f.clone().unbind()));
        }
        handlers.args.call(py, &f, inst, pc, msg)
    }

    /// Runs `call(handlers, inst, ctx object, msg)` with `ctx` entered; stashes `msg` when
    /// the hook asked for it.
    fn run_hook(
        &mut self,
        py: Python<'_>,
        ctx: &mut Ctx<'_, Self>,
        what: &str,
        msg: Option<PyObj>,
        call: impl FnOnce(
            &mut Handlers,
            &Bound<'_, PyAny>,
            &Py<PyActorCtx>,
            Option<&Bound<'_, PyAny>>,
        ) -> PyResult<()>,
    ) -> Result<(), StageError> {
        let Self {
            inst,
            ctx: pctx,
            handlers,
            ..
        } = self;
        let inst = match inst {
            Ok(i) => i.bind(py),
            Err(e) => {
                let e = e.clone_ref(py);
                return Err(failure(py, e, "the actor's factory", ctx.path(), None));
            }
        };
        let pc = context(py, pctx).map_err(|e| failure(py, e, what, ctx.path(), None))?;
        let entered = pc.get().enter(ctx);
        let r = call(handlers, inst, pc, msg.as_ref().map(|m| m.0.bind(py)));
        let asked = entered.exit();
        match r {
            Ok(()) => {
                if asked.stash
                    && let Some(m) = msg
                {
                    ctx.stash(m)?;
                }
                Ok(())
            }
            Err(e) => Err(failure(py, e, what, ctx.path(), msg.as_ref())),
        }
    }

    /// Handles `msg` with a behaviour installed by `ctx.become(behavior)`: `behavior(ctx, msg)`.
    pub(crate) fn call_behavior(
        &mut self,
        behavior: &Py<PyAny>,
        ctx: &mut Ctx<'_, Self>,
        msg: PyObj,
    ) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.run_hook(py, ctx, "behaviour", Some(msg), |_, _, pc, m| {
                let r = behavior.bind(py).call1((pc, m))?;
                super::args::returned(py, pc.bind(py).as_any(), r)
            })
        })
    }

    /// Completes a receive of `ctx.receive(...)`: `then(ctx, msg, timed_out)` (`msg` `None`
    /// and `timed_out` true on its timeout).
    pub(crate) fn call_receive(
        &mut self,
        then: &Py<PyAny>,
        ctx: &mut Ctx<'_, Self>,
        msg: Option<PyObj>,
    ) -> Result<(), StageError> {
        crate::gil::with(|py| {
            let timed_out = msg.is_none();
            self.run_hook(py, ctx, "receive", msg, |_, _, pc, m| {
                let m = m.map_or_else(|| py.None().into_bound(py), |m| m.clone());
                then.bind(py).call1((pc, m, timed_out)).map(drop)
            })
        })
    }

    /// Calls a hook whose failure cannot be supervised (`post_stop`, `pre_restart`): logged.
    fn call_quietly(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        name: &'static str,
        arg: impl FnOnce(Python<'_>) -> Option<Py<PyAny>>,
    ) {
        crate::gil::with(|py| {
            let extra = arg(py);
            let r = self.run_hook(py, ctx, name, None, |_, inst, pc, _| {
                match extra {
                    Some(x) => inst.call_method1(name, (pc, x)),
                    None => inst.call_method1(name, (pc,)),
                }
                .map(drop)
            });
            if let Err(e) = r {
                tracing::warn!(actor = %ctx.path(), hook = name, error = %e, "actor hook raised");
            }
        });
    }
}

impl Actor for PyActor {
    type Msg = PyObj;
    type Out = PyObj;

    fn handle(&mut self, ctx: &mut Ctx<'_, Self>, msg: PyObj) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.run_hook(py, ctx, "handler", Some(msg), |handlers, inst, pc, m| {
                let Some(m) = m else { return Ok(()) };
                Self::dispatch(py, handlers, inst, pc, m)
            })
        })
    }

    /// A batch of stream elements in one Python call (`weir._actors._run_batch`), which
    /// dispatches each message as `handle` does and stops after a message that stopped the
    /// actor, installed a behaviour, stashed or unstashed.
    fn handle_batch(
        &mut self,
        ctx: &mut Ctx<'_, Self>,
        msgs: &mut std::vec::IntoIter<PyObj>,
    ) -> Result<(), StageError> {
        if msgs.len() < 2 {
            return match msgs.next() {
                Some(m) => self.handle(ctx, m),
                None => Ok(()),
            };
        }
        crate::gil::with(|py| {
            let Self {
                inst, ctx: pctx, ..
            } = self;
            let inst = match inst {
                Ok(i) => i.bind(py),
                Err(e) => {
                    let e = e.clone_ref(py);
                    return Err(failure(py, e, "the actor's factory", ctx.path(), None));
                }
            };
            let prepared = context(py, pctx).and_then(|pc| {
                let list = PyList::new(py, msgs.as_slice().iter().map(|m| m.0.bind(py)))?;
                let run = RUN_BATCH.import(py, "weir._actors", "_run_batch")?;
                Ok((pc, list, run))
            });
            let (pc, list, run) =
                prepared.map_err(|e| failure(py, e, "handler", ctx.path(), None))?;
            let st = pc.get().batch().bind(py);
            let entered = pc.get().enter(ctx);
            let r = run.call1((inst, pc, &list, st));
            let asked = entered.exit();
            drop(list);
            match r.and_then(|n| n.extract::<usize>()) {
                Ok(n) => {
                    // The handled messages are consumed; the last one is stashed if it asked.
                    let n = n.min(msgs.len());
                    let stash = asked.stash && n > 0;
                    let skip = if stash { n - 1 } else { n };
                    if skip > 0 {
                        msgs.nth(skip - 1);
                    }
                    if stash && let Some(m) = msgs.next() {
                        ctx.stash(m)?;
                    }
                    Ok(())
                }
                Err(e) => {
                    let done = st
                        .getattr("n")
                        .and_then(|n| n.extract::<usize>())
                        .unwrap_or(0);
                    if done > 0 {
                        msgs.nth(done - 1);
                    }
                    let failed = msgs.next();
                    Err(failure(py, e, "handler", ctx.path(), failed.as_ref()))
                }
            }
        })
    }

    fn pre_start(&mut self, ctx: &mut Ctx<'_, Self>) -> Result<(), StageError> {
        crate::gil::with(|py| {
            self.run_hook(py, ctx, "pre_start", None, |_, inst, pc, _| {
                inst.call_method1("pre_start", (pc,)).map(drop)
            })?;
            match self.restored.take() {
                Some(state) => self.run_hook(py, ctx, "restore_state", None, |_, inst, _, _| {
                    inst.call_method1("restore_state", (state.0.bind(py),))
                        .map(drop)
                }),
                None => Ok(()),
            }
        })
    }

    fn post_stop(&mut self, ctx: &mut Ctx<'_, Self>) {
        self.call_quietly(ctx, "post_stop", |_| None);
    }

    fn pre_restart(&mut self, ctx: &mut Ctx<'_, Self>, error: &StageError) {
        let error = error.clone();
        self.call_quietly(ctx, "pre_restart", move |py| {
            let v = match py_cause(&error) {
                Some(c) => c.value(py).clone(),
                None => crate::errors::to_py_err(py, &error).value(py).clone(),
            };
            Some(v.into_any().unbind())
        });
    }

    fn on_terminated(&mut self, ctx: &mut Ctx<'_, Self>, who: ActorId) -> Result<(), StageError> {
        crate::gil::with(|py| {
            let who = self
                .ctx
                .as_ref()
                .and_then(|c| c.get().take_watched(who))
                .unwrap_or_else(|| py.None());
            self.run_hook(py, ctx, "on_terminated", None, |_, inst, pc, _| {
                inst.call_method1("on_terminated", (pc, who)).map(drop)
            })
        })
    }

    fn supervisor_strategy(&self) -> SupervisorStrategy {
        self.strategy.clone()
    }
}
