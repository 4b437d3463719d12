"""A stage that fails in the middle of a batch still emits what it produced before the failing
element, ahead of the error, on every path a batch can take: fused into the source, a separate
stage, a fused source-to-sink pipeline, a pool and asyncio."""

import asyncio

import pytest

import weir
from weir import Sink, Source

from helpers import Boom, boom_at


def recovered(src):
    return src.recover(lambda e: f"recovered {type(e).__name__}").run_with(Sink.collect())


def test_iterator_failing_mid_batch_emits_items_before_it():
    def gen():
        yield from range(5)
        raise Boom("late")

    class Again:
        def __iter__(self):
            return gen()

    assert recovered(Source.from_iter(Again())) == [0, 1, 2, 3, 4, "recovered Boom"]
    assert recovered(Source.from_iter(Again()).map(lambda x: x * 10)) == [0, 10, 20, 30, 40, "recovered Boom"]


@pytest.mark.parametrize("boundary", [False, True])
def test_map_failing_mid_batch_emits_earlier_outputs(boundary):
    src = Source.range(100)
    if boundary:
        src = src.async_boundary()
    # map + filter fused into one group: filter still runs over map's partial output.
    flow = src.map(boom_at(42)).filter(lambda x: x % 2 == 0)
    assert recovered(flow) == list(range(0, 42, 2)) + ["recovered Boom"]


def test_non_list_op_failing_mid_batch_emits_earlier_outputs():
    words = [f"w{i}" if i != 7 else None for i in range(20)]
    flow = Source.from_iter(words).flat_map(lambda s: [s, s.upper()])
    out = recovered(flow)
    assert out[:-1] == [w for i in range(7) for w in (f"w{i}", f"W{i}")]
    assert out[-1] == "recovered AttributeError"


def test_later_op_failure_on_partial_output_wins():
    # map fails at 50; the filter after it fails earlier in stream order (at 10).
    flow = Source.range(100).map(boom_at(50)).filter(lambda x: 1 / (x - 10) != 0)
    with pytest.raises(weir.StageFailed) as ei:
        flow.run_with(Sink.collect())
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


def test_fused_pipeline_sink_sees_elements_before_the_failure():
    seen = []
    with pytest.raises(weir.StageFailed) as ei:
        Source.from_iter(range(100)).map(boom_at(42)).run_with(Sink.for_each(seen.append))
    assert ei.value.stage_name == "map"
    assert seen == list(range(42))


def test_pool_failure_emits_outputs_before_the_failing_element():
    # A lambda travels by value (a function of this module would need the module in the worker).
    with weir.InterpreterPool(workers=1) as pool:
        flow = Source.range(100).map(lambda x: x if x != 42 else int("boom"), pool=pool)
        assert recovered(flow) == list(range(42)) + ["recovered ValueError"]
        flat = Source.range(10).flat_map(lambda x: [x, x] if x != 3 else [x, int("boom")], pool=pool)
        assert recovered(flat) == [0, 0, 1, 1, 2, 2, "recovered ValueError"]


def test_map_async_failure_emits_outputs_before_the_failing_element():
    async def f(x):
        await asyncio.sleep(0)
        return boom_at(42)(x)

    flow = Source.range(100).map_async(f, parallelism=4)
    assert recovered(flow) == list(range(42)) + ["recovered Boom"]


def test_resume_still_skips_only_the_failing_element():
    out = Source.range(10).map(boom_at(3), supervision=[(Boom, "resume")]).run_with(Sink.collect())
    assert out == [0, 1, 2, 4, 5, 6, 7, 8, 9]


@pytest.mark.parametrize("batch", [1, 2, 16])
def test_stages_finish_what_arrived_before_an_upstream_failure(batch):
    # The failure overtakes nothing: batches a Python stage or sink accepted before the error
    # are processed, whatever their jobs' timing.
    for _ in range(5):
        got = []
        g = (
            Source.from_iter(range(100))
            .map(boom_at(50))
            .async_boundary()
            .map(lambda x: x + 1)
            .async_boundary()
            .to(Sink.for_each(got.append))
        )
        with pytest.raises(weir.StageFailed) as ei:
            g.run(batch_size=batch)
        assert isinstance(ei.value.__cause__, Boom)
        assert got == list(range(1, 51))


def test_flat_map_keeps_the_items_an_iterable_yielded_before_it_failed():
    def gen(x):
        yield x
        if x == 3:
            raise Boom("half-way")
        yield x * 10

    assert recovered(Source.range(5).flat_map(gen)) == [0, 0, 1, 10, 2, 20, 3, "recovered Boom"]
    resumed = Source.range(5).flat_map(gen, supervision=[(Boom, "resume")]).run_with(Sink.collect())
    assert resumed == [0, 0, 1, 10, 2, 20, 3, 4, 40]
