"""Testing streams in virtual time: a probe source, a probe sink and a virtual clock.

>>> from weir import testing
>>> clock = testing.VirtualClock()
>>> src, sink = clock.start(
...     testing.probe_source().grouped_within(3, 1.0).to(testing.probe_sink(), keep="both")
... ).materialized
>>> sink.request(10)
>>> src.offer(1)
>>> clock.advance(1.0)
>>> sink.expect_next([1], at=1.0)
[1]

Runs started with :meth:`VirtualClock.start` read time only from that clock: every time-based
operator (``grouped_within``, ``throttle``, ``delay``, the timeouts, ``keep_alive``,
``initial_delay``, ``Source.tick``) fires exactly at its deadline when the test moves the clock,
and nothing sleeps. The clock knows when a run is idle (every task waits on time, a probe or
demand), so each check first lets the run *settle*: its Python work runs on the calling thread
until nothing is left to do. ``expect_*`` never waits in real time: what has not arrived once
the run is idle is not coming at this virtual time.

The probes and the clock are the Rust engine's testkit (``weir_engine::testkit``) over Python
objects. Stages that wait on something outside the clock (interpreter pools, ``async def``
functions, real sockets) keep real time; :meth:`VirtualClock.settle` raises ``WeirError`` when a
run does not settle within ``timeout`` seconds of real time.
"""

from __future__ import annotations

import math
import os
import time
from typing import Any, List, Optional, Tuple, Type, cast

from . import _native
from ._dsl import RunnableGraph, Sink, Source
from ._run import _resolve

__all__ = ["VirtualClock", "TestRun", "SourceProbe", "SinkProbe", "probe_source", "probe_sink"]

_MISSING: Any = object()

#: Real seconds a run may stay busy before :meth:`VirtualClock.settle` gives up.
SETTLE_TIMEOUT = 10.0
#: Real seconds ``done()`` / ``result()`` allow for recording the outcome of a run that settled.
OUTCOME_GRACE = 2.0


def probe_source() -> Source[Any]:
    """A source the test drives: materializes a :class:`SourceProbe` (in runs started with
    :meth:`VirtualClock.start`).

    Emits when: the test offers elements and downstream has demand.
    Backpressures when: never (offered elements wait for credit).
    Completes when: the test calls ``complete()``.
    Cancels when: downstream cancels (``is_cancelled()`` says so).
    Fails when: the test calls ``fail(exc)``."""
    return Source(_native.testing_source_probe())


def probe_sink() -> Sink[Any, Any]:
    """A sink that takes only what the test requests: materializes a :class:`SinkProbe`. Its
    input is demand-driven: the stage in front of it is asked for exactly the requested elements,
    so upstream stays backpressured otherwise; completion and failure arrive without demand.

    Emits when: never (it is a sink).
    Backpressures when: the test has not requested more elements.
    Completes when: upstream completes.
    Cancels when: the test calls ``cancel()``.
    Fails when: upstream fails (the run fails with it)."""
    return Sink(_native.testing_sink_probe())


class VirtualClock:
    """A clock that moves only when the test moves it, for the runs started with it."""

    def __init__(self) -> None:
        self._n = _native.VirtualClock()
        self._runs: List["TestRun"] = []

    def now(self) -> float:
        """Seconds of virtual time since the clock started."""
        return self._n.now()

    def pending_timers(self) -> int:
        """Timers waiting on the clock."""
        return self._n.pending_timers()

    def start(
        self,
        graph: RunnableGraph[Any],
        *,
        batch_size: Optional[int] = None,
        state_dir: Any = None,
        checkpoint_interval: Optional[float] = None,
        retain: Optional[int] = None,
        restore_from: Any = None,
        allow_unmatched: bool = False,
    ) -> "TestRun":
        """Starts ``graph`` on this clock and lets it settle at the current time. Probes in the
        materialized value come back as :class:`SourceProbe` / :class:`SinkProbe`. With
        ``state_dir``, barriers are injected every ``checkpoint_interval`` seconds of this
        clock (see ``RunnableGraph.run``, also for ``restore_from`` and ``allow_unmatched``)."""
        from ._run import checkpoint_settings

        if not isinstance(graph, RunnableGraph):
            raise TypeError(f"start() takes a RunnableGraph, not {type(graph).__name__}")
        ckpt = checkpoint_settings(state_dir, checkpoint_interval, retain, restore_from, allow_unmatched) or {}
        run = TestRun(self, graph, _native.start(graph._n, None, batch_size, clock=self._n, **ckpt))
        self._runs.append(run)
        self.settle()
        return run

    def settle(self, timeout: float = SETTLE_TIMEOUT) -> None:
        """Lets every run on this clock work without moving time, until each task waits."""
        live = [r._n for r in self._runs if not r._n.is_finished()]
        self._n.settle(live, timeout)

    def advance(self, seconds: float) -> None:
        """Moves time forward by ``seconds`` timer by timer: the runs settle, time jumps to the
        next deadline (never past the target), the due timers fire, and so on; every timer
        fires at its exact deadline. Ends settled at the new time."""
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"advance({seconds!r}): seconds must be finite and >= 0")
        target = self.now() + seconds
        self.settle()
        while self._n.step_towards(target):
            self.settle()

    def advance_to(self, t: float) -> None:
        """Moves time forward to ``t`` seconds since the start (see :meth:`advance`)."""
        self.advance(max(0.0, t - self.now()))


