"""Pooled interpreters: run CPU-bound Python functions in worker processes.

``weir.InterpreterPool(workers=n)`` is passed as ``pool=`` to ``map``, ``filter``, ``flat_map``,
``map_batches`` and ``for_each``-like stages. The function is shipped once per worker and stage
(cloudpickle), elements travel in whole batches (pickle protocol 5, contiguous buffers out of
band), results come back in input
order, and at most ``max_inflight`` batches are outstanding per stage (backpressure).

Lifetime (who owns the workers):

* A pool object created by the user (``pool=InterpreterPool(...)``) is **long-lived**: its
  workers start when it is created and serve every run and stage that uses it until
  ``pool.close()``, the end of a ``with InterpreterPool(...) as pool:`` block, the pool being
  garbage-collected, or interpreter exit. Runs never stop them, so only the first run pays for
  the start-up. A run cancelled while batches are in a worker leaves those batches to finish
  there (their results are dropped); the workers stay with the pool. After ``close()`` a stage
  using the pool fails its batches with :class:`weir.WeirError`.
* ``pool=n`` (an ``int``; ``pool=True`` for one worker per core) gives the stage a pool **owned
  by the run**: workers start with the run's first batch and are stopped when the run ends
  (completed, failed or cancelled), so no worker outlives the run.

A worker that dies while holding a batch is replaced, and the batch fails with
:class:`weir.errors.WorkerCrashed` through the stage's supervision (so ``resume`` drops it and goes
on). Workers always die with the parent (``PR_SET_PDEATHSIG`` on Linux plus a parent-pid
watcher), whatever owns them.

The pool talks to its workers through a small :class:`Backend` interface; today the backend is
:class:`ProcessBackend` (one OS process per worker). Subinterpreters (PEP 734) and free-threaded
CPython can be added as backends: :func:`supported` reports what this interpreter offers.
"""

from __future__ import annotations

import atexit
import itertools
import os
import pickle
import socket
import subprocess
import sys
import sysconfig
import threading
import weakref
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ._worker import dumps, recv_frame, send_frame

Done = Callable[[List[Any], List[Tuple[Any, BaseException]]], None]


def supported() -> Dict[str, bool]:
    """What this interpreter supports: ``processes`` (always), ``subinterpreters`` (PEP 734
    ``concurrent.interpreters``, Python 3.14+), ``free_threading`` (a no-GIL build with the GIL
    actually disabled)."""
    free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    try:
        import concurrent.interpreters  # type: ignore[import-not-found]  # noqa: F401

        sub = True
    except ImportError:
        sub = False
    return {"processes": True, "subinterpreters": sub, "free_threading": free and not gil_enabled}


class Backend(Protocol):
    """How a pool runs batches: ``submit`` must not block; ``done`` is called exactly once."""

    def submit(self, fid: int, batch: List[Any], done: Done) -> None:
        """Runs function ``fid`` over ``batch`` and reports ``done(outputs, failures)``."""

    def register(self, fid: int, kind: str, fn: Callable[..., Any]) -> None:
        """Makes a function known to the workers."""

    def close(self) -> None:
        """Stops every worker and fails outstanding batches (a later ``submit`` may restart)."""

    def start(self) -> None:
        """Starts the workers now (optional: ``submit`` starts missing workers)."""

    def pids(self) -> List[int]:
        """Process ids of live workers."""


_WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_RUN_WORKER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


