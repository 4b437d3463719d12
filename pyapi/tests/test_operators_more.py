"""Operators beyond the core set: sources, flows, substreams, fan operators, junctions, queues."""

import asyncio
import threading

import pytest

import weir
from weir import Flow, GraphBuilder, Sink, Source

from helpers import Boom, boom_at


def collect(src):
    return src.run_with(Sink.collect())


class ThenFail:
    """Yields ``items`` then raises (re-iterable)."""

    def __init__(self, items):
        self.items = items

    def __iter__(self):
        yield from self.items
        raise Boom("late")


# --- sources -----------------------------------------------------------------------------------


def test_repeat_unfold_failed():
    assert collect(Source.repeat("a").take(3)) == ["a", "a", "a"]
    fib = Source.unfold((0, 1), lambda s: None if s[0] > 20 else ((s[1], s[0] + s[1]), s[0]))
    assert collect(fib) == [0, 1, 1, 2, 3, 5, 8, 13]
    assert collect(fib) == [0, 1, 1, 2, 3, 5, 8, 13]  # re-runnable
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.failed(Boom("nope")))
    assert isinstance(ei.value.__cause__, Boom)


def test_tick_is_cancellable_and_take_completes_it():
    assert collect(Source.tick(0.0, 0.001, "t").take(3)) == ["t", "t", "t"]
    h = Source.tick(0.0, 0.001, 1).to(Sink.collect(), "both").start()
    cancellable, _ = h.materialized
    cancellable.cancel()
    assert cancellable.is_cancelled()
    _, ticks = h.wait(timeout=30)
    assert all(t == 1 for t in ticks)


def test_source_queue_offer_complete_and_fail():
    h = Source.queue(4).map(lambda x: x * 2).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    assert isinstance(q, weir.SourceQueue)
    for i in range(20):
        assert q.offer(i) == "enqueued"
    q.complete()
    _, out = h.wait(timeout=30)
    assert out == [i * 2 for i in range(20)]
    assert q.offer(99) == "closed"

    h = Source.queue(4).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    q.offer(1)
    q.fail(Boom("queue failed"))
    with pytest.raises(weir.StageFailed) as ei:
        h.wait(timeout=30)
    assert isinstance(ei.value.__cause__, Boom)


def test_source_queue_drop_new_and_async_offer():
    async def main():
        h = Source.queue(2, "backpressure").to(Sink.collect(), "both").start()
        q, _ = h.materialized
        for i in range(10):
            assert await q.offer_async(i) == "enqueued"
        q.complete()
        return (await h.wait_async())[1]

    assert asyncio.run(main()) == list(range(10))
    with pytest.raises(ValueError):
        Source.queue(2, "nonsense")


def test_sink_queue_pull_and_iterate():
    h = Source.range(50).to(Sink.queue(4), "right").start()
    q = h.materialized
    assert isinstance(q, weir.SinkQueue)
    assert q.pull() == 0
    assert list(q) == list(range(1, 50))
    assert q.pull("end") == "end"
    h.wait(timeout=30)

    h = Source.range(3).map(boom_at(2)).to(Sink.queue(), "right").start()
    q = h.materialized
    with pytest.raises(weir.StageFailed):
        list(q)
    with pytest.raises(weir.StageFailed):
        h.wait(timeout=30)


def test_sink_queue_async_iteration():
    async def main():
        h = Source.range(10).to(Sink.queue(2), "right").start()
        out = [x async for x in h.materialized]
        await h.wait_async()
        return out

    assert asyncio.run(main()) == list(range(10))


def test_from_async_iter():
    async def agen():
        for i in range(5):
            await asyncio.sleep(0)
            yield i

    assert collect(Source.from_async_iter(agen)) == list(range(5))

    async def main():
        return await Source.from_async_iter(agen).map(lambda x: x + 1).run_with_async(Sink.collect())

    assert asyncio.run(main()) == [1, 2, 3, 4, 5]

    async def bad():
        yield 1
        raise Boom("async boom")

    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.from_async_iter(bad))
    assert isinstance(ei.value.__cause__, Boom)


# --- simple flows ------------------------------------------------------------------------------


