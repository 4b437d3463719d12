"""Actors whose hooks run in an interpreter pool (``weir.Flow.actor(Cls, pool=p)``).

The actor's cell stays in the Rust actor stage: mailbox, stash, timers, supervision and
checkpoints are the inline actor's. The instance in that cell is a :class:`_Pooled` proxy;
the user's instance lives in one worker of the pool (``pool.backend.pin()``), and the proxy
ships it each batch of messages as one pinned job, then parks the cell (``ctx._park()``): the
stage goes on with other work, and the cell is handed nothing but the job's reply, delivered
by the worker's reader thread as a notice (``_Done``). Backpressure holds meanwhile: the
mailbox and the stream input wait.

In the worker the hooks get a :class:`_RCtx`, which records what they ask of the context
(emit, reply, tell, stash, timers, spawn, ...) as effects; the proxy applies each message's
effects through the real context, with that message's sender restored, so replies and stashes
act as for an inline actor. ``become``/``unbecome`` stay in the worker. A hook that stashes
keeps going; one that unstashes or stops ends its batch there, and the proxy puts the messages
it did not run back in front of the queue (``ctx._requeue``), behind the unstashed ones.

Faults: when the worker dies (or a call runs past ``handler_time_limit``, which then is the
pool's call timeout), the proxy starts a fresh instance in another worker, with the state of
the last job when ``checkpointed=True`` (the worker returns ``snapshot_state()`` with every
job), runs the messages of the job before the one that killed the worker again, and fails
that message with ``WorkerCrashed`` (``CallTimeout``), which the supervisor handles as a
handler error; a supervised restart then keeps that last state. Messages behind it wait in
order. A worker that died between calls (no culprit) runs the job again, at most twice.

Refs cross the process boundary as tokens: an ``ActorRef`` in a message or an argument is
pickled as a :class:`_Ref` (``copyreg``), which the worker's context accepts as a target and
which comes back as the same ``ActorRef``.
"""

from __future__ import annotations

import copyreg
import inspect
import itertools
import logging
import os
import pickle
import threading
import weakref
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Set, Tuple

from . import _native
from ._actors import Actor, _resolve
from ._worker import out_of_band

_log = logging.getLogger("weir.actors")

_NONE: Any = ("weir-no-state",)
_ids = itertools.count(1)

# ---------------------------------------------------------------------------------------------
# Refs across the process boundary


_refs_lock = threading.Lock()
# token -> [ActorRef, number of proxies holding it]
_REFS: Dict[Any, List[Any]] = {}
_TOKENS: Dict[Any, Any] = {}
_local = threading.local()


def _reduce_ref(r: Any) -> Tuple[Any, Tuple[Any, str]]:
    owner = getattr(_local, "owner", None)
    if owner is None:
        raise TypeError("a weir.ActorRef cannot be pickled, except in a message to an actor in an interpreter pool")
    return (_worker_ref, (owner._token(r), r.path))


copyreg.pickle(_native.ActorRef, _reduce_ref)


def _worker_ref(token: Any, path: Optional[str]) -> "_Ref":
    return _Ref(token, path)


def _parent_ref(token: Any) -> Any:
    with _refs_lock:
        e = _REFS.get(token)
    return e[0] if e is not None else _Unresolved(token)


class _Unresolved:
    """A ref to a child spawned by the same hook call (resolved when used as a target)."""

    __slots__ = ("token",)

    def __init__(self, token: Any) -> None:
        self.token = token


class _Ref:
    """An ``ActorRef`` as a pool actor's hooks see it in the worker: a target for ``ctx.tell``
    (and ``ref.tell``), compared by identity of the actor it stands for."""

    __slots__ = ("token", "path")

    def __init__(self, token: Any, path: Optional[str]) -> None:
        self.token, self.path = token, path

    def __reduce__(self) -> Tuple[Any, Tuple[Any]]:
        return (_parent_ref, (self.token,))

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, _Ref) and other.token == self.token

    def __hash__(self) -> int:
        return hash(("weir-ref", self.token))

    def __repr__(self) -> str:
        return f"ActorRef({self.path or self.token})"

    def tell(self, msg: Any, timeout: Optional[float] = None) -> str:
        """Tells ``msg`` (as ``ctx.tell(self, msg)`` of the hook running now)."""
        return _running().tell(self, msg)

    def try_tell(self, msg: Any) -> str:
        """As :meth:`tell`."""
        return _running().tell(self, msg)


