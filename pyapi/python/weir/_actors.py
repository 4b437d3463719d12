"""Python actors: :class:`Actor`, :class:`Mailbox`, and the pieces ``Flow.actor``, ``Sink.actor``
and ``Source.actor`` build on.

An actor runs inside the Rust actor stage (the one runtime for Rust and Python actors): its
mailbox, supervision, stash, timers and the stage loop are Rust's; the stage calls the Python
hooks on the run's Python dispatcher (the GIL is held for a whole batch of messages).

Message dispatch: a message ``msg`` goes to the instance's ``on_<name>`` method, where ``<name>``
is ``type(msg).__name__`` in snake case (``Deposit`` -> ``on_deposit``, ``HTTPRequest`` ->
``on_http_request``, ``int`` -> ``on_int``, ``NoneType`` -> ``on_none_type``), and to
:meth:`Actor.handle` when the class has no such method. Only the exact type's name counts (no
walk up the message class's bases). The choice is made once per actor class and message type and
cached. A message neither takes goes to the stage's dead letters (never raising into the sender).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from . import _native
from .errors import WeirError

ActorRef = _native.ActorRef
ActorContext = _native.ActorContext
SupervisorStrategy = _native.SupervisorStrategy

__all__ = ["Actor", "ActorRef", "ActorContext", "AskTimeout", "Mailbox", "SupervisorStrategy", "handler_name"]


class AskTimeout(WeirError, TimeoutError):
    """An ``ActorRef.ask`` got no reply within its timeout (the message names the actor)."""


class Actor:
    """Base class of Python actors: state in attributes, a handler per message type.

    Hooks take the :class:`ActorContext` ``ctx`` (``emit``, ``reply``, ``tell``, ``spawn``,
    ``watch``, ``become``, ``stash``, timers, ...); one that raises is a failure its supervisor
    decides about: the parent's ``supervisor_strategy`` for a child, the stage's ``supervision``
    for the root. A restart makes a fresh instance from the class (or factory), so state in
    attributes starts over."""

    #: How this actor supervises the children it spawns (``None``: one-for-one, always restart).
    supervisor_strategy: Optional[Any] = None

    def pre_start(self, ctx: ActorContext) -> None:
        """Called before the first message (and on the fresh instance after a restart)."""

    def handle(self, ctx: ActorContext, msg: Any) -> None:
        """Handles a message no ``on_<type>`` method takes; by default it goes to dead letters."""
        ctx._unhandled(msg)

    def post_stop(self, ctx: ActorContext) -> None:
        """Called once when the actor stops (after its children); it may still emit."""

    def pre_restart(self, ctx: ActorContext, error: BaseException) -> None:
        """Called on the failed instance before a restart replaces it."""

    def on_terminated(self, ctx: ActorContext, who: Any) -> None:
        """Called when an actor this one watches (``ctx.watch(ref)``) stopped; ``who`` is that ref."""

    def snapshot_state(self) -> Any:
        """What a checkpoint saves of a ``checkpointed=True`` actor (through ``weir.codec``: the
        built-in types, lists, dicts and tuples): by default its attributes whose names do not
        start with ``_`` (keep refs, files and the like in ``_`` attributes and make them again
        in ``pre_start``)."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")}

    def restore_state(self, state: Any) -> None:
        """Takes back what ``snapshot_state`` returned, after ``pre_start`` of a restored run."""
        for k, v in state.items():
            setattr(self, k, v)


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


def handler_name(tp: type) -> str:
    """The method that handles messages of type ``tp``: ``on_`` + its name in snake case."""
    return "on_" + _CAMEL.sub("_", tp.__name__).lower()


_HANDLERS: Dict[Tuple[type, type], Callable[..., Any]] = {}


def _call_bound(name: str) -> Callable[..., Any]:
    def call(self: Any, ctx: Any, msg: Any) -> Any:
        return getattr(self, name)(ctx, msg)

    return call


def _resolve(cls: type, tp: type) -> Callable[..., Any]:
    """The function called as ``f(actor, ctx, msg)`` for messages of type ``tp`` (cached)."""
    key = (cls, tp)
    f = _HANDLERS.get(key)
    if f is None and getattr(cls, "_weir_dispatch_all", False):
        f = _HANDLERS[key] = cls.handle
    if f is None:
        name = handler_name(tp)
        if not callable(getattr(cls, name, None)):
            name = "handle"
        raw = getattr(cls, name, None)
        # A plain function takes the instance first; anything else is looked up per call.
        f = raw if isinstance(raw, type(_resolve)) else _call_bound(name)
        _HANDLERS[key] = f
    return f


class _Batch:
    """What a batch run (:func:`_run_batch`) shares with the native context: ``brk`` is set by the
    context methods that end a batch early (``stop``, ``become``, ``stash``, ``unstash_all``),
    ``n`` is the number of messages handled before a handler raised."""

    __slots__ = ("brk", "n")

    def __init__(self) -> None:
        self.brk = False
        self.n = 0


_BY_CLASS: Dict[type, Dict[type, Callable[..., Any]]] = {}


