"""Cancellation and completion always end the run: a downstream that is done cancels sources
parked on outside input, and ``wait()`` returns even when a Python call is stuck."""

import threading
import time

import pytest

import weir
from weir import Sink, Source

# Generous real-time bound; the runs below end within milliseconds.
BOUND = 5.0
HOUR = 3600.0


def timed(h):
    t0 = time.monotonic()
    out = h.wait(timeout=BOUND)
    took = time.monotonic() - t0
    print(f"ended in {took * 1000:.1f} ms")
    assert took < BOUND
    return out


@pytest.mark.parametrize("n", [0, 2])
def test_take_cancels_a_queue_whose_handle_is_held(n):
    h = Source.queue(4).take(n).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    for i in range(n):
        assert q.offer(i + 1) == "enqueued"
    _, out = timed(h)
    assert out == list(range(1, n + 1))
    assert q.closed
    assert q.offer(99) == "closed"


def test_take_zero_and_zip_cancel_a_slow_tick():
    h = Source.tick(HOUR, HOUR, "t").take(0).to(Sink.collect(), "right").start()
    assert timed(h) == []
    h = Source.tick(0, HOUR, "t").zip(Source.from_iter(["a"])).to(Sink.collect(), "right").start()
    assert timed(h) == [("t", "a")]


def test_zip_after_one_input_completed_cancels_the_queue():
    h = Source.queue(4).zip(Source.from_iter([])).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    _, out = timed(h)
    assert out == []
    assert q.closed


def test_intersperse_then_take_cancels_the_queue():
    h = Source.queue(4).intersperse(0).take(3).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    q.offer(1)
    q.offer(2)
    _, out = timed(h)
    assert out == [1, 0, 2]
    assert q.closed


def start_fan_out(junction, take0, take1):
    """Starts a parked queue into ``junction`` whose outputs take ``take0`` and ``take1``
    elements into collecting sinks; returns the run and its queue."""
    b = weir.GraphBuilder()
    src, kq = b.add_source(Source.queue(4))
    j = b.add(junction)
    b.connect(src, j.inlet)
    s0, k0 = b.add_sink(weir.Flow.create().take(take0).to(Sink.collect(), "right"))
    s1, k1 = b.add_sink(weir.Flow.create().take(take1).to(Sink.collect(), "right"))
    b.connect(j.outlets[0], s0)
    b.connect(j.outlets[1], s1)
    h = b.build(kq, k0, k1).start()
    return h, h.materialized[0]


@pytest.mark.parametrize("eager", [False, True])
def test_broadcast_cancels_upstream_when_its_last_output_cancels(eager):
    h, q = start_fan_out(weir.Broadcast(2, eager_cancel=eager), 1, 0)
    if not eager:
        # One output still wants an element: the broadcast keeps running.
        assert q.offer(5) == "enqueued"
    _, first, second = timed(h)
    assert (first, second) == (([5], []) if not eager else ([], []))
    assert q.closed
    assert q.offer(6) == "closed"


def test_kill_switch_with_map_async_in_flight_ends_the_run():
    import asyncio

    started, cancelled = [], []

    async def never(x):
        started.append(x)
        try:
            await asyncio.sleep(HOUR)
        except asyncio.CancelledError:
            cancelled.append(x)
            raise
        return x

    async def main():
        h = Source.queue(16).map_async(never, parallelism=4).kill_switch().to(Sink.collect(), "both").start()
        (q, ks), _ = h.materialized
        for i in range(6):
            q.offer(i)
        for _ in range(500):
            if started:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        ks.shutdown()
        t0 = time.monotonic()
        (_, _), out = await asyncio.wait_for(h.wait_async(), BOUND)
        return out, time.monotonic() - t0, q

    out, took, q = asyncio.run(main())
    assert out == [] and took < BOUND
    # Up to `parallelism` calls were in flight, in input order; stopping the stage cancelled them.
    assert 1 <= len(started) <= 4 and started == list(range(len(started)))
    deadline = time.monotonic() + BOUND
    while len(cancelled) < len(started) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sorted(cancelled) == started
    assert q.closed


def cancel_stuck(h, release):
    """Cancels ``h``, whose stage is stuck until ``release`` is set, and waits for the run's
    ``StageFailed``; then releases the stuck call. Returns the error and the seconds taken."""
    t0 = time.monotonic()
    h.cancel()
    try:
        with pytest.raises(weir.StageFailed) as ei:
            h.wait(timeout=BOUND)
        took = time.monotonic() - t0
    finally:
        release.set()
    return ei.value, took


