"""asyncio integration: which event loop runs ``async def`` stage functions of a run."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, Callable, Dict, List, Optional, Tuple

_local = threading.local()
_bg_lock = threading.Lock()
_bg_loop: Optional[asyncio.AbstractEventLoop] = None


def background_loop() -> asyncio.AbstractEventLoop:
    """A process-wide event loop running in a daemon thread (for blocking ``run()`` calls)."""
    global _bg_loop
    with _bg_lock:
        if _bg_loop is None or _bg_loop.is_closed():
            loop = asyncio.new_event_loop()
            t = threading.Thread(target=loop.run_forever, name="weir-asyncio", daemon=True)
            t.start()
            _bg_loop = loop
        return _bg_loop


def set_current_loop(loop: Optional[asyncio.AbstractEventLoop]) -> None:
    """Sets the loop used by async stages whose jobs run on this (dispatcher) thread."""
    _local.loop = loop


def current_loop() -> asyncio.AbstractEventLoop:
    """The loop for async stages on this dispatcher thread (the background loop by default)."""
    loop = getattr(_local, "loop", None)
    return loop if loop is not None else background_loop()


class AsyncSubmitter:
    """``submit(batch, done)`` for ``map_async``: runs ``fn(x)`` coroutines on the run's loop,
    at most ``parallelism`` at once across in-flight batches, and reports
    ``done(outputs, failures)`` in input order; a failure is ``(element, exception,
    outputs_before)``."""

    def __init__(
        self, fn: Callable[[Any], Awaitable[Any]], parallelism: int, keep_results: bool = True, timeout: Optional[float] = None
    ) -> None:
        self.fn = fn
        self.parallelism = max(1, int(parallelism))
        self.keep_results = keep_results
        self.timeout = timeout
        self._sems: Dict[int, asyncio.Semaphore] = {}

    def _sem(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        s = self._sems.get(id(loop))
        if s is None:
            s = asyncio.Semaphore(self.parallelism)
            self._sems[id(loop)] = s
        return s

    def __call__(self, batch: List[Any], done: Callable[[List[Any], List[Tuple[Any, BaseException, int]]], None]) -> Any:
        """Runs ``batch`` on the loop; returns the future of the batch (the stage cancels it,
        and so every coroutine still running, when it stops)."""
        loop = current_loop()
        fn, keep, timeout = self.fn, self.keep_results, self.timeout

        async def one(sem: asyncio.Semaphore, x: Any) -> Any:
            async with sem:
                if timeout is None:
                    return await fn(x)
                try:
                    return await asyncio.wait_for(fn(x), timeout)
                except asyncio.TimeoutError:
                    from .errors import CallTimeout

                    raise CallTimeout(f"coroutine exceeded timeout={timeout}s and was cancelled") from None

        async def runner() -> None:
            sem = self._sem(loop)
            results = await asyncio.gather(*(one(sem, x) for x in batch), return_exceptions=True)
            outputs: List[Any] = []
            failures: List[Tuple[Any, BaseException, int]] = []
            for x, r in zip(batch, results):
                if isinstance(r, BaseException):
                    failures.append((x, r, len(outputs)))
                elif keep:
                    outputs.append(r)
            done(outputs, failures)

        def report(f: "asyncio.Future[None]") -> None:
            exc = f.exception() if not f.cancelled() else asyncio.CancelledError()
            if exc is not None:
                done([], [(None, exc)])

        fut = asyncio.run_coroutine_threadsafe(runner(), loop)
        fut.add_done_callback(report)  # type: ignore[arg-type]
        return fut
