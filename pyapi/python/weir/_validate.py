"""Parameter checks at construction: a bad size is a ``ValueError`` naming the operator and the
value (the same wording as the Rust ``GraphError::InvalidParameter``), never a silent clamp or an
``OverflowError`` from a conversion."""

from __future__ import annotations

import math
import numbers
import operator
from typing import Any


def size(op: str, param: str, value: Any, minimum: int = 1) -> int:
    """``value`` as an ``int`` of at least ``minimum``; ``TypeError``/``ValueError`` otherwise."""
    if isinstance(value, bool):
        raise TypeError(f"{op}: {param} must be an int, not bool")
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{op}: {param} must be an int, not {type(value).__name__}") from None
    if v < minimum:
        raise ValueError(f"{op}: {param} must be at least {minimum}, got {v}")
    return v


def seconds(op: str, param: str, value: Any, *, positive: bool = True) -> float:
    """``value`` as a finite number of seconds, above zero (``positive``) or at least zero;
    ``TypeError``/``ValueError`` otherwise, with the Rust wording (``must be positive, got 0s``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {param} must be a number of seconds, not {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"{op}: {param} must be a finite number of seconds, got {v}")
    if positive and v <= 0:
        raise ValueError(f"{op}: {param} must be positive, got {v:g}s")
    if v < 0:
        raise ValueError(f"{op}: {param} must not be negative, got {v:g}s")
    return v


def factor(op: str, param: str, value: Any) -> float:
    """``value`` as a finite number ``>= 0`` (a random factor); ``TypeError``/``ValueError``
    otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{op}: {param} must be a number, not {type(value).__name__}")
    v = float(value)
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"{op}: {param} must be a finite number >= 0, got {v:g}")
    return v


__all__ = ["factor", "seconds", "size"]