def test_filter_map_take_while_drop_while():
    assert collect(Source.range(10).filter_map(lambda x: x * 10 if x % 2 else None)) == [10, 30, 50, 70, 90]
    calls = []

    def pred(x):
        calls.append(x)
        return x < 3

    assert collect(Source.range(100).batch_size(1000).take_while(pred)) == [0, 1, 2]
    assert calls == [0, 1, 2, 3]  # never called after the first failure
    assert collect(Source.range(10).take_while(lambda x: x < 3, inclusive=True)) == [0, 1, 2, 3]
    assert collect(Source.range(10).drop_while(lambda x: x < 7)) == [7, 8, 9]
    assert collect(Source.from_iter([5, 1, 5]).drop_while(lambda x: x > 2)) == [1, 5]


def test_predicate_errors_propagate_and_are_supervised():
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.range(5).take_while(lambda x: 1 / (x - 2) < 10))
    assert isinstance(ei.value.__cause__, ZeroDivisionError)
    assert ei.value.stage_name == "take_while"
    with pytest.raises(weir.StageFailed):
        collect(Source.range(5).drop_while(lambda x: 1 / (x - 0)))
    dl = []
    out = collect(
        Source.range(5).filter_map(lambda x: 10 // (x - 2), supervision=[(ZeroDivisionError, "resume")], dead_letters=dl)
    )
    assert out == [-5, -10, 10, 5] and [d.element for d in dl] == [2]


def test_sliding_intersperse_zip_with_index():
    assert collect(Source.range(5).sliding(3)) == [[0, 1, 2], [1, 2, 3], [2, 3, 4]]
    assert collect(Source.range(5).sliding(2, 2)) == [[0, 1], [2, 3], [4]]
    assert collect(Source.range(2).sliding(3)) == [[0, 1]]
    assert collect(Source.range(7).sliding(2, 3)) == [[0, 1], [3, 4], [6]]
    assert collect(Source.from_iter("abc").intersperse("-")) == ["a", "-", "b", "-", "c"]
    assert collect(Source.empty().intersperse(",", "[", "]")) == ["[", "]"]
    assert collect(Source.from_iter("ab").zip_with_index()) == [("a", 0), ("b", 1)]


def test_inspect_and_log(caplog):
    seen, done = [], []
    assert collect(Source.range(3).inspect(seen.append, on_complete=lambda: done.append(1))) == [0, 1, 2]
    assert seen == [0, 1, 2] and done == [1]
    import logging

    with caplog.at_level(logging.DEBUG, logger="weir"):
        collect(Source.range(2).log("nums"))
    text = caplog.text
    assert "[nums] element: 0" in text and "[nums] upstream completed" in text
    with pytest.raises(weir.StageFailed):
        collect(Source.range(3).inspect(boom_at(1)))


def test_recover():
    src = Source.from_iter(ThenFail([0, 1, 2]))
    assert collect(src.recover(lambda e: f"recovered {type(e).__name__}")) == [0, 1, 2, "recovered Boom"]
    with pytest.raises(weir.StageFailed) as ei:
        collect(src.recover(lambda e: None))
    assert isinstance(ei.value.__cause__, Boom)
    with pytest.raises(weir.StageFailed) as ei:
        collect(src.recover(lambda e: 1 / 0))
    assert isinstance(ei.value.__cause__, ZeroDivisionError)


def test_recover_with_retries():
    src = Source.from_iter(ThenFail([0, 1]))
    assert collect(src.recover_with_retries(1, lambda e: Source.from_iter(["a", "b"]))) == [0, 1, "a", "b"]
    assert collect(src.recover_with_retries(1, lambda e: ["x"])) == [0, 1, "x"]
    retry = Source.from_iter([7, 8]).map(boom_at(8))
    with pytest.raises(weir.StageFailed):
        collect(src.recover_with_retries(2, lambda e: retry))
    with pytest.raises(weir.StageFailed):
        collect(src.recover_with_retries(3, lambda e: None))


def test_map_async_unordered():
    async def f(x):
        await asyncio.sleep(0.001 * (5 - x % 5))
        if x == 99:
            raise Boom("async")
        return x * 2

    out = collect(Source.range(20).map_async_unordered(f, parallelism=8))
    assert sorted(out) == [x * 2 for x in range(20)]
    with pytest.raises(weir.StageFailed):
        collect(Source.range(100).map_async_unordered(f))
    with pytest.raises(TypeError):
        Source.range(3).map_async_unordered(lambda x: x)


def test_map_async_unordered_lets_later_batches_overtake_a_slow_one():
    async def f(x):
        await asyncio.sleep(0.3 if x < 4 else 0)
        return x

    out = collect(Source.range(12).batch_size(4).map_async_unordered(f, parallelism=8).batch_size(4))
    assert sorted(out) == list(range(12))
    assert out.index(0) >= 4, out


# --- time and rate -------------------------------------------------------------------------------


def test_grouped_within_batch_conflate_expand():
    groups = collect(Source.range(10).grouped_within(4, 10.0))
    assert [x for g in groups for x in g] == list(range(10)) and all(len(g) <= 4 for g in groups)
    sums = collect(Source.range(100).batch(10, lambda x: [x], lambda acc, x: acc + [x]))
    assert [x for g in sums for x in g] == list(range(100)) and all(len(g) <= 10 for g in sums)
    total = collect(Source.range(100).conflate(lambda a, x: a + x))
    assert sum(total) == sum(range(100))
    assert collect(Source.range(5).expand().take(5))[0] == 0
    with pytest.raises(weir.StageFailed):
        collect(Source.range(5).batch(2, boom_at(2), lambda a, x: a))


def test_delay_and_timeouts():
    assert collect(Source.range(5).delay(0.001)) == list(range(5))
    assert collect(Source.range(5).idle_timeout(30).completion_timeout(30).initial_timeout(30)) == list(range(5))
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.tick(0.5, 0.5, 1).initial_timeout(0.01))
    assert ei.value.kind == "timeout"
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.tick(0.0, 0.5, 1).idle_timeout(0.01))
    assert ei.value.kind == "timeout"


