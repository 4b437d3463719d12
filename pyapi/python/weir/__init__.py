"""weir: a stream-centric dataflow engine, from Python.

>>> import weir
>>> (weir.Source.from_iter(range(10))
...      .map(lambda x: x * 2)
...      .filter(lambda x: x % 3 == 0)
...      .run_with(weir.Sink.fold(0, lambda acc, x: acc + x)))
36

Blueprints (:class:`Source`, :class:`Flow`, :class:`Sink`, :class:`RunnableGraph`) are immutable
and reusable. Python functions run on the run's Python dispatcher thread, one GIL acquisition per
batch, never on the engine's worker threads; ``pool=InterpreterPool(...)`` moves CPU-bound
functions to worker processes.
"""

from typing import TYPE_CHECKING, Any

from . import cluster, codec, crdt, errors, interpreters
from ._actors import Actor, ActorContext, ActorRef, AskTimeout, Mailbox, SupervisorStrategy
from ._bidi import BidiFlow, Framing
from ._dsl import (
    Balance,
    Broadcast,
    Concat,
    DeadLetter,
    Interleave,
    MergePreferred,
    MergePrioritized,
    MergeSorted,
    Partition,
    SubFlows,
    Unzip,
    ZipLatest,
    Flow,
    GraphBuilder,
    Keyed,
    KillSwitches,
    Merge,
    Ports,
    RunnableGraph,
    Sink,
    Source,
    Zip,
    ZipWith,
)
from ._dsl import Directive, Keep
from ._handles import SinkQueue, SourceQueue
from ._join import JoinBy
from ._hubs import BroadcastHub, MergeHub, PartitionHub, RestartFlow, RestartSink, RestartSource
from ._persistence import Effect, EventSourcedEntity, Journal
from ._native import ArrowBatch, ArrowTable, Cancellable, MaybeHandle, SinkFuture, UniqueKillSwitch
from ._native import init_logging
from ._run import RunHandle
from ._topics import Topic, Topics
from ._windows import BoundedOutOfOrderness, Monotonous, Session, Sliding, Tumbling, Windowed
from .errors import CallTimeout, GraphInvalid, RunCancelled, StageFailed, WeirError, WorkerCrashed
from .interpreters import InterpreterPool
from ._offload import Offloaded, offload

__version__ = "0.1.0"

__all__ = [
    "init_logging",
    "Topic",
    "Topics",
    "Actor",
    "Effect",
    "EventSourcedEntity",
    "Journal",
    "ActorContext",
    "ActorRef",
    "AskTimeout",
    "Mailbox",
    "SupervisorStrategy",
    "Source",
    "BoundedOutOfOrderness",
    "Monotonous",
    "Tumbling",
    "Sliding",
    "Session",
    "Windowed",
    "Flow",
    "BidiFlow",
    "Framing",
    "MaybeHandle",
    "Sink",
    "RunnableGraph",
    "GraphBuilder",
    "Broadcast",
    "Balance",
    "Merge",
    "Zip",
    "ZipWith",
    "Concat",
    "Partition",
    "MergePreferred",
    "MergePrioritized",
    "MergeSorted",
    "Interleave",
    "ZipLatest",
    "Unzip",
    "SubFlows",
    "MergeHub",
    "BroadcastHub",
    "PartitionHub",
    "RestartSource",
    "RestartFlow",
    "RestartSink",
    "SourceQueue",
    "SinkQueue",
    "Cancellable",
    "Ports",
    "Keyed",
    "JoinBy",
    "KillSwitches",
    "UniqueKillSwitch",
    "SinkFuture",
    "Keep",
    "Directive",
    "RunHandle",
    "ArrowBatch",
    "ArrowTable",
    "DeadLetter",
    "InterpreterPool",
    "Offloaded",
    "offload",
    "WeirError",
    "StageFailed",
    "RunCancelled",
    "GraphInvalid",
    "WorkerCrashed",
    "CallTimeout",
    "cluster",
    "errors",
    "interpreters",
]

# Former names, kept as deprecated aliases: ``Completion`` is ``SinkFuture`` and ``KillSwitch`` is
# ``UniqueKillSwitch``, as in Rust.
_DEPRECATED = {"Completion": "SinkFuture", "KillSwitch": "UniqueKillSwitch"}

if TYPE_CHECKING:
    Completion = SinkFuture
    KillSwitch = UniqueKillSwitch
else:

    def __getattr__(name: str) -> Any:
        """The deprecated aliases, with a ``DeprecationWarning`` naming the new name."""
        new = _DEPRECATED.get(name)
        if new is None:
            raise AttributeError(f"module 'weir' has no attribute {name!r}")
        import warnings

        warnings.warn(f"weir.{name} is deprecated: use weir.{new}", DeprecationWarning, stacklevel=2)
        return globals()[new]
