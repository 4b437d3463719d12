"""Hubs between running graphs: MergeHub producers, BroadcastHub and PartitionHub consumers
attaching and leaving while the hub runs."""

import threading
import time

import pytest
import weir
from helpers import WAIT, Boom, until


class Pulled:
    """``range(n)`` recording how many elements were pulled."""

    def __init__(self, n):
        self.n = n
        self.pulled = 0

    def __iter__(self):
        for i in range(self.n):
            self.pulled = i + 1
            yield i


def test_merge_hub_merges_producers_attached_at_run_time():
    h = weir.MergeHub.source(16).take(9).to(weir.Sink.collect(), keep="both").start()
    sink, _ = h.materialized
    assert isinstance(sink, weir.Sink)
    producers = [weir.Source.from_iter([p * 10 + i for i in range(3)]).to(sink).start() for p in range(3)]
    _, got = h.wait(WAIT)
    for p in producers:
        p.wait(WAIT)
    for p in range(3):
        assert [x for x in got if x // 10 == p] == [p * 10, p * 10 + 1, p * 10 + 2]
    assert sorted(got) == [0, 1, 2, 10, 11, 12, 20, 21, 22]


def test_merge_hub_cancels_producers_when_downstream_cancels():
    h = weir.MergeHub.source(4).to(weir.Sink.queue(1), keep="both").start()
    sink, out = h.materialized
    p = weir.Source.queue(4).to(sink).start()
    q = p.materialized
    q.offer("a")
    assert out.pull() == "a"
    out.cancel()
    h.wait(WAIT)
    until(lambda: q.offer("b") == "closed", "the producer to be cancelled")
    p.wait(WAIT)
    late = weir.Source.queue(4).to(sink).start()
    until(lambda: late.materialized.offer("c") == "closed", "a late producer to be cancelled")
    late.wait(WAIT)


def test_merge_hub_producer_failure_stays_with_the_producer():
    h = weir.MergeHub.source(16).take(2).to(weir.Sink.collect(), keep="both").start()
    sink, _ = h.materialized

    def bad():
        yield 1
        raise Boom("producer broke")

    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_iter(bad()).filter(lambda x: x > 1).to(sink).run()
    assert isinstance(e.value.__cause__, Boom)
    weir.Source.from_iter([7, 8]).to(sink).run()
    assert h.wait(WAIT)[1] == [7, 8]


def test_broadcast_hub_consumers_see_elements_from_where_they_attach():
    p = weir.Source.queue(16).to(weir.BroadcastHub.sink(8), keep="both").start()
    q, hub = p.materialized
    assert isinstance(hub, weir.Source)
    q.offer(1)
    q.offer(2)
    a = hub.to(weir.Sink.queue(1), keep="right").start()
    qa = a.materialized
    assert [qa.pull(), qa.pull()] == [1, 2]
    q.offer(3)
    assert qa.pull() == 3
    # `a` has read everything: `b` starts with the next element.
    b = hub.to(weir.Sink.queue(1), keep="right").start()
    qb = b.materialized
    q.offer(4)
    q.offer(5)
    assert [qa.pull(), qa.pull()] == [4, 5]
    assert [qb.pull(), qb.pull()] == [4, 5]
    qb.cancel()
    q.offer(6)
    assert qa.pull() == 6
    q.complete()
    assert qa.pull("end") == "end"
    a.wait(WAIT)
    # A cancelled consumer's run ends at the latest with the hub (a Python stage idle on its
    # input may notice the cancellation only then).
    b.wait(WAIT)
    p.wait(WAIT)
    # Completion is remembered: a consumer attached now completes at once.
    assert hub.run_with(weir.Sink.collect()) == []


def test_broadcast_hub_slowest_consumer_holds_the_producer():
    src = Pulled(5000)
    p = weir.Source.from_iter(src).to(weir.BroadcastHub.sink(4), keep="right").start(batch_size=1)
    hub = p.materialized
    # The first consumer gets everything buffered before it attached; the second one starts
    # where the first one is (the slowest position).
    slow = hub.to(weir.Sink.queue(1), keep="right").start(batch_size=1)
    fast = hub.to(weir.Sink.collect(), keep="right").start(batch_size=1)
    time.sleep(0.2)  # time to run ahead, if backpressure did not hold it
    # 4 in the hub, a few batches in the channels of the three runs, and what the Python source
    # reads ahead in one call: far from the 5000 a producer not held back would have pulled.
    assert src.pulled <= 600, f"the producer ran ahead: {src.pulled} pulled"
    assert list(slow.materialized) == list(range(5000))
    got = fast.wait(WAIT)
    assert got == list(range(5000 - len(got), 5000))
    assert len(got) >= 5000 - 600
    p.wait(WAIT)
    assert src.pulled == 5000


def test_broadcast_hub_failure_reaches_every_consumer():
    p = weir.Source.queue(16).to(weir.BroadcastHub.sink(8), keep="both").start()
    q, hub = p.materialized
    a = hub.to(weir.Sink.queue(4), keep="right").start()
    q.offer(1)
    assert a.materialized.pull() == 1
    q.fail(Boom("upstream broke"))
    with pytest.raises(weir.StageFailed):
        a.materialized.pull()
    with pytest.raises(weir.StageFailed) as e:
        p.wait(WAIT)
    assert isinstance(e.value.__cause__, Boom)
    with pytest.raises(weir.StageFailed, match="upstream broke"):
        hub.run_with(weir.Sink.collect())


def test_partition_hub_routes_once_enough_consumers_attached():
    p = weir.Source.from_iter(range(10)).to(weir.PartitionHub.sink(lambda n, x: x % n, 2), keep="right").start()
    hub = p.materialized
    a = hub.to(weir.Sink.collect(), keep="right").start()
    b = hub.to(weir.Sink.collect(), keep="right").start()
    assert a.wait(WAIT) == [0, 2, 4, 6, 8]
    assert b.wait(WAIT) == [1, 3, 5, 7, 9]
    p.wait(WAIT)
    assert hub.run_with(weir.Sink.collect()) == []


def test_partition_hub_holds_the_producer_until_enough_consumers_attach():
    src = Pulled(5000)
    p = weir.Source.from_iter(src).to(weir.PartitionHub.sink(lambda n, x: x % n, 2, 4), keep="right").start(batch_size=1)
    hub = p.materialized
    a = hub.to(weir.Sink.queue(1), keep="right").start()
    time.sleep(0.2)  # time to run ahead, if the hub did not wait for the second consumer
    assert src.pulled <= 600, f"the producer ran ahead: {src.pulled} pulled"
    b = hub.to(weir.Sink.collect(), keep="right").start()
    assert list(a.materialized) == list(range(0, 5000, 2))
    assert b.wait(WAIT) == list(range(1, 5000, 2))
    p.wait(WAIT)


def test_partition_hub_negative_drops_and_out_of_range_fails():
    p = weir.Source.from_iter([1, 2, 3, 4]).to(
        weir.PartitionHub.sink(lambda n, x: -1 if x % 2 == 0 else 0, 1), keep="right"
    ).start()
    assert p.materialized.run_with(weir.Sink.collect()) == [1, 3]
    p.wait(WAIT)

    p = weir.Source.from_iter([0, 5]).to(weir.PartitionHub.sink(lambda n, x: x, 2), keep="right").start()
    a = p.materialized.to(weir.Sink.collect(), keep="right").start()
    b = p.materialized.to(weir.Sink.collect(), keep="right").start()
    with pytest.raises(weir.StageFailed, match=r"partition index 5 out of range 0\.\.2"):
        p.wait(WAIT)
    for c in (a, b):
        with pytest.raises(weir.StageFailed, match=r"out of range 0\.\.2"):
            c.wait(WAIT)


def test_partition_hub_partitioner_error_names_the_element():
    def route(n, x):
        if x == 3:
            raise Boom("no route")
        return 0

    p = weir.Source.from_iter([1, 2, 3]).to(weir.PartitionHub.sink(route, 1), keep="right").start()
    c = p.materialized.to(weir.Sink.queue(8), keep="right").start()
    q = c.materialized
    assert [q.pull(), q.pull()] == [1, 2]
    with pytest.raises(weir.StageFailed) as e:
        p.wait(WAIT)
    assert isinstance(e.value.__cause__, Boom)
    assert e.value.element == 3
    assert e.value.stage_name == "partition_hub"


def test_partitioner_runs_on_the_dispatcher_of_the_hub_run():
    threads = set()

    def route(n, x):
        threads.add(threading.current_thread().name)
        return 0

    p = weir.Source.from_iter(range(5)).to(weir.PartitionHub.sink(route, 1), keep="right").start()
    assert p.materialized.run_with(weir.Sink.collect()) == [0, 1, 2, 3, 4]
    p.wait(WAIT)
    assert threads == {"weir-dispatcher"}


def test_bad_sizes_are_rejected_at_construction():
    with pytest.raises(ValueError, match="MergeHub.source: per_producer_buffer_size must be at least 1, got 0"):
        weir.MergeHub.source(0)
    with pytest.raises(ValueError, match="BroadcastHub.sink: buffer_size must be at least 1, got -3"):
        weir.BroadcastHub.sink(-3)
    with pytest.raises(ValueError, match="start_after_nr_of_consumers must be at least 0, got -1"):
        weir.PartitionHub.sink(lambda n, x: 0, -1)
    with pytest.raises(TypeError, match="partitioner must be callable"):
        weir.PartitionHub.sink(3, 1)