def _run_batch(actor: Actor, ctx: Any, msgs: List[Any], st: _Batch) -> int:
    """Handles the stream elements ``msgs`` in order (one call from the actor stage per batch);
    returns how many it handled, stopping after a message that set ``st.brk``."""
    cls = type(actor)
    handlers = _BY_CLASS.get(cls)
    if handlers is None:
        handlers = _BY_CLASS[cls] = {}
    if getattr(cls, "_weir_dispatch_all", False):  # a pool actor's proxy: the batch is one job
        return actor.handle_many(ctx, msgs)  # type: ignore[attr-defined, no-any-return]
    st.brk = False
    it = iter(msgs)
    last: Any = None
    f: Any = None
    try:
        for m in it:
            t = type(m)
            if t is not last:
                f = handlers.get(t)
                if f is None:
                    f = handlers[t] = _resolve(cls, t)
                last = t
            r = f(actor, ctx, m)
            if r is not None:
                _returned(ctx, r)
            if st.brk:
                return len(msgs) - it.__length_hint__()
    except BaseException:
        # The iterator is past the failing message.
        st.n = len(msgs) - it.__length_hint__() - 1
        raise
    return len(msgs)


class _Receive:
    """What ``ctx.receive(matcher, timeout)`` returns: awaited in an ``async def`` handler, it
    suspends the handler until the next message that matches (see :func:`_drive`)."""

    __slots__ = ("matcher", "timeout")

    def __init__(self, matcher: Any, timeout: Optional[float]) -> None:
        if isinstance(matcher, type) or (isinstance(matcher, tuple) and matcher and all(isinstance(t, type) for t in matcher)):
            types = matcher
            self.matcher: Callable[[Any], Any] = lambda m: isinstance(m, types)
        elif callable(matcher):
            self.matcher = matcher
        else:
            raise TypeError(f"receive takes a type, a tuple of types or a predicate, not {type(matcher).__name__}")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0):
            raise ValueError(f"receive: timeout must be a positive number of seconds, not {timeout!r}")
        self.timeout = None if timeout is None else float(timeout)

    def __await__(self) -> Any:
        msg = yield self
        return msg


def _returned(ctx: Any, r: Any) -> None:
    """A handler's return value: the coroutine of an ``async def`` handler runs until it awaits
    ``ctx.receive`` or returns; anything else is ignored."""
    if inspect.iscoroutine(r):
        _drive(ctx, r, None, None)


def _drive(ctx: Any, coro: Any, value: Any, error: Optional[BaseException]) -> None:
    """Resumes ``coro`` with ``value`` (or raises ``error`` in it) up to its next
    ``await ctx.receive(...)``, which the Rust receive of the actor then waits for."""
    try:
        req = coro.send(value) if error is None else coro.throw(error)
    except StopIteration:
        return
    if not isinstance(req, _Receive):
        coro.close()
        raise TypeError(f"an actor handler may await only ctx.receive(...), not {req!r}")

    def then(c: Any, msg: Any, timed_out: bool) -> None:
        if timed_out:
            _drive(c, coro, None, TimeoutError(f"receive timed out after {req.timeout}s"))
        else:
            _drive(c, coro, msg, None)

    ctx._receive_then(req.matcher, req.timeout, then)


@dataclass(frozen=True)
class Mailbox:
    """An actor's mailbox: ``capacity`` messages for senders outside the stream (``tell`` waits
    while it is full); ``try_tell`` (and tells from other actors) then apply ``overflow``:
    ``"drop_new"`` (the new message goes to dead letters), ``"drop_old"``, ``"fail"`` (the stage
    fails naming the actor) or ``"redirect"`` to ``redirect_to`` (an :class:`ActorRef`).

    Order (the Rust priority mailbox): ``priority=fn`` hands out the messages with the highest
    ``fn(msg)`` first (an int, clamped to 0..255), in arrival order within one priority;
    ``control=`` makes it control-aware: messages that are instances of the given type (or
    tuple of types), or for which the given predicate holds, go ahead of the others, in arrival
    order among themselves. Either function runs in the sender, before the message is queued; one
    that raises gives the message the lowest priority (it is kept) and logs a warning naming the
    actor. Under ``"drop_old"`` the oldest message of the lowest priority goes first. Stream
    elements of a ``Flow.actor`` are not reordered, and the runtime's notices (a watched actor
    terminated) go ahead of everything."""

    capacity: int = 1024
    overflow: str = "drop_new"
    redirect_to: Optional[Any] = None
    priority: Optional[Callable[[Any], int]] = None
    control: Any = None

    def rank(self) -> Optional[Callable[[Any], int]]:
        """The priority function the Rust mailbox calls (``None``: first in, first out)."""
        if self.priority is not None and self.control is not None:
            raise ValueError("a mailbox takes priority= or control=, not both")
        if self.priority is not None:
            if not callable(self.priority):
                raise TypeError(f"priority= takes a function of the message, not {type(self.priority).__name__}")
            return self.priority
        c = self.control
        if c is None:
            return None
        if isinstance(c, type) or (isinstance(c, tuple) and c and all(isinstance(t, type) for t in c)):
            return lambda m: 1 if isinstance(m, c) else 0
        if callable(c):
            return lambda m: 1 if c(m) else 0
        raise TypeError(f"control= takes a type, a tuple of types or a predicate, not {type(c).__name__}")