class _Worker:
    def __init__(self, backend: "ProcessBackend") -> None:
        self.backend = backend
        parent, child = socket.socketpair()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        # The worker file runs as a script, without importing the `weir` package (and its
        # native module): a worker is serving about 50 ms sooner.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_WORKER, _WORKER_PATH, str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.sock = parent
        self.send_lock = threading.Lock()
        self.pending: Dict[int, Tuple[List[Any], Done]] = {}
        self.known: set = set()
        self.alive = True
        self.reader = threading.Thread(target=self._read, name=f"weir-pool-{self.proc.pid}", daemon=True)
        self.reader.start()

    def send(self, tag: bytes, payload: bytes = b"", buffers: List[memoryview] = []) -> None:  # noqa: B006
        with self.send_lock:
            send_frame(self.sock, tag, payload, buffers)

    def _read(self) -> None:
        while True:
            try:
                _tag, msg, bufs = recv_frame(self.sock)
            except (EOFError, OSError):
                break
            try:
                bid, out, fails = pickle.loads(msg, buffers=bufs)
            except Exception as e:  # noqa: BLE001
                from .errors import WorkerError

                bid, out, fails = None, [], [(None, WorkerError(f"bad reply from worker: {e}"))]
            with self.backend.lock:
                entry = self.pending.pop(bid, None) if bid is not None else None
            if entry is not None:
                entry[1](out, fails)
        self.backend._died(self)


class ProcessBackend:
    """Workers as OS processes (``weir/_worker.py`` run as a script), connected by socket pairs."""

    def __init__(self, workers: int) -> None:
        self.size = max(1, workers)
        self.lock = threading.RLock()
        self.workers: List[_Worker] = []
        self.fns: Dict[int, Tuple[str, bytes]] = {}
        self.closed = False
        self.eager = False  # started by start(): crashed workers are replaced at once
        self.crashes = 0

    def start(self) -> None:
        with self.lock:
            self.closed = False
            self.eager = True
            while len(self.workers) < self.size:
                self._spawn()

    def _spawn(self) -> _Worker:
        w = _Worker(self)
        self.workers.append(w)
        return w

    def register(self, fid: int, kind: str, fn: Callable[..., Any]) -> None:
        import cloudpickle

        with self.lock:
            if fid not in self.fns:
                # The function is pickled on its own so that a worker that cannot load it (e.g.
                # it lives in a module the worker cannot import) reports that per batch.
                self.fns[fid] = (kind, pickle.dumps((fid, kind, cloudpickle.dumps(fn)), protocol=5))

    def submit(self, fid: int, batch: List[Any], done: Done) -> None:
        with self.lock:
            self.closed = False
            while len(self.workers) < self.size:
                self._spawn()
            w = min(self.workers, key=lambda w: len(w.pending))
            bid = next(_ids)
            w.pending[bid] = (batch, done)
            first = fid not in w.known
            w.known.add(fid)
        try:
            if first:
                w.send(b"F", self.fns[fid][1])
            w.send(b"B", *dumps((bid, fid, batch)))
        except Exception as e:  # noqa: BLE001 - a dead pipe is handled by the reader
            if isinstance(e, (BrokenPipeError, ConnectionError, OSError)):
                return
            with self.lock:
                w.pending.pop(bid, None)
            done([], [(batch, e)])

    def _died(self, w: _Worker) -> None:
        from .errors import WorkerCrashed

        rc = w.proc.wait()
        with self.lock:
            w.alive = False
            if w in self.workers:
                self.workers.remove(w)
            pending, w.pending = w.pending, {}
            closed = self.closed
            if not closed and pending:
                self.crashes += 1
                if self.eager:
                    # Replace a worker that died on a batch now (one that died idle, e.g. at
                    # start-up, is replaced by the next submit: no respawn loop).
                    try:
                        self._spawn()
                    except OSError:
                        pass
        for batch, done in pending.values():
            reason = "the pool was closed" if closed else f"exited with code {rc}"
            done([], [(batch, WorkerCrashed(f"pool worker (pid {w.proc.pid}) {reason}"))])

    def pids(self) -> List[int]:
        with self.lock:
            return [w.proc.pid for w in self.workers if w.alive]

    def close(self) -> None:
        with self.lock:
            self.closed = True
            workers, self.workers = self.workers, []
        for w in workers:
            try:
                w.send(b"Q")
            except Exception:  # noqa: BLE001
                pass
        for w in workers:
            try:
                w.proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                w.proc.kill()
                w.proc.wait()
            try:
                w.sock.close()
            except Exception:  # noqa: BLE001
                pass