class TestRun:
    """A run on a :class:`VirtualClock`: its materialized value, outcome and cancellation."""

    __test__ = False  # not a pytest test class

    def __init__(self, clock: VirtualClock, graph: RunnableGraph[Any], native: Any) -> None:
        self._clock = clock
        self._graph = graph
        self._n = native
        self.materialized = _wrap(clock, native.materialized)

    def done(self) -> bool:
        """Whether every task of the run has ended (after letting it settle)."""
        self._clock.settle()
        return self._finished()

    def _finished(self) -> bool:
        # The outcome is recorded by a task outside the clock just after the last stage ends
        # (it waits on nothing): give it up to OUTCOME_GRACE seconds of real time.
        end = time.monotonic() + OUTCOME_GRACE
        while not self._n.is_finished():
            if time.monotonic() >= end:
                return False
            time.sleep(0.001)
        return True

    def cancel(self) -> None:
        """Cancels the run and lets it wind down."""
        self._n.cancel()
        self._clock.settle()

    @property
    def latest_checkpoint(self) -> Optional[int]:
        """The newest checkpoint the run completed (as ``RunHandle.latest_checkpoint``)."""
        return self._n.latest_checkpoint

    @property
    def restored_checkpoint(self) -> Optional[int]:
        """The checkpoint the run restored from (as ``RunHandle.restored_checkpoint``)."""
        return self._n.restored_checkpoint

    @property
    def started_empty(self) -> List[Tuple[str, int]]:
        """The stage subtasks that started empty (as ``RunHandle.started_empty``)."""
        return self._n.started_empty

    @property
    def skipped(self) -> List[str]:
        """The checkpoints skipped as corrupt on restore (as ``RunHandle.skipped``)."""
        return self._n.skipped

    def savepoint(self, dir: Any, timeout: float = SETTLE_TIMEOUT) -> str:
        """Takes a savepoint into ``dir`` at the current virtual time (as
        ``RunHandle.savepoint``): the runs settle until it is written (within ``timeout``
        seconds of real time, since the files are written off the clock); returns its
        directory or raises the reason it failed."""
        p = self._n.savepoint(os.fspath(dir))
        end = time.monotonic() + timeout
        while True:
            self._clock.settle()
            if p.wait(0.001):
                return cast(str, p.result())
            if time.monotonic() >= end:
                raise TimeoutError(f"the savepoint is not written after {timeout}s")

    def result(self) -> Any:
        """The materialized value with sink results resolved, once the run is over at the
        current virtual time; raises its failure (``StageFailed``, ``RunCancelled``), or
        ``AssertionError`` when the run is still going."""
        self._clock.settle()
        if not self._finished():
            raise AssertionError(f"the run is still going at t={self._clock.now():g}s")
        self._n.outcome()
        return _resolve(self.materialized)


def _wrap(clock: VirtualClock, v: Any) -> Any:
    if isinstance(v, _native.SourceProbe):
        return SourceProbe(clock, v)
    if isinstance(v, _native.SinkProbe):
        return SinkProbe(clock, v)
    if isinstance(v, tuple):
        return tuple(_wrap(clock, x) for x in v)
    return v


class SourceProbe:
    """Drives a :func:`probe_source`: offer elements, complete or fail it, see cancellation."""

    def __init__(self, clock: VirtualClock, native: Any) -> None:
        self._clock = clock
        self._n = native

    def offer(self, x: Any) -> None:
        """Emits ``x`` (it travels as downstream credit allows)."""
        self._n.offer(x)

    def offer_all(self, xs: Any) -> None:
        """Emits every element of ``xs`` as one batch."""
        self._n.offer_all(list(xs))

    def complete(self) -> None:
        """Completes the source after what was offered."""
        self._n.complete()

    def fail(self, exc: BaseException) -> None:
        """Fails the source with ``exc`` after what was offered (the ``__cause__`` of the
        ``StageFailed`` downstream sees)."""
        self._n.fail(exc)

    def delivered(self) -> int:
        """Elements handed downstream so far (after settling)."""
        self._clock.settle()
        return self._n.delivered()

    def is_cancelled(self) -> bool:
        """Whether downstream cancelled the source (after settling)."""
        self._clock.settle()
        return self._n.is_cancelled()

    def expect_cancellation(self) -> None:
        """Asserts that downstream has cancelled the source by now."""
        if not self.is_cancelled():
            raise AssertionError(f"expected the source to be cancelled at t={self._clock.now():g}s")


