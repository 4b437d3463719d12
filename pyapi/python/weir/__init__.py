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

from . import errors, interpreters
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
from ._handles import SinkQueue, SourceQueue
from ._hubs import BroadcastHub, MergeHub, PartitionHub, RestartFlow, RestartSink, RestartSource
from ._native import ArrowBatch, ArrowTable, Cancellable, Completion, KillSwitch, MaybeHandle
from ._run import RunHandle
from .errors import CallTimeout, GraphInvalid, RunCancelled, StageFailed, WeirError, WorkerCrashed
from .interpreters import InterpreterPool

__version__ = "0.1.0"

__all__ = [
    "Source",
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
    "KillSwitches",
    "KillSwitch",
    "Completion",
    "RunHandle",
    "ArrowBatch",
    "ArrowTable",
    "DeadLetter",
    "InterpreterPool",
    "WeirError",
    "StageFailed",
    "RunCancelled",
    "GraphInvalid",
    "WorkerCrashed",
    "CallTimeout",
    "errors",
    "interpreters",
]
