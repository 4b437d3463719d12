"""Event time and keyed event-time windows: watermark strategies, window kinds and the windowed
stream that ``assign_timestamps(...).key_by(f).window(...)`` returns.

Times are seconds (floats); the engine keeps whole milliseconds (``round(t * 1000)``). The window
functions are the Rust operators over Python objects: ``sum``, ``count``, ``min``, ``max`` and ``mean`` run
in Rust without calling Python (each value is converted to a Rust number once, in the key stage).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, List, Optional, Tuple, TypeVar, Union, overload

from . import _native

if TYPE_CHECKING:
    from ._dsl import Flow, Source

_Up = TypeVar("_Up")
_K = TypeVar("_K")
_V = TypeVar("_V")
_I = TypeVar("_I")
_A = TypeVar("_A")
_R = TypeVar("_R")
Number = Union[int, float]
"""What the built-in window functions take and give."""


class BoundedOutOfOrderness:
    """Watermarks for elements up to ``bound`` seconds behind the highest timestamp seen: the
    watermark is that timestamp minus ``bound`` (minus 1 ms)."""

    __slots__ = ("bound",)

    def __init__(self, bound: float) -> None:
        if not isinstance(bound, (int, float)) or isinstance(bound, bool) or bound < 0:
            raise ValueError(f"BoundedOutOfOrderness: bound must be a number of seconds >= 0, got {bound!r}")
        self.bound = float(bound)

    def _native(self) -> Tuple[str, float]:
        return ("bounded", self.bound)

    def __repr__(self) -> str:
        return f"BoundedOutOfOrderness({self.bound})"


class Monotonous:
    """Watermarks for timestamps that never decrease: the highest timestamp seen (minus 1 ms)."""

    __slots__ = ()

    def _native(self) -> Tuple[str, float]:
        return ("monotonous", 0.0)

    def __repr__(self) -> str:
        return "Monotonous()"


Watermarks = Union[BoundedOutOfOrderness, Monotonous]
"""A watermark strategy."""


def _positive(what: str, x: float) -> float:
    if not isinstance(x, (int, float)) or isinstance(x, bool) or not x > 0:
        raise ValueError(f"{what} must be a positive number of seconds, got {x!r}")
    return float(x)


class Tumbling:
    """Fixed, non-overlapping event-time windows of ``size`` seconds aligned to the epoch."""

    __slots__ = ("size",)

    def __init__(self, size: float) -> None:
        self.size = _positive("Tumbling: size", size)

    def _native(self) -> Tuple[str, float, float]:
        return ("tumbling", self.size, 0.0)


class Sliding:
    """Windows of ``size`` seconds starting every ``slide`` seconds (an element is in each
    window that covers it)."""

    __slots__ = ("size", "slide")

    def __init__(self, size: float, slide: float) -> None:
        self.size = _positive("Sliding: size", size)
        self.slide = _positive("Sliding: slide", slide)
        if self.slide > self.size:
            raise ValueError(f"Sliding: slide ({slide}) must be at most size ({size})")

    def _native(self) -> Tuple[str, float, float]:
        return ("sliding", self.size, self.slide)


class Session:
    """Per key, elements less than ``gap`` seconds apart share a window (sessions merge)."""

    __slots__ = ("gap",)

    def __init__(self, gap: float) -> None:
        self.gap = _positive("Session: gap", gap)

    def _native(self) -> Tuple[str, float, float]:
        return ("session", self.gap, 0.0)


WindowKind = Union[Tumbling, Sliding, Session]
"""Tumbling, sliding or session windows."""


class Windowed(Generic[_Up, _K, _V]):
    """A keyed stream of timestamped elements grouped into event-time windows; each window
    function gives ``(key, window_start, window_end, value)`` tuples (seconds), one per key and
    window when the watermark passes the window's end (again for a late element within the
    allowed lateness), and every window left when the input completes. With
    ``processing_time=True`` elements are windowed by their arrival on the run's clock (no
    ``assign_timestamps`` needed; windows fire when the clock reaches their end; nothing is late).

    An element whose windows are all past their allowed lateness goes to ``late_to`` as
    ``(key, timestamp, element)``; without ``late_to`` it fails the stage, naming the element."""

    __slots__ = ("_pre", "_ts", "_wm", "_idle", "_key", "_sup", "_windows", "_lateness", "_late", "_processing", "_codec")

    def __init__(
        self,
        upstream: Any,
        key: Optional[Callable[[Any], Any]],
        sup: Any,
        windows: WindowKind,
        allowed_lateness: float,
        late_to: Any,
        processing_time: bool = False,
        key_codec: str = "builtin",
    ) -> None:
        self._processing = bool(processing_time)
        self._codec = key_codec
        if self._processing:
            # Processing time: elements are stamped with their arrival on the run's clock and
            # nothing is ever late.
            if allowed_lateness != 0.0 or late_to is not None:
                raise ValueError("window(processing_time=True): no element is late, so allowed_lateness and late_to do not apply")
            if not isinstance(windows, (Tumbling, Sliding, Session)):
                raise TypeError(f"window(): expected Tumbling, Sliding or Session, got {windows!r}")
            self._pre, self._ts, self._wm, self._idle = upstream, None, None, None
            self._key, self._sup, self._windows, self._lateness, self._late = key, sup, windows, 0.0, None
            return
        event = getattr(upstream, "_event", None)
        if event is None:
            raise TypeError(
                "window() needs event time: call assign_timestamps(...) right before key_by(...)"
            )
        if not isinstance(windows, (Tumbling, Sliding, Session)):
            raise TypeError(f"window(): expected Tumbling, Sliding or Session, got {windows!r}")
        if not isinstance(allowed_lateness, (int, float)) or allowed_lateness < 0:
            raise ValueError(f"window(): allowed_lateness must be seconds >= 0, got {allowed_lateness!r}")
        from ._dsl import Sink

        if late_to is not None and not isinstance(late_to, Sink):
            raise TypeError(f"window(): late_to must be a Sink, got {late_to!r}")
        self._pre, self._ts, self._wm, self._idle = event
        self._key = key
        self._sup = sup
        self._windows = windows
        self._lateness = float(allowed_lateness)
        self._late = late_to
        self._codec = key_codec

    def _build(self, func: str, fns: List[Optional[Callable[..., Any]]], value: Optional[Callable[[Any], Any]] = None) -> Any:
        return self._made(func, fns, value, None, None)

    def _made(self, func: str, fns: List[Optional[Callable[..., Any]]], value: Optional[Callable[[Any], Any]], uid: Optional[str], par: Optional[int]) -> Any:
        out = self._build_with(func, fns, value, uid, par)
        # ``.uid(...)`` and ``.parallelism(...)`` apply to the window stage (its state), not the
        # stage emitting its tuples.
        out._reuid = lambda uid: self._made(func, fns, value, uid, par)
        out._repar = lambda par: self._made(func, fns, value, uid, par)
        return out

    def _build_with(self, func: str, fns: List[Optional[Callable[..., Any]]], value: Optional[Callable[[Any], Any]], uid: Optional[str], par: Optional[int]) -> Any:
        if self._processing:
            native = _native.flow_processing_window(self._key, self._windows._native(), func, fns, value, self._sup, self._codec, uid, par)
            return self._pre._same(self._pre._n.via(native, "left"), None)
        kind, bound = self._wm._native()
        late = self._late._n if self._late is not None else None
        native = _native.flow_window(
            self._ts,
            (kind, bound, self._idle),
            self._key,
            self._windows._native(),
            self._lateness,
            func,
            fns,
            value,
            late,
            self._sup,
            self._codec,
            uid,
            par,
        )
        pre = self._pre
        meta = pre._meta | self._late._meta if self._late is not None else None
        return pre._same(pre._n.via(native, "left"), meta)

    @overload
    def sum(self: Windowed[Source[Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Source[Tuple[_K, float, float, Number]]: ...
    @overload
    def sum(self: Windowed[Flow[_I, Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Flow[_I, Tuple[_K, float, float, Number]]: ...
    def sum(self, value: Optional[Callable[[Any], Number]] = None) -> Any:
        """The sum of ``value(element)`` (the element when ``None``; ints or floats) per window,
        in Rust (ints stay ints)."""
        return self._build("sum", [], value)

    @overload
    def count(self: Windowed[Source[Any], _K, _V]) -> Source[Tuple[_K, float, float, int]]: ...
    @overload
    def count(self: Windowed[Flow[_I, Any], _K, _V]) -> Flow[_I, Tuple[_K, float, float, int]]: ...
    def count(self) -> Any:
        """The number of elements per window, in Rust."""
        return self._build("count", [])

    @overload
    def min(self: Windowed[Source[Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Source[Tuple[_K, float, float, Number]]: ...
    @overload
    def min(self: Windowed[Flow[_I, Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Flow[_I, Tuple[_K, float, float, Number]]: ...
    def min(self, value: Optional[Callable[[Any], Number]] = None) -> Any:
        """The smallest ``value(element)`` per window (ints or floats), in Rust."""
        return self._build("min", [], value)

    @overload
    def max(self: Windowed[Source[Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Source[Tuple[_K, float, float, Number]]: ...
    @overload
    def max(self: Windowed[Flow[_I, Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Flow[_I, Tuple[_K, float, float, Number]]: ...
    def max(self, value: Optional[Callable[[Any], Number]] = None) -> Any:
        """The largest ``value(element)`` per window (ints or floats), in Rust."""
        return self._build("max", [], value)

    @overload
    def mean(self: Windowed[Source[Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Source[Tuple[_K, float, float, float]]: ...
    @overload
    def mean(self: Windowed[Flow[_I, Any], _K, _V], value: Optional[Callable[[_V], Number]] = None) -> Flow[_I, Tuple[_K, float, float, float]]: ...
    def mean(self, value: Optional[Callable[[Any], Number]] = None) -> Any:
        """The mean of ``value(element)`` per window (a float; ints or floats in), in Rust."""
        return self._build("mean", [], value)

    @overload
    def reduce(self: Windowed[Source[Any], _K, _V], fn: Callable[[_V, _V], _V]) -> Source[Tuple[_K, float, float, _V]]: ...
    @overload
    def reduce(self: Windowed[Flow[_I, Any], _K, _V], fn: Callable[[_V, _V], _V]) -> Flow[_I, Tuple[_K, float, float, _V]]: ...
    def reduce(self, fn: Callable[[Any, Any], Any]) -> Any:
        """``fn(acc, element)`` over each window's elements (merging sessions: ``fn(a, b)``)."""
        return self._build("reduce", [fn])

    @overload
    def aggregate(
        self: Windowed[Source[Any], _K, _V],
        create: Callable[[], _A],
        add: Callable[[_A, _V], _A],
        merge: Optional[Callable[[_A, _A], _A]] = None,
        result: Optional[Callable[[_A], Any]] = None,
    ) -> Source[Tuple[_K, float, float, Any]]: ...
    @overload
    def aggregate(
        self: Windowed[Flow[_I, Any], _K, _V],
        create: Callable[[], _A],
        add: Callable[[_A, _V], _A],
        merge: Optional[Callable[[_A, _A], _A]] = None,
        result: Optional[Callable[[_A], Any]] = None,
    ) -> Flow[_I, Tuple[_K, float, float, Any]]: ...
    def aggregate(
        self,
        create: Callable[[], Any],
        add: Callable[[Any, Any], Any],
        merge: Optional[Callable[[Any, Any], Any]] = None,
        result: Optional[Callable[[Any], Any]] = None,
    ) -> Any:
        """An accumulator per window: ``create()``, then ``acc = add(acc, element)``; the value
        is ``result(acc)`` (``acc`` when ``None``); session windows need ``merge(a, b)``."""
        return self._build("aggregate", [create, add, merge, result])

    @overload
    def process(self: Windowed[Source[Any], _K, _V], fn: Callable[[_K, float, float, List[_V]], _R]) -> Source[Tuple[_K, float, float, _R]]: ...
    @overload
    def process(self: Windowed[Flow[_I, Any], _K, _V], fn: Callable[[_K, float, float, List[_V]], _R]) -> Flow[_I, Tuple[_K, float, float, _R]]: ...
    def process(self, fn: Callable[[Any, float, float, List[Any]], Any]) -> Any:
        """``fn(key, window_start, window_end, elements)`` with all of a window's elements (in
        arrival order) when it fires."""
        return self._build("process", [fn])
