"""The Python DSL: :class:`Source`, :class:`Flow`, :class:`Sink`, :class:`RunnableGraph`,
:class:`GraphBuilder` and the junctions, with the same shapes and names as the Rust DSL."""

from __future__ import annotations

import inspect
import logging
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    List,
    Literal,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _native
from ._aio import AsyncSubmitter
from ._keyed import KeyedBuiltins, key_function
from ._validate import seconds as _seconds
from ._validate import size as _size

T = TypeVar("T")
S = TypeVar("S", bound="_Blueprint")
# The type parameters of the generic blueprints (their operators are typed in ``_dsl.pyi``).
_T_co = TypeVar("_T_co", covariant=True)
_In_contra = TypeVar("_In_contra", contravariant=True)
_Out_co = TypeVar("_Out_co", covariant=True)
_Mat_co = TypeVar("_Mat_co", covariant=True)
_Up = TypeVar("_Up")
_K = TypeVar("_K")

Keep = Literal["left", "right", "both", "none"]
"""How materialized values combine: ``"left"``, ``"right"``, ``"both"`` or ``"none"``."""

Directive = Literal["stop", "resume", "restart"]
"""A supervision directive."""

SupervisionRules = Sequence[Tuple[Type[BaseException], Directive]]
"""Exception classes mapped to directives (first match wins)."""

DeadLetters = Union[Callable[[Any, BaseException, str], object], List["DeadLetter"]]
"""Where dropped elements go: ``f(element, error, stage)`` or a list of :class:`DeadLetter`."""

BatchFormat = Literal["pyarrow", "pandas", "polars", "numpy"]
"""The form ``map_batches`` hands a batch in (``None``: a list of elements)."""

Overflow = Literal["backpressure", "drop_head", "drop_tail", "drop_buffer", "drop_new", "fail"]
"""What a full buffer does with one more element."""

ThrottleMode = Literal["shaping", "enforcing"]
"""``throttle``: hold elements until their token arrives, or fail."""


def _supervision(
    supervision: Optional[SupervisionRules],
    default: str,
    dead_letters: Optional[Union[Callable[[Any, BaseException, str], None], List[Any]]],
) -> Optional[_native.Supervision]:
    if supervision is None and dead_letters is None and default == "stop":
        return None
    cb: Optional[Callable[[Any, BaseException, str], None]]
    if isinstance(dead_letters, list):
        store = dead_letters

        def cb(element: Any, error: BaseException, stage: str) -> None:
            store.append(DeadLetter(element, error, stage))

    else:
        cb = dead_letters
    return _native.Supervision(list(supervision or []), default, cb)


class DeadLetter(tuple):
    """An element dropped under ``resume``/``restart``: ``(element, error, stage)``."""

    __slots__ = ()

    def __new__(cls, element: Any, error: BaseException, stage: str) -> "DeadLetter":
        return super().__new__(cls, (element, error, stage))

    @property
    def element(self) -> Any:
        """The element that failed (a list for whole-batch failures such as a crashed worker)."""
        return self[0]

    @property
    def error(self) -> BaseException:
        """The exception raised for it."""
        return self[1]

    @property
    def stage(self) -> str:
        """The path of the stage that dropped it."""
        return self[2]


_MISSING: Any = object()


def _is_not_none(x: Any) -> bool:
    return x is not None


def _identity(x: Any) -> Any:
    return x


class _Folder:
    """Folds a list (a group from ``batch``/``conflate``) with ``seed`` and ``aggregate``."""

    __slots__ = ("seed", "aggregate")

    def __init__(self, seed: Callable[[Any], Any], aggregate: Callable[[Any, Any], Any]) -> None:
        self.seed = seed
        self.aggregate = aggregate

    def __call__(self, group: List[Any]) -> Any:
        it = iter(group)
        acc = self.seed(next(it))
        for x in it:
            acc = self.aggregate(acc, x)
        return acc


class _UnorderedSubmitter(AsyncSubmitter):
    """``map_async_unordered``: a batch's results in completion order."""

    def __call__(self, batch: List[Any], done: Callable[[List[Any], List[Tuple[Any, BaseException]]], None]) -> None:
        import asyncio

        from ._aio import current_loop

        loop = current_loop()
        fn = self.fn

        async def runner() -> None:
            sem = self._sem(loop)
            outputs: List[Any] = []
            failures: List[Tuple[Any, BaseException, int]] = []

            async def one(x: Any) -> None:
                async with sem:
                    try:
                        outputs.append(await fn(x))
                    except Exception as e:  # reported through supervision
                        failures.append((x, e, len(outputs)))

            await asyncio.gather(*(one(x) for x in batch))
            done(outputs, failures)

        def report(f: "asyncio.Future[None]") -> None:
            exc = f.exception() if not f.cancelled() else asyncio.CancelledError()
            if exc is not None:
                done([], [(None, exc)])

        fut = asyncio.run_coroutine_threadsafe(runner(), loop)
        fut.add_done_callback(report)  # type: ignore[arg-type]


class SubFlows(Generic[_Up, T]):
    """Substreams from ``group_by`` / ``split_when`` / ``split_after``: finish with
    :meth:`merge_substreams_via` or :meth:`merge_substreams`."""

    __slots__ = ("_up", "_make", "_what")

    def __init__(self, upstream: Any, make: Callable[["Flow"], Any], what: str) -> None:
        self._up = upstream
        self._make = make
        self._what = what

    def merge_substreams_via(self, flow: "Flow") -> Any:
        """Runs each substream through its own instance of ``flow`` and merges the outputs
        (``group_by``: in arrival order; ``split_*``: segment after segment)."""
        up = self._up
        return up._same(up._n.via(self._make(flow)), up._meta | flow._meta)

    def merge_substreams(self) -> Any:
        """Merges the substreams unchanged."""
        return self.merge_substreams_via(Flow.create())

    def __repr__(self) -> str:
        return f"SubFlows({self._what})"


class _Repeat:
    __slots__ = ("x",)

    def __init__(self, x: Any) -> None:
        self.x = x

    def __iter__(self) -> Any:
        import itertools

        return itertools.repeat(self.x)


class _Unfold:
    __slots__ = ("state", "fn")

    def __init__(self, state: Any, fn: Callable[[Any], Optional[Tuple[Any, Any]]]) -> None:
        self.state = state
        self.fn = fn

    def __iter__(self) -> Any:
        s, fn = self.state, self.fn
        while True:
            r = fn(s)
            if r is None:
                return
            s, x = r
            yield x


class _Failed:
    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def __iter__(self) -> Any:
        raise self.error


class _AsyncIterBridge:
    """Iterates an async iterable from the dispatcher, one ``__anext__`` at a time on the run's
    event loop (the dispatcher waits for each item: meant for I/O-bound producers)."""

    __slots__ = ("src",)

    def __init__(self, src: Any) -> None:
        self.src = src

    def __iter__(self) -> Any:
        import asyncio

        from ._aio import current_loop

        loop = current_loop()
        src = self.src() if callable(self.src) and not hasattr(self.src, "__aiter__") else self.src
        it = src.__aiter__()
        if loop.is_running() and _on_loop_thread(loop):
            raise RuntimeError("from_async_iter() needs run_async() or a blocking run()")
        while True:
            fut = asyncio.run_coroutine_threadsafe(_anext(it), loop)
            done, x = fut.result()
            if done:
                return
            yield x


async def _anext(it: Any) -> Tuple[bool, Any]:
    try:
        return False, await it.__anext__()
    except StopAsyncIteration:
        return True, None


def _on_loop_thread(loop: Any) -> bool:
    import asyncio

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class _Meta:
    """What a blueprint needs from its run besides the Rust graph: pools to shut down after it."""

    __slots__ = ("pools",)

    def __init__(self, pools: FrozenSet[Any] = frozenset()) -> None:
        self.pools = pools

    def __or__(self, other: "_Meta") -> "_Meta":
        return _Meta(self.pools | other.pools)


class _Blueprint:
    """Common base: an immutable wrapper of a native blueprint."""

    __slots__ = ("_base", "_meta", "_resup", "_event", "_reuid", "_repar")

    def __init__(self, native: Optional[_native.Blueprint], meta: Optional[_Meta] = None) -> None:
        self._base = native
        self._meta = meta or _Meta()
        # Set by ``assign_timestamps``: (the blueprint before it, ts, watermarks, idleness), for
        # a ``key_by(...).window(...)`` right after it.
        self._event: Optional[Tuple[Any, Any, Any, Optional[float]]] = None
        # For an operator built of several stages: rebuilds it with a supervision on the stage
        # that calls the user's function (``with_supervision`` uses it instead of the last one).
        self._resup: Optional[Callable[[Any], Any]] = None
        # For an operator whose state is not in its last stage (a window before its emit
        # stage): rebuilds it with the stable id on the stateful stage (``uid`` uses it).
        self._reuid: Optional[Callable[[str], Any]] = None
        # Likewise for ``parallelism``: rebuilds it with the parallelism on the stateful stage
        # (and the stages after it that make its output).
        self._repar: Optional[Callable[[int], Any]] = None

    @property
    def _n(self) -> _native.Blueprint:
        return self._flush()

    def _flush(self) -> _native.Blueprint:
        assert self._base is not None
        return self._base

    def _same(self: S, native: _native.Blueprint, meta: Optional[_Meta] = None) -> S:
        return type(self)(native, meta or self._meta)

    def named(self: S, name: str) -> S:
        """Names the last stage (errors, metrics and diagrams use the name)."""
        return self._same(self._n.named(name))

    def uid(self: S, uid: str) -> S:
        """Gives the last stage an explicit stable id, unique in the graph: its saved state stays
        keyed by it whatever else changes in the graph (a duplicate fails the run, naming both
        stages)."""
        if self._reuid is not None:
            return self._reuid(uid)  # type: ignore[no-any-return]
        return self._same(self._n.uid(uid))

    def async_boundary(self: S) -> S:
        """Starts a new island after the last stage (its output crosses a bounded channel)."""
        return self._same(self._n.async_boundary())

    def parallelism(self: S, n: int) -> S:
        """Runs the last stage as ``n`` parallel subtasks (fused element-wise operators run
        together, so they share it); after a window function or a join, the window or join
        stage (the one holding the state)."""
        n = _size("parallelism", "n", n)
        if self._repar is not None:
            return self._repar(n)  # type: ignore[no-any-return]
        return self._same(self._n.parallelism(n))

    def batch_size(self: S, rows: int) -> S:
        """Target rows per batch of the last stage."""
        return self._same(self._n.batch_size(_size("batch_size", "rows", rows)))

    def buffer_rows(self: S, rows: int) -> S:
        """Capacity in rows of the channel feeding the last stage."""
        return self._same(self._n.buffer_rows(_size("buffer_rows", "rows", rows)))

    def with_supervision(
        self: S,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Optional[Union[Callable[[Any, BaseException, str], None], List[Any]]] = None,
    ) -> S:
        """Sets the supervision of the last stage: ``supervision`` maps exception classes to
        ``"stop"``, ``"resume"`` or ``"restart"`` (first match wins, else ``default``); dropped
        elements go to ``dead_letters`` (a callable ``f(element, error, stage)`` or a list that
        receives :class:`DeadLetter` tuples)."""
        sup = _supervision(supervision, default, dead_letters)
        if sup is not None and self._resup is not None:
            return self._resup(sup)
        return self if sup is None else self._same(self._n.with_supervision(sup))

    def to_mermaid(self) -> str:
        """The blueprint as a Mermaid flowchart."""
        return self._n.to_mermaid()

    def to_dot(self) -> str:
        """The blueprint as Graphviz DOT."""
        return self._n.to_dot()

    def _repr_markdown_(self) -> str:
        return "```mermaid\n" + self._n.to_mermaid() + "\n```"

    def _repr_html_(self) -> str:
        from .notebook import blueprint_html

        return blueprint_html(self._n.to_mermaid())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._n.stage_count()} stages)"


def _apply(
    bp: S,
    native: _native.Blueprint,
    name: Optional[str],
    supervision: Optional[SupervisionRules],
    default: str,
    dead_letters: Any,
    meta: Optional[_Meta] = None,
) -> S:
    if name is not None:
        native = native.named(name)
    sup = _supervision(supervision, default, dead_letters)
    if sup is not None:
        native = native.with_supervision(sup)
    out = bp._n.via(native, "left")
    return bp._same(out, bp._meta | meta if meta else None)


