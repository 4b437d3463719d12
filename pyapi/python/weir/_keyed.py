"""The built-in keyed aggregates of ``key_by(f)``: ``sum``, ``min``, ``max``, ``mean``, ``first``
and ``last`` run per key in Rust (``weir_operators::keyed::aggregate_pairs`` over the window
built-ins), calling Python only for the key and the field, each as one ``map`` over a batch.

Each gives one ``(key, result)`` pair per key when the input completes, keys in first-seen
order per subtask (as ``count``); the accumulators checkpoint by key group through
``weir.codec``.

Emits when: upstream completes (one pair per key seen).
Backpressures when: never before completion (it consumes everything).
Completes when: upstream completes and every pair is emitted.
Cancels when: downstream cancels.
Fails when: upstream fails, or the key function or field raises, a key has no encoding, or a
value of ``sum``/``min``/``max``/``mean`` is no int or float (naming the stage and the element,
under the ``key_by`` stage's supervision).
"""

from __future__ import annotations

import operator
from typing import Any, Callable, Optional, Union

from . import _native

Field = Union[None, str, int, Callable[[Any], Any]]
"""The value of each element: itself (``None``), an item (``str`` or ``int``: ``x[field]``) or a
function of it."""


def getter(what: str, field: Field) -> Optional[Callable[[Any], Any]]:
    """The function that picks the value of an element (``None``: the element itself)."""
    if field is None or callable(field):
        return field
    if isinstance(field, (str, int)) and not isinstance(field, bool):
        return operator.itemgetter(field)
    raise TypeError(f"{what}: field must be None, a str or int item, or a function, got {field!r}")


def key_function(key: Any) -> Optional[Callable[[Any], Any]]:
    """``key_by``'s key: a function, ``None`` (the element) or an item name/index."""
    if key is None or callable(key):
        return key
    if isinstance(key, (str, int)) and not isinstance(key, bool):
        return operator.itemgetter(key)
    raise TypeError(f"key_by: key must be None, a function, or a str or int item, got {key!r}")


class KeyedBuiltins:
    """The built-in aggregates of :class:`weir.Keyed` (see the module docs for the five rules)."""

    __slots__ = ()

    def _builtin(self, func: str, field: Field) -> Any:
        up, key, codec = self._up, self._key, self._codec  # type: ignore[attr-defined]
        value = getter(func, field)

        def build(sup: Any) -> Any:
            out = up._same(up._n.via(_native.flow_key_aggregate(key, func, value, sup, codec)))
            out._resup = build
            return out

        return build(self._sup)  # type: ignore[attr-defined]

    def sum(self, field: Field = None) -> Any:
        """One ``(key, sum)`` pair per key of the values (ints stay ints, a float makes the sum a
        float), in Rust."""
        return self._builtin("sum", field)

    def min(self, field: Field = None) -> Any:
        """One ``(key, smallest value)`` pair per key (ints or floats), in Rust."""
        return self._builtin("min", field)

    def max(self, field: Field = None) -> Any:
        """One ``(key, largest value)`` pair per key (ints or floats), in Rust."""
        return self._builtin("max", field)

    def mean(self, field: Field = None) -> Any:
        """One ``(key, mean)`` pair per key (a float; ints or floats in), in Rust."""
        return self._builtin("mean", field)

    def first(self, field: Field = None) -> Any:
        """One ``(key, first value)`` pair per key (any object), kept in Rust."""
        return self._builtin("first", field)

    def last(self, field: Field = None) -> Any:
        """One ``(key, last value)`` pair per key (any object), kept in Rust."""
        return self._builtin("last", field)