Event = Tuple[float, str, Any]


class SinkProbe:
    """Drives a :func:`probe_sink`: request elements and check what arrived, and when.

    Every ``expect_*`` settles the run first and then looks at what has arrived; nothing waits
    in real time. ``at=`` checks the virtual time (seconds) a signal reached the sink."""

    def __init__(self, clock: VirtualClock, native: Any) -> None:
        self._clock = clock
        self._n = native

    def request(self, n: int) -> None:
        """Grants demand for ``n`` more elements."""
        self._n.request(n)

    def cancel(self) -> None:
        """Cancels upstream and lets the run wind down."""
        self._n.cancel()
        self._clock.settle()

    def _next(self, what: str) -> Event:
        self._clock.settle()
        ev = self._n.try_next()
        if ev is None:
            raise AssertionError(f"expected {what} at t={self._clock.now():g}s, got nothing")
        return ev

    def _end(self, what: str) -> Event:
        self._clock.settle()
        ev = self._n.try_next()
        if ev is None:
            self._n.observe_end()
            self._clock.settle()
            ev = self._n.try_next()
        if ev is None:
            raise AssertionError(f"expected {what} at t={self._clock.now():g}s, got nothing")
        return ev

    @staticmethod
    def _check_at(ev: Event, at: Optional[float]) -> None:
        if at is not None and abs(ev[0] - at) > 1e-9:
            raise AssertionError(f"expected {ev[1]} {ev[2]!r} at t={at:g}s, it came at t={ev[0]:g}s")

    def expect_next(self, expected: Any = _MISSING, *, at: Optional[float] = None) -> Any:
        """Asserts that the next signal is an element (equal to ``expected`` when given,
        arrived at virtual time ``at`` when given) and returns it."""
        ev = self._next("an element" if expected is _MISSING else f"{expected!r}")
        t, kind, value = ev
        if kind != "next":
            raise AssertionError(f"expected an element, got {kind} {value!r} at t={t:g}s")
        if expected is not _MISSING and value != expected:
            raise AssertionError(f"expected {expected!r}, got {value!r} at t={t:g}s")
        self._check_at(ev, at)
        return value

    def expect_next_n(self, expected: Any, *, at: Optional[float] = None) -> List[Any]:
        """Asserts the next elements: ``expected`` is a count or the list of elements."""
        if isinstance(expected, int):
            return [self.expect_next(at=at) for _ in range(expected)]
        return [self.expect_next(x, at=at) for x in expected]

    def expect_complete(self, *, at: Optional[float] = None) -> None:
        """Asserts that the stream completed (no element before it)."""
        ev = self._end("completion")
        if ev[1] != "complete":
            raise AssertionError(f"expected completion, got {ev[1]} {ev[2]!r} at t={ev[0]:g}s")
        self._check_at(ev, at)

    def expect_error(
        self, kind: Type[BaseException] = BaseException, *, at: Optional[float] = None
    ) -> BaseException:
        """Asserts that the stream failed (with an instance of ``kind``) and returns the
        exception (``StageFailed``: ``kind``, ``stage``, ``__cause__``)."""
        ev = self._end("a failure")
        if ev[1] != "error":
            raise AssertionError(f"expected a failure, got {ev[1]} {ev[2]!r} at t={ev[0]:g}s")
        if not isinstance(ev[2], kind):
            raise AssertionError(f"expected {kind.__name__}, got {ev[2]!r}")
        self._check_at(ev, at)
        return ev[2]

    def expect_no_element(self, seconds: float = 0.0) -> None:
        """Advances the clock by ``seconds`` and asserts that no signal arrived meanwhile."""
        self._clock.advance(seconds)
        ev = self._n.try_next()
        if ev is not None:
            raise AssertionError(f"expected no signal, got {ev[1]} {ev[2]!r} at t={ev[0]:g}s")

    def received(self) -> List[Event]:
        """Every signal that arrived and was not checked yet, as ``(time, kind, value)``."""
        self._clock.settle()
        out: List[Event] = []
        while True:
            ev = self._n.try_next()
            if ev is None:
                return out
            out.append(ev)
