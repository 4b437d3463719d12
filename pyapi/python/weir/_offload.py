"""``@weir.offload``: a Python function whose calls run in an interpreter pool, from any stage,
actor or plain code, with optional hedged second attempts.

``@weir.offload`` (or ``@weir.offload(pool=p, timeout=..., hedge=k)``) wraps ``fn`` in an
:class:`Offloaded`. Calling it ships ``(args, kwargs)`` to one of the pool's workers (``fn`` is
shipped once per worker, by value with cloudpickle) and waits for the result with the GIL
released, so a stage or actor handler that calls it blocks only its own thread, and several
stages calling it at once use several workers. :meth:`Offloaded.submit` returns a
``concurrent.futures.Future`` instead (``asyncio.wrap_future`` makes it awaitable). The call's
exception is raised to the caller, with the worker's traceback as a note; a worker crash raises
:class:`weir.errors.WorkerCrashed` and a call past ``timeout=`` :class:`weir.errors.CallTimeout`
(the pool's fault rules).

Without ``pool=`` the calls go to one shared pool of one worker per core, started on the first
call and stopped at interpreter exit. Inside a pool worker (an offloaded function calling
another) a call runs inline.

Hedging (``hedge=k``, off by default): once :data:`HEDGE_MIN_SAMPLES` calls have completed, a call
still running after ``k`` times the p99 of the last :data:`HEDGE_WINDOW` call latencies gets a
second attempt on the least busy worker. The first outcome (result or error) wins; the other
attempt is cancelled: its outcome is dropped and counted in ``stats()["cancelled"]`` (a call
already running in a worker runs to its end there, since Python code cannot be interrupted). A
hedged call is never hedged twice.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import threading
import time
from collections import deque
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from . import _worker
from .interpreters import InterpreterPool, _ids, check_timeout

#: Completed calls needed before a call may be hedged.
HEDGE_MIN_SAMPLES = 20
#: Latencies (of the most recent calls) the p99 is taken over.
HEDGE_WINDOW = 256

_default: Optional[InterpreterPool] = None
_default_lock = threading.Lock()


def _default_pool() -> InterpreterPool:
    """The shared pool of calls made without ``pool=`` (one worker per core)."""
    global _default
    with _default_lock:
        if _default is None or _default._closed:
            _default = InterpreterPool()
        return _default


def _call_with(fn: Callable[..., Any]) -> Callable[[Tuple[tuple, dict]], Any]:
    """The pool function: one element is one call's ``(args, kwargs)``."""

    def call(ak: Tuple[tuple, dict]) -> Any:
        return fn(*ak[0], **ak[1])

    return call


