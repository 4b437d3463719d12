"""The subinterpreter backend of interpreter pools: one interpreter per worker thread, each with
its own GIL (PEP 684), on CPython 3.12+.

Each worker is a thread of this process that creates one isolated interpreter and runs the worker
loop of a worker process in it (``_worker.py``, loaded there by path: the ``weir`` package and its
native module are never imported in a subinterpreter) until the pool stops it; then it destroys
the interpreter. The parent talks to it exactly as to a worker process (``_SocketWorker``: frames
of pickles over a socket pair, large buffers out of band, a reader thread, the progress mark in a
memfd both map), so a worker computes and takes its next batch holding only its own GIL, in
parallel with the other workers and the parent.

Faults map onto the process backend's rules: ``os._exit`` (replaced in the worker's interpreter)
or a ``BaseException`` that escapes the user's code (``sys.exit``) ends the worker like a process
exit (an ``X`` frame carries the status; the interpreter is discarded and replaced). A call past ``timeout=`` cannot be killed: its worker is
abandoned (the parent's end of the socket is shut, so it is reported and replaced at once) and the
thread destroys its interpreter when the call returns. A segfault ends the whole process: use
the process backend for code that may crash.

The two CPython flavours: 3.12 has ``_xxsubinterpreters``; 3.13+ has ``_interpreters``
(``concurrent.interpreters`` in 3.14 is built on it).
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
from typing import Any, Dict, List, Optional

from .interpreters import _SocketWorker

_log = logging.getLogger("weir.pool")
_WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


class _Api:
    """The low-level subinterpreter calls of the running CPython."""

    def __init__(self) -> None:
        if sys.version_info >= (3, 13):
            import _interpreters as interps  # type: ignore[import-not-found]
        else:
            import _xxsubinterpreters as interps  # type: ignore[import-not-found]
        self.interps: Any = interps
        self.new = sys.version_info >= (3, 13)

    def create(self) -> Any:
        """A new isolated interpreter (its own GIL, only multi-interpreter-safe extensions); on
        3.12 it lives as long as the returned id object."""
        if self.new:
            return self.interps.create("isolated")
        return self.interps.create(isolated=True)

    def run(self, iid: Any, code: str, shared: Optional[Dict[str, Any]] = None) -> None:
        """Runs ``code`` in the interpreter's ``__main__``; an uncaught exception raises here."""
        if self.new:
            exc = self.interps.exec(iid, code, shared)
            if exc is not None:
                raise RuntimeError(getattr(exc, "formatted", str(exc)))
        else:
            self.interps.run_string(iid, code, shared)

    def destroy(self, iid: Any) -> None:
        """Ends an interpreter that is not running."""
        self.interps.destroy(iid)

    def live(self) -> List[int]:
        """Ids of every interpreter that exists now (the main one included)."""
        return [int(i[0] if isinstance(i, tuple) else i) for i in self.interps.list_all()]


_api: Optional[_Api] = None


def api() -> _Api:
    """The subinterpreter calls of this CPython; ``ImportError`` where there are none."""
    global _api
    if _api is None:
        if sys.version_info < (3, 12):
            raise ImportError(f"subinterpreters with their own GIL need CPython 3.12+, this is {sys.version.split()[0]}")
        _api = _Api()
    return _api


def available() -> bool:
    """Whether this CPython can run the subinterpreter backend."""
    try:
        api()
    except ImportError:
        return False
    return True


# Run in a new interpreter: `os._exit` that ends this worker rather than the whole program (as
# `sys.exit`: the worker reports the status), a `weir` package without its native module (so that
# the user's modules that `import weir` load; using the engine there raises ImportError), then the
# worker code loaded by path, serving its socket until the pool stops it.
_BOOT = """
import importlib.util as _weir_util, os as _weir_os, sys as _weir_sys, types as _weir_types
import posix as _weir_posix
def _weir_exit(status):
    raise SystemExit(status)
_weir_posix._exit = _weir_os._exit = _weir_exit
def _weir_missing(name):
    raise ImportError(
        f"weir.{name} is not available in a pool subinterpreter: weir's native module cannot "
        "load there (use backend='process' to run weir itself in pool workers)"
    )
_weir_pkg = _weir_types.ModuleType("weir", "weir inside a pool subinterpreter (no native module)")
_weir_pkg.__path__ = [_weir_os.path.dirname(_weir_path)]
_weir_pkg.__getattr__ = _weir_missing
_weir_sys.modules["weir"] = _weir_pkg
_weir_spec = _weir_util.spec_from_file_location("weir._worker", _weir_path)
_weir = _weir_util.module_from_spec(_weir_spec)
_weir_sys.modules["weir._worker"] = _weir
_weir_spec.loader.exec_module(_weir)
_weir_pkg._worker = _weir
del _weir_util, _weir_spec, _weir_os, _weir_types, _weir_posix
_weir.serve_interpreter(_weir_fd, _weir_mark_fd)
"""

