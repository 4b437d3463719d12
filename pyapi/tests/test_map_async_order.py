"""map_async keeps input order and loses nothing, whatever order its coroutines finish in."""

import asyncio
import random

from weir import Sink, Source


def test_map_async_keeps_input_order_under_random_delays():
    rng = random.Random(11)

    async def slow_mul(x):
        await asyncio.sleep(rng.random() * 0.002)
        return x * 10

    for n in range(200):
        xs = list(range(1, 2 + n % 5))
        got = Source.from_iter(xs).map_async(slow_mul, 2).run_with(Sink.collect())
        assert got == [x * 10 for x in xs], f"run {n}: {got}"


def test_map_async_one_at_a_time_from_a_queue_keeps_the_first_result():
    async def mul(x):
        await asyncio.sleep(0)
        return x * 10

    for n in range(50):
        got = []
        src = Source.queue(8, "backpressure").map_async(mul, 2).take(1)
        h = src.to(Sink.for_each(got.append), "left").start()
        q = h.materialized
        for x in (1, 2, 3):
            q.offer(x)
        h.wait(timeout=5.0)
        assert got == [10], f"run {n}: {got}"