MailboxSpec = Union[None, int, Mailbox]
"""A :class:`Mailbox`, a capacity, or ``None`` for the default."""


def _mailbox(m: MailboxSpec) -> Mailbox:
    if m is None:
        return Mailbox()
    if isinstance(m, bool) or not isinstance(m, (int, Mailbox)):
        raise TypeError(f"mailbox= takes a weir.Mailbox or a capacity, not {type(m).__name__}")
    if isinstance(m, int):
        m = Mailbox(m)
    if m.capacity < 1:
        raise ValueError(f"a mailbox capacity must be at least 1, got {m.capacity}")
    return m


def _name_of(props: Any) -> str:
    n = getattr(props, "__name__", None)
    return n if isinstance(n, str) and n.isidentifier() else "actor"


def _factory(props: Any) -> Callable[[], Actor]:
    """``props`` (a :class:`Actor` subclass or a zero-argument factory) as a checked factory."""
    if isinstance(props, type) and not issubclass(props, Actor):
        raise TypeError(f"an actor class must subclass weir.Actor: {props.__name__} does not")
    if not callable(props):
        raise TypeError(f"an actor is a weir.Actor subclass or a zero-argument factory, not {type(props).__name__}")

    def make() -> Actor:
        a = props()
        if not isinstance(a, Actor):
            raise TypeError(f"the actor factory {_name_of(props)} returned {type(a).__name__}, not a weir.Actor")
        return a

    return make


def props_args(
    props: Any,
    name: Optional[str] = None,
    mailbox: MailboxSpec = None,
    throughput: Optional[int] = None,
    stash_capacity: Optional[int] = None,
    checkpointed: bool = False,
    handler_time_limit: Optional[float] = None,
    pool: Any = None,
) -> Tuple[Any, ...]:
    """The native props arguments: ``(factory, name, capacity, overflow, redirect, throughput,
    stash_capacity, priority, checkpointed, handler_time_limit)``; with ``pool=`` the factory
    makes the proxy of an actor living in that interpreter pool (``weir._pool_actor``), whose
    ``handler_time_limit`` is the pool's call timeout."""
    if not isinstance(checkpointed, bool):
        raise TypeError(f"checkpointed= takes True or False, not {type(checkpointed).__name__}")
    limit = _seconds("handler_time_limit", handler_time_limit)
    fac = _factory(props)
    if pool is not None:
        from . import _pool_actor
        from .interpreters import InterpreterPool

        if not isinstance(pool, InterpreterPool):
            raise TypeError(f"pool= takes a weir.InterpreterPool, not {type(pool).__name__}")
        fac = _pool_actor.factory(props, pool, checkpointed, limit, name or _name_of(props))
        limit = None
    m = _mailbox(mailbox)
    for what, n in (("throughput", throughput), ("stash_capacity", stash_capacity)):
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 0):
            raise ValueError(f"{what} must be a non-negative int, got {n!r}")
    return (fac, name or _name_of(props), m.capacity, m.overflow, m.redirect_to, throughput, stash_capacity, m.rank(), checkpointed, limit)


def _seconds(what: str, x: Optional[float]) -> Optional[float]:
    """``x`` as positive seconds (``None`` stays ``None``); a clear ``ValueError`` otherwise."""
    if x is None:
        return None
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not x > 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {x!r}")
    return float(x)


def _in_executor(fn: Callable[..., Any], *args: Any) -> "asyncio.Future[Any]":
    """``fn(*args)`` on the running loop's default executor (the awaitable forms of a ref)."""
    return asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))


def stage(
    kind: str,
    props: Any,
    mailbox: MailboxSpec,
    name: Optional[str],
    throughput: Optional[int],
    max_actors: Optional[int],
    stash_capacity: Optional[int],
    checkpointed: bool = False,
    handler_time_limit: Optional[float] = None,
    mailbox_budget: Optional[int] = None,
    pool: Any = None,
) -> Any:
    """The native blueprint of an actor stage (``kind``: ``flow``, ``sink`` or ``source``)."""
    if max_actors is not None and (isinstance(max_actors, bool) or not isinstance(max_actors, int) or max_actors < 1):
        raise ValueError(f"max_actors must be an int >= 1, got {max_actors!r}")
    if mailbox_budget is not None and (isinstance(mailbox_budget, bool) or not isinstance(mailbox_budget, int) or mailbox_budget < 1):
        raise ValueError(f"mailbox_budget must be a number of bytes >= 1, got {mailbox_budget!r}")
    f, n, cap, overflow, redirect, tp, stash, rank, ck, limit = props_args(props, name, mailbox, throughput, stash_capacity, checkpointed, handler_time_limit, pool)
    return _native.actor_stage(kind, f, n, cap, overflow, redirect, tp, max_actors, stash, rank, ck, limit, mailbox_budget)

