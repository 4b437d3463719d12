"""Pooled interpreters: run CPU-bound Python functions in worker processes or subinterpreters.

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

Faults: a worker that dies is replaced; the element it was running (read from a progress mark
the worker shares with the parent) fails alone with :class:`weir.errors.WorkerCrashed` through
the stage's supervision, and the rest of its work runs again on a fresh worker (a batch whose
culprit is unknown is retried at most twice). With ``timeout=`` a watchdog kills a worker whose
call runs longer, failing that element with :class:`weir.errors.CallTimeout`. A result that
cannot be pickled or unpickled fails its own element. Batches are cut into chunks of about
``_TARGET_CHUNK_S`` of measured work. Workers get the parent's ``sys.path`` (the script's
directory first) and always die with the parent (``PR_SET_PDEATHSIG`` on Linux plus a
parent-pid watcher), whatever owns them.

Backends (``InterpreterPool(n, backend=...)``; :func:`backends` lists what this interpreter runs):

* ``"process"`` (:class:`ProcessBackend`, the default): one OS process per worker.
* ``"subinterpreter"`` (:class:`SubinterpreterBackend`, CPython 3.12+): one thread per worker
  owning an isolated interpreter with its own GIL (``weir/_subinterp.py``). The same worker code
  and fault rules; what differs (``sys.exit`` is a crash, a timed-out call is abandoned rather
  than killed, ``os._exit`` ends the program) is described there.

Both are :class:`_WorkerBackend` over their own worker class. The pool talks to a backend through
the small :class:`Backend` interface, so other backends can be passed as objects;
:func:`supported` reports what this interpreter offers (free-threading included).
"""

from __future__ import annotations

import atexit
import itertools
import logging
import mmap
import os
import pickle
import queue
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import weakref
from typing import Any, Callable, Dict, List, Optional, Protocol, Tuple

from ._worker import MARK, MARK_SIZE, REPLY_ID, dumps, recv_frame, send_frame

Failure = Tuple[Any, BaseException, int]
Done = Callable[[List[Any], List[Failure]], None]


def supported() -> Dict[str, bool]:
    """What this interpreter supports: ``processes`` (always), ``subinterpreters`` (interpreters
    with their own GIL, CPython 3.12+: the ``"subinterpreter"`` backend), ``free_threading`` (a
    no-GIL build with the GIL actually disabled)."""
    from ._subinterp import available

    free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
    gil_enabled = getattr(sys, "_is_gil_enabled", lambda: True)()
    return {"processes": True, "subinterpreters": available(), "free_threading": free and not gil_enabled}


BACKENDS = ("process", "subinterpreter")


def backends() -> List[str]:
    """The names of the pool backends this interpreter can run (``"process"`` always, and
    ``"subinterpreter"`` on CPython 3.12+), for ``InterpreterPool(backend=...)``."""
    s = supported()
    return [b for b, key in zip(BACKENDS, ("processes", "subinterpreters")) if s[key]]


class Backend(Protocol):
    """How a pool runs batches: ``submit`` must not block; ``done`` is called exactly once."""

    def submit(self, fid: int, batch: List[Any], done: Done, timeout: Optional[float] = None, observe: Any = None) -> None:
        """Runs function ``fid`` over ``batch`` and reports ``done(outputs, failures)``; a call
        running longer than ``timeout`` seconds fails its element; ``observe(n, seconds)`` (when
        given) learns how long the worker computed."""

    def register(self, fid: int, kind: str, fn: Callable[..., Any]) -> None:
        """Makes a function known to the workers."""

    def close(self) -> None:
        """Stops every worker and fails outstanding batches (a later ``submit`` may restart)."""

    def start(self) -> None:
        """Starts the workers now (optional: ``submit`` starts missing workers)."""

    def pids(self) -> List[int]:
        """Process ids of live worker processes (``worker_ids``, when a backend has it, names
        workers that are not processes)."""


