"""Handles materialized by ``Source.queue`` and ``Sink.queue`` (wrappers of the native ones)."""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Generic, Iterator, Optional, TypeVar

T = TypeVar("T")

_END = object()


class SourceQueue:
    """Feeds a running ``Source.queue``: ``offer(x)``, then ``complete()`` (or ``fail(exc)``).

    ``offer`` blocks with the GIL released while the buffer is full under ``"backpressure"``;
    ``await offer_async(x)`` does the same from a coroutine without blocking the event loop."""

    __slots__ = ("_n",)

    def __init__(self, native: Any) -> None:
        self._n = native

    def offer(self, x: Any) -> str:
        """Offers ``x``: ``"enqueued"``, ``"dropped"`` (``drop_new`` with a full buffer) or
        ``"closed"`` (completed, or the stream stopped); raises once the queue failed."""
        return self._n.offer(x)

    async def offer_async(self, x: Any) -> str:
        """:meth:`offer` awaited on a worker thread (the event loop keeps running)."""
        return await asyncio.get_running_loop().run_in_executor(None, self._n.offer, x)

    def complete(self) -> None:
        """Completes the source after the buffered elements."""
        self._n.complete()

    def fail(self, exc: BaseException) -> None:
        """Fails the source with ``exc`` (the ``__cause__`` of the run's ``StageFailed``)."""
        self._n.fail(exc)

    def buffered(self) -> int:
        """Elements buffered and not emitted yet."""
        return self._n.buffered()

    @property
    def closed(self) -> bool:
        """Whether the queue accepts no more elements: completed, failed, or its stream stopped
        (downstream cancelled, the run ended); ``offer`` then returns ``"closed"``."""
        return self._n.is_closed()

    def __repr__(self) -> str:
        return f"SourceQueue(buffered={self.buffered()})"


class SinkQueue(Generic[T]):
    """Pulls elements ``T`` from a running ``Sink.queue``: ``pull()`` one element (``None`` at the end), or
    iterate it (``for x in q``, ``async for x in q``)."""

    __slots__ = ("_n",)

    def __init__(self, native: Any) -> None:
        self._n = native

    def _pull(self) -> Any:
        ok, x = self._n.pull()
        return x if ok else _END

    def pull(self, default: Optional[T] = None) -> Optional[T]:
        """The next element, or ``default`` once the stream completed; blocks (GIL released);
        raises ``StageFailed`` when the stream failed."""
        x = self._pull()
        return default if x is _END else x

    async def pull_async(self, default: Optional[T] = None) -> Optional[T]:
        """:meth:`pull` awaited on a worker thread."""
        x = await asyncio.get_running_loop().run_in_executor(None, self._pull)
        return default if x is _END else x

    def cancel(self) -> None:
        """Stops pulling; upstream is cancelled."""
        self._n.cancel()

    def __iter__(self) -> Iterator[T]:
        while True:
            x = self._pull()
            if x is _END:
                return
            yield x

    async def __aiter__(self) -> AsyncIterator[T]:
        loop = asyncio.get_running_loop()
        while True:
            x = await loop.run_in_executor(None, self._pull)
            if x is _END:
                return
            yield x
