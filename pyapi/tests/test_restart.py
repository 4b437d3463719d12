"""Restart wrappers: incarnations, exact backoff delays on the virtual clock, max restarts."""

import threading
import time

import pytest
import weir
from helpers import WAIT, Boom, until
from weir.testing import VirtualClock, probe_sink, probe_source


class Factory:
    """Counts the incarnations it makes."""

    def __init__(self, make):
        self.make = make
        self.starts = 0

    def __call__(self):
        self.starts += 1
        return self.make()


def ms_timeline(sink):
    """What arrived, as (ms, kind, value)."""
    return [(round(t * 1000, 6), kind, value) for t, kind, value in sink.received()]


def test_restart_source_restarts_after_completion_until_max_restarts():
    f = Factory(lambda: weir.Source.from_iter([1, 2, 3]))
    src = weir.RestartSource.with_backoff(
        f, min_backoff=0.05, max_backoff=1.0, max_restarts=2, max_restarts_within=10.0
    )
    clock = VirtualClock()
    run = clock.start(src.to(probe_sink(), keep="right"))
    sink = run.materialized
    sink.request(100)
    clock.advance(1.0)
    # Two backoffs: 50 ms, then doubled to 100 ms.
    nexts = [(t, "next", x) for t in (0.0, 50.0, 150.0) for x in (1, 2, 3)]
    assert ms_timeline(sink) == nexts + [(150.0, "complete", None)]
    assert f.starts == 3
    run.result()


def test_restart_source_on_failures_fails_after_max_restarts():
    def failing():
        yield 1
        yield 2
        raise Boom("source broke")

    f = Factory(lambda: weir.Source.from_iter(failing()))
    seen = []
    src = weir.RestartSource.on_failures_with_backoff(f, min_backoff=0.01, max_backoff=0.01, max_restarts=1, max_restarts_within=10.0)
    with pytest.raises(weir.StageFailed) as e:
        src.run_with(weir.Sink.for_each(seen.append))
    assert isinstance(e.value.__cause__, Boom)
    assert seen == [1, 2, 1, 2]
    assert f.starts == 2


def test_restart_source_on_failures_completes_with_its_source():
    f = Factory(lambda: weir.Source.from_iter([1, 2, 3]))
    src = weir.RestartSource.on_failures_with_backoff(f, min_backoff=0.01, max_backoff=0.01)
    assert src.run_with(weir.Sink.collect()) == [1, 2, 3]
    assert f.starts == 1


def test_restart_source_stops_when_downstream_cancels():
    f = Factory(lambda: weir.Source.from_iter([1, 2, 3]))
    src = weir.RestartSource.with_backoff(f, min_backoff=0.01, max_backoff=0.01)
    assert src.take(5).run_with(weir.Sink.collect()) == [1, 2, 3, 1, 2]
    assert f.starts == 2


def test_restart_source_accepts_a_blueprint_and_python_stages_in_it():
    inner = weir.Source.from_iter([1, 2]).map(lambda x: x * 10)
    src = weir.RestartSource.with_backoff(inner, min_backoff=0.01, max_backoff=0.01, max_restarts=1, max_restarts_within=10.0)
    assert src.run_with(weir.Sink.collect()) == [10, 20, 10, 20]


def test_factories_run_on_the_runs_dispatcher_thread():
    threads = []

    def make():
        threads.append(threading.get_ident())
        return weir.Source.from_iter([1])

    src = weir.RestartSource.with_backoff(make, min_backoff=0.01, max_backoff=0.01, max_restarts=1, max_restarts_within=10.0)
    assert src.run_with(weir.Sink.collect()) == [1, 1]
    # `run()` serves the dispatcher on the calling thread.
    assert threads == [threading.get_ident()] * 2


def test_restart_source_factory_error_fails_the_run():
    def bad():
        raise Boom("no source")

    src = weir.RestartSource.with_backoff(bad, min_backoff=0.01, max_backoff=0.01)
    with pytest.raises(weir.StageFailed) as e:
        src.run_with(weir.Sink.collect())
    assert isinstance(e.value.__cause__, Boom)
    assert e.value.stage_name == "restart_source"


def test_restart_flow_restarts_the_flow_and_upstream_waits_during_backoff():
    f = Factory(lambda: weir.Flow.create().map(lambda x: x * 10).take(2))
    flow = weir.RestartFlow.with_backoff(f, min_backoff=0.05, max_backoff=1.0)
    clock = VirtualClock()
    run = clock.start(probe_source().via(flow).to(probe_sink(), keep="both"))
    src, sink = run.materialized
    sink.request(100)
    src.offer_all([1, 2])
    clock.advance(0.049)
    assert ms_timeline(sink) == [(0.0, "next", 10), (0.0, "next", 20)]
    assert f.starts == 1
    # The first backoff is exactly 50 ms; upstream waits for the new incarnation.
    clock.advance(0.001)
    assert f.starts == 2
    src.offer_all([3, 4])
    assert ms_timeline(sink) == [(50.0, "next", 30), (50.0, "next", 40)]
    # The second backoff is doubled: 100 ms.
    clock.advance(0.099)
    assert f.starts == 2
    clock.advance(0.001)
    assert f.starts == 3
    src.offer(5)
    assert ms_timeline(sink) == [(150.0, "next", 50)]
    src.complete()
    sink.expect_complete(at=clock.now())
    run.result()


