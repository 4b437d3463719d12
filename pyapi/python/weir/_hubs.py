"""Hubs (:class:`MergeHub`, :class:`BroadcastHub`, :class:`PartitionHub`) that connect running
graphs, and restart wrappers (:class:`RestartSource`, :class:`RestartFlow`,
:class:`RestartSink`) with exponential backoff. All run the Rust operators over Python objects."""

from __future__ import annotations

from typing import Any, Callable, Optional, Protocol, Tuple, Type, TypeVar, Union, overload

from . import _native
from ._dsl import Flow, Sink, Source
from ._validate import factor, seconds, size

T = TypeVar("T")
In = TypeVar("In")


class MergeHub:
    """A dynamic fan-in: a source fed by any number of producers attached while it runs."""

    @staticmethod
    def source(per_producer_buffer_size: int = 16) -> Source[Any]:
        """A source whose materialized value is a :class:`weir.Sink`; every run of that sink (in
        this run or another) is one more producer, with ``per_producer_buffer_size`` elements
        buffered in the hub. Use ``graph.start()`` and ``handle.materialized``.

        Emits when: any producer has buffered elements (in arrival order).
        Backpressures when: never itself; a producer with a full buffer waits.
        Completes when: never; downstream cancelling stops the hub.
        Cancels when: downstream cancels: every producer, and any attached later, is cancelled.
        Fails when: never; a failing producer fails only its own run."""
        return Source(_native.merge_hub_source(size("MergeHub.source", "per_producer_buffer_size", per_producer_buffer_size)))


class BroadcastHub:
    """A dynamic fan-out: every consumer attached to the hub sees every element."""

    @staticmethod
    def sink(buffer_size: int = 256) -> Sink[T, Source[T]]:
        """A sink whose materialized value is a :class:`weir.Source`; every run of that source
        is a consumer that receives the elements from where it attaches (the oldest element
        still buffered: before the first consumer, everything sent so far).

        Emits when: (each consumer) it has unread elements and downstream demands.
        Backpressures when: ``buffer_size`` elements are unread by the slowest consumer (or by
        nobody while no consumer is attached).
        Completes when: upstream completes (consumers after their unread elements; consumers
        attached later complete after what is still buffered).
        Cancels when: never; a cancelled consumer just leaves.
        Fails when: upstream fails; every consumer (also later ones) fails at once."""
        return Sink(_native.broadcast_hub_sink(size("BroadcastHub.sink", "buffer_size", buffer_size)))


class PartitionHub:
    """A dynamic, routed fan-out: ``partitioner`` picks the one consumer of each element."""

    @staticmethod
    def sink(
        partitioner: Callable[[int, T], int],
        start_after_nr_of_consumers: int,
        buffer_size: int = 256,
    ) -> Sink[T, Source[T]]:
        """A sink whose materialized value is a :class:`weir.Source`; ``partitioner(n, x)``
        returns the index (in attach order) of the consumer among the ``n`` attached that gets
        ``x``; a negative index drops ``x``, an index ``>= n`` fails the hub. Routing starts once
        ``start_after_nr_of_consumers`` consumers attached; ``buffer_size`` bounds what is queued
        for all consumers together. ``partitioner`` runs on the run's dispatcher, one job per batch.

        Emits when: (each consumer) elements were routed to it and downstream demands.
        Backpressures when: the buffer is full, too few consumers attached yet, or none is.
        Completes when: upstream completes (consumers after their queue; later ones at once).
        Cancels when: never; a cancelled consumer leaves and its queued elements are dropped.
        Fails when: upstream fails, ``partitioner`` raises or returns an index out of range."""
        op = "PartitionHub.sink"
        if not callable(partitioner):
            raise TypeError(f"{op}: partitioner must be callable as partitioner(n, element)")
        start = size(op, "start_after_nr_of_consumers", start_after_nr_of_consumers, 0)
        return Sink(_native.partition_hub_sink(partitioner, start, size(op, "buffer_size", buffer_size)))


def _backoff(
    op: str,
    min_backoff: Any,
    max_backoff: Any,
    random_factor: Any,
    max_restarts: Any,
    max_restarts_within: Any,
) -> Tuple[float, float, float, Optional[int], Optional[float]]:
    """The restart settings checked at construction (``ValueError`` naming ``op`` and the value)."""
    lo = seconds(op, "min_backoff", min_backoff, positive=False)
    hi = seconds(op, "max_backoff", max_backoff, positive=False)
    if lo > hi:
        raise ValueError(f"{op}: min_backoff {lo:g}s is greater than max_backoff {hi:g}s")
    rf = factor(op, "random_factor", random_factor)
    n = None if max_restarts is None else size(op, "max_restarts", max_restarts, 0)
    within = None if max_restarts_within is None else seconds(op, "max_restarts_within", max_restarts_within, positive=False)
    return lo, hi, rf, n, within


def _factory(what: Union[Callable[[], Any], Any]) -> Callable[[], Any]:
    if callable(what) and not hasattr(what, "_n"):
        return what
    return lambda: what


B = TypeVar("B", Source[Any], Flow[Any, Any], Sink[Any, Any])


