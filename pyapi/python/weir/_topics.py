"""Topics: named many-to-many channels between running graphs (publish/subscribe as stages).

``Topics()`` is a registry in this process; ``ClusterNode.topic(name)`` gives the same kind of
topic shared with every node of a job. Elements travel as built-in values (weir's value codec:
None, bool, int, float, str, bytes, and tuples, lists and dicts of them), the same on one node
and across nodes, never as pickles.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from . import _native
from ._dsl import Sink, Source
from ._validate import size


class Topic:
    """One named topic: publish with :meth:`sink`, subscribe with :meth:`source`."""

    __slots__ = ("_n",)

    def __init__(self, native: Any) -> None:
        self._n = native

    @property
    def name(self) -> str:
        """The topic's name."""
        return str(self._n.name)

    def sink(self) -> Sink[Any, None]:
        """A sink publishing each element to every subscriber attached when it is published
        (here and, for a cluster topic, on every node).

        Backpressures when: the slowest subscriber (on any node) has ``buffer`` unread elements.
        Completes when: upstream completes, or (cancelling upstream) when the topic is closed.
        Fails when: upstream fails, or an element is not a built-in value (naming it); the
        topic and its other publishers go on. Nothing is kept while nobody subscribes."""
        return Sink(self._n.sink())

    def source(self) -> Source[Any]:
        """A source emitting what is published after it attached, each publisher's elements in
        publish order. Completes when the topic is closed (after what it holds); cancelling it
        leaves the topic and releases the publishers it held back."""
        return Source(self._n.source())

    def close(self) -> None:
        """Closes the topic: subscribers complete after what they hold, publishers stop."""
        self._n.close()

    @property
    def closed(self) -> bool:
        """Whether the topic was closed."""
        return bool(self._n.closed)

    def stats(self) -> Dict[str, int]:
        """Counters: ``subscribers``, ``remote_readers`` (subscribing nodes), ``published``,
        ``unheard`` (published while nobody read), ``received`` (from other nodes),
        ``dropped`` (received while nobody here read) and ``buffered``."""
        return dict(self._n.stats())

    def wait_for_readers(
        self, subscribers: int = 0, remote_readers: int = 0, timeout: Optional[float] = None
    ) -> bool:
        """Waits until the topic has ``subscribers`` subscribers here and ``remote_readers``
        other nodes reading it (a subscription on another node attaches once its node asked),
        or ``timeout`` seconds passed; whether they came."""
        return bool(self._n.wait_for_readers(subscribers, remote_readers, timeout))

    def __repr__(self) -> str:
        return f"Topic({self.name!r})"


class Topics:
    """A registry of topics in this process, each ring holding ``buffer`` elements."""

    __slots__ = ("_n",)

    def __init__(self, buffer: int = 256) -> None:
        self._n = _native.Topics(size("Topics", "buffer", buffer))

    def topic(self, name: str) -> Topic:
        """The topic ``name`` (made on first use)."""
        return Topic(self._n.topic(name))

    def names(self) -> List[str]:
        """The names of the topics made so far."""
        return list(self._n.names())

    @property
    def buffer(self) -> int:
        """The elements each ring of a topic buffers."""
        return int(self._n.buffer)