def test_restart_flow_on_failures_fails_after_max_restarts():
    def check(x):
        if x == 3:
            raise Boom("three")
        return x

    f = Factory(lambda: weir.Flow.create().map(check))
    flow = weir.RestartFlow.on_failures_with_backoff(f, min_backoff=0.01, max_backoff=0.01, max_restarts=1, max_restarts_within=10.0)
    h = weir.Source.queue(8).via(flow).to(weir.Sink.queue(8), keep="both").start()
    q, out = h.materialized
    q.offer(1)
    assert out.pull() == 1
    q.offer(3)
    until(lambda: f.starts == 2, "the restart")
    q.offer(4)
    assert out.pull() == 4
    q.offer(3)
    with pytest.raises(weir.StageFailed) as e:
        out.pull()
    assert isinstance(e.value.__cause__, Boom)
    with pytest.raises(weir.StageFailed):
        h.wait(WAIT)


def test_restart_flow_passes_upstream_completion_through():
    flow = weir.RestartFlow.with_backoff(lambda: weir.Flow.create().map(lambda x: x + 1), min_backoff=0.01, max_backoff=0.01)
    assert weir.Source.from_iter(range(5)).via(flow).run_with(weir.Sink.collect()) == [1, 2, 3, 4, 5]


def test_restart_sink_restarts_a_sink_that_finished():
    seen = []
    f = Factory(lambda: weir.Flow.create().take(2).to(weir.Sink.for_each(seen.append)))
    sink = weir.RestartSink.with_backoff(f, min_backoff=0.05, max_backoff=1.0, max_restarts=1, max_restarts_within=10.0)
    clock = VirtualClock()
    run = clock.start(probe_source().to(sink, keep="left"))
    src = run.materialized
    src.offer_all([1, 2])
    clock.settle()
    assert (seen, f.starts) == ([1, 2], 1)
    clock.advance(0.049)
    assert (seen, f.starts) == ([1, 2], 1)
    # The backoff ends at exactly 50 ms: the second incarnation takes 3 and 4.
    clock.advance(0.001)
    assert f.starts == 2
    src.offer_all([3, 4])
    clock.settle()
    assert seen == [1, 2, 3, 4]
    # No restart left: the second incarnation finishing cancels upstream.
    src.expect_cancellation()
    run.result()
    assert seen == [1, 2, 3, 4]
    assert f.starts == 2


def test_restart_sink_restarts_a_failed_sink_without_failing_the_run():
    seen = []

    def keep(x):
        if x == 2:
            raise Boom("two")
        seen.append(x)

    f = Factory(lambda: weir.Sink.for_each(keep))
    sink = weir.RestartSink.with_backoff(f, min_backoff=0.01, max_backoff=0.01)
    h = weir.Source.queue(8).to(sink, keep="left").start()
    q = h.materialized
    q.offer(1)
    q.offer(2)
    until(lambda: f.starts == 2, "the restart")
    q.offer(3)
    until(lambda: seen == [1, 3], "the second incarnation")
    q.complete()
    h.wait(WAIT)
    assert seen == [1, 3]


def test_restart_sink_passes_upstream_completion_through():
    seen = []
    sink = weir.RestartSink.with_backoff(lambda: weir.Sink.for_each(seen.append), min_backoff=0.01, max_backoff=0.01)
    weir.Source.from_iter(range(4)).to(sink).run()
    assert seen == [0, 1, 2, 3]


def test_bad_settings_are_rejected_at_construction():
    src = weir.Source.single(1)
    with pytest.raises(ValueError, match="min_backoff 2s is greater than max_backoff 1s"):
        weir.RestartSource.with_backoff(src, min_backoff=2.0, max_backoff=1.0)
    with pytest.raises(ValueError, match="random_factor must be a finite number >= 0, got -1"):
        weir.RestartFlow.with_backoff(weir.Flow.create(), min_backoff=0.1, max_backoff=1.0, random_factor=-1.0)
    with pytest.raises(ValueError, match="max_restarts must be at least 0, got -2"):
        weir.RestartSink.with_backoff(weir.Sink.ignore(), min_backoff=0.1, max_backoff=1.0, max_restarts=-2)
    with pytest.raises(ValueError):
        weir.RestartSource.with_backoff(src, min_backoff=-1.0, max_backoff=1.0)
