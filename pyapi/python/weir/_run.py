"""Running graphs: blocking ``run()``, ``run_async()`` and background ``start()`` handles."""

from __future__ import annotations

import asyncio
import atexit
import logging
import os
import threading
import time
import weakref
from typing import Any, Dict, Generic, List, Optional, Tuple, TypeVar, cast

from . import _native
from ._aio import set_current_loop

Mat = TypeVar("Mat", covariant=True)


def _resolve(v: Any) -> Any:
    if isinstance(v, _native.SinkFuture):
        return v.result()
    if isinstance(v, tuple):
        return tuple(_resolve(x) for x in v)
    return v


class RunHandle(Generic[Mat]):
    """A running graph that materializes ``Mat``. ``wait()`` blocks for its materialized value, ``await wait_async()``
    awaits it, ``cancel()`` stops it, ``metrics()`` reads per-stage counters, ``kill_switch()``
    stops it gracefully. In a notebook the handle shows its per-stage counts."""

    def __init__(self, graph: Any, native: _native.Run) -> None:
        self._graph = graph
        self._n = native
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._waiters: List[Any] = []
        self._error: Optional[BaseException] = None
        self._thread: Optional[threading.Thread] = None
        self._t0 = time.monotonic()
        self._t1: Optional[float] = None
        self._last: Optional[Tuple[float, Dict[str, int]]] = None

    @classmethod
    def _start(
        cls,
        graph: Any,
        *,
        batch_size: Optional[int] = None,
        loop: Optional[asyncio.AbstractEventLoop] = None,
        cancel_grace: Optional[float] = None,
        parallelism: Optional[int] = None,
        checkpoints: Optional[Dict[str, Any]] = None,
    ) -> "RunHandle[Any]":
        n = _native.start(
            graph._n,
            None,
            _run_batch_size(batch_size),
            cancel_grace,
            parallelism=_run_parallelism(parallelism),
            **(checkpoints or {}),
        )
        h = cls(graph, n)
        h._thread = threading.Thread(target=h._serve, args=(loop,), name="weir-dispatcher", daemon=True)
        _live.add(h)
        h._thread.start()
        return h

    def _serve(self, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        set_current_loop(loop)
        try:
            self._n.serve()
        except BaseException as e:  # noqa: BLE001 - reported by wait()
            self._error = e
        finally:
            set_current_loop(None)
            self._finish()

    def _finish(self) -> None:
        self._t1 = time.monotonic()
        for pool in self._graph._meta.pools:
            pool._release_run()
        with self._lock:
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_set_done, fut)
            except RuntimeError:  # the waiting loop is already closed
                pass

    @property
    def materialized(self) -> Any:
        """The raw materialized value (sink results are ``SinkFuture`` objects)."""
        return self._n.materialized

    def done(self) -> bool:
        """Whether the run is over."""
        return self._done.is_set()

    @property
    def latest_checkpoint(self) -> Optional[int]:
        """The id of the newest checkpoint this run completed (``None`` before the first, or
        without ``state_dir``)."""
        return self._n.latest_checkpoint

    @property
    def restored_checkpoint(self) -> Optional[int]:
        """The id of the checkpoint this run restored its state from (``None``: it started
        without one)."""
        return self._n.restored_checkpoint

    @property
    def started_empty(self) -> List[Tuple[str, int]]:
        """The stage subtasks (``(path, subtask)``) that found no state in the checkpoint or
        savepoint this run restored from and started empty (``[]`` without a restore)."""
        return self._n.started_empty

    @property
    def skipped(self) -> List[str]:
        """The newer checkpoints skipped as corrupt when this run restored an older one, each
        as its error naming the damaged file, newest first."""
        return self._n.skipped

    def savepoint(self, dir: "os.PathLike[str] | str", timeout: Optional[float] = None) -> str:
        """Takes a savepoint into ``dir`` now and blocks until it is written; returns its
        directory (start a run from it with ``restore_from=``). Raises :class:`weir.WeirError`
        when the run has no checkpoints (no ``state_dir``), ends first, or a stage declines
        the barrier; ``TimeoutError`` after ``timeout`` seconds."""
        return _await_savepoint(self._n.savepoint(os.fspath(dir)), timeout)

    async def savepoint_async(self, dir: "os.PathLike[str] | str") -> str:
        """Like :meth:`savepoint`, awaiting the savepoint without blocking the event loop."""
        p = self._n.savepoint(os.fspath(dir))
        await asyncio.get_running_loop().run_in_executor(None, p.wait)
        return p.result()

    def cancel(self) -> None:
        """Cancels the run; ``wait()`` then raises :class:`weir.RunCancelled`."""
        self._n.cancel()

    def kill_switch(self) -> Optional[_native.UniqueKillSwitch]:
        """The first ``UniqueKillSwitch`` in the materialized value, if the graph has one."""

        def find(v: Any) -> Optional[_native.UniqueKillSwitch]:
            if isinstance(v, _native.UniqueKillSwitch):
                return v
            if isinstance(v, tuple):
                for x in v:
                    k = find(x)
                    if k is not None:
                        return k
            return None

        return find(self.materialized)

    def metrics(self) -> List[Dict[str, Any]]:
        """Per stage subtask counters (``path``, ``elements_in``, ``elements_out``, ...)."""
        return self._n.metrics()

    def stage_counts(self) -> Dict[str, Dict[str, int]]:
        """``{stage path: {"in": n, "out": m}}`` summed over subtasks."""
        out: Dict[str, Dict[str, int]] = {}
        for m in self.metrics():
            d = out.setdefault(m["path"], {"in": 0, "out": 0})
            d["in"] += m["elements_in"]
            d["out"] += m["elements_out"]
        return out

    def elapsed(self) -> float:
        """Seconds since the run started (until it ended, once it is over)."""
        return (self._t1 if self._t1 is not None else time.monotonic()) - self._t0

    def stage_stats(self) -> Dict[str, Dict[str, Any]]:
        """Per stage (summed over subtasks): ``in`` and ``out`` element counts, ``rate`` (elements
        out per second since the run started), ``recent_rate`` (since the previous call; ``None``
        on the first), ``busy_ms`` and ``queued`` (elements waiting in front of the stage)."""
        now, elapsed = time.monotonic(), self.elapsed()
        out: Dict[str, Dict[str, Any]] = {}
        for m in self.metrics():
            d = out.setdefault(m["path"], {"in": 0, "out": 0, "busy_ms": 0.0, "queued": 0})
            d["in"] += m["elements_in"]
            d["out"] += m["elements_out"]
            d["busy_ms"] += m["busy_ms"]
            d["queued"] += m["queue_depth"]
        last, self._last = self._last, (now, {p: d["out"] for p, d in out.items()})
        for p, d in out.items():
            d["rate"] = d["out"] / elapsed if elapsed > 0 else 0.0
            d["recent_rate"] = None
            if last is not None and now > last[0]:
                d["recent_rate"] = (d["out"] - last[1].get(p, 0)) / (now - last[0])
        return out

    def watch(self, interval: float = 1.0) -> "RunHandle[Mat]":
        """Shows the per-stage table, refreshed every ``interval`` seconds until the run is over
        (a live display in a notebook, text lines elsewhere); Ctrl-C stops watching, not the
        run. Returns the handle."""
        from .notebook import watch

        watch(self, interval)
        return self

    def wait(self, timeout: Optional[float] = None) -> Mat:
        """Blocks until the run is over and returns its materialized value with sink results
        resolved; raises the run's failure. Ctrl-C while waiting cancels the run. Always
        returns: when the run's stages have stopped but the thread serving its Python calls is
        still inside one (a sink or generator that blocks), that call gets the run's
        ``cancel_grace`` seconds; then a cancelled or failed run raises ``StageFailed`` (kind
        ``"timeout"``) naming the stage, a completed one returns its value, and the stuck
        thread is left behind (logged as a warning)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        try:
            self._wait_until(deadline)
        except KeyboardInterrupt:
            self.cancel()
            self._wait_until(None)
            raise
        return self._result()

    def _wait_until(self, deadline: Optional[float]) -> None:
        """Waits for the dispatcher to finish, or for the grace after the run's end to pass."""
        grace_end: Optional[float] = None
        while not self._done.wait(0.02):
            now = time.monotonic()
            if deadline is not None and now >= deadline:
                raise TimeoutError("the run is still going")
            if grace_end is None and self._n.is_finished():
                grace_end = now + self._n.cancel_grace
            if grace_end is not None and now >= grace_end:
                err = self._n.stuck_error()
                if err is None:
                    grace_end = None
                    continue
                _log.warning("%s", err)
                try:
                    self._n.outcome()
                except BaseException:  # noqa: BLE001 - the stuck call is the error to report
                    raise err from None
                return

    async def wait_async(self) -> Mat:
        """Awaits the end of the run (cancelling the awaiting task cancels the run)."""
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self._done.is_set():
                fut.set_result(None)
            else:
                self._waiters.append((loop, fut))
        try:
            await fut
        except asyncio.CancelledError:
            self.cancel()
            raise
        return self._result()

    def _result(self) -> Mat:
        if self._error is not None:
            raise self._error
        # The run's own failure first: when one sink fails, the run stops every other island, and
        # their results only say "cancelled".
        self._n.outcome()
        return cast(Mat, _resolve(self._n.materialized))

    def _repr_html_(self) -> str:
        from .notebook import run_html

        return run_html(self)

    def __repr__(self) -> str:
        state = "done" if self.done() else "running"
        return f"<weir.RunHandle {state} {self.elapsed():.1f}s>"


