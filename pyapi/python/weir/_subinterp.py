"""The subinterpreter backend of interpreter pools: one interpreter per worker thread, each with
its own GIL (PEP 684), on CPython 3.12+.

Each worker is a thread of this process that owns one isolated interpreter (created and destroyed
by that thread). The thread takes the worker's frames (a function, a batch, quit) from a queue in
order and runs each with one call into its interpreter, which serves them with the same code as a
worker process (``_worker.py``, loaded there by path: the ``weir`` package and its native module
are never imported in a subinterpreter). Functions and batches go in as pickles (bytes shared with
the call), replies come back as bytes on a cross-interpreter channel, and the progress mark is the
same memfd a worker process maps. While the thread runs in its interpreter it holds only that
interpreter's GIL, so workers compute in parallel with each other and with the parent.

Faults map onto the process backend's rules: a ``BaseException`` that escapes the user's code
(``sys.exit``) ends the worker like a process exit (its interpreter is discarded and replaced).
A call past ``timeout=`` cannot be killed: its worker is abandoned and replaced at once, and the
abandoned thread destroys its interpreter when the call returns. ``os._exit`` or a segfault ends
the whole process: use the process backend for code that may do that.

The two CPython flavours: 3.12 has ``_xxsubinterpreters`` and ``_xxinterpchannels``; 3.13+ has
``_interpreters`` and ``_interpchannels`` (``concurrent.interpreters`` in 3.14 is built on them).
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from typing import Any, List, Optional, Tuple

_log = logging.getLogger("weir.pool")
_WORKER_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_worker.py")


class _Api:
    """The low-level subinterpreter calls of the running CPython."""

    def __init__(self) -> None:
        if sys.version_info >= (3, 13):
            import _interpchannels as chans  # type: ignore[import-not-found]
            import _interpreters as interps  # type: ignore[import-not-found]

            self.chan_module = "_interpchannels"
            self.send_call = "_weir_chans.send(_weir_cid, b, blocking=False)"
        else:
            import _xxinterpchannels as chans  # type: ignore[import-not-found]
            import _xxsubinterpreters as interps  # type: ignore[import-not-found]

            self.chan_module = "_xxinterpchannels"
            self.send_call = "_weir_chans.send(_weir_cid, b)"
        self.interps, self.chans = interps, chans
        self.new = sys.version_info >= (3, 13)

    def create(self) -> Any:
        """A new isolated interpreter (its own GIL, only multi-interpreter-safe extensions); on
        3.12 it lives as long as the returned id object."""
        if self.new:
            return self.interps.create("isolated")
        return self.interps.create(isolated=True)

    def run(self, iid: Any, code: str, shared: Optional[dict] = None) -> None:
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

    def channel(self) -> Any:
        """A new channel (interpreter -> parent); it lives as long as the returned id object."""
        return self.chans.create(3) if self.new else self.chans.create()

    def recv(self, cid: Any) -> Optional[bytes]:
        """The next reply on the channel, or ``None``."""
        got = self.chans.recv(cid, None)
        if self.new and got is not None:
            got = got[0]
        return got

    def close_channel(self, cid: Any) -> None:
        """Destroys a channel."""
        self.chans.destroy(cid)


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


# Run in a new interpreter: a `weir` package without its native module (so that the user's
# modules that `import weir` load; using the engine there raises ImportError), then the worker code
# loaded by path, serving frames.
_BOOT = """
import importlib.util as _weir_util, os as _weir_os, sys as _weir_sys, types as _weir_types
import {chan_module} as _weir_chans
def _weir_missing(name):
    raise ImportError(
        f"weir.{{name}} is not available in a pool subinterpreter: weir's native module cannot "
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
def _weir_send(b):
    {send_call}
_weir_server = _weir.InterpreterServer(_weir_mark_fd, _weir_send)
del _weir_util, _weir_spec, _weir_os, _weir_types
"""
_CALL = "_weir_server.call(_weir_tag, _weir_msg)"

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


class _SubinterpreterWorker:
    """One worker thread and its interpreter (the worker interface of ``_ProcessWorker``)."""

    killed_verb = "abandoned"

    def __init__(self, backend: Any) -> None:
        from .interpreters import _shared_mark

        self.backend = backend
        self.inbox: "queue.SimpleQueue[Optional[Tuple[str, bytes]]]" = queue.SimpleQueue()
        self.send_lock = threading.Lock()
        self.pending: dict = {}
        self.known: set = set()
        self.alive = True
        self.timed_out: Optional[Tuple[int, int]] = None
        self.seen: Tuple[Tuple[int, int], float] = ((0, -1), 0.0)
        self.rc: Optional[int] = None
        self.iid = -1
        self.handle: Any = None  # the interpreter's id object
        self._ended = False  # _died has been (or is being) called
        self._end_lock = threading.Lock()
        self._ready = threading.Event()
        self._error: Optional[BaseException] = None
        mark_fd, self.mark = _shared_mark()
        self.thread = threading.Thread(target=self._drive, args=(mark_fd,), name="weir-pool-subinterpreter", daemon=True)
        self.thread.start()
        self._ready.wait()
        if self._error is not None:
            self.mark.close()
            raise OSError(f"could not start a pool subinterpreter: {self._error}") from self._error

    @property
    def ident(self) -> int:
        """The worker's interpreter id."""
        return self.iid

    @property
    def name(self) -> str:
        """How errors name this worker."""
        return f"interpreter {self.iid}"

    def progress(self) -> Tuple[int, int]:
        """``(batch id, index of the call running now)`` from the shared mark."""
        from ._worker import MARK

        while True:
            a = MARK.unpack_from(self.mark, 0)
            if MARK.unpack_from(self.mark, 0) == a:
                return a

    def send_function(self, blob: bytes) -> None:
        """Queues a registered function for the interpreter."""
        self.inbox.put(("F", blob))

    def send_batch(self, payload: bytes, bufs: List[Any]) -> None:
        """Queues a batch (pickled in band: ``bufs`` is empty)."""
        self.inbox.put(("B", bytes(payload)))

    def _claim_end(self) -> bool:
        """True exactly once: the caller reports this worker's end."""
        with self._end_lock:
            first, self._ended = not self._ended, True
            return first

    def kill(self) -> None:
        """Abandons the worker (a running call cannot be stopped): it is reported gone now and its
        thread destroys the interpreter once the call returns."""
        if self._claim_end():
            self.rc = -9
            _abandoned.add(self)
            self.backend._died(self)

    def wait(self) -> Optional[int]:
        """The worker's exit status (set before it is reported gone)."""
        return self.rc

    def release(self) -> None:
        """Frees the parent's mapping of the mark (the interpreter keeps its own)."""
        try:
            self.mark.close()
        except Exception:  # noqa: BLE001
            pass

    def quit(self) -> None:
        """Asks the thread to destroy its interpreter and end."""
        self.inbox.put(None)

    def stop(self, timeout: float) -> None:
        """Waits up to ``timeout`` seconds for the thread to end (a call still running keeps it)."""
        if threading.current_thread() is not self.thread:
            self.thread.join(timeout)
            if self.thread.is_alive():
                _abandoned.add(self)  # still in a call: exit waits for it (see _abandoned)

    def _drive(self, mark_fd: int) -> None:
        a = api()
        cid = None
        try:
            cid = a.channel()
            self.handle = a.create()
            self.iid = int(self.handle)
            boot = _BOOT.format(chan_module=a.chan_module, send_call=a.send_call)
            a.run(self.handle, boot, {"_weir_path": _WORKER_PATH, "_weir_mark_fd": mark_fd, "_weir_cid": int(cid)})
        except BaseException as e:  # noqa: BLE001 - reported by the constructor
            self._error = e
            self._ready.set()
            self._dispose(a, cid)
            return
        finally:
            os.close(mark_fd)  # the interpreter mapped its own view
        self._ready.set()
        while True:
            item = self.inbox.get()
            if item is None:
                break
            try:
                a.run(self.handle, _CALL, {"_weir_tag": item[0], "_weir_msg": item[1]})
                reply = a.recv(cid)
            except Exception as e:  # noqa: BLE001 - the call machinery itself failed
                _log.error("weir pool: interpreter %d failed: %s", self.iid, e)
                reply = b"X1"
            if self._ended:
                break  # abandoned by the watchdog while this call ran
            if reply is None:
                continue
            if reply[:1] == b"R":
                self.backend._reply(self, memoryview(reply)[1:], [])
            else:  # b"X" + status: the worker "exited"
                self.rc = int(reply[1:])
                break
        if self.rc is None:
            self.rc = 0
        self._dispose(a, cid)
        _abandoned.discard(self)
        if self._claim_end():
            self.backend._died(self)

    def _dispose(self, a: _Api, cid: Any) -> None:
        try:
            if self.handle is not None:
                a.destroy(self.handle)
                self.handle = None
            if cid is not None:
                a.close_channel(cid)
        except Exception as e:  # noqa: BLE001 - best effort
            _log.warning("weir pool: disposing of interpreter %d failed: %s", self.iid, e)
