"""Bad parameters are a ValueError (TypeError for a non-int) at construction, naming the operator
and the value; a partition function's out-of-range index fails the stage with the index and range."""

import re

import pytest

import weir


def _raises(exc, msg):
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


S = weir.Source.range(10)


@pytest.mark.parametrize(
    "build, msg",
    [
        (lambda: S.grouped(0), "grouped: n must be at least 1, got 0"),
        (lambda: S.grouped(-3), "grouped: n must be at least 1, got -3"),
        (lambda: S.sliding(0), "sliding: n must be at least 1, got 0"),
        (lambda: S.sliding(2, 0), "sliding: step must be at least 1, got 0"),
        (lambda: S.sliding(2, -1), "sliding: step must be at least 1, got -1"),
        (lambda: S.interleave(weir.Source.range(3), segment_size=0), "interleave: segment_size must be at least 1, got 0"),
        (lambda: S.buffer(0), "buffer: size must be at least 1, got 0"),
        (lambda: S.buffer(-1, "drop_head"), "buffer: size must be at least 1, got -1"),
        (lambda: S.map(abs).parallelism(0), "parallelism: n must be at least 1, got 0"),
        (lambda: S.grouped(2).parallelism(0), "parallelism: n must be at least 1, got 0"),
        (lambda: S.map(abs).batch_size(0), "batch_size: rows must be at least 1, got 0"),
        (lambda: S.grouped(2).batch_size(-8), "batch_size: rows must be at least 1, got -8"),
        (lambda: S.map(abs).buffer_rows(0), "buffer_rows: rows must be at least 1, got 0"),
        (lambda: S.take(-1), "take: n must be at least 0, got -1"),
        (lambda: S.drop(-2), "drop: n must be at least 0, got -2"),
        (lambda: S.grouped_within(0, 1.0), "grouped_within: n must be at least 1, got 0"),
        (lambda: S.throttle(0, 1.0), "throttle: elements must be at least 1, got 0"),
        (lambda: S.throttle(5, 1.0, burst=-1), "throttle: burst must be at least 0, got -1"),
        (lambda: weir.Source.queue(0), "Source.queue: capacity must be at least 1, got 0"),
        (lambda: weir.Sink.queue(-1), "Sink.queue: capacity must be at least 1, got -1"),
        (lambda: weir.Broadcast(0), "Broadcast: n must be at least 1, got 0"),
        (lambda: weir.Balance(-1), "Balance: n must be at least 1, got -1"),
        (lambda: weir.Merge(0), "Merge: n must be at least 1, got 0"),
        (lambda: weir.Partition(0, lambda x: 0), "Partition: n must be at least 1, got 0"),
        (lambda: weir.Interleave(2, segment_size=0), "Interleave: segment_size must be at least 1, got 0"),
        (lambda: weir.InterpreterPool(workers=0), "InterpreterPool: workers must be at least 1, got 0"),
    ],
)
def test_bad_sizes_are_value_errors_at_construction(build, msg):
    with _raises(ValueError, msg):
        build()


def test_run_batch_size_is_checked():
    g = S.to(weir.Sink.collect(), keep="right")
    with _raises(ValueError, "run: batch_size must be at least 1, got 0"):
        g.run(batch_size=0)
    with _raises(ValueError, "run: batch_size must be at least 1, got -4"):
        g.start(batch_size=-4)
    assert g.run(batch_size=3) == list(range(10))


def test_map_async_parallelism_is_checked():
    async def f(x):
        return x

    with _raises(ValueError, "fetch: parallelism must be at least 1, got 0"):
        S.map_async(f, 0, name="fetch")
    with _raises(ValueError, "map_async_unordered: parallelism must be at least 1, got -2"):
        S.map_async_unordered(f, -2)


def test_non_int_sizes_are_type_errors():
    with _raises(TypeError, "grouped: n must be an int, not float"):
        S.grouped(2.5)
    with _raises(TypeError, "buffer: size must be an int, not str"):
        S.buffer("3")
    with _raises(TypeError, "batch_size: rows must be an int, not bool"):
        S.map(abs).batch_size(True)


def test_valid_sizes_still_run():
    assert S.grouped(4).run_with(weir.Sink.collect()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert S.take(0).run_with(weir.Sink.collect()) == []
    assert S.drop(8).run_with(weir.Sink.collect()) == [8, 9]
    assert S.map(abs).batch_size(1).buffer_rows(1).parallelism(1).run_with(weir.Sink.collect()) == list(range(10))
    assert weir.Source.range(4).sliding(2, 2).run_with(weir.Sink.collect()) == [[0, 1], [2, 3]]


def _partition(fn, n=2):
    b = weir.GraphBuilder()
    src, _ = b.add_source(weir.Source.range(4))
    p = b.add(weir.Partition(n, fn))
    b.connect(src, p.inlet)
    outs = [[] for _ in range(n)]
    for i, o in enumerate(p.outlets):
        si, _ = b.add_sink(weir.Sink.for_each(outs[i].append))
        b.connect(o, si)
    return b.build(), outs


@pytest.mark.parametrize(
    "result, exc, msg",
    [
        (5, IndexError, "partition index 5 out of range 0..2"),
        (-1, IndexError, "partition index -1 out of range 0..2"),
        (2**70, IndexError, f"partition index {2**70} out of range 0..2"),
        ("0", TypeError, "partition function returned str, not an int index in 0..2"),
    ],
)
def test_partition_index_out_of_range_fails_the_stage(result, exc, msg):
    g, _outs = _partition(lambda x: result if x == 2 else x % 2)
    with pytest.raises(weir.StageFailed) as info:
        g.run()
    assert isinstance(info.value.__cause__, exc)
    assert str(info.value.__cause__) == msg
    assert info.value.element == 2
    assert info.value.stage_name == "partition"


def test_parallelism_above_the_key_groups_behind_a_hash_edge():
    keyed = weir.Source.range(300).map(lambda x: x).key_by(lambda x: x % 5).count()
    with _raises(ValueError, "invalid parameter of stage 'count#1': parallelism 129 behind a hash edge exceeds the 128 key groups"):
        keyed.parallelism(129)
    assert sorted(keyed.parallelism(128).run_with(weir.Sink.collect())) == [(k, 60) for k in range(5)]
