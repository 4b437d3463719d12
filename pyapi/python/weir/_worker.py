"""The interpreter-pool worker: ``python -m weir._worker FD PARENT_PID [MARK_FD]`` (the pool runs
this file as a script, which does not import the ``weir`` package).

Receives functions once (cloudpickle, with the parent's ``sys.path``) and batches (pickle protocol
5, large buffers out of band) over a socket, answers the batch id then ``(outputs, failures,
seconds)``; a failure is ``(element, exception, outputs_before)`` so the parent can emit what came
before a failing element when supervision stops the stage. A result that cannot be pickled fails
its element only. Before each call the worker writes the element's index to the progress mark
shared with the parent (``MARK``). Exits when the socket closes or the parent dies.

The subinterpreter backend loads this same file into each worker interpreter and serves the same
frames through :func:`serve_interpreter` (nothing here imports ``weir`` or its native module).
"""

from __future__ import annotations

import copyreg
import os
import pickle
import signal
import socket
import struct
import sys
import threading
import time
import traceback
from typing import Any, Callable, Dict, List, Tuple, Union

# A frame: tag (1 byte), number of out-of-band buffers, pickle length; then each buffer's
# length, the pickle, and the buffers.
_HEAD = struct.Struct("!cIQ")
_LEN = struct.Struct("!Q")
_SMALL = 1 << 16

Bytes = Union[bytes, bytearray, memoryview]


def _reduce_view(m: memoryview) -> Tuple[Any, Tuple[pickle.PickleBuffer]]:
    # A memoryview pickles as the buffer it views, out of band when contiguous (`dumps`), and
    # unpickles as a memoryview over the received buffer: a zero-copy bytes payload.
    return (memoryview, (pickle.PickleBuffer(m),))


copyreg.pickle(memoryview, _reduce_view)


def dumps(obj: Any) -> Tuple[bytes, List[memoryview]]:
    """Pickles ``obj`` with protocol 5; contiguous buffers (numpy arrays, Arrow buffers,
    ``PickleBuffer``s) stay out of band, to be sent without copying."""
    bufs: List[memoryview] = []
    return pickle.dumps(obj, protocol=5, buffer_callback=out_of_band(bufs)), bufs


def out_of_band(bufs: List[memoryview]) -> Callable[[pickle.PickleBuffer], bool]:
    """A pickler's ``buffer_callback`` that keeps contiguous buffers out of band in ``bufs``
    (a non-contiguous one stays in band)."""

    def oob(b: pickle.PickleBuffer) -> bool:
        try:
            bufs.append(b.raw())
            return False
        except BufferError:
            return True

    return oob


def send_frame(sock: socket.socket, tag: bytes, payload: Bytes, buffers: List[memoryview] = []) -> None:  # noqa: B006
    """Writes one frame (callers serialize concurrent senders)."""
    head = _HEAD.pack(tag, len(buffers), len(payload)) + b"".join(_LEN.pack(b.nbytes) for b in buffers)
    if len(payload) <= _SMALL:
        sock.sendall(head + payload)
    else:
        sock.sendall(head)
        sock.sendall(payload)
    for b in buffers:
        sock.sendall(b)


def _exact(sock: socket.socket, n: int) -> bytearray:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:])
        if k == 0:
            raise EOFError("peer closed the connection")
        got += k
    return buf


def recv_frame(sock: socket.socket) -> Tuple[bytes, bytearray, List[bytearray]]:
    """Reads one frame: ``(tag, pickle, out-of-band buffers)``; ``EOFError`` at the end."""
    tag, nbuf, size = _HEAD.unpack(_exact(sock, _HEAD.size))
    lens = [_LEN.unpack_from(b, 0)[0] for b in (_exact(sock, _LEN.size) for _ in range(nbuf))]
    payload = _exact(sock, size)
    return tag, payload, [_exact(sock, n) for n in lens]


def _die_with_parent(parent: int) -> None:
    try:  # Linux: the kernel kills us when the parent dies.
        import ctypes

        libc = ctypes.CDLL(None)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - best effort, the watcher below covers other systems
        pass

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(0)
            time.sleep(0.2)

    threading.Thread(target=watch, daemon=True).start()


class _Import:
    """Pickles as ``importlib.import_module(name)``: a reference to a module the worker need not
    (and, in a subinterpreter, cannot) import itself."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __reduce__(self) -> Tuple[Any, Tuple[str]]:
        import importlib

        return (importlib.import_module, (self.name,))


class _Attr:
    """Pickles as ``getattr(module, name)`` of an :class:`_Import` (``__call__`` only so that
    pickle accepts it as the constructor of a reduce tuple; it is never called)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name

    def __reduce__(self) -> Tuple[Any, Tuple[Any, str]]:
        return (getattr, (_Import(self.module), self.name))

    def __call__(self, *args: Any) -> Any:  # pragma: no cover - never called
        raise TypeError("a pickling placeholder")


