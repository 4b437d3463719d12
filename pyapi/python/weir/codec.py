"""The codec of Python keys and state: a tagged binary encoding of the built-in types, the
stable routing hash of a key (fixed-seed xxh3 of its encoding, the same in every process
whatever ``PYTHONHASHSEED`` says) and its key group. The format is in docs/python.md."""

from __future__ import annotations

from typing import Any

from . import _native

#: Key groups keys are hashed into (the highest parallelism of a keyed stage).
KEY_GROUPS = 128


def encode(x: Any, *, kind: str = "key", pickle: bool = False) -> bytes:
    """The bytes a checkpoint stores for ``x``: ``kind="key"`` accepts None, bool, int, float,
    str, bytes and tuples of them (with ``pickle=True`` anything else as its pickle),
    ``kind="value"`` also lists and dicts; ``TypeError`` naming the type otherwise."""
    return _native.codec_encode(x, kind, pickle)


def decode(b: bytes) -> Any:
    """The object ``b`` encodes (``ValueError`` when malformed)."""
    return _native.codec_decode(b)


def stable_hash(key: Any, *, pickle: bool = False) -> int:
    """The key's routing hash (64 bits): xxh3 with weir's fixed seed over the key's encoding,
    numbers normalized as ``==`` compares them (``True`` as ``1``, ``2.0`` as ``2``)."""
    return _native.codec_stable_hash(key, pickle)


def key_group(key: Any, *, pickle: bool = False) -> int:
    """The key group (``0 <= g < KEY_GROUPS``) ``key_by`` routes ``key`` to."""
    return _native.codec_key_group(key, pickle)