# --- substreams ----------------------------------------------------------------------------------


def test_flat_map_concat_and_merge():
    assert collect(Source.range(4).flat_map_concat(lambda x: Source.range(x).map(lambda y: (x, y)))) == [
        (1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2)
    ]
    assert collect(Source.from_iter(["ab", "cd"]).flat_map_concat(list)) == ["a", "b", "c", "d"]
    out = collect(Source.range(6).flat_map_merge(3, lambda x: [x] * x))
    assert sorted(out) == sorted(x for x in range(6) for _ in range(x))
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.range(3).flat_map_concat(lambda x: Source.range(3).map(boom_at(1))))
    assert isinstance(ei.value.__cause__, Boom)
    with pytest.raises(weir.StageFailed):
        collect(Source.range(3).flat_map_concat(lambda x: 42))  # not iterable


def test_group_by_keys_compare_with_python_equality():
    # hash(-1) == hash(-2) in CPython: keys must still be separate substreams.
    src = Source.from_iter([-1, -2, -1, -2, 3])
    out = collect(src.group_by(10, flow=Flow.create().fold(0, lambda a, x: a + x)))
    assert sorted(out) == [-4, -2, 3]
    words = Source.from_iter("a bb a ccc bb a".split())
    counts = collect(words.group_by(5, len).merge_substreams_via(Flow.create().fold(0, lambda a, _: a + 1)))
    assert sorted(counts) == [1, 2, 3]
    assert sorted(collect(Source.range(6).group_by(3, lambda x: x % 2).merge_substreams())) == list(range(6))
    with pytest.raises(weir.StageFailed):
        collect(Source.range(10).group_by(2, lambda x: x % 3).merge_substreams())
    with pytest.raises(weir.StageFailed):
        collect(Source.range(10).group_by(2, boom_at(4)).merge_substreams())


