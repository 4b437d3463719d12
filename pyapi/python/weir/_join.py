"""Joins of two keyed event-time streams: ``a.assign_timestamps(...).join_by(b, key, other_key)``
with ``b`` a source after its own ``assign_timestamps``, then ``.window(Tumbling(1.0), fn)`` or
``.interval(lower, upper, fn)``. They are the Rust window and interval joins
(``weir_operators::join``) over Python objects: each side's timestamp and key functions run in
a key stage a batch at a time, keys route by the stable hash of their codec encoding
(``weir.codec``), and the join's state (watermark, keys, buffered elements of both sides) is
checkpointed by key group through the codec, so a restored run, also at another parallelism,
continues it exactly.

Emits when: a window fires (``window``: ``fn(left, right)`` for every pair of equal key in it,
lefts in arrival order, each with the rights in arrival order) or a pair is complete
(``interval``: ``left.ts + lower <= right.ts <= left.ts + upper``, seconds, bounds included).
Backpressures when: downstream backpressures (a side that delivered a checkpoint barrier is not
read until the other delivered it too).
Completes when: both inputs completed (and every window fired).
Cancels when: downstream cancels (both inputs are cancelled).
Fails when: either input fails, a timestamp or key function raises (naming the element, under
``join_by``'s supervision), ``fn`` raises (naming the left element), or an element is late (the
join's watermark, the smaller of both sides', passed it) without ``late_to``; with ``late_to``
late elements go to that sink as ``("left" | "right", key, ts, element)``.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from . import _native
from ._windows import Session, Sliding, Tumbling


def _event(what: str, stream: Any) -> Any:
    event = getattr(stream, "_event", None)
    if event is None:
        raise TypeError(f"join_by: {what} needs event time: call assign_timestamps(...) on it right before join_by(...)")
    return event


class JoinBy:
    """Two keyed event-time streams awaiting their join (:meth:`window` or :meth:`interval`);
    see the module docs for the five rules. The materialized value is ``(this stream's,
    other's)`` (with ``late_to``: ``(this stream's, (other's, late_to's))``)."""

    __slots__ = ("_pre", "_left", "_key", "_other", "_right", "_other_key", "_sup", "_codec")

    def __init__(self, upstream: Any, other: Any, key: Optional[Callable[[Any], Any]], other_key: Optional[Callable[[Any], Any]], sup: Any, key_codec: str) -> None:
        from ._dsl import Source

        pre, ts, wm, idle = _event("this stream", upstream)
        if not isinstance(other, Source):
            raise TypeError(f"join_by: other must be a Source, got {other!r}")
        opre, ots, owm, oidle = _event("other", other)
        self._pre, self._left, self._key = pre, (ts, (*wm._native(), idle)), key
        self._other, self._right, self._other_key = opre, (ots, (*owm._native(), oidle)), other_key
        self._sup, self._codec = sup, key_codec

    def _build(self, how: str, a: float, b: float, fn: Callable[[Any, Any], Any], late_to: Any) -> Any:
        from ._dsl import Sink

        if not callable(fn):
            raise TypeError(f"join_by: fn must be callable, got {fn!r}")
        if late_to is not None and not isinstance(late_to, Sink):
            raise TypeError(f"join_by: late_to must be a Sink, got {late_to!r}")

        def build(uid: Optional[str], par: Optional[int]) -> Any:
            late = late_to._n if late_to is not None else None
            native = _native.flow_join(
                self._left, self._key, self._other._n, self._right, self._other_key, how, a, b, fn, late, self._sup, self._codec, uid, par
            )
            meta = self._pre._meta | self._other._meta
            if late_to is not None:
                meta = meta | late_to._meta
            out = self._pre._same(self._pre._n.via(native, "both"), meta)
            # ``.uid(...)`` and ``.parallelism(...)`` apply to the join stage (its state), not the
            # stage emitting its results.
            out._reuid = lambda u: build(u, par)
            out._repar = lambda p: build(uid, p)
            return out

        return build(None, None)

    def window(self, windows: Any, fn: Callable[[Any, Any], Any], *, late_to: Any = None) -> Any:
        """Joins in event-time ``windows`` (:class:`Tumbling` or :class:`Sliding`; sessions
        cannot be joined): ``fn(left, right)`` for every pair of equal key in a window, when it
        fires."""
        if isinstance(windows, Session):
            raise ValueError("join_by(..).window(): session windows cannot be joined")
        if not isinstance(windows, (Tumbling, Sliding)):
            raise TypeError(f"join_by(..).window(): expected Tumbling or Sliding, got {windows!r}")
        kind, size, slide = windows._native()
        return self._build(kind, size, slide, fn, late_to)

    def interval(self, lower: float, upper: float, fn: Callable[[Any, Any], Any], *, late_to: Any = None) -> Any:
        """Joins each left element with the right ones of equal key at ``left.ts + lower <=
        right.ts <= left.ts + upper`` (seconds, ``lower`` may be negative): ``fn(left, right)``
        as soon as both are there."""
        for name, x in (("lower", lower), ("upper", upper)):
            if not isinstance(x, (int, float)) or isinstance(x, bool):
                raise TypeError(f"join_by(..).interval(): {name} must be a number of seconds, got {x!r}")
        if lower > upper:
            raise ValueError(f"join_by(..).interval(): lower ({lower}) is above upper ({upper})")
        return self._build("interval", float(lower), float(upper), fn, late_to)
