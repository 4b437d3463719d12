"""``Source.from_iter`` over an iterator (a generator, a file, a socket reader) hands each item
over as it is pulled: a partial batch goes out as soon as the iterator has nothing more ready,
so an iterator that waits between items never holds back the items before, whatever the batch
size; backpressure, cancellation, ``take(n)`` and failures behave as for a container."""

import threading
import time

import pytest

import weir
from weir import Sink, Source

from helpers import Boom

# Generous real-time bound: every wait below normally ends within milliseconds.
BOUND = 5.0
HOUR = 3600.0


def lockstep(n, delivered):
    """A generator that yields ``i`` only once the item before it was delivered downstream:
    the run can only finish if every item is delivered before the next one is pulled."""

    def gen():
        for i in range(n):
            if i > 0 and not delivered[i - 1].wait(BOUND):
                raise TimeoutError(f"item {i - 1} was not delivered while the iterator waited")
            yield i

    return gen()


@pytest.mark.parametrize("fused_ops", [False, True])
def test_each_item_reaches_for_each_before_the_next_is_pulled(fused_ops):
    delivered = [threading.Event() for _ in range(5)]
    got = []

    def record(x):
        got.append(x)
        delivered[x // 10 if fused_ops else x].set()

    src = Source.from_iter(lockstep(5, delivered))
    if fused_ops:
        src = src.map(lambda x: x * 10).filter(lambda x: x >= 0)
    # The default batch size (1024): nothing waits for a full batch.
    src.run_with(Sink.for_each(record))
    assert got == ([0, 10, 20, 30, 40] if fused_ops else [0, 1, 2, 3, 4])


def test_each_item_reaches_a_separate_sink_stage_before_the_next_is_pulled():
    delivered = [threading.Event() for _ in range(4)]
    got = []

    def record(x):
        got.append(x)
        delivered[x].set()

    # .named() keeps the sink a stage of its own: the item crosses a channel.
    Source.from_iter(lockstep(4, delivered)).run_with(Sink.for_each(record).named("sink"))
    assert got == [0, 1, 2, 3]


def test_sleeping_generator_delivers_each_item_promptly_to_a_sink_queue():
    yielded = {}

    def gen():
        for i in range(4):
            time.sleep(0.05)
            yielded[i] = time.monotonic()
            yield f"line {i}"

    h = Source.from_iter(gen()).map(str.upper).to(Sink.queue(), "right").start()
    q = h.materialized
    got = []
    for x in q:
        got.append((x, time.monotonic()))
    h.wait(timeout=BOUND)
    assert [x for x, _ in got] == ["LINE 0", "LINE 1", "LINE 2", "LINE 3"]
    for i, (_, t) in enumerate(got):
        # Arrives well before the generator yields the next one (or ends, 50 ms later).
        assert t - yielded[i] < 1.0


def test_take_ends_the_run_at_once_after_a_generator_that_blocks():
    release = threading.Event()

    def gen():
        yield 1
        yield 2
        release.wait(HOUR)  # outside input that never comes
        yield 3

    try:
        t0 = time.monotonic()
        assert Source.from_iter(gen()).take(2).run_with(Sink.collect()) == [1, 2]
        assert time.monotonic() - t0 < BOUND
    finally:
        release.set()


def test_cancel_while_the_generator_blocks_keeps_what_was_delivered():
    release = threading.Event()
    got = []

    def gen():
        yield 1
        yield 2
        release.wait(HOUR)
        yield 3

    h = Source.from_iter(gen()).to(Sink.for_each(got.append), "right").start()
    try:
        deadline = time.monotonic() + BOUND
        while len(got) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got == [1, 2]
        t0 = time.monotonic()
        h.cancel()
        with pytest.raises(weir.RunCancelled):
            h.wait(timeout=BOUND)
        assert time.monotonic() - t0 < BOUND
    finally:
        release.set()
    assert got == [1, 2]


@pytest.mark.parametrize(
    "sink, stage", [("plain", "from_iter#0"), ("stage", "from_iter#0")]
)
def test_failure_mid_iterator_keeps_the_items_before_it(sink, stage):
    got = []

    def gen():
        yield 1
        time.sleep(0.02)  # the first item is handed over alone
        yield 2
        raise Boom("reader broke")

    s = Sink.for_each(got.append)
    if sink == "stage":
        s = s.named("sink")
    with pytest.raises(weir.StageFailed) as ei:
        Source.from_iter(gen()).map(lambda x: x * 10).run_with(s)
    assert got == [10, 20]
    assert (ei.value.stage, ei.value.kind) == (stage, "user")
    assert str(ei.value) == f"stage '{stage}' failed: Boom: reader broke"


def test_failure_mid_iterator_is_recoverable_after_the_items_before_it():
    def gen():
        yield 1
        time.sleep(0.02)
        yield 2
        raise Boom("late")

    got = Source.from_iter(gen()).recover(lambda e: f"recovered {type(e).__name__}").run_with(Sink.collect())
    assert got == [1, 2, "recovered Boom"]


def test_a_consumer_that_does_not_pull_stops_the_iterator_after_a_bounded_lead():
    pulled = []

    def endless():
        i = 0
        while True:
            pulled.append(i)
            yield i
            i += 1

    h = Source.from_iter(endless()).to(Sink.queue(2), "right").start(batch_size=4)
    q = h.materialized
    assert q.pull() == 0
    # Wait until the iterator stops being pulled (backpressure), then check how far it got.
    deadline = time.monotonic() + BOUND
    last = -1
    while time.monotonic() < deadline:
        time.sleep(0.05)
        if len(pulled) == last:
            break
        last = len(pulled)
    assert len(pulled) == last
    # The sink's buffer, the channels' credit and one batch in the hand-off; far from unbounded.
    assert last < 200
    assert [q.pull() for _ in range(5)] == [1, 2, 3, 4, 5]
    q.cancel()
    h.wait(timeout=BOUND)


def test_containers_and_fast_iterators_give_the_whole_output():
    n = 10_000
    expect = [x * 2 for x in range(n) if x % 3 == 0]
    for make in (lambda: range(n), lambda: iter(list(range(n))), lambda: (x for x in range(n))):

        def src():
            return Source.from_iter(make()).filter(lambda x: x % 3 == 0).map(lambda x: x * 2)

        assert src().run_with(Sink.collect()) == expect
        assert src().run_with(Sink.collect().named("sink")) == expect
        assert Source.from_iter(make()).run_with(Sink.collect().named("sink")) == list(range(n))
        assert sorted(src().key_by(lambda x: x % 4).count().run_with(Sink.collect())) == [
            (0, sum(1 for x in expect if x % 4 == 0)),
            (2, sum(1 for x in expect if x % 4 == 2)),
        ]
