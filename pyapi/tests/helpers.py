"""Test helpers shared by the suite (importable because pytest puts this folder on sys.path)."""

import time

# Generous real-time bound of a wait that a condition, not the delay, ends.
WAIT = 10.0


def until(cond, what):
    """Waits (bounded) for ``cond()`` to hold; the condition, not the delay, decides."""
    deadline = time.monotonic() + WAIT
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.001)


class Boom(Exception):
    pass


def boom_at(n, exc=Boom):
    """``x -> x`` that raises ``exc`` on ``n``."""

    def f(x):
        if x == n:
            raise exc(f"boom at {x}")
        return x

    return f


class Forever:
    """An endless iterable of 0, 1, 2, ..."""

    def __iter__(self):
        i = 0
        while True:
            yield i
            i += 1


class Counting:
    """An endless iterable of 0, 1, 2, ... that records how many elements were pulled."""

    def __init__(self) -> None:
        self.pulled = 0

    def __iter__(self):
        i = 0
        while True:
            self.pulled = i + 1
            yield i
            i += 1


def pool_backend_params():
    """Every interpreter-pool backend as a pytest param; one this interpreter cannot run, or that
    WEIR_TEST_POOL_BACKENDS (comma-separated names) leaves out, is skipped with the reason."""
    import os

    import pytest

    import weir

    runs = weir.interpreters.backends()
    only = os.environ.get("WEIR_TEST_POOL_BACKENDS")
    out = []
    for b in weir.interpreters.BACKENDS:
        if b not in runs:
            reason = f"the {b} backend needs CPython 3.12+ (scripts/python-tests.sh runs it on a second venv)"
        elif only and b not in only.split(","):
            reason = f"WEIR_TEST_POOL_BACKENDS={only}"
        else:
            reason = None
        out.append(pytest.param(b, marks=pytest.mark.skip(reason=reason)) if reason else b)
    return out


def workers_gone(backend, ids):
    """Whether none of the workers ``ids`` (process or interpreter ids) exists any more."""
    import os

    if backend == "process":
        for pid in ids:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                continue
            try:  # a zombie is dead for our purposes
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().split(")")[-1].split()[0] == "Z":
                        continue
            except FileNotFoundError:
                continue
            return False
        return True
    from weir._subinterp import api

    live = set(api().live())
    return not any(i in live for i in ids)


def wait_workers_gone(backend, ids, timeout=WAIT):
    """Waits (bounded) until none of the workers ``ids`` exists."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if workers_gone(backend, ids):
            return True
        time.sleep(0.02)
    return False


def cancel_after_checkpoints(graph, state_dir, n, interval=0.05):
    """Starts ``graph`` with checkpoints every ``interval`` seconds into ``state_dir`` and
    cancels it once checkpoint ``n`` is complete (the run then raises ``RunCancelled``)."""
    import pytest

    import weir

    h = graph.start(state_dir=state_dir, checkpoint_interval=interval)
    deadline = time.monotonic() + 3 * WAIT
    while (h.latest_checkpoint or 0) < n:
        assert time.monotonic() < deadline, f"checkpoint {n} never completed"
        time.sleep(0.01)
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait()