_ids = itertools.count(1)


class _Submitter:
    """``submit(batch, done)`` for one stage: ships ``fn`` once per worker, then batches."""

    def __init__(self, pool: "InterpreterPool", kind: str, fn: Callable[..., Any]) -> None:
        self.pool = pool
        self.fid = next(_ids)
        pool.backend.register(self.fid, kind, fn)

    def __call__(self, batch: List[Any], done: Done) -> None:
        if self.pool._closed:
            from .errors import WeirError

            done([], [(batch, WeirError("this InterpreterPool is closed"))])
            return
        self.pool.backend.submit(self.fid, batch, done)


_pools: "weakref.WeakSet[InterpreterPool]" = weakref.WeakSet()


class InterpreterPool:
    """A pool of ``workers`` Python worker processes for CPU-bound stages (see the module doc).

    The workers start now and live until :meth:`close` (or the end of a ``with`` block, garbage
    collection, interpreter exit); every run and stage using the pool shares them.
    ``max_inflight`` bounds the batches outstanding per stage (default ``2 * workers``)."""

    def __init__(
        self,
        workers: Optional[int] = None,
        *,
        max_inflight: Optional[int] = None,
        backend: Optional[Backend] = None,
        _run_owned: bool = False,
    ) -> None:
        n = workers or os.cpu_count() or 1
        self.workers = n
        self.max_inflight = max_inflight or 2 * n
        self.backend: Any = backend or ProcessBackend(n)
        self._run_owned = _run_owned
        self._closed = False
        if not _run_owned:
            start = getattr(self.backend, "start", None)
            if start is not None:
                start()
            _pools.add(self)
            self._finalizer = weakref.finalize(self, self.backend.close)

    def _submitter(self, kind: str, fn: Callable[..., Any]) -> _Submitter:
        return _Submitter(self, kind, fn)

    def _release_run(self) -> None:
        """Called when a run using this pool ends: a run-owned pool stops its workers (the next
        run starts new ones); a user's pool keeps them."""
        if self._run_owned:
            self.backend.close()

    @property
    def run_owned(self) -> bool:
        """Whether the workers are stopped at the end of every run (``pool=n``)."""
        return self._run_owned

    def pids(self) -> List[int]:
        """Process ids of the live workers."""
        return self.backend.pids()

    @property
    def crashes(self) -> int:
        """How many workers died while holding batches."""
        return getattr(self.backend, "crashes", 0)

    def close(self) -> None:
        """Stops every worker now; batches still outstanding fail. Idempotent."""
        if not self._run_owned:
            self._closed = True
        self.backend.close()

    def __enter__(self) -> "InterpreterPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


def as_pool(pool: Any) -> InterpreterPool:
    """The pool a ``pool=`` argument means: an :class:`InterpreterPool` as is, an ``int`` ``n``
    a run-owned pool of ``n`` workers, ``True`` a run-owned pool with one worker per core."""
    if isinstance(pool, bool):
        if not pool:
            raise ValueError("pool=False: pass pool=None to run inline")
        return InterpreterPool(None, _run_owned=True)
    if isinstance(pool, int):
        if pool < 1:
            raise ValueError("pool=n needs n >= 1")
        return InterpreterPool(pool, _run_owned=True)
    if not hasattr(pool, "_submitter"):
        raise TypeError(f"pool= takes an InterpreterPool or a worker count, not {type(pool).__name__}")
    return pool


@atexit.register
def _close_all_pools() -> None:
    """Stops the workers of every pool still open at interpreter exit."""
    for p in list(_pools):
        try:
            p.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


__all__ = ["InterpreterPool", "Backend", "ProcessBackend", "as_pool", "supported"]
