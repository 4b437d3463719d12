"""The interpreter-pool worker: ``python -m weir._worker FD PARENT_PID``.

Receives functions once (cloudpickle) and batches (pickle protocol 5) over a socket, answers
``(batch_id, outputs, failures)``; a failure is ``(element, exception, outputs_before)`` so the
parent can emit what came before a failing element when supervision stops the stage. Exits when the socket closes or the parent process dies.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Tuple


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
    conn = Connection(sock.detach())
    fns: Dict[int, Tuple[str, Callable[..., Any]]] = {}
    while True:
        try:
            msg = conn.recv_bytes()
        except (EOFError, OSError):
            os._exit(0)
        tag = msg[:1]
        if tag == b"F":
            import cloudpickle  # noqa: F401 - needed to unpickle functions by value

            fid, kind, blob = pickle.loads(msg[1:])
            try:
                fns[fid] = (kind, pickle.loads(blob))
            except Exception as e:  # noqa: BLE001 - e.g. a function defined in an unimportable module
                fns[fid] = ("error", _portable(e))
        elif tag == b"B":
            bid, fid, batch = pickle.loads(msg[1:])
            kind, fn = fns[fid]
            if kind == "error":
                out, fails = [], [(batch, fn)]
            else:
                out, fails = _apply(kind, fn, batch)
            try:
                payload = pickle.dumps((bid, out, fails), protocol=5)
            except Exception as e:  # noqa: BLE001
                payload = pickle.dumps((bid, [], [(None, _portable(e))]), protocol=5)
            conn.send_bytes(payload)
        elif tag == b"Q":
            os._exit(0)


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]))