class _Hedger:
    """One daemon thread per offloaded function: starts the second attempt of a call that is
    still running at its hedge deadline (a heap of deadlines, the earliest first)."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.heap: List[Tuple[float, int, "_Call"]] = []
        self.thread: Optional[threading.Thread] = None

    def watch(self, at: float, call: "_Call") -> None:
        with self.cond:
            heapq.heappush(self.heap, (at, call.id, call))
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="weir-offload-hedger", daemon=True)
                self.thread.start()
            self.cond.notify()

    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.heap:
                    self.cond.wait()
                at, _, call = self.heap[0]
                now = time.monotonic()
                if at > now:
                    self.cond.wait(at - now)
                    continue
                heapq.heappop(self.heap)
            call.hedge()


class _Call:
    """One call: its attempts (at most two) and the future the first outcome completes."""

    def __init__(self, owner: "Offloaded", ak: Tuple[tuple, dict]) -> None:
        self.id = next(_ids)
        self.owner = owner
        self.ak = ak
        self.future: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
        self.started = time.monotonic()
        self.attempts = 0
        self.lock = threading.Lock()

    def attempt(self) -> None:
        """Hands one attempt to the pool; its outcome settles the call unless one did first."""
        with self.lock:
            self.attempts += 1
            n = self.attempts
        pool = self.owner._pool()
        if pool._closed:
            from .errors import WeirError

            self._settle(n, [], [(self.ak, WeirError("this InterpreterPool is closed"), 0)])
            return
        fid = self.owner._fid(pool)
        try:
            pool.backend.submit(fid, [self.ak], lambda out, fails: self._settle(n, out, fails), self.owner.timeout)
        except Exception as e:  # noqa: BLE001 - e.g. no worker could be started
            self._settle(n, [], [(self.ak, e, 0)])

    def hedge(self) -> None:
        """The second attempt, if the call is still running."""
        with self.lock:
            if self.future.done() or self.attempts > 1:
                return
        self.owner._count("hedged")
        self.attempt()

    def _settle(self, n: int, out: List[Any], fails: List[Any]) -> None:
        with self.lock:
            if self.future.done():
                return
            hedged = self.attempts > 1
            if out:
                self.future.set_result(out[0])
            else:
                err = fails[0][1] if fails else RuntimeError("the pool returned no outcome")
                self.future.set_exception(err)
        if hedged:
            self.owner._count("cancelled")
            if n > 1:
                self.owner._count("hedge_wins")
        if out:
            self.owner._observe(time.monotonic() - self.started)


class Offloaded:
    """A function whose calls run in an interpreter pool (see the module doc); made by
    :func:`offload`."""

    def __init__(self, fn: Callable[..., Any], pool: Optional[InterpreterPool], timeout: Optional[float], hedge: Optional[float]) -> None:
        self.__wrapped__ = fn
        self.__name__ = getattr(fn, "__name__", "offloaded")
        self.__qualname__ = getattr(fn, "__qualname__", self.__name__)
        self.__doc__ = getattr(fn, "__doc__", None)
        self.pool = pool
        self.timeout = timeout
        self.hedge = hedge
        self._lock = threading.Lock()
        self._fids: Dict[int, int] = {}
        self._latencies: Deque[float] = deque(maxlen=HEDGE_WINDOW)
        self._p99: Optional[float] = None
        self._since_p99 = 0
        self._stats = {"calls": 0, "hedged": 0, "hedge_wins": 0, "cancelled": 0}
        self._hedger = _Hedger() if hedge is not None else None

    def _pool(self) -> InterpreterPool:
        return self.pool if self.pool is not None else _default_pool()

    def _fid(self, pool: InterpreterPool) -> int:
        """The function's id in ``pool`` (registered on first use)."""
        with self._lock:
            fid = self._fids.get(id(pool))
            if fid is None:
                fid = next(_ids)
                pool.backend.register(fid, "map", _call_with(self.__wrapped__))
                self._fids[id(pool)] = fid
            return fid

    def _count(self, what: str) -> None:
        with self._lock:
            self._stats[what] += 1

    def _observe(self, secs: float) -> None:
        with self._lock:
            self._latencies.append(secs)
            self._since_p99 += 1
            if len(self._latencies) >= HEDGE_MIN_SAMPLES and (self._p99 is None or self._since_p99 >= 16):
                xs = sorted(self._latencies)
                self._p99 = xs[int(0.99 * (len(xs) - 1))]
                self._since_p99 = 0

    def submit(self, *args: Any, **kwargs: Any) -> "concurrent.futures.Future[Any]":
        """Starts a call; the future holds its result or exception. Inside a pool worker the
        call runs inline (no pool starts there)."""
        if _worker.SERVING:
            inline: "concurrent.futures.Future[Any]" = concurrent.futures.Future()
            try:
                inline.set_result(self.__wrapped__(*args, **kwargs))
            except Exception as e:  # noqa: BLE001 - the caller gets it from the future
                inline.set_exception(e)
            return inline
        call = _Call(self, (args, kwargs))
        with self._lock:
            self._stats["calls"] += 1
            p99 = self._p99
        call.attempt()
        if self._hedger is not None and self.hedge is not None and p99 is not None and not call.future.done():
            self._hedger.watch(call.started + self.hedge * p99, call)
        return call.future

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.submit(*args, **kwargs).result()

    def stats(self) -> Dict[str, int]:
        """``{"calls", "hedged", "hedge_wins", "cancelled"}``: calls made, calls given a second
        attempt, hedged calls the second attempt won, and attempts cancelled (their outcome
        dropped because the other attempt settled the call first)."""
        with self._lock:
            return dict(self._stats)

    def p99(self) -> Optional[float]:
        """The p99 latency (seconds) of recent calls, once :data:`HEDGE_MIN_SAMPLES` completed."""
        with self._lock:
            return self._p99

    def __repr__(self) -> str:
        return f"<weir.offload {self.__qualname__}>"

    def __reduce__(self) -> Any:
        # Shipped with a function that calls it: a copy without the pool (inside a worker the
        # calls run inline) and with fresh counters.
        return (Offloaded, (self.__wrapped__, None, self.timeout, self.hedge))


def offload(
    fn: Optional[Callable[..., Any]] = None,
    *,
    pool: Optional[InterpreterPool] = None,
    timeout: Optional[float] = None,
    hedge: Optional[float] = None,
) -> Any:
    """Runs ``fn``'s calls in an interpreter pool (see the module doc): ``@weir.offload`` or
    ``@weir.offload(pool=..., timeout=seconds, hedge=k)``."""
    if pool is not None and not isinstance(pool, InterpreterPool):
        raise TypeError(f"offload: pool= takes an InterpreterPool, not {type(pool).__name__}")
    if pool is not None and pool.run_owned:
        raise ValueError("offload: pool= needs a long-lived InterpreterPool, not a run-owned one")
    t = check_timeout("offload", timeout)
    if hedge is not None and (isinstance(hedge, bool) or not isinstance(hedge, (int, float)) or not hedge >= 1):
        raise ValueError(f"offload: hedge must be a factor >= 1 of the recent p99 latency, not {hedge!r}")
    h = float(hedge) if hedge is not None else None

    def wrap(f: Callable[..., Any]) -> Offloaded:
        if not callable(f):
            raise TypeError(f"offload wraps a function, not {type(f).__name__}")
        return Offloaded(f, pool, t, h)

    return wrap(fn) if fn is not None else wrap