def _actor_stage(
    kind: str,
    props: Any,
    mailbox: Any,
    name: Optional[str],
    supervision: Union[None, str, SupervisionRules],
    dead_letters: Any,
    throughput: Optional[int],
    max_actors: Optional[int],
    stash_capacity: Optional[int],
    checkpointed: bool = False,
    handler_time_limit: Optional[float] = None,
    mailbox_budget: Optional[int] = None,
    pool: Any = None,
) -> _native.Blueprint:
    """An actor stage (see ``Flow.actor``) with its name and the supervision of its root."""
    from ._actors import stage

    native = stage(kind, props, mailbox, name, throughput, max_actors, stash_capacity, checkpointed, handler_time_limit, mailbox_budget, pool)
    if name is not None:
        native = native.named(name)
    if isinstance(supervision, str):
        sup = _supervision(None, supervision, dead_letters)
    else:
        sup = _supervision(supervision, "stop", dead_letters)
    return native if sup is None else native.with_supervision(sup)


class _Linear(_Blueprint):
    """Operators shared by :class:`Source` and :class:`Flow`.

    Every operator is a stage of its own; the engine fuses consecutive synchronous stages
    (``from_iter``, ``map``, ``filter``, ``flat_map``, sinks...) into one island, so a batch goes
    through all of them in one call on the run's Python dispatcher. Each keeps its name in
    errors."""

    __slots__ = ()

    def _fuse(self: S, kind: str, fn: Any, name: Optional[str], sup: Any, default: str, dl: Any) -> S:
        s = _supervision(sup, default, dl)
        return self._same(self._n.via(_native.flow_chain([_native.Op(kind, fn, name, s)]), "left"))

    def via(self: S, flow: "Flow", keep: Keep = "left") -> S:
        """Attaches ``flow``; ``keep`` picks the materialized value (``left`` keeps this one)."""
        return self._same(self._n.via(flow._n, keep), self._meta | flow._meta)

    def _pooled(
        self: S, kind: str, fn: Callable[..., Any], pool: Any, ordered: bool, name: Optional[str], sup: Any, default: str, dl: Any,
        timeout: Optional[float] = None,
    ) -> S:
        from .interpreters import as_pool, check_timeout

        if pool is None:
            raise ValueError(f"{name or kind}(timeout=...) needs pool=: a call running in this process cannot be interrupted")
        pool = as_pool(pool)
        submit = pool._submitter(kind, fn, check_timeout(name or kind, timeout))
        native = _native.flow_external(name or kind, submit, pool.max_inflight, ordered=ordered)
        return _apply(self, native, None, sup, default, dl, _Meta(frozenset([pool])))

    def map(
        self: S,
        fn: Callable[[Any], Any],
        *,
        pool: Any = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> S:
        """Transforms each element with ``fn``. With ``pool`` (an :class:`InterpreterPool`, a
        worker count, or ``True`` for one per core) ``fn`` runs in worker processes, a batch at a
        time; results keep the input order unless ``ordered=False``, which emits each batch as
        soon as its worker is done (a slow batch no longer holds back the others). ``timeout``
        (seconds, pooled stages only) bounds each call: a worker stuck longer is killed and
        replaced, and the element fails with :class:`weir.CallTimeout`."""
        if pool is not None or timeout is not None:
            return self._pooled("map", fn, pool, ordered, name, supervision, default, dead_letters, timeout)
        return self._fuse("map", fn, name, supervision, default, dead_letters)

    def filter(
        self: S,
        pred: Callable[[Any], Any],
        *,
        pool: Any = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> S:
        """Keeps the elements for which ``pred`` is truthy."""
        if pool is not None or timeout is not None:
            return self._pooled("filter", pred, pool, ordered, name, supervision, default, dead_letters, timeout)
        return self._fuse("filter", pred, name, supervision, default, dead_letters)

    def flat_map(
        self: S,
        fn: Callable[[Any], Iterable[Any]],
        *,
        pool: Any = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> S:
        """Maps each element to an iterable and emits its items in order."""
        if pool is not None or timeout is not None:
            return self._pooled("flat_map", fn, pool, ordered, name, supervision, default, dead_letters, timeout)
        return self._fuse("flat_map", fn, name, supervision, default, dead_letters)

    def for_each(
        self: S,
        fn: Callable[[Any], Any],
        *,
        pool: Any = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> "RunnableGraph":
        """Calls ``fn`` on every element (in worker processes when ``pool`` is given); returns
        the runnable graph, whose ``run()`` returns ``None``."""
        if pool is not None or timeout is not None:
            flow = self._pooled("for_each", fn, pool, ordered, name, supervision, default, dead_letters, timeout)
            return flow.to(Sink.ignore(), "right")  # type: ignore[attr-defined]
        sink = Sink.for_each(fn)
        if name is not None:
            sink = sink.named(name)
        sink = sink.with_supervision(supervision, default, dead_letters)
        return self.to(sink, "right")  # type: ignore[attr-defined]

    def map_batches(
        self: S,
        fn: Callable[[Any], Any],
        *,
        batch_format: Optional[str] = None,
        pool: Any = None,
        ordered: bool = True,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> S:
        """Calls ``fn`` once per batch. ``batch_format`` is ``None`` (a list of elements),
        ``"pyarrow"``, ``"pandas"``, ``"polars"`` or ``"numpy"``; ``fn`` returns a batch in any of
        those forms (or an iterable of elements)."""
        from .columnar import batch_adapter

        f = batch_adapter(fn, batch_format)
        if pool is not None or timeout is not None:
            return self._pooled("map_batches", f, pool, ordered, name or "map_batches", supervision, default, dead_letters, timeout)
        return self._fuse("map_batches", f, name, supervision, default, dead_letters)

    def map_async(
        self: S,
        fn: Callable[[Any], Awaitable[Any]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        timeout: Optional[float] = None,
    ) -> S:
        """Runs the coroutine function ``fn`` per element on the run's event loop (the caller's
        for ``run_async``), at most ``parallelism`` at once, keeping input order; a coroutine
        running longer than ``timeout`` seconds is cancelled and fails with :class:`weir.CallTimeout`."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("map_async() takes an async def function")
        from .interpreters import check_timeout

        parallelism = _size(name or "map_async", "parallelism", parallelism)
        submit = AsyncSubmitter(fn, parallelism, timeout=check_timeout(name or "map_async", timeout))
        native = _native.flow_external(name or "map_async", submit, 2)
        return _apply(self, native, None, supervision, default, dead_letters)

    def scan(self: S, zero: Any, fn: Callable[[Any, Any], Any], *, name: Optional[str] = None) -> S:
        """Emits ``zero`` then ``fn(acc, x)`` after every element."""
        return _apply(self, _native.flow_scan(zero, fn), name, None, "stop", None)

    def fold(self: S, zero: Any, fn: Callable[[Any, Any], Any], *, name: Optional[str] = None) -> S:
        """Folds every element into ``zero`` and emits the result once, on completion."""
        return _apply(self, _native.flow_fold(zero, fn), name, None, "stop", None)

    def reduce(self: S, fn: Callable[[Any, Any], Any], *, name: Optional[str] = None) -> S:
        """Like :meth:`fold` seeded with the first element (fails on an empty stream)."""
        return _apply(self, _native.flow_fold(None, fn, True), name, None, "stop", None)

    def grouped(self: S, n: int) -> S:
        """Lists of ``n`` elements (the last may be shorter)."""
        return self._same(self._n.via(_native.flow_grouped(_size("grouped", "n", n))))

    def take(self: S, n: int) -> S:
        """The first ``n`` elements, then cancels upstream."""
        return self._same(self._n.via(_native.flow_take(_size("take", "n", n, 0))))

    def limit(self: S, n: int) -> S:
        """Passes elements unchanged; fails the stream (naming the stage and ``n``) when
        upstream emits more than ``n``."""
        return self._same(self._n.via(_native.flow_limit(_size("limit", "n", n, 0))))

    def drop(self: S, n: int) -> S:
        """Discards the first ``n`` elements."""
        return self._same(self._n.via(_native.flow_drop(_size("drop", "n", n, 0))))

    def throttle(self: S, elements: int, per: float, burst: int = 0, mode: str = "shaping") -> S:
        """At most ``elements`` per ``per`` seconds: Akka's token bucket of capacity ``burst``,
        full at the start, a token every ``per / elements``. ``mode="shaping"`` holds an element
        until its token arrives (with ``burst=0`` each element waits its own period);
        ``"enforcing"`` fails the stream instead.

        Emits when: the element's token has arrived and downstream has demand.
        Backpressures when: an element waits for its token or downstream backpressures.
        Completes when: upstream completes and every held element is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or (enforcing) an element comes before its token."""
        elements, burst = _size("throttle", "elements", elements), _size("throttle", "burst", burst, 0)
        per = _seconds("throttle", "per", per)
        return self._same(self._n.via(_native.flow_throttle_mode(elements, per, burst, mode)))

    def buffer(self: S, size: int, strategy: str = "backpressure") -> S:
        """A bounded buffer of ``size`` elements with an overflow strategy (``backpressure``,
        ``drop_head``, ``drop_tail``, ``drop_buffer``, ``drop_new``, ``fail``). Elements leave
        only when the consumer asks for them, so the strategy applies to everything it has not
        requested (``buffer(100, "drop_head")`` before a late consumer keeps the newest 100).

        Emits when: downstream has demand and the buffer is not empty.
        Backpressures when: the buffer is full under ``backpressure``.
        Completes when: upstream completes and the buffer is drained.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or the buffer overflows under ``fail``."""
        return self._same(self._n.via(_native.flow_buffer(_size("buffer", "size", size), strategy)))

    def merge(self: S, other: "Source") -> S:
        """Merges ``other`` into this stream."""
        return self._same(self._n.merge(other._n), self._meta | other._meta)

    def concat(self: S, other: "Source") -> S:
        """Emits this stream, then ``other``."""
        return self._same(self._n.concat(other._n), self._meta | other._meta)

    def zip(self: S, other: "Source") -> S:
        """Pairs elements with those of ``other`` into tuples."""
        return self._same(self._n.zip(other._n), self._meta | other._meta)

    def zip_with(
        self: S,
        other: "Source",
        fn: Callable[[Any, Any], Any],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
    ) -> S:
        """Combines the n-th elements with those of ``other`` by ``fn(a, b)`` (see :class:`ZipWith`)."""
        combine = Flow.create().map(
            lambda t: fn(t[0], t[1]), name="zip_with", supervision=supervision, default=default
        )
        return self._same(self._n.zip(other._n), self._meta | other._meta).via(combine)

    # -----------------------------------------------------------------------------------------
    # More operators (same semantics as the Rust operators of the same name)

    def filter_map(
        self: S,
        fn: Callable[[Any], Any],
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Transforms each element with ``fn`` and keeps the results that are not ``None``
        (fused with neighbouring element-wise operators).

        Emits when: ``fn`` returned something other than ``None``.
        Backpressures when: a result is kept and downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``fn`` raises (under the ``stop`` directive)."""
        n = name or "filter_map"
        out = self._fuse("map", fn, n, supervision, default, dead_letters)._fuse("filter", _is_not_none, n, None, "stop", None)
        # Supervision set afterwards belongs to the map (the filter of None never fails).
        base = self._n
        out._resup = lambda sup: self._same(
            base.via(_native.flow_chain([_native.Op("map", fn, n, sup), _native.Op("filter", _is_not_none, n, None)]), "left")
        )
        return out

    def take_while(
        self: S,
        pred: Callable[[Any], Any],
        *,
        inclusive: bool = False,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Passes elements while ``pred`` holds; the first failing one is dropped (emitted too
        with ``inclusive=True``) and upstream is cancelled. ``pred`` is not called after it.
        Supervision (here or by ``with_supervision``) applies to the calls of ``pred``.

        Emits when: ``pred`` holds for the element (or it is the first failing one, inclusive).
        Backpressures when: downstream backpressures.
        Completes when: ``pred`` fails for an element, or upstream completes.
        Cancels when: ``pred`` is false for an element, or downstream cancels.
        Fails when: upstream fails, or ``pred`` raises."""
        up = self._n

        def build(sup: Any) -> S:
            out = self._same(up.via(_native.flow_take_while(pred, inclusive, sup)))
            out._resup = build
            return out

        return build(_supervision(supervision, default, dead_letters))

    def drop_while(self: S, pred: Callable[[Any], Any]) -> S:
        """Discards elements while ``pred`` holds, then passes everything (``pred`` is not
        called any more).

        Emits when: ``pred`` failed once and an element arrives.
        Backpressures when: ``pred`` failed once and downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``pred`` raises."""
        return self._same(self._n.via(_native.flow_drop_while(pred)))

    def sliding(self: S, n: int, step: int = 1) -> S:
        """Lists of ``n`` elements every ``step`` elements; a last shorter window holds elements
        not emitted yet (a stream shorter than ``n`` gives one short window).

        Emits when: a window is full, or upstream completed with a short window of new elements.
        Backpressures when: a window is full and downstream backpressures.
        Completes when: upstream completes and the last window is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        n, step = _size("sliding", "n", n), _size("sliding", "step", step)
        return self._same(self._n.via(_native.flow_sliding(n, step)))

    def intersperse(self: S, sep: Any, start: Any = _MISSING, end: Any = _MISSING) -> S:
        """Emits ``sep`` between consecutive elements; with ``start``/``end``, emits them first
        and last (even for an empty stream), like Rust's ``intersperse_around``.

        Emits when: an element arrives (preceded by ``sep`` unless first); ``start`` first,
        ``end`` on completion.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes (after ``end``).
        Cancels when: downstream cancels.
        Fails when: upstream fails (``end`` is not emitted)."""
        st = None if start is _MISSING else start
        en = None if end is _MISSING else end
        if (start is _MISSING) != (end is _MISSING):
            raise TypeError("intersperse() takes both start and end, or neither")
        return self._same(self._n.via(_native.flow_intersperse(sep, st, en)))

    def zip_with_index(self: S) -> S:
        """Pairs each element with its index: ``(x, i)`` counting from 0.

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_zip_with_index()))

    def inspect(
        self: S,
        fn: Callable[[Any], Any],
        *,
        on_complete: Optional[Callable[[], Any]] = None,
        name: Optional[str] = None,
    ) -> S:
        """Calls ``fn(x)`` on each element and passes it on unchanged; ``on_complete()`` when
        upstream completes.

        Emits when: an element arrives and ``fn`` returned.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``fn`` / ``on_complete`` raises."""
        return self._same(self._n.via(_native.flow_inspect(fn, on_complete, name or "inspect")))

    def log(self: S, name: str, level: Union[int, str] = logging.DEBUG, *, logger: Any = None) -> S:
        """Logs each element's ``repr`` and the completion with :mod:`logging` (logger
        ``weir`` by default) at ``level`` (a number or a name such as ``"INFO"``), and a
        failure at ``ERROR``; elements pass unchanged.

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails (logged, then passed on)."""
        lg = logger or logging.getLogger("weir")
        lvl = logging.getLevelName(level.upper()) if isinstance(level, str) else level
        if not isinstance(lvl, int):
            raise ValueError(f"log: unknown level {level!r}")

        def element(x: Any) -> None:
            if lg.isEnabledFor(lvl):
                lg.log(lvl, "[%s] element: %r", name, x)

        def done() -> None:
            lg.log(lvl, "[%s] upstream completed", name)

        def failed(e: BaseException) -> None:
            lg.error("[%s] upstream failed: %s", name, e)
            return None

        return self.inspect(element, on_complete=done, name=f"log({name})").recover(failed)

    def watch_termination(self: S, keep: Keep = "right") -> S:
        """Passes elements unchanged; materializes a :class:`weir.SinkFuture` of
        ``"completed"`` (upstream completed) or ``"cancelled"`` (stopped first, e.g. downstream
        cancelled), raising the failure if upstream failed; ``keep`` combines it with this
        blueprint's value (``right``: only the completion).

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self.via(Flow(_native.flow_watch_termination()), keep)

    def recover(self: S, fn: Callable[[BaseException], Any]) -> S:
        """On upstream failure emits ``fn(exception)`` and completes; ``fn`` returning ``None``
        lets the failure propagate. ``exception`` is the original Python exception when user
        code raised it, else a :class:`weir.StageFailed`. Cancellation is never recovered.

        Emits when: an element arrives, or upstream failed and ``fn`` returned a value.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes, or fails and ``fn`` returned a value.
        Cancels when: downstream cancels.
        Fails when: upstream fails and ``fn`` returned ``None`` (or raised: that error)."""
        return self._same(self._n.via(_native.flow_recover(fn)))

    def recover_with_retries(self: S, attempts: int, fn: Callable[[BaseException], Any]) -> S:
        """On upstream failure continues with the source ``fn(exception)`` returns (a weir
        :class:`Source` or any iterable), at most ``attempts`` times (failures of those sources
        count too); ``None`` keeps the failure.

        Emits when: the current upstream (original or recovery source) emits.
        Backpressures when: downstream backpressures.
        Completes when: the current upstream completes.
        Cancels when: downstream cancels.
        Fails when: a failure arrives with no attempt left, or ``fn`` returns ``None``."""
        return self._same(self._n.via(_native.flow_recover_with_retries(_size("recover_with_retries", "attempts", attempts, 0), fn)))

    def map_async_unordered(
        self: S,
        fn: Callable[[Any], Awaitable[Any]],
        parallelism: int = 4,
        *,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Like :meth:`map_async` but emits results in completion order: a batch's results in
        the order its coroutines finished, batches as they complete; at most ``parallelism``
        coroutines at once.

        Emits when: the coroutines of a batch completed (in their completion order).
        Backpressures when: two batches are in flight and downstream backpressures.
        Completes when: upstream completes and every coroutine finished.
        Cancels when: downstream cancels (running coroutines are cancelled).
        Fails when: a coroutine raises (under the ``stop`` directive), or upstream fails."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("map_async_unordered() takes an async def function")
        sub = _UnorderedSubmitter(fn, _size(name or "map_async_unordered", "parallelism", parallelism))
        native = _native.flow_external(name or "map_async_unordered", sub, 2, ordered=False)
        return _apply(self, native, None, supervision, default, dead_letters)

    def grouped_within(self: S, n: int, within: float) -> S:
        """Lists of up to ``n`` elements, emitted early when ``within`` seconds passed since the
        group's first element (timer in Rust, on the run's clock).

        Emits when: ``n`` elements are buffered, or ``within`` elapsed with some buffered.
        Backpressures when: a group is ready and downstream backpressures.
        Completes when: upstream completes and the last group is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_grouped_within(_size("grouped_within", "n", n), _seconds("grouped_within", "within", within))))

    def batch(self: S, max: int, seed: Callable[[Any], Any], aggregate: Callable[[Any, Any], Any]) -> S:
        """While downstream is busy, aggregates up to ``max`` elements: ``seed(first)`` then
        ``aggregate(acc, x)``. The grouping runs in Rust on the consumer's demand; ``seed``/
        ``aggregate`` run on the dispatcher once per group.

        Emits when: downstream has demand and an aggregate is pending.
        Backpressures when: ``max`` elements are aggregated and downstream backpressures.
        Completes when: upstream completes and the pending aggregate is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``seed``/``aggregate`` raises."""
        return self._same(self._n.via(_native.flow_batch_lists(_size("batch", "max", max), _Folder(seed, aggregate))))

    def conflate(self: S, aggregate: Callable[[Any, Any], Any], seed: Optional[Callable[[Any], Any]] = None) -> S:
        """While downstream is busy, combines elements with ``aggregate(acc, x)`` (from
        ``seed(first)``, or the first element itself): a slow consumer sees the latest summary.
        Decided on the consumer's demand: a consumer that asked for nothing while elements
        arrived gets them as one aggregate.

        Emits when: downstream has demand and an aggregate is pending.
        Backpressures when: never (it aggregates instead).
        Completes when: upstream completes and the pending aggregate is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``seed``/``aggregate`` raises."""
        return self._same(self._n.via(_native.flow_batch_lists(0, _Folder(seed or _identity, aggregate))))

    def expand(self: S, extrapolate: Optional[Callable[[Any], Iterable[Any]]] = None) -> S:
        """Extrapolates while downstream is faster than upstream (Akka's ``expand``): each
        element ``x`` becomes the iterator ``iter(extrapolate(x))``; its first item is emitted
        when downstream asks (every element is expanded once), the following ones only while
        downstream asks for more and no new element is ready. Without ``extrapolate`` the last
        element is repeated. Only what downstream requested is produced.

        Emits when: downstream has demand and an element is not yet expanded, or the current
        iterator has more items and no new element is ready.
        Backpressures when: an element received has not been expanded yet.
        Completes when: upstream completes and its last element was expanded.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``extrapolate`` or the iterator raises."""
        return self._same(self._n.via(_native.flow_expand(extrapolate)))

    def delay(self: S, seconds: float, capacity: int = 0) -> S:
        """Emits every element ``seconds`` after it arrived (timer in Rust); ``capacity`` bounds
        the elements held (the engine default when 0).

        Emits when: an element's delay elapsed and downstream has demand.
        Backpressures when: ``capacity`` elements are held.
        Completes when: upstream completes and every held element is emitted.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_timed("delay", _seconds("delay", "seconds", seconds, positive=False), _size("delay", "capacity", capacity, 0))))

    def idle_timeout(self: S, seconds: float) -> S:
        """Fails with a timeout (``StageFailed.kind == "timeout"``) when no element passes for
        ``seconds``.

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels, or the timeout fires (the stage fails).
        Fails when: no element for ``seconds``, or upstream fails."""
        return self._same(self._n.via(_native.flow_timed("idle_timeout", _seconds("idle_timeout", "seconds", seconds))))

    def completion_timeout(self: S, seconds: float) -> S:
        """Fails with a timeout when the stream has not completed ``seconds`` after it started.

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes in time.
        Cancels when: downstream cancels, or the timeout fires (the stage fails).
        Fails when: ``seconds`` elapsed first, or upstream fails."""
        return self._same(self._n.via(_native.flow_timed("completion_timeout", _seconds("completion_timeout", "seconds", seconds))))

    def initial_timeout(self: S, seconds: float) -> S:
        """Fails with a timeout when the first element has not arrived within ``seconds``.

        Emits when: an element arrives.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels, or the timeout fires (the stage fails).
        Fails when: no first element within ``seconds``, or upstream fails."""
        return self._same(self._n.via(_native.flow_timed("initial_timeout", _seconds("initial_timeout", "seconds", seconds))))

    def keep_alive(self: S, seconds: float, element: Any) -> S:
        """Injects ``element`` whenever no element passed for ``seconds`` (Akka's
        ``keepAlive``).

        Emits when: upstream emits, or ``seconds`` passed without an element.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_keep_alive(_seconds("keep_alive", "seconds", seconds), element)))

    def initial_delay(self: S, seconds: float) -> S:
        """Holds every element back until ``seconds`` after the start, then passes them.

        Emits when: upstream emits and the initial delay has passed.
        Backpressures when: the delay has not passed or downstream backpressures.
        Completes when: upstream completes (at once when nothing is held).
        Cancels when: downstream cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_initial_delay(_seconds("initial_delay", "seconds", seconds, positive=False))))

    def flat_map_concat(self: S, fn: Callable[[Any], Any]) -> S:
        """Turns each element into a source (``fn`` returns a weir :class:`Source` or any
        iterable) and emits their elements one source after the other.

        Emits when: the current substream emits.
        Backpressures when: downstream backpressures (upstream waits while a substream runs).
        Completes when: upstream completes and the last substream completes.
        Cancels when: downstream cancels (the running substream is cancelled too).
        Fails when: upstream or a substream fails, or ``fn`` raises."""
        return self._same(self._n.via(_native.flow_flat_map_sources(fn, 1)))

    def flat_map_merge(self: S, breadth: int, fn: Callable[[Any], Any]) -> S:
        """Like :meth:`flat_map_concat` but runs up to ``breadth`` substreams at once and
        merges their elements.

        Emits when: any running substream emits.
        Backpressures when: downstream backpressures, or ``breadth`` substreams are running.
        Completes when: upstream completes and every substream completes.
        Cancels when: downstream cancels (the running substreams are cancelled too).
        Fails when: upstream or a substream fails, or ``fn`` raises."""
        return self._same(self._n.via(_native.flow_flat_map_sources(fn, _size("flat_map_merge", "breadth", breadth), merge=True)))

    def group_by(self: S, max_substreams: int, key: Optional[Callable[[Any], Any]] = None, flow: Optional["Flow"] = None) -> Any:
        """Splits the stream into one substream per key (``key(x)``, compared with ``==``) with
        at most ``max_substreams`` keys. Finish with ``.merge_substreams_via(flow)`` (each key's
        elements through its own instance of ``flow``) or ``.merge_substreams()``; passing
        ``flow=`` does it at once.

        Emits when: a substream's flow emits.
        Backpressures when: downstream or the substream of the next element backpressures.
        Completes when: upstream and every substream complete.
        Cancels when: downstream cancels (every substream is cancelled too).
        Fails when: upstream or a substream fails, ``key`` raises, or a key beyond
        ``max_substreams`` appears."""
        n = _size("group_by", "max_substreams", max_substreams)
        sub = SubFlows(self, lambda f: _native.flow_group_by(n, key, f._n), f"group_by({n})")
        return sub if flow is None else sub.merge_substreams_via(flow)

    def split_when(self: S, pred: Callable[[Any], Any], flow: Optional["Flow"] = None) -> Any:
        """Starts a new segment before each element matching ``pred`` (except the first
        element); finish with ``.merge_substreams_via(flow)`` / ``.merge_substreams()``.

        Emits when: the current segment's flow emits.
        Backpressures when: downstream or the current segment's flow backpressures.
        Completes when: upstream and the last segment complete.
        Cancels when: downstream cancels (the open segment is cancelled too).
        Fails when: upstream or a segment's flow fails, or ``pred`` raises."""
        sub = SubFlows(self, lambda f: _native.flow_split(pred, False, f._n), "split_when")
        return sub if flow is None else sub.merge_substreams_via(flow)

    def split_after(self: S, pred: Callable[[Any], Any], flow: Optional["Flow"] = None) -> Any:
        """Ends the current segment after each element matching ``pred``; finish with
        ``.merge_substreams_via(flow)`` / ``.merge_substreams()``.

        Emits when: the current segment's flow emits.
        Backpressures when: downstream or the current segment's flow backpressures.
        Completes when: upstream and the last segment complete.
        Cancels when: downstream cancels (the open segment is cancelled too).
        Fails when: upstream or a segment's flow fails, or ``pred`` raises."""
        sub = SubFlows(self, lambda f: _native.flow_split(pred, True, f._n), "split_after")
        return sub if flow is None else sub.merge_substreams_via(flow)

    def also_to(self: S, sink: "Sink", keep: Keep = "left") -> S:
        """Sends every element to ``sink`` as well (eager cancel); ``keep="right"``/``"both"``
        keeps the sink's materialized value (e.g. its collected list).

        Emits when: an element arrives and both downstream and ``sink`` have credit.
        Backpressures when: downstream or ``sink`` backpressures.
        Completes when: upstream completes, or downstream or ``sink`` cancels.
        Cancels when: downstream or ``sink`` cancels.
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_also_to(sink._n, False), keep), self._meta | sink._meta)

    def wire_tap(self: S, sink: "Sink", keep: Keep = "left") -> S:
        """Sends elements to ``sink`` when it has credit, dropping them for it otherwise
        (never slows the main stream).

        Emits when: an element arrives and downstream has credit.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes or downstream cancels (``sink`` cancelling is ignored).
        Cancels when: downstream cancels (``sink`` cancelling is ignored).
        Fails when: upstream fails."""
        return self._same(self._n.via(_native.flow_also_to(sink._n, True), keep), self._meta | sink._meta)

    def divert_to(self: S, sink: "Sink", pred: Callable[[Any], Any], keep: Keep = "left") -> S:
        """Sends elements matching ``pred`` to ``sink`` only; the others continue downstream.

        Emits when: an element not matching ``pred`` arrives and downstream has credit.
        Backpressures when: the destination of an element backpressures.
        Completes when: upstream completes, or downstream or ``sink`` cancels.
        Cancels when: downstream or ``sink`` cancels.
        Fails when: upstream fails, or ``pred`` raises."""
        return self._same(self._n.via(_native.flow_divert_to(sink._n, pred), keep), self._meta | sink._meta)

    def merge_sorted(self: S, other: "Source") -> S:
        """Merges this stream and ``other``, both sorted ascending (Python ``<``), into one
        sorted stream (ties: this stream first).

        Emits when: both streams have an element available (or one completed).
        Backpressures when: downstream backpressures.
        Completes when: both streams complete.
        Cancels when: downstream cancels (both streams are cancelled).
        Fails when: either stream fails, or a comparison raises."""
        return self._same(self._n.via(_native.flow_merge_sorted(other._n)), self._meta | other._meta)

    def interleave(self: S, other: "Source", segment_size: int = 1) -> S:
        """Alternates segments of ``segment_size`` elements from this stream and ``other``.

        Emits when: the current stream has elements available.
        Backpressures when: downstream backpressures.
        Completes when: both streams complete.
        Cancels when: downstream cancels (both streams are cancelled).
        Fails when: either stream fails."""
        segment_size = _size("interleave", "segment_size", segment_size)
        return self._same(self._n.via(_native.flow_interleave(other._n, segment_size)), self._meta | other._meta)

    def zip_latest(self: S, other: "Source") -> S:
        """Emits ``(a, b)`` with the latest element of each stream whenever either emits, once
        both have emitted.

        Emits when: either stream emits and both have emitted at least once.
        Backpressures when: downstream backpressures.
        Completes when: either stream completes.
        Cancels when: downstream cancels, or one stream completes (the other is cancelled).
        Fails when: either stream fails."""
        return self._same(self._n.via(_native.flow_zip_latest(other._n)), self._meta | other._meta)

    def rows(self: S) -> S:
        """Record batches (or tables, or anything with ``__arrow_c_array__``) as dict rows.

        Emits when: a batch arrived (its rows, in order).
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or an element is not Arrow data."""
        from .columnar import to_rows

        return self.flat_map(to_rows, name="rows")

    def key_by(
        self,
        key: Union[None, str, int, Callable[[Any], Any]] = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        key_codec: str = "builtin",
    ) -> "Keyed[Any, Any, Any]":
        """Groups by ``key(element)`` (the element itself when ``None``, ``element[key]`` for a
        ``str`` or ``int``); finish with :meth:`Keyed.count`, ``sum``/``min``/``max``/``mean``/
        ``first``/``last`` (in Rust), :meth:`Keyed.fold` or :meth:`Keyed.reduce`. ``supervision``
        applies to the calls of ``key`` (after ``count()``, ``with_supervision`` does too).
        Keys route by a stable hash of their encoding (``weir.codec``): built-in keys (None,
        bool, int, float, str, bytes, tuples of them); ``key_codec="pickle"`` opts into any
        picklable key (a key without an encoding fails ``key_by`` naming it)."""
        if key_codec not in ("builtin", "pickle"):
            raise ValueError(f"key_by: key_codec must be 'builtin' or 'pickle', not {key_codec!r}")
        return Keyed(self, key, _supervision(supervision, default, dead_letters), key_codec)

    def join_by(
        self,
        other: "Source[Any]",
        key: Union[None, str, int, Callable[[Any], Any]] = None,
        other_key: Union[None, str, int, Callable[[Any], Any]] = None,
        *,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
        key_codec: str = "builtin",
    ) -> Any:
        """Pairs this stream (left, right after ``assign_timestamps``) with ``other`` (a source
        after its own ``assign_timestamps``) by ``key(element)`` and ``other_key(element)``
        (``key`` when ``None``; the element itself when both are ``None``), to join with
        ``.window(windows, fn)`` or ``.interval(lower, upper, fn)`` (see :mod:`weir._join`).
        Keys route by a stable hash of their encoding (``weir.codec``, or pickles with
        ``key_codec="pickle"``); the join is checkpointed by key group; ``supervision`` applies
        to the key stages (the timestamp and key calls)."""
        from ._join import JoinBy

        if key_codec not in ("builtin", "pickle"):
            raise ValueError(f"join_by: key_codec must be 'builtin' or 'pickle', not {key_codec!r}")
        k = key_function(key)
        ok = k if other_key is None else key_function(other_key)
        return JoinBy(self, other, k, ok, _supervision(supervision, default, dead_letters), key_codec)

    def assign_timestamps(self: S, ts: Callable[[Any], float], watermarks: Any, *, idleness: Optional[float] = None) -> S:
        """Stamps each element with its event time ``ts(element)`` (seconds) and emits the
        watermarks of ``watermarks`` (:class:`BoundedOutOfOrderness`, :class:`Monotonous`) in
        band; ``idleness`` (seconds) declares the stream idle after that long without an element.
        Follow with ``key_by(f).window(...)`` for event-time windows.

        Emits when: upstream emits (the elements unchanged).
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or ``ts`` raises or returns no number (naming the element)."""
        from ._windows import BoundedOutOfOrderness, Monotonous

        if not isinstance(watermarks, (BoundedOutOfOrderness, Monotonous)):
            raise TypeError(f"assign_timestamps: expected BoundedOutOfOrderness or Monotonous, got {watermarks!r}")
        idle = None if idleness is None else _seconds("assign_timestamps", "idleness", idleness)
        kind, bound = watermarks._native()
        out = self._same(self._n.via(_native.flow_assign_timestamps(ts, kind, bound, idle)))
        out._event = (self, ts, watermarks, idle)
        return out

    def ask(self: S, actor: Any, parallelism: int = 1, timeout: float = 5.0) -> S:
        """Asks the actor behind ``actor`` (a :class:`weir.ActorRef`) with every element and
        emits its replies (``ctx.reply(x)``) in input order, at most ``parallelism`` asks in
        flight; ``timeout`` seconds on the clock of the actor's run.

        Emits when: the reply to the oldest element in flight arrived and downstream has room.
        Backpressures when: ``parallelism`` asks are outstanding, or downstream backpressures.
        Completes when: upstream completes and every ask was answered and emitted.
        Cancels when: downstream cancels (late replies go nowhere).
        Fails when: upstream fails, or an ask fails (timeout, no reply, the actor stopped) under
        supervision ``stop`` (the error names the actor); ``with_supervision(default="resume")``
        drops that element and goes on."""
        n = _size("ask", "parallelism", parallelism)
        return self._same(self._n.via(_native.flow_ask(actor, n, _seconds("ask", "timeout", timeout)), "left"))

    def kill_switch(self: S) -> S:
        """Inserts a kill switch; the materialized value becomes ``(previous, KillSwitch)``."""
        return self._same(self._n.via(_native.flow_kill_switch(), "both"))


class Keyed(KeyedBuiltins, Generic[_Up, _K, T]):
    """A stream grouped by key; aggregates run in Rust, one result per key on completion
    (``count``, ``sum``, ``min``, ``max``, ``mean``, ``first``, ``last`` without calling Python
    per element, see ``weir/_keyed.py``)."""

    __slots__ = ("_up", "_key", "_sup", "_codec")

    def __init__(
        self, upstream: Any, key: Optional[Callable[[Any], Any]], sup: Any = None, key_codec: str = "builtin"
    ) -> None:
        self._up = upstream
        self._key = key_function(key)
        self._sup = sup
        self._codec = key_codec

    def count(self) -> Any:
        """One ``(key, count)`` pair per key when the input completes; ``with_supervision`` on
        the result supervises the calls of the key function."""
        up = self._up

        def build(sup: Any) -> Any:
            out = up._same(up._n.via(_native.flow_key_count(self._key, sup, self._codec)))
            out._resup = build
            return out

        return build(self._sup)

    def fold(self, zero: Any, fn: Callable[[Any, Any], Any]) -> Any:
        """One ``(key, fold)`` pair per key when the input completes."""
        return self._up._same(self._up._n.via(_native.flow_key_fold(self._key, zero, fn, False, self._sup, self._codec)))

    def reduce(self, fn: Callable[[Any, Any], Any]) -> Any:
        """One ``(key, reduce)`` pair per key when the input completes."""
        return self._up._same(self._up._n.via(_native.flow_key_fold(self._key, None, fn, True, self._sup, self._codec)))

    def process(
        self,
        on_element: Callable[[Any, Any], Any],
        on_timer: Optional[Callable[[float, str, Any], Any]] = None,
    ) -> Any:
        """A keyed process function (Rust's keyed process stage): ``on_element(element, ctx)``
        per element and ``on_timer(t, "event" | "processing", ctx)`` per timer that fired;
        ``ctx`` (valid during the call) has ``key``, ``state`` / ``set_state(v)`` /
        ``clear_state()``, ``emit(x)``, ``watermark`` and ``processing_time`` (seconds), and
        ``register_event_timer(t)`` / ``register_processing_timer(t)`` (and ``delete_...``) for
        the key. Event-time timers fire once the watermark reaches them (all pending ones when
        the input completes), processing-time timers on the run's clock."""
        return self._up._same(self._up._n.via(_native.flow_key_process(self._key, on_element, on_timer, self._sup, self._codec)))

    def window(
        self,
        windows: Any,
        *,
        allowed_lateness: float = 0.0,
        late_to: Optional["Sink"] = None,
        processing_time: bool = False,
    ) -> Any:
        """Event-time ``windows`` (:class:`Tumbling`, :class:`Sliding`, :class:`Session`) per key,
        right after ``assign_timestamps``; fired windows stay ``allowed_lateness`` seconds for late
        elements, later ones go to ``late_to`` (see :class:`weir._windows.Windowed`). With
        ``processing_time=True`` the windows are on the run's clock (arrival time) instead."""
        from ._windows import Windowed

        return Windowed(self._up, self._key, self._sup, windows, allowed_lateness, late_to, processing_time, self._codec)


class Source(_Linear, Generic[_T_co]):
    """A blueprint with one output: where elements come from."""

    __slots__ = ()

    @staticmethod
    def from_tcp(
        addr: str,
        *,
        mode: str = "connect",
        framing: str = "lines",
        max_frame_length: int = 1 << 20,
        json: bool = False,
    ) -> "Source":
        """Frames read from TCP: ``mode="connect"`` (a client of ``addr``) or ``"bind"`` (a
        server on ``addr``, merging its connections; port 0 picks one, the materialized value
        is the bound ``"host:port"``). ``framing="lines"`` gives ``str`` lines, ``"length"``
        (u32 big-endian length prefix) gives ``bytes``; ``json=True`` decodes each frame with
        ``json.loads``. See docs/wire-format.md.

        Emits when: a frame arrived and downstream has demand.
        Backpressures when: downstream backpressures (the socket is not read; TCP flow control
        holds the sender back).
        Completes when: the peer closes (client mode).
        Cancels when: downstream cancels (the connections close).
        Fails when: a frame is longer than ``max_frame_length``, truncated at the end, or not
        UTF-8 / JSON, naming the peer and the frame's byte offset (or dead letters, as
        supervised)."""
        if mode not in ("connect", "bind"):
            raise ValueError(f"Source.from_tcp: mode is 'connect' or 'bind', not {mode!r}")
        native = Source(_native.source_tcp(addr, mode == "bind", framing, max_frame_length))
        if json:
            import json as _json

            return native.map(_json.loads, name="from_tcp_json")
        return native

    @staticmethod
    def stdin(*, json: bool = False) -> "Source":
        """The lines of standard input (``str``, without the newline) until EOF; ``json=True``
        decodes each with ``json.loads``.

        Emits when: a line was read and downstream has demand.
        Completes when: stdin reaches EOF.
        Fails when: a line is not UTF-8 (or JSON)."""
        native = Source(_native.source_stdin())
        if json:
            import json as _json

            return native.map(_json.loads, name="stdin_json")
        return native

    @staticmethod
    def events_by_persistence_id(journal: Any, pid: str, from_seq: int = 1, live: bool = False) -> "Source":
        """The events of ``pid`` in ``journal`` from ``from_seq`` on, as dicts ``pid, seq,
        event, tags``; ``live`` follows new events (else it completes at the end).

        Emits when: stored events remain and downstream has demand.
        Completes when: it read every event (not when ``live``).
        Fails when: the journal fails or an entry is corrupt (naming id and sequence)."""
        return Source(_native.source_events_by_persistence_id(journal, pid, from_seq, live))

    @staticmethod
    def events_by_tag(journal: Any, tag: str, offset: int = 0, live: bool = False) -> "Source":
        """The events tagged ``tag`` in ``journal`` from global ``offset`` on, as dicts
        ``offset, pid, seq, event, tags``; ``live`` follows new events.

        Emits when: tagged events remain and downstream has demand.
        Completes when: it read every one (not when ``live``).
        Fails when: the journal fails or an entry is corrupt."""
        return Source(_native.source_events_by_tag(journal, tag, offset, live))

    @staticmethod
    def actor(
        props: Any,
        *,
        mailbox: Any = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> "Source":
        """A source emitting what the actor ``props`` makes emits while it handles the messages
        told to its materialized :class:`weir.ActorRef` (``tell`` blocks while the mailbox is
        full, ``try_tell`` applies its overflow policy). Arguments as for ``Flow.actor``; use
        ``graph.start()`` and ``handle.materialized`` to get the ref while the run goes on.

        Emits when: the actor emits and downstream has room.
        Backpressures when: downstream backpressures (the actor is not called meanwhile, so its
        mailbox fills and ``tell`` waits).
        Completes when: the root actor stops itself, or every ref to it outside the stage was
        dropped, its mailbox is empty and no timer is active.
        Cancels when: never: a source has no upstream (downstream cancelling stops the actors).
        Fails when: the root raises under ``supervision="stop"``, or its mailbox overflows
        under ``overflow="fail"``."""
        return Source(_actor_stage(
            "source", props, mailbox, name, supervision, dead_letters, throughput, max_actors, stash_capacity, checkpointed,
            handler_time_limit, mailbox_budget, pool,
        ))

    @staticmethod
    def from_iter(iterable: Union[Iterable[Any], Callable[[], Iterable[Any]]]) -> "Source":
        """The items of ``iterable`` (``iter()`` is called again for every run), or of what
        the function ``iterable()`` returns, called for every run (``from_iter(lambda:
        read(path))``, ``from_iter(my_generator_function)``).

        Checkpoints: a collection's position is saved (a restored run skips the items a
        checkpoint counted), and so is that of a generator a function returns, since the
        function gives the same items again; a generator object passed as it is cannot be
        read again, so a restored run reads it from wherever it then stands.

        Emits when: an item is there and downstream has demand (an iterator is pulled on a
        thread of its own, a partial batch going out as soon as nothing more is ready).
        Backpressures when: never.
        Completes when: the items end.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: iterating raises (after the items before it), the function raises, or a
        restored position lies beyond the items."""
        if callable(iterable) and not hasattr(iterable, "__iter__"):
            return Source(_native.source_from_iter(iterable, [], True))
        return Source(_native.source_from_iter(iterable, []))

    @staticmethod
    def range(start: int, stop: Optional[int] = None, step: int = 1) -> "Source":
        """The integers of ``range(start, stop, step)``."""
        r = range(start) if stop is None else range(start, stop, step)
        return Source.from_iter(r)

    @staticmethod
    def single(x: Any) -> "Source":
        """One element."""
        return Source.from_iter((x,))

    @staticmethod
    def empty() -> "Source":
        """No element."""
        return Source.from_iter(())

    @staticmethod
    def repeat(x: Any) -> "Source":
        """``x`` forever (use ``take``).

        Emits when: downstream has demand.
        Backpressures when: never.
        Completes when: never.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: never."""
        return Source.from_iter(_Repeat(x))

    @staticmethod
    def unfold(state: Any, fn: Callable[[Any], Optional[Tuple[Any, Any]]]) -> "Source":
        """The elements produced by ``fn(state) -> (next_state, element)`` until it returns
        ``None`` (from ``state`` again for every run).

        Emits when: ``fn`` returned a pair and downstream has demand.
        Backpressures when: never (``fn`` is only called on demand).
        Completes when: ``fn`` returns ``None``.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: ``fn`` raises."""
        return Source.from_iter(_Unfold(state, fn))

    @staticmethod
    def failed(error: BaseException) -> "Source":
        """No element and a failure: the run raises ``StageFailed`` with ``error`` as cause.

        Emits when: never.
        Backpressures when: never.
        Completes when: never.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: at once, with ``error``."""
        return Source.from_iter(_Failed(error))

    @staticmethod
    def maybe() -> "Source":
        """At most one element, given through the materialized :class:`weir.MaybeHandle`:
        ``success(x)`` emits ``x`` and completes, ``empty()`` completes, ``fail(exc)`` fails
        (dropping the handle completes). Use ``graph.start()`` and ``handle.materialized``.

        Emits when: the handle's ``success`` is called.
        Backpressures when: never.
        Completes when: after that element, or on ``empty()``.
        Cancels when: downstream cancels (``is_stopped()`` turns true).
        Fails when: the handle's ``fail`` is called."""
        return Source(_native.source_maybe())

    @staticmethod
    def never() -> "Source":
        """No element, ever; ends only when cancelled.

        Emits when: never.
        Backpressures when: never.
        Completes when: never.
        Cancels when: downstream cancels.
        Fails when: never."""
        return Source(_native.source_never())

    @staticmethod
    def lazy(factory: Callable[[], "Source"]) -> "Source":
        """The source ``factory()`` returns, called on the first downstream demand (once per
        run, never if downstream cancels before asking); materializes a :class:`weir.SinkFuture` of the inner
        source's materialized value.

        Emits when: the inner source emits.
        Backpressures when: downstream backpressures.
        Completes when: the inner source completes.
        Cancels when: downstream cancels (the inner source is cancelled).
        Fails when: ``factory`` raises or returns no Source, or the inner source fails."""
        return Source(_native.source_lazy(factory))

    @staticmethod
    def tick(initial_delay: float, interval: float, value: Any) -> "Source":
        """``value`` after ``initial_delay`` seconds, then every ``interval`` seconds (timer in
        Rust); ticks missed while downstream backpressures are dropped. Materializes a
        ``Cancellable`` (``cancel()`` completes the source).

        Emits when: a tick is due and downstream has demand.
        Backpressures when: never (missed ticks are skipped).
        Completes when: the ``Cancellable`` is cancelled (or downstream cancels, e.g. ``take``).
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: never."""
        initial_delay = _seconds("Source.tick", "initial_delay", initial_delay, positive=False)
        return Source(_native.source_tick(initial_delay, _seconds("Source.tick", "interval", interval), value))

    @staticmethod
    def queue(capacity: int, overflow: str = "backpressure") -> "Source":
        """A source fed from Python through the materialized :class:`weir.SourceQueue`
        (``offer(x)``, ``await offer_async(x)``, ``complete()``, ``fail(exc)``); ``overflow`` is
        ``backpressure`` (``offer`` blocks while full), ``drop_head``, ``drop_tail``,
        ``drop_buffer``, ``drop_new`` or ``fail``. Use ``graph.start()`` and
        ``handle.materialized`` to get the queue while the run goes on. Elements leave the buffer
        only as the consumer asks, so ``capacity`` bounds everything it has not requested.

        Emits when: an element is buffered and downstream has demand.
        Backpressures when: never itself; ``offer`` waits on a full buffer under backpressure.
        Completes when: ``complete()`` is called and the buffer is drained.
        Cancels when: never: a source has no upstream (after downstream cancels, ``offer`` says ``"closed"``).
        Fails when: ``fail()`` is called, or the buffer overflows under ``fail``."""
        return Source(_native.source_queue(_size("Source.queue", "capacity", capacity), overflow))

    @staticmethod
    def from_async_iter(aiterable: Any) -> "Source":
        """The items of an async iterable (or of ``aiterable()`` when it is a zero-argument
        callable, called once per run), awaited on the run's event loop one at a time.

        Emits when: the iterator yielded an item and downstream has demand.
        Backpressures when: never (the iterator is only advanced on demand).
        Completes when: the iterator is exhausted.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: the iterator raises."""
        return Source.from_iter(_AsyncIterBridge(aiterable))

    @staticmethod
    def from_arrow(data: Any, *, rows: bool = False) -> "Source":
        """The record batches (``pyarrow.RecordBatch``, one element per batch, no copy) of an
        Arrow table, record batch, reader, or anything exposing ``__arrow_c_stream__`` /
        ``__arrow_c_array__`` (polars, pandas >= 2.2, DuckDB, ...); ``rows=True`` emits dict
        rows instead (same as ``.rows()``). Data is read batch by batch, never loaded whole: a
        table is re-read and an exporting object (polars, DuckDB...) exported anew by every
        run; a ``RecordBatchReader`` streams once (a second run fails with a clear error).

        Emits when: downstream has demand and batches remain.
        Backpressures when: never.
        Completes when: every batch was emitted.
        Cancels when: never: a source has no upstream (it stops when downstream cancels).
        Fails when: ``data`` is not Arrow data (raised at once), or a reader is read twice."""
        from .columnar import ArrowBatches, ArrowRows

        return Source.from_iter(ArrowRows(data) if rows else ArrowBatches(data))

    @staticmethod
    def from_pandas(df: Any, *, rows: bool = False) -> "Source":
        """A pandas DataFrame as record batches (``rows=True``: dict rows); the index is dropped.
        Converting pandas to Arrow may copy (object columns always do)."""
        from .columnar import pandas_to_arrow

        return Source.from_arrow(pandas_to_arrow(df), rows=rows)

    @staticmethod
    def from_polars(df: Any, *, rows: bool = False) -> "Source":
        """A polars DataFrame as record batches (zero-copy through ``__arrow_c_stream__``);
        ``rows=True``: dict rows."""
        return Source.from_arrow(df, rows=rows)

    @staticmethod
    def from_lines(
        path: Any,
        *,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> "Source":
        """The lines of a file, of a directory's files or of a glob's (``"in/*.txt"``), in path
        order, as ``str`` (see :mod:`weir._files`; replayable by byte offset in checkpoints).
        ``follow=seconds`` (a directory or glob) keeps reading new files as they appear: the
        listing is repeated at that interval and each new file whose path sorts after the last
        one read is read (write files elsewhere or hidden and rename them into place).
        ``share=(index, count)`` reads only the files at positions ``i % count == index`` of
        the listing: node ``index`` of a job on ``count`` nodes reads its share of one input
        (``share=node.share`` in :mod:`weir.cluster`), and a savepoint of the job restores
        onto another node count, each source taking its new share with the old positions.

        Emits when: a line was read and downstream has demand.
        Backpressures when: never (reading stops two blocks ahead).
        Completes when: the last file was read to its end (with ``follow``: only when cancelled).
        Cancels when: never (a source).
        Fails when: a file cannot be read, or a line is not UTF-8 or longer than ``max_line``
        (the error names file, line and byte offset; under ``resume`` the line goes to the
        dead letters)."""
        from ._files import lines, supervisable

        return supervisable(lines(path, block_size, max_line, follow, share))

    @staticmethod
    def from_csv(
        path: Any,
        *,
        delimiter: str = ",",
        header: bool = False,
        decode: Any = None,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> "Source":
        """The records of CSV files (split in Rust; quoted fields understood; a record is one
        line), each a tuple of ``str``; ``decode=(str, int, float, bytes, ...)`` converts each
        field in Rust, a callable ``decode`` maps the tuple of ``str``. ``follow`` and
        ``share`` as in :meth:`from_lines`.

        Emits when: a record was decoded and downstream has demand.
        Backpressures when: never (reading stops two blocks ahead).
        Completes when: the last file was read to its end (with ``follow``: only when cancelled).
        Cancels when: never (a source).
        Fails when: a file cannot be read, or a record does not split or decode (the error
        names file, line and byte offset; under ``resume`` the line goes to the dead letters)."""
        from ._files import csv, supervisable

        return supervisable(csv(path, delimiter, header, decode, block_size, max_line, follow, share))

    @staticmethod
    def from_json_lines(
        path: Any,
        *,
        raw: bool = False,
        block_size: Optional[int] = None,
        max_line: Optional[int] = None,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> "Source":
        """The JSON values of JSON-lines files, one per non-blank line, validated in Rust and
        decoded with ``json.loads`` (``raw=True``: the line as ``str``). ``follow`` and
        ``share`` as in :meth:`from_lines`.

        Emits when: a line was checked (and decoded) and downstream has demand.
        Backpressures when: never (reading stops two blocks ahead).
        Completes when: the last file was read to its end (with ``follow``: only when cancelled).
        Cancels when: never (a source).
        Fails when: a file cannot be read or a line is not one JSON value (the error names file,
        line, byte offset and column; under ``resume`` the line goes to the dead letters)."""
        from ._files import json_lines, supervisable

        return supervisable(json_lines(path, raw, block_size, max_line, follow, share))

    @staticmethod
    def from_parquet(
        path: Any,
        *,
        columns: Optional[Sequence[str]] = None,
        batch_rows: Optional[int] = None,
        rows: bool = False,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> "Source":
        """The record batches of Parquet files (a file, a directory's files or a glob's, in
        path order), read in Rust: ``pyarrow.RecordBatch`` elements of at most ``batch_rows``
        rows (default 8192; ``weir.ArrowBatch`` without pyarrow), zero-copy; ``columns`` reads
        only those, in that order; ``rows=True`` emits dict rows. Replayable by file and row in
        checkpoints (whole row groups before the row are skipped unread). ``follow`` and
        ``share`` as in :meth:`from_lines`.

        Emits when: a batch was read and downstream has demand.
        Backpressures when: never (reading stops two batches ahead).
        Completes when: the last file was read to its end (with ``follow``: only when cancelled).
        Cancels when: never (a source).
        Fails when: a file cannot be read or is not Parquet, or a column is missing (the error
        names the file)."""
        from ._files import columnar

        return columnar("parquet", path, columns, batch_rows, follow, share, rows)

    @staticmethod
    def from_arrow_ipc(
        path: Any,
        *,
        columns: Optional[Sequence[str]] = None,
        batch_rows: Optional[int] = None,
        rows: bool = False,
        follow: Optional[float] = None,
        share: Optional[Tuple[int, int]] = None,
    ) -> "Source":
        """The record batches of Arrow IPC files (the file format: ``pyarrow.feather``
        version 2, ``RecordBatchFileWriter``), as :meth:`from_parquet` reads Parquet.

        Emits when: a batch was read and downstream has demand.
        Backpressures when: never (reading stops two batches ahead).
        Completes when: the last file was read to its end (with ``follow``: only when cancelled).
        Cancels when: never (a source).
        Fails when: a file cannot be read or is not an Arrow IPC file, or a column is missing
        (the error names the file)."""
        from ._files import columnar

        return columnar("arrow_ipc", path, columns, batch_rows, follow, share, rows)

    def to(self, sink: "Sink", keep: Keep = "left") -> "RunnableGraph":
        """Connects ``sink``; ``keep`` picks the materialized value."""
        return RunnableGraph(self._n.to(sink._n, keep), self._meta | sink._meta)

    def run_with(self, sink: "Sink", **kw: Any) -> Any:
        """Connects ``sink``, runs to completion and returns the sink's result."""
        return self.to(sink, "right").run(**kw)

    async def run_with_async(self, sink: "Sink", **kw: Any) -> Any:
        """Like :meth:`run_with`, awaiting the run on the running event loop."""
        return await self.to(sink, "right").run_async(**kw)


class Flow(_Linear, Generic[_In_contra, _Out_co]):
    """A blueprint with one input and one output."""

    __slots__ = ()

    @staticmethod
    def create() -> "Flow":
        """An empty flow to chain operators on (``Flow.create().map(f).filter(g)``)."""
        return Flow(_native.flow_identity())

    @staticmethod
    def sharded(
        factory: Callable[[str], Any],
        entity_id: Callable[[Any], Any],
        *,
        mailbox: int = 1024,
        passivate_after: Optional[float] = None,
        parallelism: int = 1,
        shard_buffer: int = 256,
    ) -> "Flow":
        """A shard region: each element goes to the entity ``str(entity_id(element))`` names, a
        :class:`weir.Actor` made by ``factory(id)`` on the entity's first message (and again
        after its supervision stopped it, or after it was passivated); what the entities emit
        goes downstream, in message order per entity. ``passivate_after`` (seconds on the run's
        clock) stops entities idle that long; ``parallelism`` shards the entities by id over
        subtasks; ``mailbox`` bounds each entity's mailbox. A message whose entity's mailbox is
        full waits in its shard's buffer (a shard is a key group of ids; at most
        ``shard_buffer`` messages each), so other shards keep flowing; a message for a shard
        whose buffer is full holds the region's input back until that shard has room. Nothing is
        dropped.

        Emits when: an entity emits and downstream has room.
        Backpressures when: the element at the region's head is for a shard whose buffer is
        full, or downstream backpressures.
        Completes when: upstream completes and every entity handled its messages.
        Cancels when: downstream cancels (every entity stops).
        Fails when: upstream fails, ``entity_id`` raises, or an entity's failure escalates past
        the region (the stage's supervision decides)."""
        return Flow(
            _native.flow_sharded(factory, entity_id, mailbox, passivate_after, parallelism, shard_buffer)
        )

    @staticmethod
    def event_sourced(
        entity: Any,
        journal: Any,
        *,
        position: Optional[Callable[[Any], Optional[int]]] = None,
        snapshot_every: Optional[int] = None,
        parallelism: int = 1,
        max_entities: Optional[int] = None,
    ) -> "Flow":
        """Event-sourced entities (a :class:`weir.EventSourcedEntity` subclass or instance)
        persisting to ``journal`` (a :class:`weir.Journal`); replies go downstream. Commands
        reach their entity by ``entity.persistence_id(command)``; ``position(command)`` (an
        int increasing per entity, e.g. the command's offset in its source) makes a replayed
        command apply once; ``snapshot_every`` saves a snapshot every n events; ``parallelism``
        shards the entities by persistence id; ``max_entities`` bounds those kept in memory.

        Emits when: the events of a batch of commands are persisted: their replies, in order.
        Backpressures when: downstream backpressures.
        Completes when: upstream completes.
        Cancels when: downstream cancels.
        Fails when: the journal refuses an append, or a handler raises, under the stop
        supervision (the error names the persistence id); a corrupt journal entry fails its
        entity's commands naming the id and sequence number."""
        if inspect.isclass(entity):
            entity = entity()
        return Flow(_native.flow_event_sourced(entity, journal, position, snapshot_every, parallelism, max_entities))

    @staticmethod
    def actor(
        props: Any,
        *,
        mailbox: Any = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> "Flow":
        """A flow whose elements are messages to the :class:`weir.Actor` that ``props`` (the
        class or a zero-argument factory) makes; what it and its children ``ctx.emit`` goes
        downstream. Materializes the root actor's :class:`weir.ActorRef` (what is told to it is
        handled beside the stream's elements). ``mailbox`` (a :class:`weir.Mailbox` or a
        capacity) bounds the ref's queue; ``supervision`` decides about the root's failures
        (``"stop"`` (default), ``"resume"``, ``"restart"`` (a fresh instance), or rules as in
        ``with_supervision``); ``dead_letters`` receives undeliverable and unhandled messages;
        ``throughput`` is the messages an actor handles per turn, ``max_actors`` caps the
        actors of the stage, ``stash_capacity`` each actor's stash. ``checkpointed=True`` saves
        the actor at every checkpoint of a run with ``state_dir=`` (``snapshot_state()``, by
        default its attributes not starting with ``_``, through ``weir.codec``, plus the
        messages queued for it) and a restored run hands the state to ``restore_state`` after
        ``pre_start``; every actor of the stage (children spawned with ``checkpointed=True``)
        must be. Quotas: ``handler_time_limit`` (seconds of wall time; a hook running longer
        fails after its effects, naming the actor, and is supervised like any failure; children
        take theirs from ``ctx.spawn``) and ``mailbox_budget`` (bytes all mailboxes of the
        stage hold together, each queued message counted as ``weir.ActorRef.message_bytes()``;
        beyond it a mailbox counts as full). ``pool=`` (a :class:`weir.InterpreterPool` of
        processes) runs the root actor's hooks in one of the pool's workers, a batch of
        messages per call, with the semantics of an inline actor (the mailbox, stash, timers
        and supervision stay in the stage; messages, emitted values and state must pickle;
        ``ctx.receive`` is for inline actors only); ``handler_time_limit`` is then the pool's
        call timeout. A worker that dies fails the message it ran with ``WorkerCrashed``; with
        ``checkpointed=True`` the fresh instance gets the state after the last message handled
        before it.

        Emits when: an actor emits and downstream has room.
        Backpressures when: the actor has not handled the previous batch (its mailbox is the
        stage's bounded input, so a slow actor slows its source) or downstream backpressures.
        Completes when: upstream completes and every queued message was handled (the actors
        then stop; ``post_stop`` may still emit), or the root actor stops itself.
        Cancels when: downstream cancels (every actor stops).
        Fails when: upstream fails, or the root raises under ``supervision="stop"`` (the error
        names the actor and the message, with the Python traceback)."""
        return Flow(_actor_stage(
            "flow", props, mailbox, name, supervision, dead_letters, throughput, max_actors, stash_capacity, checkpointed,
            handler_time_limit, mailbox_budget, pool,
        ))

    def to(self, sink: "Sink", keep: Keep = "left") -> "Sink":
        """Connects ``sink``, giving a sink."""
        return Sink(self._n.to(sink._n, keep), self._meta | sink._meta)


class Sink(_Blueprint, Generic[_In_contra, _Mat_co]):
    """A blueprint with one input: where elements go. Its materialized value is its result."""

    __slots__ = ()

    @staticmethod
    def to_tcp(addr: str, *, mode: str = "connect", framing: str = "lines", json: bool = False) -> "Sink":
        """Writes every element to TCP as a frame: ``mode="connect"`` (a client of ``addr``)
        or ``"bind"`` (a server; the first client gets the stream; the materialized value is
        the bound ``"host:port"``). ``framing="lines"`` writes ``str(x)`` lines, ``"length"``
        writes ``bytes`` (or UTF-8 ``str``) behind a u32 big-endian length; ``json=True``
        encodes each element with ``json.dumps`` first. Every batch is flushed.

        Backpressures when: the socket takes no more bytes (the peer reads slowly).
        Completes when: upstream completes (the connection is shut down for writing).
        Fails when: the peer closes the connection, or an element cannot be written."""
        if mode not in ("connect", "bind"):
            raise ValueError(f"Sink.to_tcp: mode is 'connect' or 'bind', not {mode!r}")
        native = Sink(_native.sink_tcp(addr, mode == "bind", framing))
        if json:
            import json as _json

            return Flow.create().map(_json.dumps, name="to_tcp_json").to(native, "right")
        return native

    @staticmethod
    def stdout(*, json: bool = False) -> "Sink":
        """Writes every element as a line of standard output (``str(x)``, or ``json.dumps``
        with ``json=True``); a closed pipe (``| head``) cancels the run instead of failing it.

        Backpressures when: stdout blocks.
        Completes when: upstream completes, or the pipe is closed."""
        native = Sink(_native.sink_stdout())
        if json:
            import json as _json

            return Flow.create().map(_json.dumps, name="stdout_json").to(native)
        return native

    @staticmethod
    def actor(
        props: Any,
        *,
        mailbox: Any = None,
        name: Optional[str] = None,
        supervision: Union[None, str, SupervisionRules] = None,
        dead_letters: Optional[DeadLetters] = None,
        throughput: Optional[int] = None,
        max_actors: Optional[int] = None,
        stash_capacity: Optional[int] = None,
        checkpointed: bool = False,
        handler_time_limit: Optional[float] = None,
        mailbox_budget: Optional[int] = None,
        pool: Any = None,
    ) -> "Sink":
        """A sink whose elements are messages to the actor ``props`` makes (what it emits is
        dropped); materializes its :class:`weir.ActorRef`. Arguments as for ``Flow.actor``.

        Consumes when: the actor has handled the previous batch (backpressures meanwhile).
        Completes when: upstream completes and every queued message was handled, or the root
        actor stops itself (upstream is then cancelled).
        Cancels when: the root actor stops itself.
        Fails when: upstream fails, or the root raises under ``supervision="stop"``."""
        return Sink(_actor_stage(
            "sink", props, mailbox, name, supervision, dead_letters, throughput, max_actors, stash_capacity, checkpointed,
            handler_time_limit, mailbox_budget, pool,
        ))

    @staticmethod
    def collect() -> "Sink":
        """Every element, in order, as a list."""
        return Sink(_native.sink_collect())

    @staticmethod
    def fold(zero: Any, fn: Callable[[Any, Any], Any]) -> "Sink":
        """``fn(acc, x)`` over every element, from ``zero``."""
        return Sink(_native.sink_fold(zero, fn))

    @staticmethod
    def reduce(fn: Callable[[Any, Any], Any]) -> "Sink":
        """Like :meth:`fold`, seeded with the first element."""
        return Flow.create().reduce(fn).to(Sink.head(), "right")

    @staticmethod
    def for_each(fn: Callable[[Any], Any]) -> "Sink":
        """Calls ``fn`` on every element; the result is ``None``."""
        return Sink(_native.sink_for_each(fn))

    @staticmethod
    def to_files(
        directory: Any,
        *,
        encode: Callable[[Any], Any] = str,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = "",
        max_part_age: Optional[float] = None,
    ) -> "Sink":
        """Each element as one line, ``encode(x)`` (``str`` or ``bytes``), in hidden temporary
        part files of ``directory`` (rolled before ``max_part_bytes``, default 128 MiB, and
        once a part has been open ``max_part_age`` seconds on the run's clock),
        committed by atomic rename to ``<prefix>-<seq:020><suffix>`` (names sort in commit
        order) at the end of the stream; the result is the list of committed paths.

        Emits when: never (a sink).
        Backpressures when: the writer thread is writing, syncing or renaming.
        Completes when: upstream completed and its last records were committed.
        Cancels when: never (it consumes everything).
        Fails when: ``encode`` raises or returns neither str nor bytes (naming the element;
        supervision applies), a file cannot be written, or upstream fails; uncommitted parts
        are removed."""
        from ._files import files_sink

        return files_sink(directory, encode, max_part_bytes, prefix, suffix, max_part_age)

    @staticmethod
    def to_parquet(
        directory: Any,
        *,
        compression: str = "snappy",
        row_group_rows: Optional[int] = None,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = ".parquet",
        max_part_age: Optional[float] = None,
    ) -> "Sink":
        """Record batches (``pyarrow`` batches or tables, polars DataFrames, ``weir.ArrowBatch``:
        any Arrow PyCapsule producer, imported without copying) written in Rust into Parquet
        part files of ``directory``, transactional as :meth:`to_files` (exactly-once with
        checkpoints): a part holds one schema (the first batch's columns, each nullable), is
        rolled before ``max_part_bytes`` of batches in memory and after ``max_part_age``
        seconds, and its row groups hold at most ``row_group_rows`` rows (default 1,048,576);
        ``compression`` is ``"snappy"`` or ``"none"``. The result is the list of committed paths.

        Emits when: never (a sink).
        Backpressures when: the writer thread is writing, syncing or renaming.
        Completes when: upstream completed and its last batches were committed.
        Cancels when: never (it consumes everything).
        Fails when: an element is not Arrow data (naming it; supervision applies), a batch has
        other columns than its part (both schemas named), a file cannot be written, or upstream
        fails; uncommitted parts are removed."""
        from ._files import columnar_sink

        return columnar_sink("parquet", directory, compression, row_group_rows, max_part_bytes, prefix, suffix, max_part_age)

    @staticmethod
    def to_arrow_ipc(
        directory: Any,
        *,
        max_part_bytes: Optional[int] = None,
        prefix: str = "part",
        suffix: str = ".arrow",
        max_part_age: Optional[float] = None,
    ) -> "Sink":
        """Record batches written into Arrow IPC part files (the file format), as
        :meth:`to_parquet` writes Parquet.

        Emits when: never (a sink).
        Backpressures when: the writer thread is writing, syncing or renaming.
        Completes when: upstream completed and its last batches were committed.
        Cancels when: never (it consumes everything).
        Fails when: an element is not Arrow data (naming it; supervision applies), a batch has
        other columns than its part, a file cannot be written, or upstream fails."""
        from ._files import columnar_sink

        return columnar_sink("arrow_ipc", directory, "snappy", None, max_part_bytes, prefix, suffix, max_part_age)

    @staticmethod
    def for_each_async(fn: Callable[[Any], Awaitable[Any]], parallelism: int = 4) -> "Sink":
        """Runs the coroutine function ``fn`` per element on the run's event loop."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("for_each_async() takes an async def function")
        native = _native.flow_external("for_each_async", AsyncSubmitter(fn, _size("Sink.for_each_async", "parallelism", parallelism), False), 2)
        return Sink(native.to(_native.sink_ignore(), "right"))

    @staticmethod
    def ignore() -> "Sink":
        """Discards every element."""
        return Sink(_native.sink_ignore())

    @staticmethod
    def lazy(factory: Callable[[], "Sink"]) -> "Sink":
        """The sink ``factory()`` returns, called when the first element arrives; materializes
        a :class:`weir.SinkFuture` of the inner sink's materialized value (itself a
        ``SinkFuture`` for result sinks). Without any element the completion raises
        ``RunCancelled`` (never materialized) and ``factory`` is not called.

        Consumes when: the inner sink consumes.
        Completes when: upstream completes.
        Cancels when: the inner sink cancels.
        Fails when: ``factory`` raises or returns no Sink, or upstream fails."""
        return Sink(_native.sink_lazy(factory))

    @staticmethod
    def head() -> "Sink":
        """The first element (fails on an empty stream); upstream is cancelled after it."""
        return Sink(_native.sink_head(False))

    @staticmethod
    def head_option() -> "Sink":
        """The first element or ``None``."""
        return Sink(_native.sink_head(True))

    @staticmethod
    def last() -> "Sink":
        """The last element (fails on an empty stream)."""
        return Sink(_native.sink_last(False))

    @staticmethod
    def last_option() -> "Sink":
        """The last element or ``None``."""
        return Sink(_native.sink_last(True))

    @staticmethod
    def queue(capacity: int = 16) -> "Sink":
        """Elements pulled from Python through the materialized :class:`weir.SinkQueue`
        (``pull()``, ``await pull_async()``, ``for x in q``, ``async for x in q``) with a buffer
        of ``capacity``; use ``graph.start()`` and ``handle.materialized``.

        Consumes when: the buffer has room (backpressures while it is full).
        Completes when: upstream completes (``pull`` returns ``None`` after the buffer) or the
        queue is cancelled (upstream cancelled).
        Cancels when: ``cancel()`` is called on the :class:`weir.SinkQueue`.
        Fails when: upstream fails (``pull`` raises ``StageFailed`` after the buffer)."""
        return Sink(_native.sink_queue(_size("Sink.queue", "capacity", capacity)))

    @staticmethod
    def to_arrow() -> "Sink":
        """Every element as a ``pyarrow.Table``: record batches (or tables) are assembled
        without copying (``pa.Table.from_batches``); dict rows (or scalars, as a ``value``
        column) are converted. Without pyarrow installed, weir's own record batches come back
        as a ``weir.ArrowTable`` that any Arrow PyCapsule consumer reads without a copy
        (``polars.DataFrame(t)``)."""
        from .columnar import rows_to_table

        return Sink(_native.sink_collect(rows_to_table))

    @staticmethod
    def to_polars() -> "Sink":
        """Every element as a polars DataFrame: record batches are assembled without copying
        (no pyarrow needed), dict rows are converted."""
        from .columnar import rows_to_polars

        return Sink(_native.sink_collect(rows_to_polars))

    @staticmethod
    def to_pandas() -> "Sink":
        """Every element as a pandas DataFrame."""
        from .columnar import rows_to_pandas

        return Sink(_native.sink_collect(rows_to_pandas))


class RunnableGraph(_Blueprint, Generic[_Mat_co]):
    """A closed blueprint: ``run()`` it (many times if you like)."""

    __slots__ = ()

    def run(
        self,
        *,
        batch_size: Optional[int] = None,
        progress: Any = None,
        parallelism: Optional[int] = None,
        state_dir: Any = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Any = None,
        allow_unmatched: bool = False,
        cluster: Any = None,
    ) -> Any:
        """Runs to completion on this thread and returns the materialized value (sink results
        resolved). Works inside a running event loop (Jupyter) too; Ctrl-C cancels the run and
        raises ``KeyboardInterrupt``. ``progress=True`` (or a total) shows a tqdm bar.
        ``parallelism=n`` is the run's default parallelism, taken by the stages that accept one
        (see docs/python.md); the others run once unless they set their own. ``state_dir``
        turns checkpoints on: every ``checkpoint_interval`` seconds (default 10) into that
        directory, keeping the newest ``retain`` (default 3); a run started on a directory
        holding a complete checkpoint resumes from it; otherwise ``restore_from`` (a savepoint
        directory, see ``RunHandle.savepoint``) is restored, and state in it of stages no
        longer in the graph is an error unless ``allow_unmatched=True``. ``cluster`` (a
        :class:`weir.cluster.ClusterNode`) makes this run one node of a job over nodes: its
        checkpoints complete only once every node wrote them."""
        from ._run import run_blocking

        return run_blocking(
            self,
            batch_size=batch_size,
            progress=progress,
            parallelism=parallelism,
            checkpoints=_checkpoints(state_dir, checkpoint_interval, retain, restore_from, allow_unmatched, cluster),
        )

    async def run_async(
        self,
        *,
        batch_size: Optional[int] = None,
        parallelism: Optional[int] = None,
        state_dir: Any = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Any = None,
        allow_unmatched: bool = False,
        cluster: Any = None,
    ) -> Any:
        """Runs the graph, awaiting its completion; ``async def`` stages run on this loop
        (checkpoint and cluster settings as for :meth:`run`)."""
        from ._run import run_async

        return await run_async(
            self,
            batch_size=batch_size,
            parallelism=parallelism,
            checkpoints=_checkpoints(state_dir, checkpoint_interval, retain, restore_from, allow_unmatched, cluster),
        )

    def start(
        self,
        *,
        batch_size: Optional[int] = None,
        cancel_grace: Optional[float] = None,
        parallelism: Optional[int] = None,
        state_dir: Any = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Any = None,
        allow_unmatched: bool = False,
        cluster: Any = None,
    ) -> Any:
        """Starts the graph in the background and returns a :class:`weir.RunHandle`; once the
        run is cancelled or over, ``wait()`` gives a call stuck in user code ``cancel_grace``
        seconds (default 3) before it raises a ``StageFailed`` naming the stage. Checkpoint
        settings as for :meth:`run`; the handle's ``latest_checkpoint`` and
        ``restored_checkpoint`` give their ids."""
        from ._run import RunHandle

        return RunHandle._start(
            self,
            batch_size=batch_size,
            cancel_grace=cancel_grace,
            parallelism=parallelism,
            checkpoints=_checkpoints(state_dir, checkpoint_interval, retain, restore_from, allow_unmatched, cluster),
        )


def _checkpoints(
    state_dir: Any,
    interval: Optional[float],
    retain: Optional[int],
    restore_from: Any,
    allow_unmatched: bool,
    cluster: Any = None,
) -> Any:
    from ._run import checkpoint_settings

    out = checkpoint_settings(state_dir, interval, retain, restore_from, allow_unmatched)
    if cluster is None:
        return out
    from .cluster import ClusterNode

    if not isinstance(cluster, ClusterNode):
        raise TypeError(f"run: cluster must be a weir.cluster.ClusterNode, got {type(cluster).__name__}")
    return {**(out or {}), "cluster": cluster._n}


class _Junction:
    kind = ""

    def __init__(self, n: int = 2) -> None:
        self.n = _size(type(self).__name__, "n", n)


class Broadcast(_Junction):
    """Every element to each of ``n`` outputs (ports: ``inlet``, ``outlets``).

    Emits when: an element arrives; it goes to every output not cancelled.
    Backpressures when: any output not cancelled backpressures.
    Completes when: upstream completes.
    Cancels when: every output cancelled, or the first one with ``eager_cancel=True``.
    Fails when: upstream fails."""

    kind = "broadcast"

    def __init__(self, n: int = 2, eager_cancel: bool = False) -> None:
        super().__init__(n)
        self.eager_cancel = eager_cancel


class Balance(_Junction):
    """Each element to one of ``n`` outputs that requested it (ports: ``inlet``, ``outlets``):
    no output receives more than its consumer asked for, so a slow consumer holds nothing that
    another could take.

    Emits when: an output has demand and an element is available.
    Backpressures when: no output has demand.
    Completes when: upstream completes.
    Cancels when: every output cancelled, or the first one with ``eager_cancel=True``.
    Fails when: upstream fails."""

    kind = "balance"

    def __init__(self, n: int = 2, eager_cancel: bool = False) -> None:
        super().__init__(n)
        self.eager_cancel = eager_cancel

    def _add(self, b: Any) -> Tuple[List[Any], List[Any]]:
        return b.add_fan("balance", self.n, bool(self.eager_cancel))


class Merge(_Junction):
    """``n`` inputs into one output, in arrival order (ports: ``inlets``, ``outlet``).

    Emits when: downstream has demand and an input has elements.
    Backpressures when: downstream backpressures.
    Completes when: all inputs complete, or the first one with ``eager_complete=True``.
    Cancels when: downstream cancels.
    Fails when: any input fails."""

    kind = "merge"

    def __init__(self, n: int = 2, eager_complete: bool = False) -> None:
        super().__init__(n)
        self.eager_complete = eager_complete

    def _add(self, b: Any) -> Tuple[List[Any], List[Any]]:
        return b.add_fan("merge", self.n, bool(self.eager_complete))


class Concat(_Junction):
    """``n`` inputs one after the other (ports: ``inlets``, ``outlet``)."""

    kind = "concat"


class Zip(_Junction):
    """Two inputs paired into tuples (ports: ``inlets``, ``outlet``)."""

    kind = "zip"

    def __init__(self) -> None:
        super().__init__(2)


class ZipWith(_Junction):
    """Two inputs whose n-th elements are combined by ``fn(a, b)`` (ports: ``inlets``,
    ``outlet``); a :class:`Zip` followed by the combining stage ``zip_with``.

    Emits when: both inputs have an element and downstream has demand.
    Backpressures when: downstream backpressures, or an input has nothing buffered.
    Completes when: any input completes and no buffered element of it remains to pair.
    Cancels when: downstream cancels (both inputs are cancelled).
    Fails when: any input fails, or ``fn`` raises under ``stop`` (the pairs combined before
    are emitted first); under ``resume``/``restart`` the failing pair is dead-lettered."""

    kind = "zip_with"

    def __init__(
        self,
        fn: Callable[[Any, Any], Any],
        *,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
    ) -> None:
        super().__init__(2)
        self.fn = fn
        self.supervision = supervision
        self.default = default

    def _add(self, b: Any) -> Tuple[List[Any], List[Any]]:
        fn = self.fn
        ins, outs = b.add_junction("zip", 2, False)
        combine = Flow.create().map(
            lambda t: fn(t[0], t[1]), name="zip_with", supervision=self.supervision, default=self.default
        )
        i, o, _ = b.add_flow(combine._n)
        b.connect(outs[0], i)
        return ins, [o]


class Partition(_Junction):
    """Each element to the output ``fn(x)`` (an index in ``range(n)``; ports: ``inlet``,
    ``outlets``). An out-of-range index fails the element (``IndexError: partition index 5
    out of range 0..2``; a non-int result is a ``TypeError``).

    Emits when: the chosen output has demand.
    Backpressures when: the chosen output backpressures.
    Completes when: upstream completes.
    Cancels when: every output cancelled, or the first one with ``eager_cancel=True``
    (elements for a cancelled output are dropped).
    Fails when: upstream fails, or ``fn`` raises or returns an invalid index."""

    kind = "partition"

    def __init__(self, n: int, fn: Callable[[Any], int], eager_cancel: bool = False) -> None:
        super().__init__(n)
        self.fn = fn
        self.eager_cancel = eager_cancel


class MergePreferred(_Junction):
    """Merges a preferred input (``inlets[0]``) and ``n`` secondary ones (``inlets[1:]``),
    taking from the preferred input whenever it has elements when downstream asks.

    Emits when: downstream has demand and an input has elements (the preferred one first).
    Backpressures when: downstream backpressures.
    Completes when: all inputs complete, or the first one with ``eager_complete=True``.
    Cancels when: downstream cancels.
    Fails when: any input fails."""

    kind = "merge_preferred"

    def __init__(self, n: int = 1, eager_complete: bool = False) -> None:
        super().__init__(n)
        self.eager_complete = eager_complete

    def _add(self, b: Any) -> Tuple[List[Any], List[Any]]:
        return b.add_fan("merge_preferred", self.n, bool(self.eager_complete))


class MergePrioritized(_Junction):
    """Merges ``len(priorities)`` inputs, picking among ready inputs with probability
    proportional to their priority.

    Emits when: downstream has demand and one of the inputs has elements.
    Backpressures when: downstream backpressures.
    Completes when: all inputs complete, or the first one with ``eager_complete=True``.
    Cancels when: downstream cancels.
    Fails when: any input fails."""

    kind = "merge_prioritized"

    def __init__(self, priorities: Sequence[int], eager_complete: bool = False) -> None:
        if len(priorities) == 0:
            raise ValueError("MergePrioritized: needs at least one priority")
        super().__init__(len(priorities))
        self.priorities = [_size("MergePrioritized", "priority", p) for p in priorities]
        self.eager_complete = eager_complete

    def _add(self, b: Any) -> Tuple[List[Any], List[Any]]:
        return b.add_fan("merge_prioritized", self.n, bool(self.eager_complete), self.priorities)


class Interleave(_Junction):
    """``n`` inputs in turn, ``segment_size`` elements from each.

    Emits when: the current input has elements.
    Backpressures when: downstream backpressures.
    Completes when: all inputs complete.
    Cancels when: downstream cancels (every input is cancelled).
    Fails when: any input fails."""

    kind = "interleave"

    def __init__(self, n: int = 2, segment_size: int = 1) -> None:
        super().__init__(n)
        self.segment_size = _size("Interleave", "segment_size", segment_size)


class MergeSorted(_Junction):
    """Two inputs sorted ascending (Python ``<``) merged into one sorted output.

    Emits when: both inputs have an element available (or one completed).
    Backpressures when: downstream backpressures.
    Completes when: both inputs complete.
    Cancels when: downstream cancels (both inputs are cancelled).
    Fails when: either input fails, or a comparison raises."""

    kind = "merge_sorted"

    def __init__(self) -> None:
        super().__init__(2)


class ZipLatest(_Junction):
    """``(a, b)`` of the latest elements of two inputs, whenever either emits (once both did).

    Emits when: either input emits and both have emitted at least once.
    Backpressures when: downstream backpressures.
    Completes when: either input completes.
    Cancels when: downstream cancels, or one input completes (the other is cancelled).
    Fails when: either input fails."""

    kind = "zip_latest"

    def __init__(self) -> None:
        super().__init__(2)


class Unzip(_Junction):
    """Pairs ``(a, b)`` split to two outputs (ports: ``inlet``, ``outlets[0]``, ``outlets[1]``).

    Emits when: both outputs have demand.
    Backpressures when: either output backpressures.
    Completes when: upstream completes.
    Cancels when: both outputs cancelled, or the first one with ``eager_cancel=True``.
    Fails when: upstream fails, or an element is not a pair."""

    kind = "unzip"

    def __init__(self, eager_cancel: bool = False) -> None:
        super().__init__(2)
        self.eager_cancel = eager_cancel


_EXT_JUNCTIONS = {"partition", "merge_preferred", "merge_prioritized", "interleave", "merge_sorted", "zip_latest", "unzip"}


class Ports:
    """The ports of a junction added to a :class:`GraphBuilder`."""

    def __init__(self, inlets: List[Any], outlets: List[Any]) -> None:
        self.inlets = inlets
        self.outlets = outlets

    @property
    def inlet(self) -> Any:
        """The first (or only) input."""
        return self.inlets[0]

    @property
    def outlet(self) -> Any:
        """The first (or only) output."""
        return self.outlets[0]


class GraphBuilder:
    """Wires sources, flows, sinks and junctions into non-linear graphs.

    >>> b = weir.GraphBuilder()
    >>> out, _ = b.add_source(weir.Source.range(10))
    >>> bc = b.add(weir.Broadcast(2))
    >>> b.connect(out, bc.inlet)
    """

    def __init__(self) -> None:
        self._b = _native.GraphBuilder()
        self._meta = _Meta()

    def add_source(self, source: Source) -> Tuple[Any, Any]:
        """Adds a source; returns ``(outlet, mat_key)``."""
        self._meta = self._meta | source._meta
        return self._b.add_source(source._n)

    def add_flow(self, flow: Flow) -> Tuple[Any, Any, Any]:
        """Adds a flow; returns ``(inlet, outlet, mat_key)``."""
        self._meta = self._meta | flow._meta
        return self._b.add_flow(flow._n)

    def add_sink(self, sink: Sink) -> Tuple[Any, Any]:
        """Adds a sink; returns ``(inlet, mat_key)``."""
        self._meta = self._meta | sink._meta
        return self._b.add_sink(sink._n)

    def add(self, junction: _Junction) -> Ports:
        """Adds a junction and returns its :class:`Ports`."""
        add = getattr(junction, "_add", None)
        if add is not None:
            ins, outs = add(self._b)
        elif junction.kind in _EXT_JUNCTIONS:
            ins, outs = _native.builder_add_junction(
                self._b,
                junction.kind,
                junction.n,
                getattr(junction, "fn", None),
                getattr(junction, "priorities", []),
                getattr(junction, "segment_size", 1),
                getattr(junction, "eager_cancel", False),
            )
        else:
            ins, outs = self._b.add_junction(junction.kind, junction.n, getattr(junction, "eager_cancel", False))
        return Ports(ins, outs)

    def connect(self, outlet: Any, inlet: Any) -> None:
        """Connects an outlet to an inlet."""
        self._b.connect(outlet, inlet)

    def via(self, outlet: Any, flow: Flow) -> Any:
        """Connects ``outlet`` through ``flow`` and returns the flow's outlet."""
        i, o, _ = self.add_flow(flow)
        self.connect(outlet, i)
        return o

    def build(self, *keys: Any) -> RunnableGraph:
        """A closed graph materializing to the value of one key, a tuple of several, or None."""
        return RunnableGraph(self._b.build(list(keys)), self._meta)

    def build_source(self, outlet: Any, *keys: Any) -> Source:
        """A source whose output is ``outlet``."""
        return Source(self._b.build_source(outlet, list(keys)), self._meta)

    def build_flow(self, inlet: Any, outlet: Any, *keys: Any) -> Flow:
        """A flow from ``inlet`` to ``outlet``."""
        return Flow(self._b.build_flow(inlet, outlet, list(keys)), self._meta)

    def build_sink(self, inlet: Any, *keys: Any) -> Sink:
        """A sink whose input is ``inlet``."""
        return Sink(self._b.build_sink(inlet, list(keys)), self._meta)


class KillSwitches:
    """Kill switches: stop a running stream from outside."""

    @staticmethod
    def single() -> Flow:
        """A flow materializing a ``KillSwitch`` (``shutdown()`` / ``abort(msg)``) per run."""
        return Flow(_native.flow_kill_switch())