class _Join:
    """Combines the outcomes of the parts a batch was cut into, in order, into one ``done``."""

    def __init__(self, parts: int, done: Done) -> None:
        self.results: List[Optional[Tuple[List[Any], List[Any]]]] = [None] * parts
        self.left = parts
        self.lock = threading.Lock()
        self.done = done

    def part(self, i: int) -> Done:
        """The ``done`` of part ``i``."""

        def finish(out: List[Any], fails: List[Any]) -> None:
            with self.lock:
                if self.results[i] is not None:
                    return
                self.results[i] = (out, fails)
                self.left -= 1
                if self.left:
                    return
            outputs: List[Any] = []
            failures: List[Failure] = []
            for o, fs in self.results:  # type: ignore[misc]
                base = len(outputs)
                for f in fs:
                    failures.append((f[0], f[1], base + (f[2] if len(f) > 2 else 0)))
                outputs.extend(o)
            self.done(outputs, failures)

        return finish


class _Job:
    """A batch handed to a worker: what to run, whom to tell, and how it was retried."""

    __slots__ = ("fid", "kind", "batch", "done", "timeout", "observe", "attempts", "isolated", "pin")

    # attempts: how often a worker died holding it with no known culprit (at most _MAX_ATTEMPTS)

    def __init__(self, fid: int, kind: str, batch: List[Any], done: Done, timeout: Optional[float], observe: Any) -> None:
        self.fid, self.kind, self.batch, self.done = fid, kind, batch, done
        self.timeout, self.observe = timeout, observe
        self.attempts = 0
        self.isolated = False  # a single element re-run after a crash: a crash now is its own
        self.pin: Any = None  # the worker a pool actor's job must run on (see `submit_pinned`)

    def derive(self, batch: List[Any], done: Done, isolated: bool = False) -> "_Job":
        """A job over part of this one's batch."""
        j = _Job(self.fid, self.kind, batch, done, self.timeout, self.observe)
        j.attempts, j.isolated = self.attempts, isolated
        return j

    def element(self, i: int) -> Any:
        """What a failure of call ``i`` names: the element, or the whole batch for ``map_batches``."""
        return self.batch if self.kind == "map_batches" else self.batch[i]


# A job whose workers died this many times with no known culprit fails instead of running again.
_MAX_ATTEMPTS = 2
# How often the watchdog looks at the workers' progress marks when a stage has a timeout (a
# call is timed from the first look that sees it, so it is killed within timeout + this).
_WATCH_S = 0.05

_log = logging.getLogger("weir.pool")

_WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")
_RUN_WORKER = "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')"


def _parent_path() -> List[str]:
    """The import path workers get: the parent's ``sys.path`` (whose first entry is the script's
    directory, or the working directory for ``-c``/``-m``), made absolute so that a worker
    resolves it the same way."""
    out: List[str] = []
    for p in sys.path:
        if isinstance(p, str):
            a = os.path.abspath(p)
            if a not in out:
                out.append(a)
    return out


def _shared_mark() -> Tuple[int, mmap.mmap]:
    """A file descriptor and mapping of a zeroed progress mark to share with a worker."""
    memfd = getattr(os, "memfd_create", None)
    if memfd is not None:
        fd = memfd("weir-pool-mark")
    else:  # pragma: no cover - not Linux
        import tempfile

        fd = os.dup(tempfile.TemporaryFile().fileno())
    os.ftruncate(fd, MARK_SIZE)
    return fd, mmap.mmap(fd, MARK_SIZE)


