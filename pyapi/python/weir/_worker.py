"""The interpreter-pool worker: ``python -m weir._worker FD PARENT_PID`` (the pool runs this file
as a script, which does not import the ``weir`` package).

Receives functions once (cloudpickle) and batches (pickle protocol 5, large buffers out of band)
over a socket, answers ``(batch_id, outputs, failures)``; a failure is ``(element, exception, outputs_before)`` so the
parent can emit what came before a failing element when supervision stops the stage. Exits when the socket closes or the parent process dies.
"""

from __future__ import annotations

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


def dumps(obj: Any) -> Tuple[bytes, List[memoryview]]:
    """Pickles ``obj`` with protocol 5; contiguous buffers (numpy arrays, Arrow buffers,
    ``PickleBuffer``s) stay out of band, to be sent without copying."""
    bufs: List[memoryview] = []

    def oob(b: pickle.PickleBuffer) -> bool:
        try:
            bufs.append(b.raw())
            return False
        except BufferError:  # not contiguous: in band
            return True

    return pickle.dumps(obj, protocol=5, buffer_callback=oob), bufs


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
        from weir.errors import WorkerError

        return WorkerError(f"{type(exc).__name__}: {exc}\n{tb}")


def _apply(kind: str, fn: Callable[..., Any], batch: List[Any]) -> Tuple[List[Any], List[Tuple[Any, BaseException, int]]]:
    out: List[Any] = []
    fails: List[Tuple[Any, BaseException, int]] = []
    if kind == "map_batches":
        try:
            out.extend(fn(batch))
        except Exception as e:  # noqa: BLE001
            del out[:]
            fails.append((batch, _portable(e), 0))
        return out, fails
    for x in batch:
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
    return out, fails


def main(fd: int, parent: int) -> None:
    """Serves batches until the parent goes away."""
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's business
    sock = socket.socket(fileno=fd)
    fns: Dict[int, Tuple[str, Callable[..., Any]]] = {}
    while True:
        try:
            tag, msg, bufs = recv_frame(sock)
        except (EOFError, OSError):
            os._exit(0)
        if tag == b"F":
            # Unpickling a function pickled by value imports cloudpickle by itself.
            fid, kind, blob = pickle.loads(msg)
            try:
                fns[fid] = (kind, pickle.loads(blob))
            except Exception as e:  # noqa: BLE001 - e.g. a function defined in an unimportable module
                fns[fid] = ("error", _portable(e))
        elif tag == b"B":
            bid, fid, batch = pickle.loads(msg, buffers=bufs)
            kind, fn = fns[fid]
            if kind == "error":
                out, fails = [], [(batch, fn, 0)]
            else:
                out, fails = _apply(kind, fn, batch)
            try:
                payload, oob = dumps((bid, out, fails))
            except Exception as e:  # noqa: BLE001
                payload, oob = dumps((bid, [], [(None, _portable(e), 0)]))
            send_frame(sock, b"R", payload, oob)
        elif tag == b"Q":
            os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[-2]), int(sys.argv[-1]))