class _Cloud:
    """Pickles what it wraps with cloudpickle (classes and functions of the parent's
    ``__main__`` by value, so a script's message classes reach the worker), its large buffers
    still out of band."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        blob, bufs = _cloud_dumps(self.obj)
        return (_uncloud, (blob, *bufs))


_PICKLER: List[Any] = []


def _pickler() -> Any:
    """cloudpickle's pickler, but a memoryview pickles as its buffer (out of band) instead of
    a copy to ``bytes``."""
    if not _PICKLER:
        from collections import ChainMap

        import cloudpickle

        def view(m: memoryview) -> Tuple[Any, Tuple[pickle.PickleBuffer]]:
            return (memoryview, (pickle.PickleBuffer(m),))

        class ViewPickler(cloudpickle.Pickler):  # type: ignore[misc, name-defined]
            dispatch_table = ChainMap({memoryview: view}, cloudpickle.Pickler.dispatch_table)

        _PICKLER.append(ViewPickler)
    return _PICKLER[0]


def _cloud_dumps(obj: Any) -> Tuple[bytes, List[memoryview]]:
    """``obj`` pickled, its large buffers out of band: by plain pickle (five times faster)
    unless that names ``__main__`` or fails, then by cloudpickle."""
    import io

    bufs: List[memoryview] = []
    oob = out_of_band(bufs)
    try:
        blob = pickle.dumps(obj, protocol=5, buffer_callback=oob)
        if b"__main__" not in blob:
            return blob, bufs
    except Exception:  # noqa: BLE001 - e.g. a class cloudpickle made here from the parent's script
        pass
    bufs.clear()
    f = io.BytesIO()
    _pickler()(f, protocol=5, buffer_callback=oob).dump(obj)
    return f.getvalue(), bufs


def _uncloud(blob: bytes, *bufs: Any) -> Any:
    # (`buffers=` only when there are some, as the pool does.)
    return pickle.loads(blob, buffers=bufs) if bufs else pickle.loads(blob)


# ---------------------------------------------------------------------------------------------
# The worker side


class _Hosted:
    """A pool actor's instance in a worker."""

    __slots__ = ("inst", "ctx", "path", "me", "behaviors", "timers", "broken", "seq")

    def __init__(self, inst: Any, path: str, me: Any) -> None:
        self.inst, self.path, self.me = inst, path, me
        self.ctx = _RCtx(self)
        self.behaviors: List[Any] = []
        self.timers: Set[str] = set()
        self.broken = -1  # the job whose run ended early (its later messages are skipped)
        self.seq = -1


_HOSTED: Dict[int, _Hosted] = {}
_RUNNING: List[Optional["_RCtx"]] = [None]
_children = itertools.count(1)


def _running() -> "_RCtx":
    c = _RUNNING[0]
    if c is None:
        raise RuntimeError("an ActorRef is usable in a pool worker only inside its actor's hooks")
    return c