_live: "weakref.WeakSet[RunHandle[Any]]" = weakref.WeakSet()
_log = logging.getLogger("weir")


@atexit.register
def _shutdown_live_runs() -> None:
    """Cancels runs still going when the interpreter exits and waits for their dispatcher
    threads, so no thread is inside native code while the interpreter finalizes."""
    for h in list(_live):
        if not h.done():
            if os.environ.get("WEIR_DEBUG_EXIT"):
                print("weir: cancelling a run still going at exit:", h._graph)
            h.cancel()
        if h._thread is not None:
            h._thread.join(timeout=5)


def _set_done(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


def _run_batch_size(rows: Optional[int]) -> Optional[int]:
    """A run's ``batch_size=`` checked (``ValueError`` below 1, instead of a silent 1)."""
    from ._validate import size

    return None if rows is None else size("run", "batch_size", rows)


def _run_parallelism(n: Optional[int]) -> Optional[int]:
    """A run's ``parallelism=`` checked: 1 to 128 (the key groups)."""
    from ._validate import size

    if n is None:
        return None
    n = size("run", "parallelism", n)
    if n > MAX_PARALLELISM:
        raise ValueError(f"run: parallelism must be at most {MAX_PARALLELISM}, got {n}")
    return n


#: The highest run parallelism (the number of key groups).
MAX_PARALLELISM = 128


def _await_savepoint(p: Any, timeout: Optional[float]) -> str:
    """Waits for a pending native savepoint; its directory, or its failure raised."""
    if not p.wait(timeout):
        raise TimeoutError(f"the savepoint is not written after {timeout}s")
    return cast(str, p.result())


def checkpoint_settings(
    state_dir: Any,
    interval: Optional[float],
    retain: Optional[int],
    restore_from: Any = None,
    allow_unmatched: bool = False,
) -> Optional[Dict[str, Any]]:
    """A run's checkpoint arguments checked: ``None`` without ``state_dir`` (then an interval,
    ``retain``, ``restore_from`` or ``allow_unmatched`` is a ``ValueError``)."""
    from ._validate import seconds, size

    if state_dir is None:
        if interval is not None or retain is not None:
            raise ValueError("run: checkpoint_interval and retain need state_dir (where checkpoints are kept)")
        if restore_from is not None or allow_unmatched:
            raise ValueError(
                "run: restore_from and allow_unmatched need state_dir (where the restored run keeps its checkpoints)"
            )
        return None
    out: Dict[str, Any] = {
        "state_dir": os.fspath(state_dir),
        "checkpoint_interval": None if interval is None else seconds("run", "checkpoint_interval", interval),
        "retain": None if retain is None else size("run", "retain", retain),
    }
    if restore_from is not None:
        out["restore_from"] = os.fspath(restore_from)
    if allow_unmatched:
        out["allow_unmatched"] = True
    return out


def run_blocking(
    graph: Any,
    *,
    batch_size: Optional[int] = None,
    progress: Any = None,
    parallelism: Optional[int] = None,
    checkpoints: Optional[Dict[str, Any]] = None,
) -> Any:
    """Runs ``graph`` serving its Python work on this thread."""
    if progress:
        from .notebook import run_with_progress

        if checkpoints:
            raise ValueError("run: progress= and state_dir= cannot be combined yet; use start() and watch()")
        return run_with_progress(graph, batch_size=batch_size, total=progress, parallelism=parallelism)
    n = _native.start(
        graph._n, None, _run_batch_size(batch_size), parallelism=_run_parallelism(parallelism), **(checkpoints or {})
    )
    h = RunHandle(graph, n)
    set_current_loop(None)
    try:
        h._n.serve()
    finally:
        h._finish()
    return h._result()


async def run_async(
    graph: Any,
    *,
    batch_size: Optional[int] = None,
    parallelism: Optional[int] = None,
    checkpoints: Optional[Dict[str, Any]] = None,
) -> Any:
    """Runs ``graph`` with its Python work on a dispatcher thread and ``async def`` stages on
    the running loop."""
    h = RunHandle._start(
        graph,
        batch_size=batch_size,
        loop=asyncio.get_running_loop(),
        parallelism=parallelism,
        checkpoints=checkpoints,
    )
    return await h.wait_async()