class _Unportable(Exception):
    """An exception that did not pickle: unpickles in the parent as ``weir.errors.WorkerError``
    with its text, without importing ``weir`` here."""

    def __reduce__(self) -> Tuple[Any, Tuple[str]]:
        return (_Attr("weir.errors", "WorkerError"), (str(self.args[0]),))


def _portable(exc: BaseException) -> BaseException:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        exc.add_note("Traceback in the pool worker:\n" + tb)  # type: ignore[attr-defined]
    except AttributeError:
        pass
    try:
        pickle.loads(pickle.dumps(exc, protocol=5))
        return exc
    except Exception:  # noqa: BLE001
        return _Unportable(f"{type(exc).__name__}: {exc}\n{tb}")


# The progress mark a worker shares with its parent (an mmap of `MARK_SIZE` bytes, two aligned
# native int64s): the batch it is running (0 when idle) and the index in it of the call running
# now (-1 between batches). The parent uses it to tell which element killed a worker, and to
# enforce `timeout=` (a call whose index has not moved for longer than the timeout).
MARK = struct.Struct("=qq")
MARK_SIZE = MARK.size
# A reply frame starts with the batch id, so a reply the parent cannot unpickle is still matched
# to its batch.
REPLY_ID = struct.Struct("=q")


def _apply(
    kind: str, fn: Callable[..., Any], batch: List[Any], mark: Any
) -> Tuple[List[Any], List[Tuple[Any, BaseException, int]], List[int], List[int]]:
    """Runs ``fn`` over ``batch``: ``(outputs, failures, ends, failed)`` where ``ends[i]`` is the
    output count after input ``i`` and ``failed`` the input index of each failure."""
    out: List[Any] = []
    fails: List[Tuple[Any, BaseException, int]] = []
    ends: List[int] = []
    failed: List[int] = []
    if kind == "map_batches":
        mark[1] = 0
        try:
            out.extend(fn(batch))
        except Exception as e:  # noqa: BLE001
            del out[:]
            fails.append((batch, _portable(e), 0))
            failed.append(0)
        return out, fails, [len(out)], failed
    for i, x in enumerate(batch):
        mark[1] = i  # one store into shared memory: which call runs now
        n = len(out)
        try:
            if kind == "map":
                out.append(fn(x))
            elif kind == "filter":
                if fn(x):
                    out.append(x)
            elif kind == "flat_map":
                out.extend(fn(x))
            elif kind == "for_each":
                fn(x)
            else:
                raise ValueError(f"unknown pool operation {kind!r}")
        except Exception as e:  # noqa: BLE001
            del out[n:]  # a flat_map that failed half-way
            fails.append((x, _portable(e), n))
            failed.append(i)
        ends.append(len(out))
    return out, fails, ends, failed


def _unpicklable(err: BaseException) -> BaseException:
    return _portable(pickle.PicklingError(f"the result cannot be pickled: {type(err).__name__}: {err}"))


def _salvage(
    kind: str, batch: List[Any], out: List[Any], fails: List[Tuple[Any, BaseException, int]], ends: List[int], failed: List[int]
) -> Tuple[List[Any], List[Tuple[Any, BaseException, int]]]:
    """A reply that does not pickle as a whole: keeps every input's outputs that pickle, and fails
    the inputs whose outputs do not (so only those elements are lost)."""
    if kind == "map_batches":
        try:
            pickle.dumps(out, protocol=5)
            return out, fails
        except Exception as e:  # noqa: BLE001
            return [], [(batch, _unpicklable(e), 0)]
    kept: List[Any] = []
    new_fails: List[Tuple[Any, BaseException, int]] = []
    by_index = dict(zip(failed, fails))
    start = 0
    for i, x in enumerate(batch):
        end = ends[i]
        f = by_index.get(i)
        if f is not None:
            new_fails.append((f[0], f[1], len(kept)))
        else:
            span = out[start:end]
            try:
                pickle.dumps(span, protocol=5)
                kept.extend(span)
            except Exception as e:  # noqa: BLE001
                new_fails.append((x, _unpicklable(e), len(kept)))
        start = end
    return kept, new_fails


Fns = Dict[int, Tuple[str, Any]]