class _RCtx:
    """The context a pool actor's hooks get in the worker: what they ask for is recorded and
    applied by the proxy in the parent (see the module doc)."""

    def __init__(self, h: _Hosted) -> None:
        self._h = h
        self._fx: List[Tuple[Any, ...]] = []
        self._sender: Optional[str] = None
        self._now = 0.0
        self._brk = False
        self._stashed = 0

    def emit(self, x: Any, /) -> None:
        self._fx.append(("emit", x))

    def emit_all(self, xs: Any) -> None:
        self._fx.append(("emit_all", list(xs)))

    def reply(self, x: Any) -> bool:
        self._fx.append(("reply", x))
        return self._sender is not None

    @property
    def sender(self) -> Optional[str]:
        return self._sender

    @property
    def self_ref(self) -> _Ref:
        return _Ref(self._h.me, self._h.path)

    @property
    def path(self) -> str:
        return self._h.path

    def now(self) -> float:
        return self._now

    def tell(self, to: Any, msg: Any) -> str:
        self._fx.append(("tell", to, msg))
        return "enqueued"

    def forward(self, to: Any, msg: Any) -> str:
        self._fx.append(("forward", to, msg))
        return "enqueued"

    def spawn(self, factory: Any, **kwargs: Any) -> _Ref:
        import cloudpickle

        token = f"child-{os.getpid()}-{next(_children)}"
        self._fx.append(("spawn", token, cloudpickle.dumps(factory), kwargs))
        return _Ref(token, None)

    def stop(self, child: Any = None) -> None:
        self._fx.append(("stop", child))
        if child is None:
            self._brk = True

    def watch(self, who: Any) -> None:
        self._fx.append(("watch", who))

    def unwatch(self, who: Any) -> None:
        self._fx.append(("unwatch", who))

    def become(self, behavior: Callable[[Any, Any], Any]) -> None:
        self._h.behaviors.append(behavior)

    def unbecome(self) -> None:
        if self._h.behaviors:
            self._h.behaviors.pop()

    def receive(self, matcher: Any, timeout: Optional[float] = None) -> Any:
        raise TypeError("ctx.receive is not available to an actor in an interpreter pool (pool=): run it inline")

    def stash(self) -> None:
        self._fx.append(("stash",))
        self._stashed += 1

    def unstash_all(self) -> None:
        self._fx.append(("unstash_all",))
        self._brk = True

    def stashed(self) -> int:
        return self._stashed

    def schedule_once(self, key: str, delay: float, msg: Any) -> None:
        self._fx.append(("schedule_once", key, delay, msg))
        self._h.timers.add(key)

    def schedule_periodically(self, key: str, interval: float, msg: Any) -> None:
        self._fx.append(("schedule_periodically", key, interval, msg))
        self._h.timers.add(key)

    def cancel_timer(self, key: str) -> bool:
        self._fx.append(("cancel_timer", key))
        was = key in self._h.timers
        self._h.timers.discard(key)
        return was

    def is_timer_active(self, key: str) -> bool:
        return key in self._h.timers

    def _unhandled(self, msg: Any) -> None:
        self._fx.append(("unhandled", msg))

    def __repr__(self) -> str:
        return f"ActorContext({self._h.path}, in a pool worker)"


def _exc(e: BaseException) -> bytes:
    from weir._worker import _portable

    return pickle.dumps(_portable(e), protocol=5)


def _effects(c: _RCtx) -> Tuple[Any, Optional[bytes]]:
    """The recorded effects, pickled with their large buffers (memoryviews, numpy arrays)
    left out of band, so the reply ships them without copying; or an error when they do not
    pickle."""
    fx, c._fx = c._fx, []
    if not fx:
        return b"", None
    try:
        return _cloud_dumps(fx), None
    except Exception as e:  # noqa: BLE001
        err = pickle.PicklingError(f"what this message's handler emitted or sent cannot be pickled to the parent: {type(e).__name__}: {e}")
        return b"", _exc(err)


def _call(h: _Hosted, seq: int, fn: Callable[[], Any]) -> Tuple[Any, str, Optional[bytes]]:
    """Runs one hook with ``h``'s context: ``(effects, status, error or state)``."""
    c = h.ctx
    c._brk = False
    _RUNNING[0] = c
    try:
        r = fn()
        if r is not None and inspect.iscoroutine(r):
            r.close()
            raise TypeError("an async def handler (ctx.receive) cannot run in an interpreter pool (pool=): run this actor inline")
    except Exception as e:  # noqa: BLE001 - supervised in the parent
        h.broken = seq
        fx, _ = _effects(c)
        return fx, "err", _exc(e)
    finally:
        _RUNNING[0] = None
    fx, bad = _effects(c)
    if bad is not None:
        h.broken = seq
        return fx, "err", bad
    if c._brk:
        h.broken = seq
        return fx, "brk", None
    return fx, "ok", None