# Workers abandoned by a timeout, or closed during a call, whose call may still run. CPython 3.12
# aborts at exit while an interpreter still exists, so exit waits (at most this long) for their
# threads to destroy them.
_abandoned: "set[_SubinterpreterWorker]" = set()
_EXIT_WAIT_S = 10.0


def wait_abandoned(limit: float = _EXIT_WAIT_S) -> int:
    """Waits up to ``limit`` seconds for abandoned workers to end; how many are still running."""
    import time

    end = time.monotonic() + limit
    for w in list(_abandoned):
        w.thread.join(max(0.0, end - time.monotonic()))
    return sum(1 for w in _abandoned if w.thread.is_alive())


class _SubinterpreterWorker(_SocketWorker):
    """One worker thread running the worker loop in its own interpreter, over a socket pair like
    a worker process (see ``_SocketWorker``): the thread creates the interpreter, runs the loop
    in it until the pool stops it (or the user's code "exits"), then destroys it."""

    killed_verb = "abandoned"

    def _start(self, child: socket.socket, mark_fd: int) -> None:
        self.iid = -1
        self._created = threading.Event()
        self._error: Optional[BaseException] = None
        # The thread owns copies of the two descriptors and closes them when its interpreter is
        # gone; the socket's end of file then tells the reader the worker ended.
        fds = (os.dup(child.fileno()), os.dup(mark_fd))
        self.thread = threading.Thread(target=self._drive, args=fds, name="weir-pool-subinterpreter", daemon=True)
        self.thread.start()
        self._created.wait()
        if self._error is not None:
            raise OSError(f"could not create a pool subinterpreter: {self._error}") from self._error

    @property
    def ident(self) -> int:
        """The worker's interpreter id."""
        return self.iid

    @property
    def name(self) -> str:
        return f"interpreter {self.iid}"

    def kill(self) -> None:
        """Abandons the worker (a running call cannot be stopped): the parent's end of the socket
        is shut down, so the worker is reported gone now; its thread destroys the interpreter
        once the call returns (its reply then finds the socket closed)."""
        if self.status is None:
            self.status = -9
        _abandoned.add(self)
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def wait(self) -> Optional[int]:
        """The exit status: the one the worker reported (``sys.exit``), ``-9`` if abandoned, else 0."""
        return 0 if self.status is None else self.status

    def stop(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the thread to end after :meth:`quit` (a call still
        running keeps it: exit waits for it, see ``_abandoned``)."""
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                _abandoned.add(self)

    def _drive(self, fd: int, mark_fd: int) -> None:
        a = api()
        handle = None
        try:
            try:
                handle = a.create()
                self.iid = int(handle)
            except BaseException as e:  # noqa: BLE001 - reported by _start
                self._error = e
                return
            finally:
                self._created.set()
            try:
                a.run(handle, _BOOT, {"_weir_path": _WORKER_PATH, "_weir_fd": fd, "_weir_mark_fd": mark_fd})
            except Exception as e:  # noqa: BLE001 - the worker could not start: it "exited"
                _log.error("weir pool: interpreter %d failed: %s", self.iid, e)
                if self.status is None:
                    self.status = 1
            try:
                a.destroy(handle)
            except Exception as e:  # noqa: BLE001 - best effort
                _log.warning("weir pool: destroying interpreter %d failed: %s", self.iid, e)
        finally:
            os.close(fd)
            os.close(mark_fd)
            _abandoned.discard(self)
