"""Exceptions raised by weir.

Every error a run raises derives from :class:`WeirError`:

* :class:`StageFailed` -- a stage failed. ``err.stage`` is the stage path (``name#index``),
  ``err.stage_name`` the stage name, ``err.kind`` the error's domain (``"user"``, ``"internal"``...),
  ``err.element`` the element user code failed on (``None`` when not known; the message names it
  too) and ``err.__cause__`` the exception raised by user code, with its original traceback.
* :class:`RunCancelled` -- the run was cancelled (``cancel()``, a kill switch, Ctrl-C).
* :class:`GraphInvalid` -- the blueprint cannot be built or materialized.
* :class:`WorkerCrashed` -- an interpreter-pool worker died while holding a batch (reported through
  the stage's supervision like any other failure, so it can be resumed).
* :class:`CallTimeout` -- a pooled call or ``map_async`` coroutine ran past ``timeout=`` (also a
  ``TimeoutError``).
"""

from __future__ import annotations

from ._native import GraphInvalid, RunCancelled, StageFailed, WeirError


class WorkerCrashed(WeirError):
    """An interpreter-pool worker process died (``os._exit``, a segfault, killed) with a batch."""


class CallTimeout(WeirError, TimeoutError):
    """A pooled call or a ``map_async`` coroutine ran longer than its stage's ``timeout=``."""


class WorkerError(WeirError):
    """An exception raised in a pool worker could not be pickled back; its text is kept."""


__all__ = [
    "WeirError",
    "StageFailed",
    "RunCancelled",
    "GraphInvalid",
    "WorkerCrashed",
    "WorkerError",
    "CallTimeout",
]
