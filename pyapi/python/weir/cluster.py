"""Python jobs over nodes: every node runs the same script and builds the same graph over its
part of the input, and :meth:`ClusterNode.exchange` moves each element to the node owning its
key (over QUIC with mutual TLS; elements cross in weir's key and value codec, never as
pickles, so only built-in values do). ``run(cluster=node)`` makes the run's checkpoints part
of the job's: one checkpoint completes only once every node wrote it, and a restarted job
restores the newest one all nodes completed. See docs/python.md, "Jobs over nodes".

::

    node = weir.cluster.join()            # None when the script runs on its own
    counts = (weir.Source.from_iter(my_share)
              .via(node.exchange(key=lambda w: w))
              .key_by(lambda w: w).count()
              .run_with(weir.Sink.collect(), cluster=node, state_dir="st", checkpoint_interval=1))
    node.finish()

``weir.cluster.run_local(3, [sys.executable, __file__])`` runs a script as a local cluster of 3
processes (``weir local-cluster`` does the same from the shell, and ``weir run --cluster ADDR``
on the nodes of a coordinator). :func:`status`, :func:`cancel`, :func:`wait_stopped` and
:func:`savepoint` control a local cluster job by its directory, as ``weir status|cancel|savepoint
--cluster DIR`` do; a run given ``restore_from=SAVEPOINT`` with ``cluster=node`` starts from a
cluster savepoint, on the same node count or another one (rescaled).
"""

from __future__ import annotations

import os
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple

from . import _native
from ._dsl import Flow

if TYPE_CHECKING:
    from ._topics import Topic

__all__ = [
    "ClusterNode",
    "LocalOutcome",
    "Savepoint",
    "cancel",
    "join",
    "run_local",
    "savepoint",
    "status",
    "wait_stopped",
]


class ClusterNode:
    """This process's node of a job over nodes (from :func:`join`)."""

    __slots__ = ("_n",)

    def __init__(self, native: Any) -> None:
        self._n = native

    @property
    def node(self) -> int:
        """This node's index (0 to ``nodes - 1``)."""
        return int(self._n.node)

    @property
    def nodes(self) -> int:
        """How many nodes run the job."""
        return int(self._n.nodes)

    @property
    def share(self) -> Tuple[int, int]:
        """``(node, nodes)``: this node's share of an input every node lists alike (the
        ``share=`` of :meth:`weir.Source.from_csv` and the other file sources)."""
        return (self.node, self.nodes)

    @property
    def epoch(self) -> int:
        """The job's attempt (a restart of every node begins the next)."""
        return int(self._n.epoch)

    @property
    def restore_id(self) -> int:
        """The checkpoint every node restores in this attempt (0: none)."""
        return int(self._n.restore_id)

    def owner(self, key: Any) -> int:
        """The node owning ``key`` (where :meth:`exchange` sends its elements)."""
        return int(self._n.owner(key))

    def exchange(self, key: Callable[[Any], Any]) -> Flow:
        """A flow sending each element to the node owning ``key(element)`` and emitting what
        every node sent to this one (its own elements without a network hop). Every node must
        build its exchanges in the same order. An element that is not a built-in value (None,
        bool, int, float, str, bytes, tuples, lists, dicts of them) fails the stage naming it."""
        if not callable(key):
            raise TypeError(f"exchange: key must be callable, got {type(key).__name__}")
        return Flow(self._n.exchange(key))

    def topic(self, name: str) -> "Topic":
        """The topic ``name`` shared with every node of the job: what its sinks publish on any
        node reaches its sources on every node, backpressured across nodes (a slow subscriber
        on one node holds the publishers on every node). Built-in values only, never pickles;
        across a node loss, delivery is at most once. See :class:`weir.Topics`."""
        from ._topics import Topic

        return Topic(self._n.topic(name))

    def finish(self) -> None:
        """Waits until every node's run ended (so no node closes while others still send to
        it), then closes this node's endpoint. Call it once, after the run."""
        self._n.finish()

    def __repr__(self) -> str:
        return f"ClusterNode(node={self.node}, nodes={self.nodes}, epoch={self.epoch})"


