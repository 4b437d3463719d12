"""The GIL is never taken on a tokio worker thread: every stage of a Python run (and of the
sub-graphs it starts: substreams, lazy stages, restart incarnations, hubs) runs on the run's
dispatcher, and a blocking iterator is pulled on a thread of its own. Each test runs one kind
of graph, checks its whole output, then checks the count of GIL acquisitions on workers."""

import asyncio
import threading

import pytest

import weir
from weir import Flow, Sink, Source, _native

from helpers import WAIT, Boom


@pytest.fixture(autouse=True)
def no_gil_on_workers():
    before = _native._gil_on_workers()
    yield
    assert _native._gil_on_workers() == before


def test_substreams_run_on_the_dispatcher():
    assert Source.range(4).flat_map_concat(lambda x: Source.range(x).map(lambda y: (x, y))).run_with(
        Sink.collect()
    ) == [(1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)]
    merged = Source.range(5).flat_map_merge(3, lambda x: Source.from_iter([x] * x).map(lambda y: y * 10))
    assert sorted(merged.run_with(Sink.collect())) == [10, 20, 20, 30, 30, 30, 40, 40, 40, 40]
    words = Source.from_iter("a bb a ccc bb a".split())
    sub = Flow.create().map(lambda w: w.upper()).fold(0, lambda a, _: a + 1)
    assert sorted(words.group_by(5, len).merge_substreams_via(sub).run_with(Sink.collect())) == [1, 2, 3]
    seg = Flow.create().map(lambda x: x + 1).grouped(1000)
    assert Source.range(7).split_when(lambda x: x % 3 == 0, seg).run_with(Sink.collect()) == [
        [1, 2, 3],
        [4, 5, 6],
        [7],
    ]


def test_lazy_stages_build_python_stages_on_the_dispatcher():
    made = []

    def make():
        made.append(threading.current_thread().name)
        return Source.from_iter([1, 2, 3]).map(lambda x: x * 2)

    assert Source.lazy(make).run_with(Sink.collect()) == [2, 4, 6]
    assert len(made) == 1
    inner = Source.from_iter([1, 2]).run_with(Sink.lazy(lambda: Flow.create().map(str).to(Sink.collect(), "right")))
    assert inner.result() == ["1", "2"]


def test_restart_incarnations_run_on_the_dispatcher():
    starts = []

    def failing(x):
        yield x
        raise Boom("again")

    def factory():
        starts.append(len(starts))
        if len(starts) < 3:
            # A generator: pulled on a thread of its own in every incarnation.
            return Source.from_iter(failing(len(starts))).map(lambda x: x * 10)
        return Source.from_iter([99]).map(lambda x: x + 1)

    src = weir.RestartSource.on_failures_with_backoff(factory, min_backoff=0.001, max_backoff=0.002)
    assert src.run_with(Sink.collect()) == [10, 20, 100]
    assert starts == [0, 1, 2]


def test_hubs_run_their_python_stages_on_the_dispatcher():
    p = Source.from_iter(range(10)).map(lambda x: x * 3).to(
        weir.PartitionHub.sink(lambda n, x: x % n, 2), keep="right"
    ).start()
    hub = p.materialized
    a = hub.map(lambda x: -x).to(Sink.collect(), keep="right").start()
    b = hub.to(Sink.collect(), keep="right").start()
    assert a.wait(WAIT) == [0, -6, -12, -18, -24]
    assert b.wait(WAIT) == [3, 9, 15, 21, 27]
    p.wait(WAIT)
    h = weir.MergeHub.source(16).map(lambda x: x + 1).take(4).to(Sink.collect(), keep="both").start()
    sink, _ = h.materialized
    Source.from_iter([1, 2]).run_with(sink)
    Source.from_iter([3, 4]).map(lambda x: x).run_with(sink)
    _, got = h.wait(WAIT)
    assert sorted(got) == [2, 3, 4, 5]


def test_blocking_iterators_and_pools_keep_the_gil_off_the_workers():
    def gen():
        yield from range(5)

    assert Source.from_iter(gen()).map(lambda x: x * x).run_with(Sink.collect()) == [0, 1, 4, 9, 16]
    got = Source.range(50).map(lambda x: x + 1, pool=2).batch_size(8).run_with(Sink.collect())
    assert got == list(range(1, 51))


def test_asyncio_map_async_and_timers_keep_the_gil_off_the_workers():
    async def twice(x):
        await asyncio.sleep(0)
        return 2 * x

    assert Source.range(20).map_async(twice, 4).run_with(Sink.collect()) == [2 * x for x in range(20)]
    assert Source.tick(0.0, 0.001, "t").take(3).map(str.upper).run_with(Sink.collect()) == ["T", "T", "T"]
    assert Source.range(6).grouped_within(4, 10.0).run_with(Sink.collect()) == [[0, 1, 2, 3], [4, 5]]
    assert Source.range(3).delay(0.001).map(lambda x: -x).run_with(Sink.collect()) == [0, -1, -2]