class _RestartSourceCtor(Protocol):
    """The signature of ``RestartSource.with_backoff`` and ``on_failures_with_backoff``."""

    def __call__(
        self,
        factory: Union[Callable[[], Source[T]], Source[T]],
        *,
        min_backoff: float,
        max_backoff: float,
        random_factor: float = 0.0,
        max_restarts: Optional[int] = None,
        max_restarts_within: Optional[float] = None,
    ) -> Source[T]: ...


class _RestartFlowCtor(Protocol):
    """The signature of ``RestartFlow.with_backoff`` and ``on_failures_with_backoff``."""

    def __call__(
        self,
        factory: Union[Callable[[], Flow[In, T]], Flow[In, T]],
        *,
        min_backoff: float,
        max_backoff: float,
        random_factor: float = 0.0,
        max_restarts: Optional[int] = None,
        max_restarts_within: Optional[float] = None,
    ) -> Flow[In, T]: ...


class _RestartSinkCtor(Protocol):
    """The signature of ``RestartSink.with_backoff``."""

    def __call__(
        self,
        factory: Union[Callable[[], Sink[In, Any]], Sink[In, Any]],
        *,
        min_backoff: float,
        max_backoff: float,
        random_factor: float = 0.0,
        max_restarts: Optional[int] = None,
        max_restarts_within: Optional[float] = None,
    ) -> Sink[In, Any]: ...


@overload
def _restarter(kind: str, wrap: Type[Source[Any]], only_on_failures: bool, doc: str) -> _RestartSourceCtor: ...
@overload
def _restarter(kind: str, wrap: Type[Flow[Any, Any]], only_on_failures: bool, doc: str) -> _RestartFlowCtor: ...
@overload
def _restarter(kind: str, wrap: Type[Sink[Any, Any]], only_on_failures: bool, doc: str) -> _RestartSinkCtor: ...
def _restarter(kind: str, wrap: Type[B], only_on_failures: bool, doc: str) -> Any:
    """A static method building the native restart wrapper of ``kind`` ("source", "flow" or
    "sink") over a factory, wrapped in ``wrap``."""

    def with_backoff(
        factory: Union[Callable[[], B], B],
        *,
        min_backoff: float,
        max_backoff: float,
        random_factor: float = 0.0,
        max_restarts: Optional[int] = None,
        max_restarts_within: Optional[float] = None,
    ) -> B:
        settings = _backoff(
            f"Restart{wrap.__name__}.{name}",
            min_backoff, max_backoff, random_factor, max_restarts, max_restarts_within,
        )
        return wrap(_native.restart(kind, _factory(factory), *settings, only_on_failures))

    name = "on_failures_with_backoff" if only_on_failures else "with_backoff"
    with_backoff.__name__ = name
    with_backoff.__doc__ = doc
    return staticmethod(with_backoff)


class RestartSource:
    """Restarts a source with exponential backoff when it completes or fails.

    The delay before restart ``k`` (from 0) is ``min(max_backoff, min_backoff * 2**k) * (1 + r *
    random_factor)``, ``r`` uniform in ``[0, 1)``, on the run's clock. ``max_restarts`` restarts
    are allowed within ``max_restarts_within`` seconds (an incarnation running longer resets the
    count; default window: ``min_backoff``); ``None`` restarts forever."""

    with_backoff = _restarter(
        "source",
        Source,
        False,
        """Runs ``factory()`` (or the given source) and runs it again after each completion or
        failure.

        Emits when: the current incarnation emits.
        Backpressures when: downstream backpressures.
        Completes when: an incarnation completes and no restart is left.
        Cancels when: downstream cancels.
        Fails when: an incarnation fails and no restart is left, or ``factory`` raises.""",
    )
    on_failures_with_backoff = _restarter(
        "source",
        Source,
        True,
        """Like :meth:`with_backoff`, restarting after failures only; completion completes.""",
    )


class RestartFlow:
    """Restarts a flow with exponential backoff when it completes, fails or cancels (see
    :class:`RestartSource` for the delays). Elements inside an incarnation that ends are lost."""

    with_backoff = _restarter(
        "flow",
        Flow,
        False,
        """Runs ``factory()`` (or the given flow), again after each end.

        Emits when: the current incarnation emits.
        Backpressures when: the incarnation backpressures, or during a backoff.
        Completes when: upstream completed and the incarnation completed, or no restart is left.
        Cancels when: downstream cancels.
        Fails when: upstream fails, or an incarnation fails and no restart is left.""",
    )
    on_failures_with_backoff = _restarter(
        "flow", Flow, True, """Like :meth:`with_backoff`, restarting after failures only."""
    )


class RestartSink:
    """Restarts a sink with exponential backoff when it cancels (finishes early) or fails; see
    :class:`RestartSource` for the delays. The sink's failure does not fail the run."""

    with_backoff = _restarter(
        "sink",
        Sink,
        False,
        """Runs ``factory()`` (or the given sink), again after it cancels or fails.

        Backpressures when: the incarnation backpressures, or during a backoff.
        Completes when: upstream completes (passed to the incarnation).
        Cancels when: an incarnation cancels and no restart is left.
        Fails when: upstream fails.""",
    )
