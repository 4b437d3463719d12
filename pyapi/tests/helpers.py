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