def test_cancel_with_a_sink_stuck_in_a_blocking_call_returns_after_the_grace():
    release = threading.Event()
    entered = threading.Event()

    def stuck(x):
        entered.set()
        release.wait(HOUR)

    h = Source.from_iter(range(10)).to(Sink.for_each(stuck), "right").start(cancel_grace=0.3)
    assert entered.wait(BOUND)
    e, took = cancel_stuck(h, release)
    assert 0.3 <= took < BOUND
    assert e.kind == "timeout"
    # The source and the sink run fused, in one island; the error names the stuck stage.
    assert e.stage == "for_each#1"
    assert str(e).startswith(
        "stage 'for_each#1' failed: did not stop within 300ms of the end of the run: "
        "its Python call has been running for 0."
    )
    assert "s on thread 'weir-dispatcher' (ThreadId(" in str(e)
    assert str(e).endswith("which serves the run and is left behind")


def test_cancel_grace_is_checked():
    with pytest.raises(ValueError, match="cancel_grace"):
        Source.from_iter([1]).to(Sink.collect(), "right").start(cancel_grace=-1)


@pytest.mark.parametrize("eager", [False, True])
def test_partition_and_unzip_keep_serving_until_their_last_output_cancels(eager):
    for junction, items in (
        (lambda: weir.Partition(2, lambda x: x % 2, eager_cancel=eager), [1, 3]),
        (lambda: weir.Unzip(eager_cancel=eager), [(1, "a"), (3, "b")]),
    ):
        # Output 0 takes nothing; output 1 wants two elements.
        h, q = start_fan_out(junction(), 0, 2)
        if not eager:
            for x in items:
                assert q.offer(x) == "enqueued"
        _, first, second = timed(h)
        expect = [] if eager else ([1, 3] if isinstance(items[0], int) else ["a", "b"])
        assert (first, second) == ([], expect)
        assert q.closed


def test_cancel_with_a_generator_blocked_in_a_call_ends_the_run_at_once():
    release = threading.Event()

    def gen():
        yield 1
        release.wait(HOUR)  # waits for outside input that never comes
        yield 2

    # The generator is pulled on a thread of its own: the cancelled run does not wait for it
    # (not even the grace), and the blocked call is left to return.
    h = Source.from_iter(gen()).to(Sink.collect(), "right").start(cancel_grace=HOUR)
    time.sleep(0.05)
    t0 = time.monotonic()
    h.cancel()
    try:
        with pytest.raises(weir.RunCancelled):
            h.wait(timeout=BOUND)
        took = time.monotonic() - t0
    finally:
        release.set()
    assert took < BOUND


def test_ctrl_c_during_run_with_a_sink_blocked_in_a_call_ends_the_run():
    import os
    import signal

    def interrupt():
        time.sleep(0.3)
        os.kill(os.getpid(), signal.SIGINT)

    threading.Thread(target=interrupt, daemon=True).start()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        Source.from_iter(range(10)).run_with(Sink.for_each(lambda x: time.sleep(HOUR)))
    took = time.monotonic() - t0
    print(f"ended {took - 0.3:.3f} s after Ctrl-C")
    assert took < BOUND
    assert Source.from_iter(range(3)).run_with(Sink.collect()) == [0, 1, 2]


def test_take_after_a_generator_that_blocks_ends_the_run():
    release = threading.Event()
    calls = []

    def gen():
        yield 1
        yield 2
        calls.append("blocked")
        release.wait(HOUR)  # outside input that never comes
        yield 3

    try:
        # Items are handed over as they are pulled, whatever the batch size.
        for bs in (1, 1024):
            h = Source.from_iter(gen()).take(2).to(Sink.collect(), "right").start(batch_size=bs)
            assert timed(h) == [1, 2]
            h = Source.from_iter(gen()).map(lambda x: x * 10).zip(Source.from_iter("a")).to(Sink.collect(), "right")
            assert timed(h.start(batch_size=bs)) == [(10, "a")]
    finally:
        release.set()


def test_cancel_stops_a_run_parked_on_a_slow_tick():
    h = Source.tick(HOUR, HOUR, 1).map(lambda x: x).to(Sink.collect(), "right").start()
    time.sleep(0.05)
    t0 = time.monotonic()
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=BOUND)
    assert time.monotonic() - t0 < BOUND