def host(cmd: Tuple[int, int, str, Any]) -> Tuple[Any, str, Optional[bytes]]:
    """Runs one command of a pool actor in this worker (the pool function of every pool
    actor): ``(actor id, job, op, argument)`` -> ``(effects, status, extra)``."""
    aid, seq, op, arg = cmd
    if op == "start":
        blob, path, me, state = arg
        _HOSTED.pop(aid, None)
        try:
            inst = pickle.loads(blob)()
            if not isinstance(inst, Actor):
                raise TypeError(f"the actor factory returned {type(inst).__name__}, not a weir.Actor")
        except Exception as e:  # noqa: BLE001
            return b"", "err", _exc(e)
        h = _HOSTED[aid] = _Hosted(inst, path, me)

        def start() -> None:
            inst.pre_start(h.ctx)
            if state != _NONE:
                inst.restore_state(state)

        return _call(h, seq, start)
    h = _HOSTED.get(aid)
    if h is None:
        return b"", "err", _exc(RuntimeError("the pool actor is not running in this worker"))
    if op == "msg":
        if h.broken == seq:
            return b"", "skip", None
        msg, sender, now, stashed = arg
        c = h.ctx
        if h.seq != seq:
            h.seq, c._stashed = seq, stashed
        c._sender, c._now = sender, now
        inst = h.inst
        if h.behaviors:
            b = h.behaviors[-1]
            return _call(h, seq, lambda: b(c, msg))
        f = _resolve(type(inst), type(msg))
        return _call(h, seq, lambda: f(inst, c, msg))
    if op == "hook":
        name, args = arg
        return _call(h, seq, lambda: getattr(h.inst, name)(h.ctx, *args))
    if op == "state":
        try:
            return b"", "ok", _cloud_dumps(h.inst.snapshot_state())
        except Exception as e:  # noqa: BLE001
            return b"", "err", _exc(e)
    if op == "restore":
        return _call(h, seq, lambda: h.inst.restore_state(arg))
    if op == "drop":
        _HOSTED.pop(aid, None)
        return b"", "ok", None
    return b"", "err", _exc(ValueError(f"unknown pool actor command {op!r}"))


# ---------------------------------------------------------------------------------------------
# The parent side


_fids: Dict[int, int] = {}
_fids_lock = threading.Lock()
# A crashed pool actor's last state, handed from the failed proxy to its restarted one.
_HANDOFF: Dict[str, Any] = {}


#: How long ``pre_restart`` and ``post_stop`` of a pool actor are waited for.
_SYNC_WAIT_S = 30.0


def _forget(backend: Any, w: Any, aid: int) -> None:
    """Drops a pool actor's instance from its worker (from the hand-out thread: this may run
    on a worker's reader thread, which must not send) and unpins it."""
    backend.unpin(w)

    def drop() -> None:
        if w.alive:
            backend.submit_pinned(w, _fid(backend), [(aid, 0, "drop", None)], lambda out, fails: None)

    backend.defer(drop)


def _fid(backend: Any) -> int:
    with _fids_lock:
        fid = _fids.get(id(backend))
        if fid is None:
            fid = _fids[id(backend)] = next(_ids) + (1 << 40)
            backend.register(fid, "map", host)
        return fid


class _Spec:
    """What every instance of one pool actor's props shares."""

    __slots__ = ("pool", "blob", "checkpointed", "timeout", "name")

    def __init__(self, pool: Any, props: Any, checkpointed: bool, timeout: Optional[float], name: str) -> None:
        import cloudpickle

        self.pool, self.checkpointed, self.timeout, self.name = pool, checkpointed, timeout, name
        self.blob = cloudpickle.dumps(props)


class _Done:
    """A pool job's reply, delivered to the parked proxy; a failure it raises names the
    message (``failed``)."""

    __slots__ = ("seq", "out", "fails", "failed")

    def __init__(self, seq: int, out: List[Any], fails: List[Any]) -> None:
        self.seq, self.out, self.fails, self.failed = seq, out, fails, _NONE

    def __repr__(self) -> str:
        return repr(self.failed) if self.failed is not _NONE else f"<pool actor reply {self.seq}>"


class _Job:
    """One job of a proxy: ``kind`` is ``start``, ``msgs``, ``hook`` or ``restore``; ``then``
    is an ``(error, message)`` to fail with once it is applied (after a crash's replay)."""

    __slots__ = ("seq", "kind", "msgs", "slots", "arg", "then")

    def __init__(self, kind: str, msgs: List[Any], slots: List[Any], arg: Any = None, then: Any = None) -> None:
        self.seq, self.kind, self.msgs, self.slots, self.arg, self.then = 0, kind, msgs, slots, arg, then


