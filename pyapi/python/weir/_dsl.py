"""The Python DSL: :class:`Source`, :class:`Flow`, :class:`Sink`, :class:`RunnableGraph`,
:class:`GraphBuilder` and the junctions, with the same shapes and names as the Rust DSL."""

from __future__ import annotations

import inspect
from typing import (
    Any,
    Awaitable,
    Callable,
    Dict,
    FrozenSet,
    Generic,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from . import _native
from ._aio import AsyncSubmitter

T = TypeVar("T")
S = TypeVar("S", bound="_Blueprint")

Keep = str
"""How materialized values combine: ``"left"``, ``"right"``, ``"both"`` or ``"none"``."""

SupervisionRules = Sequence[Tuple[Type[BaseException], str]]


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


class _Meta:
    """What a blueprint needs from its run besides the Rust graph: pools to shut down after it."""

    __slots__ = ("pools",)

    def __init__(self, pools: FrozenSet[Any] = frozenset()) -> None:
        self.pools = pools

    def __or__(self, other: "_Meta") -> "_Meta":
        return _Meta(self.pools | other.pools)


class _Blueprint:
    """Common base: an immutable wrapper of a native blueprint."""

    __slots__ = ("_base", "_meta")

    def __init__(self, native: Optional[_native.Blueprint], meta: Optional[_Meta] = None) -> None:
        self._base = native
        self._meta = meta or _Meta()

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

    def async_boundary(self: S) -> S:
        """Starts a new island after the last stage (its output crosses a bounded channel)."""
        return self._same(self._n.async_boundary())

    def parallelism(self: S, n: int) -> S:
        """Runs the last stage as ``n`` parallel subtasks (fused element-wise operators run
        together, so they share it)."""
        return self._same(self._n.parallelism(n))

    def batch_size(self: S, rows: int) -> S:
        """Target rows per batch of the last stage."""
        return self._same(self._n.batch_size(rows))

    def buffer_rows(self: S, rows: int) -> S:
        """Capacity in rows of the channel feeding the last stage."""
        return self._same(self._n.buffer_rows(rows))

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


class _Linear(_Blueprint):
    """Operators shared by :class:`Source` and :class:`Flow`.

    Consecutive element-wise operators (``map``, ``filter``, ``flat_map``, ``map_batches``) are
    fused into one stage, and into ``Source.from_iter`` when they follow it: a batch then goes
    through all of them in one dispatcher job. Each keeps its name in errors."""

    __slots__ = ("_ops", "_src")

    def __init__(
        self,
        native: Optional[_native.Blueprint],
        meta: Optional[_Meta] = None,
        ops: Tuple[Any, ...] = (),
        src: Any = None,
    ) -> None:
        super().__init__(native, meta)
        self._ops = ops
        self._src = src

    def _flush(self) -> _native.Blueprint:
        if self._src is not None:
            return _native.source_from_iter(self._src[0], list(self._ops))
        assert self._base is not None
        if not self._ops:
            return self._base
        return self._base.via(_native.flow_chain(list(self._ops)))

    def _fuse(self: S, kind: str, fn: Any, name: Optional[str], sup: Any, default: str, dl: Any) -> S:
        s = _supervision(sup, default, dl)
        op = _native.Op(kind, fn, name, s)
        return type(self)(self._base, self._meta, self._ops + (op,), self._src)

    def named(self: S, name: str) -> S:
        """Names the last stage (errors, metrics and diagrams use the name)."""
        if self._ops:
            ops = self._ops[:-1] + (self._ops[-1].renamed(name),)
            return type(self)(self._base, self._meta, ops, self._src)
        return self._same(self._n.named(name))

    def with_supervision(
        self: S,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Optional[Union[Callable[[Any, BaseException, str], None], List[Any]]] = None,
    ) -> S:
        """Sets the supervision of the last stage (see :meth:`_Blueprint.with_supervision`)."""
        sup = _supervision(supervision, default, dead_letters)
        if sup is None:
            return self
        if self._ops:
            ops = self._ops[:-1] + (self._ops[-1].supervised(sup),)
            return type(self)(self._base, self._meta, ops, self._src)
        return self._same(self._n.with_supervision(sup))

    def parallelism(self: S, n: int) -> S:
        """Runs the last stage as ``n`` parallel subtasks (with the element-wise operators fused
        into it since the previous non-fusable stage)."""
        if self._src is not None and self._ops:
            # Never parallelize the iterator source itself: split the fused ops off it.
            src = type(self)(None, self._meta, (), self._src)._n
            return self._same(src.via(_native.flow_chain(list(self._ops))).parallelism(n))
        return self._same(self._n.parallelism(n))

    def via(self: S, flow: "Flow", keep: Keep = "left") -> S:
        """Attaches ``flow``; ``keep`` picks the materialized value (``left`` keeps this one)."""
        return self._same(self._n.via(flow._n, keep), self._meta | flow._meta)

    def _pooled(self: S, kind: str, fn: Callable[..., Any], pool: Any, name: Optional[str], sup: Any, default: str, dl: Any) -> S:
        submit = pool._submitter(kind, fn)
        native = _native.flow_external(name or kind, submit, pool.max_inflight)
        return _apply(self, native, None, sup, default, dl, _Meta(frozenset([pool])))

    def map(
        self: S,
        fn: Callable[[Any], Any],
        *,
        pool: Any = None,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Transforms each element with ``fn`` (in worker processes when ``pool`` is given)."""
        if pool is not None:
            return self._pooled("map", fn, pool, name, supervision, default, dead_letters)
        return self._fuse("map", fn, name, supervision, default, dead_letters)

    def filter(
        self: S,
        pred: Callable[[Any], Any],
        *,
        pool: Any = None,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Keeps the elements for which ``pred`` is truthy."""
        if pool is not None:
            return self._pooled("filter", pred, pool, name, supervision, default, dead_letters)
        return self._fuse("filter", pred, name, supervision, default, dead_letters)

    def flat_map(
        self: S,
        fn: Callable[[Any], Iterable[Any]],
        *,
        pool: Any = None,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Maps each element to an iterable and emits its items in order."""
        if pool is not None:
            return self._pooled("flat_map", fn, pool, name, supervision, default, dead_letters)
        return self._fuse("flat_map", fn, name, supervision, default, dead_letters)

    def for_each(
        self: S,
        fn: Callable[[Any], Any],
        *,
        pool: Any = None,
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> "RunnableGraph":
        """Calls ``fn`` on every element (in worker processes when ``pool`` is given); returns
        the runnable graph, whose ``run()`` returns ``None``."""
        if pool is not None:
            flow = self._pooled("for_each", fn, pool, name, supervision, default, dead_letters)
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
        name: Optional[str] = None,
        supervision: Optional[SupervisionRules] = None,
        default: str = "stop",
        dead_letters: Any = None,
    ) -> S:
        """Calls ``fn`` once per batch. ``batch_format`` is ``None`` (a list of elements),
        ``"pyarrow"``, ``"pandas"``, ``"polars"`` or ``"numpy"``; ``fn`` returns a batch in any of
        those forms (or an iterable of elements)."""
        from .columnar import batch_adapter

        f = batch_adapter(fn, batch_format)
        if pool is not None:
            return self._pooled("map_batches", f, pool, name or "map_batches", supervision, default, dead_letters)
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
    ) -> S:
        """Runs the coroutine function ``fn`` per element on the run's event loop (the caller's
        for ``run_async``), at most ``parallelism`` at once, keeping input order."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("map_async() takes an async def function")
        native = _native.flow_external(name or "map_async", AsyncSubmitter(fn, parallelism), 2)
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
        return self._same(self._n.via(_native.flow_grouped(n)))

    def take(self: S, n: int) -> S:
        """The first ``n`` elements, then cancels upstream."""
        return self._same(self._n.via(_native.flow_take(n)))

    def drop(self: S, n: int) -> S:
        """Discards the first ``n`` elements."""
        return self._same(self._n.via(_native.flow_drop(n)))

    def throttle(self: S, elements: int, per: float, burst: int = 0) -> S:
        """At most ``elements`` per ``per`` seconds, with bursts of ``burst``."""
        return self._same(self._n.via(_native.flow_throttle(elements, per, burst)))

    def buffer(self: S, size: int, strategy: str = "backpressure") -> S:
        """A bounded buffer of ``size`` elements with an overflow strategy (``backpressure``,
        ``drop_head``, ``drop_tail``, ``drop_buffer``, ``drop_new``, ``fail``)."""
        return self._same(self._n.via(_native.flow_buffer(size, strategy)))

    def merge(self: S, other: "Source") -> S:
        """Merges ``other`` into this stream."""
        return self._same(self._n.merge(other._n), self._meta | other._meta)

    def concat(self: S, other: "Source") -> S:
        """Emits this stream, then ``other``."""
        return self._same(self._n.concat(other._n), self._meta | other._meta)

    def zip(self: S, other: "Source") -> S:
        """Pairs elements with those of ``other`` into tuples."""
        return self._same(self._n.zip(other._n), self._meta | other._meta)

    def key_by(self, key: Optional[Callable[[Any], Any]] = None) -> "Keyed[Any]":
        """Groups by ``key(element)`` (the element itself when ``None``); finish with
        :meth:`Keyed.count`, :meth:`Keyed.fold` or :meth:`Keyed.reduce`."""
        return Keyed(self, key)

    def kill_switch(self: S) -> S:
        """Inserts a kill switch; the materialized value becomes ``(previous, KillSwitch)``."""
        return self._same(self._n.via(_native.flow_kill_switch(), "both"))


class Keyed(Generic[T]):
    """A stream grouped by key; aggregates run in Rust, one result per key on completion."""

    __slots__ = ("_up", "_key")

    def __init__(self, upstream: Any, key: Optional[Callable[[Any], Any]]) -> None:
        self._up = upstream
        self._key = key

    def count(self) -> Any:
        """One ``(key, count)`` pair per key when the input completes."""
        return self._up._same(self._up._n.via(_native.flow_key_count(self._key)))

    def fold(self, zero: Any, fn: Callable[[Any, Any], Any]) -> Any:
        """One ``(key, fold)`` pair per key when the input completes."""
        return self._up._same(self._up._n.via(_native.flow_key_fold(self._key, zero, fn)))

    def reduce(self, fn: Callable[[Any, Any], Any]) -> Any:
        """One ``(key, reduce)`` pair per key when the input completes."""
        return self._up._same(self._up._n.via(_native.flow_key_fold(self._key, None, fn, True)))


class Source(_Linear):
    """A blueprint with one output: where elements come from."""

    __slots__ = ()

    @staticmethod
    def from_iter(iterable: Iterable[Any]) -> "Source":
        """The items of ``iterable`` (``iter()`` is called again for every run)."""
        return Source(None, None, (), (iterable,))

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
    def from_arrow(data: Any) -> "Source":
        """Rows (dicts) of an Arrow table, record batch, reader, or anything exposing
        ``__arrow_c_stream__`` / ``__arrow_c_array__`` (polars, pandas >= 2.2)."""
        from .columnar import ArrowRows

        return Source.from_iter(ArrowRows(data))

    @staticmethod
    def from_pandas(df: Any) -> "Source":
        """Rows (dicts) of a pandas DataFrame."""
        from .columnar import ArrowRows, pandas_to_arrow

        return Source.from_iter(ArrowRows(pandas_to_arrow(df)))

    def to(self, sink: "Sink", keep: Keep = "left") -> "RunnableGraph":
        """Connects ``sink``; ``keep`` picks the materialized value."""
        return RunnableGraph(self._n.to(sink._n, keep), self._meta | sink._meta)

    def run_with(self, sink: "Sink", **kw: Any) -> Any:
        """Connects ``sink``, runs to completion and returns the sink's result."""
        return self.to(sink, "right").run(**kw)

    async def run_with_async(self, sink: "Sink", **kw: Any) -> Any:
        """Like :meth:`run_with`, awaiting the run on the running event loop."""
        return await self.to(sink, "right").run_async(**kw)


class Flow(_Linear):
    """A blueprint with one input and one output."""

    __slots__ = ()

    @staticmethod
    def create() -> "Flow":
        """An empty flow to chain operators on (``Flow.create().map(f).filter(g)``)."""
        return Flow(_native.flow_identity())

    def to(self, sink: "Sink", keep: Keep = "left") -> "Sink":
        """Connects ``sink``, giving a sink."""
        return Sink(self._n.to(sink._n, keep), self._meta | sink._meta)


class Sink(_Blueprint):
    """A blueprint with one input: where elements go. Its materialized value is its result."""

    __slots__ = ()

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
    def for_each_async(fn: Callable[[Any], Awaitable[Any]], parallelism: int = 4) -> "Sink":
        """Runs the coroutine function ``fn`` per element on the run's event loop."""
        if not inspect.iscoroutinefunction(fn):
            raise TypeError("for_each_async() takes an async def function")
        native = _native.flow_external("for_each_async", AsyncSubmitter(fn, parallelism, False), 2)
        return Sink(native.to(_native.sink_ignore(), "right"))

    @staticmethod
    def ignore() -> "Sink":
        """Discards every element."""
        return Sink(_native.sink_ignore())

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
    def to_arrow() -> "Sink":
        """Every element (dicts, or scalars as a ``value`` column) as a ``pyarrow.Table``."""
        from .columnar import rows_to_table

        return Sink(_native.sink_collect(rows_to_table))

    @staticmethod
    def to_pandas() -> "Sink":
        """Every element as a pandas DataFrame."""
        from .columnar import rows_to_pandas

        return Sink(_native.sink_collect(rows_to_pandas))


class RunnableGraph(_Blueprint):
    """A closed blueprint: ``run()`` it (many times if you like)."""

    __slots__ = ()

    def run(self, *, batch_size: Optional[int] = None, progress: Any = None) -> Any:
        """Runs to completion on this thread and returns the materialized value (sink results
        resolved). Works inside a running event loop (Jupyter) too; Ctrl-C cancels the run and
        raises ``KeyboardInterrupt``. ``progress=True`` (or a total) shows a tqdm bar."""
        from ._run import run_blocking

        return run_blocking(self, batch_size=batch_size, progress=progress)

    async def run_async(self, *, batch_size: Optional[int] = None) -> Any:
        """Runs the graph, awaiting its completion; ``async def`` stages run on this loop."""
        from ._run import run_async

        return await run_async(self, batch_size=batch_size)

    def start(self, *, batch_size: Optional[int] = None) -> Any:
        """Starts the graph in the background and returns a :class:`weir.RunHandle`."""
        from ._run import RunHandle

        return RunHandle._start(self, batch_size=batch_size)


class _Junction:
    kind = ""

    def __init__(self, n: int = 2) -> None:
        self.n = n


class Broadcast(_Junction):
    """Every element to each of ``n`` outputs (ports: ``inlet``, ``outlets``)."""

    kind = "broadcast"


class Balance(_Junction):
    """Each batch to one of ``n`` outputs with demand (ports: ``inlet``, ``outlets``)."""

    kind = "balance"


class Merge(_Junction):
    """``n`` inputs into one output, in arrival order (ports: ``inlets``, ``outlet``)."""

    kind = "merge"


class Concat(_Junction):
    """``n`` inputs one after the other (ports: ``inlets``, ``outlet``)."""

    kind = "concat"


class Zip(_Junction):
    """Two inputs paired into tuples (ports: ``inlets``, ``outlet``)."""

    kind = "zip"

    def __init__(self) -> None:
        super().__init__(2)


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
        ins, outs = self._b.add_junction(junction.kind, junction.n)
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