def join(
    node: Optional[int] = None,
    nodes: Optional[int] = None,
    cluster_dir: Any = None,
    epoch: Optional[int] = None,
) -> Optional[ClusterNode]:
    """This process's node: from the arguments, or (all left out) from the environment a node
    agent or local cluster sets (``WEIR_NODE``, ``WEIR_NODES``, ``WEIR_CLUSTER_DIR``,
    ``WEIR_EPOCH``, and ``WEIR_PEERS``/``WEIR_CERTS`` over the network); ``None`` when the script
    was not started as a node. It waits (up to 60 s) until every node joined."""
    n = _native.cluster_join(node, nodes, None if cluster_dir is None else os.fspath(cluster_dir), epoch)
    return None if n is None else ClusterNode(n)


class LocalOutcome(NamedTuple):
    """How :func:`run_local` ended: the last attempt, the restarts, each node's stdout."""

    epoch: int
    restarts: int
    stdout: List[str]


def run_local(
    nodes: int, argv: Sequence[str], dir: Any = None, max_restarts: int = 1000
) -> LocalOutcome:
    """Runs ``argv`` as ``nodes`` processes of one job on this machine (certificates, commit log
    and logs in ``dir``, default a fresh temporary folder), restarting every process when one
    dies, until every process of one attempt exited 0; a ``WeirError`` after ``max_restarts``
    failed attempts."""
    if nodes < 1:
        raise ValueError(f"run_local: nodes must be at least 1, got {nodes}")
    d = tempfile.mkdtemp(prefix="weir-local-cluster-") if dir is None else os.fspath(dir)
    epoch, restarts, out = _native.cluster_run_local(nodes, [os.fspath(a) for a in argv], d, max_restarts)
    return LocalOutcome(epoch, restarts, list(out))


def status(dir: Any) -> Dict[str, Any]:
    """The local cluster job in ``dir`` as its directory shows it: ``state`` (``running``,
    ``finished``, ``cancelled`` or ``failed``), ``epoch``, ``restarts``, ``cancel_requested``,
    ``latest_complete`` (the newest checkpoint every node completed, or ``None``),
    ``output_complete`` and ``nodes`` (per node: ``node``, ``pid``, ``alive``, ``addr``, ``done``,
    ``stored_checkpoints``). A ``WeirError`` when no job ran there."""
    return dict(_native.cluster_status(os.fspath(dir)))


def cancel(dir: Any) -> None:
    """Asks the supervisor of the job in ``dir`` to stop every node; the committed output stays
    what the newest complete checkpoint covers. A ``WeirError`` when the job is not running."""
    _native.cluster_cancel(os.fspath(dir))


def wait_stopped(dir: Any, timeout: float = 30.0) -> str:
    """Waits (up to ``timeout`` seconds) until the job in ``dir`` no longer runs; its state then,
    or ``"running"`` when the time ran out."""
    return _native.cluster_wait_stopped(os.fspath(dir), float(timeout))


class Savepoint(NamedTuple):
    """A cluster savepoint: its folder, the checkpoint of every node it holds, the job's node
    count, and what was copied."""

    path: str
    checkpoint: int
    nodes: int
    files: int
    bytes: int


def savepoint(dir: Any, target: Any) -> Savepoint:
    """Copies the newest checkpoint every node of the job in ``dir`` completed into the folder
    ``target`` (the job running or stopped). Start a job from it with ``restore_from=target``
    in ``run(cluster=node, ...)``, on as many nodes or another count. A ``WeirError`` when no
    checkpoint completed yet, the job finished, or ``target`` holds a savepoint already."""
    t = os.fspath(target)
    checkpoint, nodes, files, size = _native.cluster_savepoint(os.fspath(dir), t)
    return Savepoint(t, checkpoint, nodes, files, size)
