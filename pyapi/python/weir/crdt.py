"""Replicated data: conflict-free replicated data types (CRDTs) that merge without coordination.

- :class:`GCounter` counts up; :class:`PNCounter` up and down;
- :class:`ORSet` is an observed-remove set (an add concurrent with a remove wins);
- :class:`LWWMap` keeps, per key, the write with the latest ``(timestamp, replica)``.

Each object is one replica's view (``replica=``): mutators apply at once, ``take_delta()`` hands
out the changes since the last call and ``merge(other)`` joins another replica's state or delta
in any order, any number of times. Set elements and map keys are the hashable built-ins of
:mod:`weir.codec` and map values its values, stored as their encoding (so ``1`` and ``1.0`` are
different elements). A :class:`Replicator` holds CRDTs by key; ``Replicator.local()`` (one node,
no peers) is shared by the Python stages that capture it::

    r = Replicator.local()

    def remember(word):
        r.update("seen", ORSet, lambda s: s.add(word))
        return word

    Source.from_iter(words).map(remember).run_with(Sink.ignore())
    r.get("seen").elements()

The Rust types are ``weir_cluster::crdt`` (docs/architecture.md).
"""

from __future__ import annotations

from ._native import GCounter, LWWMap, ORSet, PNCounter, Replicator

__all__ = ["GCounter", "PNCounter", "ORSet", "LWWMap", "Replicator"]