class _SocketWorker:
    """A worker the parent talks to over a socket pair, with a progress mark and a thread reading
    its replies: what every backend's workers offer to :class:`_WorkerBackend` (``pending``,
    ``known``, ``alive``, ``timed_out``, ``seen``, ``send_lock``, ``progress``, ``send_function``,
    ``send_batch``, ``release``, ``quit``; a subclass starts the worker and adds ``kill``,
    ``wait``, ``stop``, ``ident``, ``name``, ``killed_verb``)."""

    killed_verb = "killed"

    def __init__(self, backend: "_WorkerBackend") -> None:
        self.backend = backend
        self.send_lock = threading.Lock()
        self.pending: Dict[int, _Job] = {}
        self.known: set = set()
        self.alive = True
        self.timed_out: Optional[Tuple[int, int]] = None  # (batch id, call index) it was killed for
        self.seen: Tuple[Tuple[int, int], float] = ((0, -1), 0.0)  # the watchdog's last look
        self.status: Optional[int] = None  # an exit status the worker reported (``X`` frame)
        self.pinned = 0  # pool actors living in this worker
        parent, child = socket.socketpair()
        mark_fd, self.mark = _shared_mark()
        try:
            self._start(child, mark_fd)
        except BaseException:
            parent.close()
            self.mark.close()
            raise
        finally:
            child.close()
            os.close(mark_fd)
        self.sock = parent
        self.reader = threading.Thread(target=self._read, name=f"weir-pool-{self.name}", daemon=True)
        self.reader.start()

    def _start(self, child: socket.socket, mark_fd: int) -> None:
        """Starts the worker on the child end of the socket pair and the mark (both closed here
        after this returns: a worker that needs them keeps its own copies)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        """How errors name this worker."""
        raise NotImplementedError

    def send_function(self, blob: bytes) -> None:
        """Ships a registered function (the caller holds ``send_lock``)."""
        send_frame(self.sock, b"F", blob)

    def send_batch(self, payload: bytes, bufs: List[memoryview]) -> None:
        """Ships a batch (the caller holds ``send_lock``)."""
        send_frame(self.sock, b"B", payload, bufs)

    def release(self) -> None:
        """Frees the parent's side of a dead worker."""
        try:
            self.sock.close()
            self.mark.close()
        except Exception:  # noqa: BLE001
            pass

    def quit(self) -> None:
        """Asks the worker to exit."""
        try:
            with self.send_lock:
                send_frame(self.sock, b"Q", b"")
        except Exception:  # noqa: BLE001
            pass

    def progress(self) -> Tuple[int, int]:
        """``(batch id, index of the call running now)`` from the shared mark."""
        while True:
            a = MARK.unpack_from(self.mark, 0)
            if MARK.unpack_from(self.mark, 0) == a:  # not torn by a concurrent write
                return a

    def _read(self) -> None:
        while True:
            try:
                tag, msg, bufs = recv_frame(self.sock)
            except (EOFError, OSError):
                break
            if tag == b"X":
                self.status = int(bytes(msg))
                continue
            self.backend._reply(self, msg, bufs)
        self.backend._died(self)