def load_function(fns: Fns, msg: Bytes) -> None:
    """Loads a function frame: ``(fid, kind, cloudpickle blob, parent sys.path)``; a function
    that cannot be loaded fails each batch of its stage instead."""
    # Unpickling a function pickled by value imports cloudpickle by itself.
    fid, kind, blob, path = pickle.loads(msg)
    # The parent's import path (its script's directory first), so that functions
    # pickled by reference from modules next to the script load here too.
    sys.path[:] = list(path) + [p for p in sys.path if p not in path]
    try:
        fns[fid] = (kind, pickle.loads(blob))
    except Exception as e:  # noqa: BLE001 - e.g. a function defined in an unimportable module
        fns[fid] = ("error", _portable(e))


def run_batch(fns: Fns, msg: Bytes, bufs: List[Any], mark: Any) -> Tuple[bytes, List[memoryview]]:
    """Runs a batch frame ``(bid, fid, batch)``: the reply (batch id, then the pickled
    ``(outputs, failures, seconds)``, large buffers out of band). The caller clears ``mark[0]``
    once the reply is sent."""
    # (`buffers=` only when there are some: on CPython 3.12 `pickle.loads(..., buffers=[])` in a
    # subinterpreter corrupts the heap.)
    bid, fid, batch = pickle.loads(msg, buffers=bufs) if bufs else pickle.loads(msg)
    kind, fn = fns[fid]
    mark[0] = bid
    t0 = time.monotonic()
    out: List[Any]
    fails: List[Tuple[Any, BaseException, int]]
    ends: List[int]
    failed: List[int]
    if kind == "error":
        out, fails, ends, failed = [], [(batch, fn, 0)], [], []
    else:
        out, fails, ends, failed = _apply(kind, fn, batch, mark)
    secs = time.monotonic() - t0
    mark[1] = -1
    try:
        payload, buffers = dumps((out, fails, secs))
    except Exception:  # noqa: BLE001 - find the elements whose results do not pickle
        out, fails = _salvage(kind, batch, out, fails, ends, failed)
        payload, buffers = dumps((out, fails, secs))
    return REPLY_ID.pack(bid) + payload, buffers


def exit_code(exc: BaseException) -> int:
    """The status a process exits with when ``exc`` ends it."""
    if isinstance(exc, SystemExit):
        code = exc.code
        return 0 if code is None else code if isinstance(code, int) else 1
    return 1


#: Whether this interpreter serves a pool (an offloaded function called here runs inline).
SERVING = False


def serve(sock: socket.socket, mark: Any) -> None:
    """Serves frames until the socket closes or a ``Q`` frame (what a worker does, wherever it
    runs); a ``BaseException`` from the user's code (``sys.exit``) propagates."""
    global SERVING
    SERVING = True
    if __name__ != "weir._worker":
        # Run as a script: mark the module the rest of weir imports too.
        import weir._worker as named

        named.SERVING = True
    fns: Fns = {}
    while True:
        try:
            tag, msg, bufs = recv_frame(sock)
        except (EOFError, OSError):
            return
        if tag == b"F":
            load_function(fns, msg)
        elif tag == b"B":
            reply, oob = run_batch(fns, msg, bufs, mark)
            send_frame(sock, b"R", reply, oob)
            mark[0] = 0
        elif tag == b"Q":
            return


def serve_interpreter(fd: int, mark_fd: int) -> None:
    """The worker inside a subinterpreter (``SubinterpreterBackend``): the same loop as a worker
    process over the socket ``fd`` and the mark ``mark_fd`` (both owned by the caller). What would
    end a process instead ends this call, after an ``X`` frame with the exit status."""
    import mmap

    shared = mmap.mmap(mark_fd, MARK_SIZE)
    mark = memoryview(shared).cast("q")
    sock = socket.socket(fileno=fd)
    try:
        serve(sock, mark)
    except BaseException as e:  # noqa: BLE001 - the worker "exits"
        try:
            send_frame(sock, b"X", b"%d" % exit_code(e))
        except OSError:
            pass
    finally:
        sock.detach()
        mark.release()
        shared.close()


def main(fd: int, parent: int, mark_fd: int = -1) -> None:
    """Serves batches until the parent goes away."""
    import mmap

    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    sock = socket.socket(fileno=fd)
    if mark_fd >= 0:
        shared: Any = mmap.mmap(mark_fd, MARK_SIZE)
        os.close(mark_fd)
    else:
        shared = bytearray(MARK_SIZE)
    serve(sock, memoryview(shared).cast("q"))
    os._exit(0)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[-3:]))