class _Pooled(Actor):
    """The inline stand-in of a pool actor (see the module doc)."""

    _weir_dispatch_all = True  # every message goes to `handle`, whatever its type

    def __init__(self, spec: _Spec, strategy: Any) -> None:
        self._spec = spec
        self.supervisor_strategy = strategy
        self._w: Any = None
        self._aid = 0
        self._jobs: Deque[_Job] = deque()
        self._forget: Any = None
        self._state: Any = _NONE
        self._ctx: Any = None
        self._path = spec.name
        self._me: Any = None
        self._owned: Set[Any] = set()
        self._blind = 0

    # -- refs

    def _token(self, r: Any) -> Any:
        with _refs_lock:
            tok = _TOKENS.get(r)
            if tok is None:
                tok = _TOKENS[r] = next(_ids)
                _REFS[tok] = [r, 0]
            if tok not in self._owned:
                self._owned.add(tok)
                _REFS[tok][1] += 1
            return tok

    def _adopt(self, token: Any, r: Any) -> None:
        with _refs_lock:
            _REFS[token] = [r, 1]
            _TOKENS[r] = token
            self._owned.add(token)

    def _release(self) -> None:
        with _refs_lock:
            for tok in self._owned:
                e = _REFS.get(tok)
                if e is not None:
                    e[1] -= 1
                    if e[1] <= 0:
                        del _REFS[tok]
                        _TOKENS.pop(e[0], None)
            self._owned.clear()

    @staticmethod
    def _target(x: Any) -> Any:
        if isinstance(x, _Unresolved):
            r = _parent_ref(x.token)
            if isinstance(r, _Unresolved):
                raise RuntimeError(f"a pool actor named an actor ref unknown here ({x.token})")
            return r
        return x

    # -- jobs

    def _commands(self, job: _Job) -> List[Tuple[int, int, str, Any]]:
        a, s = self._aid, job.seq
        if job.kind == "msgs":
            ctx = self._ctx
            now, stashed = ctx.now(), ctx.stashed()
            cmds = [(a, s, "msg", (_Cloud(m), job.arg, now, stashed)) for m in job.msgs]
        elif job.kind == "start":
            cmds = [(a, s, "start", (self._spec.blob, self._path, self._me, _Cloud(job.arg)))]
        else:
            cmds = [(a, s, job.kind, _Cloud(job.arg))]
        if self._spec.checkpointed:
            cmds.append((a, s, "state", None))
        return cmds

    def _submit(self, ctx: Any, job: _Job) -> None:
        # Unique across proxies: a reply of a job a failed instance left behind never matches
        # a job of the instance that replaced it in the same cell.
        job.seq = seq = next(_ids)
        wake = ctx._park()
        self._jobs.append(job)
        backend = self._spec.pool.backend
        cmds = self._commands(job)
        _local.owner = self
        try:
            backend.submit_pinned(self._w, _fid(backend), cmds, lambda out, fails: wake.wake(_Done(seq, out, fails)), self._spec.timeout)
        finally:
            _local.owner = None

    def _sync(self, ctx: Any, kind: str, arg: Any) -> None:
        """Runs one command now, waiting for it (``pre_restart``, ``post_stop``: the cell does
        not wait in a park there), and applies its effects."""
        if self._w is None or not self._w.alive:
            return
        done = threading.Event()
        got: List[Any] = []

        def finish(out: List[Any], fails: List[Any]) -> None:
            got.append((out, fails))
            done.set()

        backend = self._spec.pool.backend
        _local.owner = self
        try:
            backend.submit_pinned(self._w, _fid(backend), [(self._aid, next(_ids), kind, _Cloud(arg))], finish, self._spec.timeout)
        finally:
            _local.owner = None
        if not done.wait(_SYNC_WAIT_S):
            _log.warning("pool actor %s: %s did not answer within %ss", self._path, arg[0] if kind == "hook" else kind, _SYNC_WAIT_S)
            return
        out, fails = got[0]
        if fails:
            _log.warning("pool actor %s: %s failed: %s", self._path, arg[0] if kind == "hook" else kind, fails[0][1])
            return
        fx, status, extra = out[0]
        self._apply(ctx, None, fx)
        if status == "err" and extra is not None:
            _log.warning("pool actor %s: %s raised %r", self._path, arg[0] if kind == "hook" else kind, pickle.loads(extra))

    def _launch(self, ctx: Any, state: Any, then: Any = None) -> None:
        """A fresh instance in a worker (with ``state``), started by a ``start`` job."""
        backend = self._spec.pool.backend
        if self._forget is not None:
            self._forget()  # the previous instance (its worker died)
        self._w = backend.pin()
        self._aid = next(_ids)
        # A proxy dropped without post_stop (the run was cancelled) frees its instance too.
        self._forget = weakref.finalize(self, _forget, backend, self._w, self._aid)
        self._forget.atexit = False  # at exit the pool's workers go anyway
        self._submit(ctx, _Job("start", [], [], state, then))

    # -- hooks

    def pre_start(self, ctx: Any) -> None:
        self._ctx = ctx
        self._path = ctx.path
        self._me = self._token(ctx.self_ref)
        self._launch(ctx, _HANDOFF.pop(self._path, _NONE))

    def restore_state(self, state: Any) -> None:
        self._submit(self._ctx, _Job("restore", [], [], state))

    def snapshot_state(self) -> Any:
        return None if self._state is _NONE else self._state

    def handle(self, ctx: Any, msg: Any) -> None:
        if type(msg) is _Done:
            self._complete(ctx, msg)
            return
        sender = ctx.sender
        slot = ctx._take_sender() if sender is not None else None
        self._submit(ctx, _Job("msgs", [msg], [slot], sender))

    def handle_many(self, ctx: Any, msgs: List[Any]) -> int:
        """A batch of stream elements (no senders): one job."""
        self._submit(ctx, _Job("msgs", list(msgs), [None] * len(msgs), None))
        return len(msgs)

    def on_terminated(self, ctx: Any, who: Any) -> None:
        self._submit(ctx, _Job("hook", [], [], ("on_terminated", (who,))))

    def pre_restart(self, ctx: Any, error: BaseException) -> None:
        from .errors import CallTimeout, WorkerCrashed

        if self._spec.checkpointed and isinstance(error, (WorkerCrashed, CallTimeout)) and self._state is not _NONE:
            _HANDOFF[self._path] = self._state
        self._sync(ctx, "hook", ("pre_restart", (error,)))
        self._drop()

    def post_stop(self, ctx: Any) -> None:
        self._sync(ctx, "hook", ("post_stop", ()))
        self._drop()
        _HANDOFF.pop(self._path, None)

    def _drop(self) -> None:
        if self._forget is not None:
            self._forget()
            self._forget = None
        self._w = None
        self._jobs.clear()
        self._release()

    # -- replies

    def _complete(self, ctx: Any, d: _Done) -> None:
        if not self._jobs or self._jobs[0].seq != d.seq:
            return  # a reply of a job given up when its worker died
        job = self._jobs.popleft()
        if not self._jobs:
            ctx._unpark()
        if d.fails:
            self._recover(ctx, job, d)
            return
        self._blind = 0
        out = d.out
        if self._spec.checkpointed:
            _, status, extra = out[-1]
            if status == "err":
                raise pickle.loads(extra)
            self._state = _uncloud(extra[0], *extra[1])
        if job.kind != "msgs":
            fx, status, extra = out[0]
            self._apply(ctx, None, fx)
            if status == "err":
                raise pickle.loads(extra)
        else:
            for i, m in enumerate(job.msgs):
                fx, status, extra = out[i]
                if status == "skip":
                    ctx._requeue(job.msgs[i:], job.slots[i:])
                    break
                slot = job.slots[i]
                if slot is not None:
                    ctx._restore_sender(slot)
                self._apply(ctx, m, fx)
                if status == "err":
                    ctx._requeue(job.msgs[i + 1 :], job.slots[i + 1 :])
                    d.failed = m
                    raise pickle.loads(extra)
        if job.then is not None:
            err, m = job.then
            d.failed = m
            raise err

    def _apply(self, ctx: Any, m: Any, fx: Any) -> None:
        """Applies one message's recorded effects through the real context."""
        if not fx:
            return
        blob, bufs = fx
        # (`buffers=` only when there are some, as the pool does.)
        for e in pickle.loads(blob, buffers=bufs) if bufs else pickle.loads(blob):
            op = e[0]
            if op == "emit":
                ctx.emit(e[1])
            elif op == "emit_all":
                ctx.emit_all(e[1])
            elif op == "reply":
                ctx.reply(e[1])
            elif op == "tell":
                ctx.tell(self._target(e[1]), e[2])
            elif op == "forward":
                ctx.forward(self._target(e[1]), e[2])
            elif op == "stash":
                ctx._stash_message(m)
            elif op == "unstash_all":
                ctx.unstash_all()
            elif op == "stop":
                if e[1] is None:
                    ctx.stop()
                else:
                    ctx.stop(self._target(e[1]))
            elif op == "schedule_once":
                ctx.schedule_once(e[1], e[2], e[3])
            elif op == "schedule_periodically":
                ctx.schedule_periodically(e[1], e[2], e[3])
            elif op == "cancel_timer":
                ctx.cancel_timer(e[1])
            elif op == "spawn":
                self._adopt(e[1], ctx.spawn(pickle.loads(e[2]), **e[3]))
            elif op == "watch":
                ctx.watch(self._target(e[1]))
            elif op == "unwatch":
                ctx.unwatch(self._target(e[1]))
            elif op == "unhandled":
                ctx._unhandled(e[1])

    def _recover(self, ctx: Any, job: _Job, d: _Done) -> None:
        """The job failed in the pool: its worker died, a call ran too long, or a message
        cannot be pickled (see the module doc)."""
        _, err, idx = d.fails[0]
        if idx == -3:  # the pool was closed
            raise err
        if idx == -2:
            self._unpicklable(ctx, job, err, d)
            return
        # Every job queued behind on the dead worker is lost with it.
        later = list(self._jobs)
        self._jobs.clear()
        back_msgs: List[Any] = []
        back_slots: List[Any] = []
        resubmit: List[_Job] = []
        for j in later:
            if j.kind == "msgs":
                back_msgs += j.msgs
                back_slots += j.slots
            elif j.kind != "start":
                resubmit.append(j)
        state = self._state if self._spec.checkpointed else _NONE
        if job.kind != "msgs":
            ctx._requeue(back_msgs, back_slots)
            if job.kind == "start" or idx >= 0:
                raise err
            self._launch(ctx, state)
            for j in [job] + resubmit:
                self._submit(ctx, _Job(j.kind, [], [], j.arg))
            return
        n = len(job.msgs)
        if 0 <= idx < n:
            self._blind = 0
            ctx._requeue(job.msgs[idx + 1 :] + back_msgs, job.slots[idx + 1 :] + back_slots)
            replay, slots, then = job.msgs[:idx], job.slots[:idx], (err, job.msgs[idx])
        elif idx >= n:  # its snapshot killed it: the messages ran
            ctx._requeue(back_msgs, back_slots)
            replay, slots, then = job.msgs, job.slots, (err, _NONE)
        else:
            self._blind += 1
            if self._blind > 2:
                ctx._requeue(job.msgs[1:] + back_msgs, job.slots[1:] + back_slots)
                d.failed = job.msgs[0]
                raise err
            ctx._requeue(job.msgs + back_msgs, job.slots + back_slots)
            replay, slots, then = [], [], None
        if not self._spec.checkpointed:
            _log.warning("pool actor %s: its worker died, a fresh instance takes over without its state (checkpointed=True keeps it)", self._path)
        self._launch(ctx, state)
        if replay:
            self._submit(ctx, _Job("msgs", replay, slots, job.arg, then))
        for j in resubmit:
            self._submit(ctx, _Job(j.kind, [], [], j.arg))
        if not replay and then is not None:
            d.failed = then[1]
            raise err

    def _unpicklable(self, ctx: Any, job: _Job, err: BaseException, d: _Done) -> None:
        """A message that cannot be pickled to the worker fails alone, after those before it."""
        if job.kind != "msgs":
            raise err
        _local.owner = self
        try:
            k = 0
            for k, m in enumerate(job.msgs):  # noqa: B007
                try:
                    _cloud_dumps(m)
                except Exception as e:  # noqa: BLE001
                    err = pickle.PicklingError(f"a message to an actor in an interpreter pool must pickle: {type(e).__name__}: {e}")
                    break
        finally:
            _local.owner = None
        later = list(self._jobs)
        self._jobs.clear()
        back_msgs = [m for j in later for m in j.msgs]
        back_slots = [s for j in later for s in j.slots]
        if k == 0:
            ctx._requeue(job.msgs[1:] + back_msgs, job.slots[1:] + back_slots)
            d.failed = job.msgs[0]
            raise err
        ctx._requeue(job.msgs[k:] + back_msgs, job.slots[k:] + back_slots)
        self._submit(ctx, _Job("msgs", job.msgs[:k], job.slots[:k], job.arg))


def factory(props: Any, pool: Any, checkpointed: bool, timeout: Optional[float], name: str) -> Callable[[], Actor]:
    """The native factory of a pool actor: a proxy per start and restart."""
    if pool.backend_name != "process":
        raise ValueError(f"an actor runs in an interpreter pool of processes only, not of {pool.backend_name!r} workers")
    spec = _Spec(pool, props, checkpointed, timeout, name)
    strategy = getattr(props, "supervisor_strategy", None) if isinstance(props, type) else None

    def make() -> Actor:
        return _Pooled(spec, strategy)

    return make