class _ProcessWorker(_SocketWorker):
    """One worker process (``_worker.py`` run as a script)."""

    def _start(self, child: socket.socket, mark_fd: int) -> None:
        env = dict(os.environ)
        pkg_root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = pkg_root + os.pathsep + env.get("PYTHONPATH", "")
        # The worker file runs as a script, without importing the `weir` package (and its
        # native module): a worker is serving about 50 ms sooner.
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _RUN_WORKER, _WORKER_PATH, str(child.fileno()), str(os.getpid()), str(mark_fd)],
            pass_fds=(child.fileno(), mark_fd),
            env=env,
            stdin=subprocess.DEVNULL,
        )

    @property
    def ident(self) -> int:
        """The worker's process id."""
        return self.proc.pid

    @property
    def name(self) -> str:
        return f"pid {self.proc.pid}"

    def kill(self) -> None:
        """Ends the worker now (its reader then reports the death)."""
        try:
            self.proc.kill()
        except OSError:
            pass

    def wait(self) -> Optional[int]:
        """The exit status, once the worker is gone."""
        return self.proc.wait()

    def stop(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the worker to exit after :meth:`quit`, then kills it."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        try:
            self.sock.close()
        except Exception:  # noqa: BLE001
            pass


class _WorkerBackend:
    """What every backend shares: handing batches to the least busy worker, the watchdog, and
    the fault rules (a dead worker's culprit fails alone, the rest runs again). A subclass
    supplies ``_new_worker`` (a :class:`_SocketWorker`)."""

    def __init__(self, workers: int) -> None:
        self.size = max(1, workers)
        self.lock = threading.RLock()
        self.workers: List[Any] = []
        self.fns: Dict[int, Tuple[str, bytes]] = {}
        self.closed = False
        self.eager = False  # started by start(): crashed workers are replaced at once
        self.crashes = 0
        self.timeouts = 0
        self.restarts = 0  # workers that died while the pool was open (each is replaced)
        self.watching = False
        self.later: "Optional[queue.SimpleQueue[Callable[[], None]]]" = None
        self.generation = 0  # how often close() ran: work deferred before a close is not started after it

    def start(self) -> None:
        with self.lock:
            self.closed = False
            self.eager = True
            while len(self.workers) < self.size:
                self._spawn()

    def _spawn(self) -> Any:
        w = self._new_worker()
        self.workers.append(w)
        return w

    def _new_worker(self) -> Any:
        raise NotImplementedError

    def _reply(self, w: Any, msg: Any, bufs: List[Any]) -> None:
        """Completes the job a worker's reply answers (called on that worker's own thread)."""
        (bid,) = REPLY_ID.unpack_from(msg, 0)
        with self.lock:
            job = w.pending.pop(bid, None)
        if job is None:
            return
        try:
            out, fails, secs = pickle.loads(memoryview(msg)[REPLY_ID.size :], buffers=bufs)
        except Exception as e:  # noqa: BLE001 - e.g. a result class the parent cannot import
            self._unreadable(job, e)
            return
        try:
            if job.observe is not None:
                job.observe(len(job.batch), secs)
            job.done(out, fails)
        except Exception:  # noqa: BLE001 - never lose the other batches of this worker
            _log.exception("weir pool: completing a batch failed")

    def register(self, fid: int, kind: str, fn: Callable[..., Any]) -> None:
        import cloudpickle

        with self.lock:
            if fid not in self.fns:
                # The function is pickled on its own so that a worker that cannot load it (e.g.
                # it lives in a module the worker cannot import) reports that per batch.
                blob = pickle.dumps((fid, kind, cloudpickle.dumps(fn), _parent_path()), protocol=5)
                self.fns[fid] = (kind, blob)

    def submit(self, fid: int, batch: List[Any], done: Done, timeout: Optional[float] = None, observe: Any = None) -> None:
        self._submit(_Job(fid, self.fns[fid][0], batch, done, timeout, observe))

    def pin(self) -> Any:
        """A live worker for a pool actor to live in: the one with the fewest actors (then the
        least busy)."""
        with self.lock:
            self.closed = False
            while len(self.workers) < self.size:
                self._spawn()
            w = min(self.workers, key=lambda w: (w.pinned, len(w.pending)))
            w.pinned += 1
            return w

    def unpin(self, w: Any) -> None:
        """A pool actor left worker ``w``."""
        with self.lock:
            w.pinned = max(0, w.pinned - 1)

    def submit_pinned(self, w: Any, fid: int, batch: List[Any], done: Done, timeout: Optional[float] = None) -> None:
        """Runs ``batch`` on worker ``w`` only (a pool actor's calls, in order). Its faults are
        not retried: ``done([], [(None, error, i)])`` with the index of the call that killed
        the worker (or ran past ``timeout``), -1 when none is known."""
        job = _Job(fid, self.fns[fid][0], batch, done, timeout, None)
        job.pin = w
        self._submit(job)

    def _submit(self, job: _Job) -> None:
        bid = next(_ids)
        try:
            payload, bufs = dumps((bid, job.fid, job.batch))
        except Exception as e:  # noqa: BLE001 - an element that cannot be pickled
            self._unpicklable_input(job, e)
            return
        while True:
            if job.pin is not None:
                w = job.pin
                if not w.alive:
                    from .errors import WorkerCrashed

                    job.done([], [(None, WorkerCrashed(f"pool worker ({w.name}) is gone"), -1)])
                    return
            else:
                with self.lock:
                    self.closed = False
                    while len(self.workers) < self.size:
                        self._spawn()
                    w = min(self.workers, key=lambda w: len(w.pending))
            with w.send_lock:
                with self.lock:
                    if not w.alive:
                        continue  # died meanwhile: pick another (a pinned job fails above)
                    w.pending[bid] = job  # in the order the worker will run them
                    first = job.fid not in w.known
                    w.known.add(job.fid)
                    if job.timeout is not None and not self.watching:
                        self.watching = True
                        threading.Thread(target=self._watch, name="weir-pool-watchdog", daemon=True).start()
                try:
                    if first:
                        w.send_function(self.fns[job.fid][1])
                    w.send_batch(payload, bufs)
                except OSError:
                    pass  # a dead pipe: the reader sees the death and re-runs the job
            return

    def defer(self, fn: Callable[[], None]) -> None:
        """Runs ``fn`` on the backend's hand-out thread. A worker's reader thread must never send
        to a worker itself: blocked on a full socket while that worker blocks writing a reply
        to it, both would wait forever."""
        with self.lock:
            if self.later is None:
                self.later = queue.SimpleQueue()
                threading.Thread(target=self._run_later, args=(self.later,), name="weir-pool-handout", daemon=True).start()
            self.later.put(fn)

    def _run_later(self, q: "queue.SimpleQueue[Callable[[], None]]") -> None:
        while True:
            try:
                fn = q.get(timeout=1.0)
            except queue.Empty:
                with self.lock:  # `defer` puts under the lock: nothing is left behind
                    if q.empty():
                        if self.later is q:
                            self.later = None
                        return
                continue
            try:
                fn()
            except Exception:  # noqa: BLE001
                _log.exception("weir pool: handing out a batch failed")

    def _resubmit(self, job: _Job) -> None:
        """Runs ``job`` again (from the hand-out thread); if it cannot be handed out (no worker
        starts), its elements fail."""

        gen = self.generation

        def run() -> None:
            try:
                if self.generation != gen:
                    from .errors import WorkerCrashed

                    raise WorkerCrashed("pool worker stopped: the pool was closed")
                self._submit(job)
            except Exception as e:  # noqa: BLE001
                job.done([], [(job.batch, e, 0)] if job.kind == "map_batches" else [(x, e, 0) for x in job.batch])

        self.defer(run)

    def _unpicklable_input(self, job: _Job, err: BaseException) -> None:
        """Fails the elements that cannot be pickled to a worker and runs the others."""
        if job.pin is not None:
            job.done([], [(None, err, -2)])  # the pool actor finds the element itself
            return
        if job.kind == "map_batches" or len(job.batch) == 1:
            job.done([], [(job.element(0), err, 0)])
            return
        join = _Join(len(job.batch), job.done)
        for i, x in enumerate(job.batch):
            self._resubmit(job.derive([x], join.part(i), job.isolated))

    def _unreadable(self, job: _Job, err: BaseException) -> None:
        """A reply that cannot be unpickled here: re-runs the batch an element at a time so that
        only the elements whose results cannot be read fail."""
        from .errors import WorkerError

        if job.kind == "map_batches" or len(job.batch) == 1:
            msg = f"the pool worker's result cannot be unpickled: {type(err).__name__}: {err}"
            job.done([], [(job.element(0), WorkerError(msg), 0)])
            return
        join = _Join(len(job.batch), job.done)
        for i, x in enumerate(job.batch):
            self._resubmit(job.derive([x], join.part(i), job.isolated))

    def _watch(self) -> None:
        """Kills a worker whose current call has run longer than its stage's timeout."""
        while True:
            time.sleep(_WATCH_S)
            now = time.monotonic()
            with self.lock:
                if self.closed and not self.workers:
                    self.watching = False
                    return
                workers = list(self.workers)
            for w in workers:
                try:
                    now_running = w.progress()
                except (ValueError, OSError):  # its mark was just closed: it died
                    continue
                if now_running != w.seen[0]:  # a new call started since the last look
                    w.seen = (now_running, now)
                bid, i = now_running
                started = w.seen[1]
                with self.lock:
                    job = w.pending.get(bid)
                    late = job is not None and job.timeout is not None and i >= 0 and now - started > job.timeout
                    if late and w.timed_out is None:
                        w.timed_out = (bid, i)
                        self.timeouts += 1
                if late:
                    w.kill()

    def _died(self, w: Any) -> None:
        """A worker is gone: fails or re-runs what it held, replaces it (called once per worker)."""
        from .errors import CallTimeout, WorkerCrashed

        rc = w.wait()
        bid, index = w.progress()
        with self.lock:
            w.alive = False
            if w in self.workers:
                self.workers.remove(w)
            pending, w.pending = w.pending, {}
            closed = self.closed
            if not closed:
                self.restarts += 1
            if not closed and pending:
                self.crashes += 1
                if self.eager:
                    # Replace a worker that died on a batch now (one that died idle, e.g. at
                    # start-up, is replaced by the next submit: no respawn loop).
                    try:
                        self._spawn()
                    except OSError:
                        pass
        w.release()
        who = w.name
        if closed:
            for job in pending.values():
                stopped = WorkerCrashed(f"pool worker ({who}) stopped: the pool was closed")
                job.done([], [(None, stopped, -3)] if job.pin is not None else [(job.batch, stopped, 0)])
            return
        timed_out = w.timed_out
        for jid, job in pending.items():
            n = len(job.batch)
            if job.pin is not None:
                # A pool actor's job: its proxy recovers (a fresh instance, its last state).
                if timed_out is not None and timed_out[0] == jid:
                    job.done([], [(None, CallTimeout(f"call exceeded timeout={job.timeout}s; pool worker ({who}) was {w.killed_verb} and replaced"), timed_out[1])])
                elif jid == bid and 0 <= index < n:
                    job.done([], [(None, WorkerCrashed(f"pool worker ({who}) exited with code {rc} while running this message"), index)])
                else:
                    job.done([], [(None, WorkerCrashed(f"pool worker ({who}) exited with code {rc}"), -1)])
                continue
            if timed_out is not None and timed_out[0] == jid:
                i = timed_out[1]
                err: BaseException = CallTimeout(
                    f"call exceeded timeout={job.timeout}s; pool worker ({who}) was {w.killed_verb} and replaced"
                )
            elif jid == bid and 0 <= index < n:
                i = index
                err = WorkerCrashed(f"pool worker ({who}) exited with code {rc} while running this element")
            else:
                # Not started, or the culprit is unknown (it died between calls).
                if job.isolated or job.attempts >= _MAX_ATTEMPTS:
                    crashed = WorkerCrashed(f"pool worker ({who}) exited with code {rc}")
                    if job.kind == "map_batches":
                        job.done([], [(job.batch, crashed, 0)])
                    else:
                        job.done([], [(x, crashed, 0) for x in job.batch])
                    continue
                if jid == bid and n > 1 and job.kind != "map_batches":
                    # Died after computing the batch: re-run each element on its own.
                    join = _Join(n, job.done)
                    for k, x in enumerate(job.batch):
                        self._resubmit(job.derive([x], join.part(k), isolated=True))
                    continue
                job.attempts += 1
                self._resubmit(job)
                continue
            # The culprit is known: it fails alone, the rest of the batch runs again.
            if job.kind == "map_batches":
                job.done([], [(job.batch, err, 0)])
                continue
            join = _Join(3, job.done)
            join.part(1)([], [(job.batch[i], err, 0)])
            for part, sl in ((0, job.batch[:i]), (2, job.batch[i + 1 :])):
                if sl:
                    self._resubmit(job.derive(sl, join.part(part)))
                else:
                    join.part(part)([], [])

    def worker_ids(self) -> List[int]:
        """Ids of the live workers (process ids, or interpreter ids)."""
        with self.lock:
            return [w.ident for w in self.workers if w.alive]

    def stats(self) -> Tuple[int, int, int]:
        """``(alive, restarts, queued)``: live workers, workers that died while the pool was
        open, and batches handed to workers and not answered yet."""
        with self.lock:
            alive = [w for w in self.workers if w.alive]
            return len(alive), self.restarts, sum(len(w.pending) for w in alive)

    def pids(self) -> List[int]:
        """Process ids of live worker processes (none for in-process backends)."""
        return self.worker_ids()

    def close(self) -> None:
        with self.lock:
            self.closed = True
            self.generation += 1
            workers, self.workers = self.workers, []
        for w in workers:
            w.quit()
        for w in workers:
            w.stop(2.0)


class ProcessBackend(_WorkerBackend):
    """Workers as OS processes (``weir/_worker.py`` run as a script), connected by socket pairs."""

    name = "process"

    def _new_worker(self) -> _ProcessWorker:
        return _ProcessWorker(self)


class SubinterpreterBackend(_WorkerBackend):
    """Workers as threads of this process, each running its own interpreter with its own GIL
    (CPython 3.12+; see ``weir/_subinterp.py``)."""

    name = "subinterpreter"

    def __init__(self, workers: int) -> None:
        from ._subinterp import api

        try:
            api()
        except ImportError as e:
            raise ValueError(f"InterpreterPool: backend 'subinterpreter' is not available: {e}") from None
        super().__init__(workers)

    def _new_worker(self) -> Any:
        from ._subinterp import _SubinterpreterWorker

        return _SubinterpreterWorker(self)

    def pids(self) -> List[int]:
        return []


def _make_backend(backend: Any, workers: int) -> Any:
    """The backend ``backend=`` names: ``"process"`` (default), ``"subinterpreter"``, or a
    :class:`Backend` object used as is."""
    if backend is None or backend == "process":
        return ProcessBackend(workers)
    if backend == "subinterpreter":
        return SubinterpreterBackend(workers)
    if isinstance(backend, str):
        raise ValueError(f"InterpreterPool: unknown backend {backend!r}; the backends are {list(BACKENDS)}")
    return backend


_ids = itertools.count(1)

# Pooled work is cut into chunks of about this many seconds (measured in the workers), so that
# expensive elements spread over the workers and cheap ones travel in whole batches.
_TARGET_CHUNK_S = 0.005


class _Submitter:
    """``submit(batch, done)`` for one stage: ships ``fn`` once per worker, then cuts each batch
    into chunks of about ``_TARGET_CHUNK_S`` of work (by the per-element cost measured so far)."""

    def __init__(self, pool: "InterpreterPool", kind: str, fn: Callable[..., Any], timeout: Optional[float] = None) -> None:
        self.pool = pool
        self.kind = kind
        self.timeout = timeout
        self.fid = next(_ids)
        self.cost: Optional[float] = None  # seconds per element, moving average
        pool.backend.register(self.fid, kind, fn)

    def observe(self, n: int, secs: float) -> None:
        """Learns from a chunk of ``n`` elements that took ``secs`` in a worker."""
        if n > 0:
            c = secs / n
            self.cost = c if self.cost is None else 0.5 * (self.cost + c)

    def chunk_size(self, n: int) -> int:
        """Elements per chunk for a batch of ``n`` (the cost must be known)."""
        if self.kind == "map_batches" or self.cost is None:
            return n
        return max(1, min(n, int(_TARGET_CHUNK_S / max(self.cost, 1e-9))))

    def __call__(self, batch: List[Any], done: Done) -> None:
        if self.pool._closed:
            from .errors import WeirError

            done([], [(batch, WeirError("this InterpreterPool is closed"), 0)])
            return
        backend = self.pool.backend
        n = len(batch)
        if self.cost is None and self.kind != "map_batches" and n > 1:
            # Cost not measured yet: the first element goes alone, the rest is cut once it is
            # back (by then its cost is known).
            join = _Join(2, done)
            rest, rest_done = batch[1:], join.part(1)
            gen = getattr(backend, "generation", None)

            def handout() -> None:
                try:
                    if getattr(backend, "generation", None) != gen:
                        # Closed meanwhile (a run-owned pool whose run ended): do not restart it.
                        from .errors import WorkerCrashed

                        raise WorkerCrashed("pool worker stopped: the pool was closed")
                    self(rest, rest_done)
                except Exception as e:  # noqa: BLE001 - e.g. no worker could be started
                    rest_done([], [(x, e, 0) for x in rest])

            def probed(out: List[Any], fails: List[Any]) -> None:
                join.part(0)(out, fails)
                # Called on a worker's reader thread, which must not send: hand out elsewhere.
                defer = getattr(backend, "defer", None)
                if defer is not None:
                    defer(handout)
                else:
                    handout()

            backend.submit(self.fid, batch[:1], probed, self.timeout, self.observe)
            return
        size = self.chunk_size(n)
        if size >= n:
            backend.submit(self.fid, batch, done, self.timeout, self.observe)
            return
        parts = -(-n // size)
        size = -(-n // parts)  # even chunks
        join = _Join(parts, done)
        for k in range(parts):
            backend.submit(self.fid, batch[k * size : (k + 1) * size], join.part(k), self.timeout, self.observe)


_pools: "weakref.WeakSet[InterpreterPool]" = weakref.WeakSet()
# Every pool alive, run-owned ones too, for the metrics endpoint (`pool_metrics`).
_all_pools: "weakref.WeakSet[InterpreterPool]" = weakref.WeakSet()
_pool_ids = itertools.count(1)


class InterpreterPool:
    """A pool of ``workers`` Python workers for CPU-bound stages (see the module doc).

    ``backend`` picks what a worker is: ``"process"`` (default: an OS process) or
    ``"subinterpreter"`` (a thread running its own interpreter with its own GIL, CPython 3.12+;
    :func:`backends` lists what this interpreter runs). The workers start now and live until
    :meth:`close` (or the end of a ``with`` block, garbage collection, interpreter exit); every
    run and stage using the pool shares them. ``max_inflight`` bounds the batches outstanding
    per stage (default ``2 * workers``). :meth:`per_run` makes a pool whose workers live only as
    long as each run."""

    def __init__(
        self,
        workers: Optional[int] = None,
        *,
        max_inflight: Optional[int] = None,
        backend: Any = "process",
        _run_owned: bool = False,
    ) -> None:
        from ._validate import size

        n = size("InterpreterPool", "workers", workers) if workers is not None else os.cpu_count() or 1
        self.workers = n
        self.max_inflight = size("InterpreterPool", "max_inflight", max_inflight) if max_inflight is not None else 2 * n
        self.backend: Any = _make_backend(backend, n)
        self._run_owned = _run_owned
        self._closed = False
        self.id = next(_pool_ids)
        _all_pools.add(self)
        if not _run_owned:
            start = getattr(self.backend, "start", None)
            if start is not None:
                start()
            _pools.add(self)
            self._finalizer = weakref.finalize(self, self.backend.close)

    @classmethod
    def per_run(cls, workers: Optional[int] = None, *, backend: Any = "process", max_inflight: Optional[int] = None) -> "InterpreterPool":
        """A pool owned by each run that uses it (like ``pool=n``): workers start with the run's
        first batch and stop when it ends."""
        return cls(workers, backend=backend, max_inflight=max_inflight, _run_owned=True)

    @property
    def backend_name(self) -> str:
        """``"process"``, ``"subinterpreter"``, or the class name of a custom backend."""
        return getattr(self.backend, "name", type(self.backend).__name__)

    def _submitter(self, kind: str, fn: Callable[..., Any], timeout: Optional[float] = None) -> _Submitter:
        return _Submitter(self, kind, fn, timeout)

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
        """Process ids of the live worker processes (empty for the subinterpreter backend)."""
        return self.backend.pids()

    def worker_ids(self) -> List[int]:
        """Ids of the live workers: process ids, or interpreter ids for subinterpreters."""
        ids = getattr(self.backend, "worker_ids", None)
        return ids() if ids is not None else self.backend.pids()

    def stats(self) -> Dict[str, int]:
        """``{"alive": ..., "restarts": ..., "queued": ...}``: live workers, workers that died
        while the pool was open (each replaced), and batches handed to workers and not answered
        yet; what ``/metrics`` exposes as ``weir_pool_*`` (zeros for a custom backend without
        ``stats``)."""
        st = getattr(self.backend, "stats", None)
        alive, restarts, queued = st() if st is not None else (0, 0, 0)
        return {"alive": alive, "restarts": restarts, "queued": queued}

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


def pool_metrics() -> List[Tuple[int, str, int, int, int]]:
    """``(id, backend, alive, restarts, queued)`` of every pool alive, by id (read by the
    ``/metrics`` endpoint of a job serving its UI)."""
    out: List[Tuple[int, str, int, int, int]] = []
    for p in sorted(list(_all_pools), key=lambda p: p.id):
        try:
            st = p.stats()
        except Exception:  # noqa: BLE001 - a custom backend's stats must not break a scrape
            continue
        out.append((p.id, p.backend_name, st["alive"], st["restarts"], st["queued"]))
    return out


def check_timeout(stage: str, timeout: Any) -> Optional[float]:
    """``timeout=`` as seconds (``None``: no limit); a clear ``ValueError`` for anything else."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{stage}: timeout must be a positive number of seconds, not {timeout!r}")
    return float(timeout)


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
    if sys.version_info < (3, 13):
        from ._subinterp import wait_abandoned

        left = wait_abandoned()
        if left:
            _log.warning("weir pool: %d timed-out subinterpreter call(s) still running at exit", left)


__all__ = ["InterpreterPool", "Backend", "ProcessBackend", "SubinterpreterBackend", "as_pool", "backends", "supported"]
