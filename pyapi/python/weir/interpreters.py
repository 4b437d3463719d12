"""Pooled interpreters: run CPU-bound Python functions in worker processes.

``weir.InterpreterPool(workers=n)`` is passed as ``pool=`` to ``map``, ``filter``, ``flat_map``,
``map_batches`` and ``for_each``-like stages. The function is shipped once per worker
(cloudpickle), elements travel in whole batches (pickle protocol 5), results come back in input
order, and at most ``max_inflight`` batches are outstanding (backpressure).

Workers are started lazily for a run and stopped when it ends (completed, failed or cancelled). A
worker that dies while holding a batch is replaced, and the batch fails with
:class:`weir.errors.WorkerCrashed` through the stage's supervision (so ``resume`` drops it and goes
on). Workers also die with the parent (``PR_SET_PDEATHSIG`` on Linux plus a parent-pid watcher).

The pool talks to its workers through a small :class:`Backend` interface; today the backend is
:class:`ProcessBackend` (one OS process per worker). Subinterpreters (PEP 734) and free-threaded
CPython can be added as backends: :func:`supported` reports what this interpreter offers.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import subprocess
import sys
import sysconfig
import threading
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

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
        """Stops every worker and fails outstanding batches."""

    def pids(self) -> List[int]:
        """Process ids of live workers."""


class _Worker:
    def __init__(self, backend: "ProcessBackend") -> None:
        self.backend = backend
        parent, child = socket.socketpair()
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "weir._worker", str(child.fileno()), str(os.getpid())],
            pass_fds=(child.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.send_lock = threading.Lock()
        self.pending: Dict[int, Tuple[List[Any], Done]] = {}
        self.known: set = set()
        self.alive = True
        self.reader = threading.Thread(target=self._read, name=f"weir-pool-{self.proc.pid}", daemon=True)
        self.reader.start()

    def send(self, data: bytes) -> None:
        with self.send_lock:
            self.conn.send_bytes(data)

    def _read(self) -> None:
        while True:
            try:
                msg = self.conn.recv_bytes()
            except (EOFError, OSError):
                break
            try:
                bid, out, fails = pickle.loads(msg)
            except Exception as e:  # noqa: BLE001
                from .errors import WorkerError

                bid, out, fails = None, [], [(None, WorkerError(f"bad reply from worker: {e}"))]
            with self.backend.lock:
                entry = self.pending.pop(bid, None) if bid is not None else None
            if entry is not None:
                entry[1](out, fails)
        self.backend._died(self)


class ProcessBackend:
    """Workers as OS processes (``python -m weir._worker``), connected by socket pairs."""

    def __init__(self, workers: int) -> None:
        self.size = max(1, workers)
        self.lock = threading.RLock()
        self.workers: List[_Worker] = []
        self.fns: Dict[int, Tuple[str, bytes]] = {}
        self.closed = False
        self.crashes = 0

    def _spawn(self) -> _Worker:
        w = _Worker(self)
        self.workers.append(w)
        return w

    def register(self, fid: int, kind: str, fn: Callable[..., Any]) -> None:
        import cloudpickle

        with self.lock:
            if fid not in self.fns:
                self.fns[fid] = (kind, cloudpickle.dumps((fid, kind, fn)))

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
                w.send(b"F" + self.fns[fid][1])
            w.send(b"B" + pickle.dumps((bid, fid, batch), protocol=5))
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
                w.conn.close()
            except Exception:  # noqa: BLE001
                pass


_ids = itertools.count(1)


class _Submitter:
    """``submit(batch, done)`` for one stage: ships ``fn`` once, then batches."""

    def __init__(self, pool: "InterpreterPool", kind: str, fn: Callable[..., Any]) -> None:
        self.pool = pool
        self.fid = next(_ids)
        pool.backend.register(self.fid, kind, fn)

    def __call__(self, batch: List[Any], done: Done) -> None:
        self.pool.backend.submit(self.fid, batch, done)


class InterpreterPool:
    """A pool of ``workers`` Python worker processes for CPU-bound stages (see the module doc).

    ``max_inflight`` bounds the batches outstanding per stage (default ``2 * workers``)."""

    def __init__(self, workers: Optional[int] = None, *, max_inflight: Optional[int] = None, backend: Optional[Backend] = None) -> None:
        n = workers or os.cpu_count() or 1
        self.workers = n
        self.max_inflight = max_inflight or 2 * n
        self.backend: Any = backend or ProcessBackend(n)
        self._runs = 0

    def _submitter(self, kind: str, fn: Callable[..., Any]) -> _Submitter:
        return _Submitter(self, kind, fn)

    def _release_run(self) -> None:
        """Called when a run using this pool ends: its workers are stopped."""
        self.backend.close()

    def pids(self) -> List[int]:
        """Process ids of the live workers."""
        return self.backend.pids()

    @property
    def crashes(self) -> int:
        """How many workers died while holding batches."""
        return getattr(self.backend, "crashes", 0)

    def close(self) -> None:
        """Stops every worker now."""
        self.backend.close()

    def __enter__(self) -> "InterpreterPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __hash__(self) -> int:
        return id(self)

    def __eq__(self, other: object) -> bool:
        return self is other


__all__ = ["InterpreterPool", "Backend", "ProcessBackend", "supported"]
