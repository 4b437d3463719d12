"""Parameter checks at construction: a bad size is a ``ValueError`` naming the operator and the
value (the same wording as the Rust ``GraphError::InvalidParameter``), never a silent clamp or an
``OverflowError`` from a conversion."""

from __future__ import annotations

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


__all__ = ["size"]