def test_split_when_after():
    seg = Flow.create().grouped(1000)
    assert collect(Source.range(7).split_when(lambda x: x % 3 == 0, seg)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert collect(Source.range(7).split_after(lambda x: x % 3 == 0).merge_substreams_via(seg)) == [
        [0], [1, 2, 3], [4, 5, 6]
    ]
    with pytest.raises(weir.StageFailed):
        collect(Source.range(7).split_when(boom_at(3), seg))


# --- fan operators -------------------------------------------------------------------------------


def test_also_to_wire_tap_divert_to():
    main, side = Source.range(5).also_to(Sink.collect(), "right").to(Sink.collect(), "both").run()
    assert main == side == list(range(5))
    assert collect(Source.range(5).wire_tap(Sink.ignore())) == list(range(5))
    even, odd = Source.range(6).divert_to(Sink.collect(), lambda x: x % 2 == 0, "right").to(Sink.collect(), "both").run()
    assert odd == [1, 3, 5] and even == [0, 2, 4]
    with pytest.raises(weir.StageFailed):
        collect(Source.range(6).divert_to(Sink.ignore(), boom_at(3)))


def test_merge_sorted_interleave_zip_latest():
    a, b = Source.from_iter([1, 3, 5, 7]), Source.from_iter([2, 3, 4, 10, 11])
    assert collect(a.merge_sorted(b)) == [1, 2, 3, 3, 4, 5, 7, 10, 11]
    with pytest.raises(weir.StageFailed):
        collect(Source.from_iter([1, 2]).merge_sorted(Source.from_iter(["x"])))
    assert collect(Source.from_iter([1, 2, 3, 4]).interleave(Source.from_iter([10, 20, 30, 40]), 2)) == [
        1, 2, 10, 20, 3, 4, 30, 40
    ]
    out = collect(Source.repeat("a").zip_latest(Source.repeat(1)).take(5))
    assert out == [("a", 1)] * 5


def _fan_in(junction, sources):
    b = GraphBuilder()
    j = b.add(junction)
    for s, inlet in zip(sources, j.inlets):
        out, _ = b.add_source(s)
        b.connect(out, inlet)
    sink_in, k = b.add_sink(Sink.collect())
    b.connect(j.outlet, sink_in)
    return b.build(k).run()


def test_junctions_fan_in():
    assert sorted(_fan_in(weir.MergePreferred(1), [Source.range(3), Source.range(3, 6)])) == list(range(6))
    assert sorted(_fan_in(weir.MergePrioritized([1, 5]), [Source.range(3), Source.range(3, 6)])) == list(range(6))
    assert _fan_in(weir.Interleave(2, 1), [Source.from_iter("ace"), Source.from_iter("bdf")]) == list("abcdef")
    assert _fan_in(weir.MergeSorted(), [Source.from_iter([1, 4]), Source.from_iter([2, 3])]) == [1, 2, 3, 4]
    zl = _fan_in(weir.ZipLatest(), [Source.repeat(0).take(50), Source.repeat(5).take(50)])
    assert all(t == (0, 5) for t in zl)


def test_partition_and_unzip():
    b = GraphBuilder()
    src, _ = b.add_source(Source.range(10))
    p = b.add(weir.Partition(3, lambda x: x % 3))
    b.connect(src, p.inlet)
    keys = []
    for o in p.outlets:
        i, k = b.add_sink(Sink.collect())
        b.connect(o, i)
        keys.append(k)
    assert b.build(*keys).run() == ([0, 3, 6, 9], [1, 4, 7], [2, 5, 8])

    b = GraphBuilder()
    src, _ = b.add_source(Source.range(10))
    p = b.add(weir.Partition(2, lambda x: 5))
    b.connect(src, p.inlet)
    for o in p.outlets:
        i, _ = b.add_sink(Sink.ignore())
        b.connect(o, i)
    with pytest.raises(weir.StageFailed) as ei:
        b.build().run()
    assert isinstance(ei.value.__cause__, IndexError)

    b = GraphBuilder()
    src, _ = b.add_source(Source.from_iter([(1, "a"), (2, "b")]))
    u = b.add(weir.Unzip())
    b.connect(src, u.inlet)
    ks = []
    for o in u.outlets:
        i, k = b.add_sink(Sink.collect())
        b.connect(o, i)
        ks.append(k)
    assert b.build(*ks).run() == ([1, 2], ["a", "b"])


def test_key_by_counts_in_first_seen_order_and_names_a_failing_key():
    words = ["b", "a", "b", "c", "a", "b"]
    assert collect(Source.from_iter(words).key_by().count()) == [("b", 3), ("a", 2), ("c", 1)]
    assert collect(Source.from_iter(words).key_by(str.upper).count()) == [("B", 3), ("A", 2), ("C", 1)]
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.from_iter(["ab", "", "c"]).key_by(lambda w: 1 // len(w)).count())
    assert isinstance(ei.value.__cause__, ZeroDivisionError)
    assert ei.value.element == "" and ei.value.stage_name == "key_by"
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.from_iter([[1], [2]]).key_by().count())  # lists are unhashable
    assert isinstance(ei.value.__cause__, TypeError)


def test_count_right_after_from_iter_runs_in_the_source_and_matches_the_staged_path():
    lines = ["a b a", "c", "b b a c d"] * 50
    fused = Source.from_iter(lines).flat_map(str.split).filter(lambda w: w != "d").key_by(str.upper).count()
    staged = Source.from_iter(lines).async_boundary().flat_map(str.split).filter(lambda w: w != "d").key_by(str.upper).count()
    assert collect(fused) == collect(staged) == [("A", 150), ("B", 150), ("C", 100)]
    assert "key_by" in fused.to_mermaid()
    assert sorted(collect(fused.parallelism(2))) == [("A", 150), ("B", 150), ("C", 100)]
