"""Bad parameters are a ValueError (TypeError for a non-int) at construction, naming the operator
and the value; a partition function's out-of-range index fails the stage with the index and range."""

import re

import pytest

import weir


def _raises(exc, msg):
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


S = weir.Source.range(10)


async def _noop(x):
    return None


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
    with _raises(ValueError, "invalid parameter of stage 'count#4': parallelism 129 behind a hash edge exceeds the 128 key groups"):
        keyed.parallelism(129)
    assert sorted(keyed.parallelism(128).run_with(weir.Sink.collect())) == [(k, 60) for k in range(5)]


@pytest.mark.parametrize(
    "build, msg",
    [
        (lambda: S.grouped_within(3, 0), "grouped_within: within must be positive, got 0s"),
        (lambda: S.grouped_within(3, -0.5), "grouped_within: within must be positive, got -0.5s"),
        (lambda: S.throttle(1, 0.0), "throttle: per must be positive, got 0s"),
        (lambda: S.throttle(1, -1), "throttle: per must be positive, got -1s"),
        (lambda: S.delay(-0.25), "delay: seconds must not be negative, got -0.25s"),
        (lambda: S.delay(1.0, capacity=-1), "delay: capacity must be at least 0, got -1"),
        (lambda: S.idle_timeout(0), "idle_timeout: seconds must be positive, got 0s"),
        (lambda: S.completion_timeout(-2), "completion_timeout: seconds must be positive, got -2s"),
        (lambda: S.initial_timeout(0.0), "initial_timeout: seconds must be positive, got 0s"),
        (lambda: S.keep_alive(0, "k"), "keep_alive: seconds must be positive, got 0s"),
        (lambda: S.initial_delay(-1), "initial_delay: seconds must not be negative, got -1s"),
        (lambda: weir.Source.tick(0, 0, "t"), "Source.tick: interval must be positive, got 0s"),
        (lambda: weir.Source.tick(-1, 1, "t"), "Source.tick: initial_delay must not be negative, got -1s"),
        (lambda: S.throttle(1, float("inf")), "throttle: per must be a finite number of seconds, got inf"),
        (lambda: S.batch(0, lambda x: x, lambda a, x: a), "batch: max must be at least 1, got 0"),
        (lambda: S.flat_map_merge(0, weir.Source.single), "flat_map_merge: breadth must be at least 1, got 0"),
        (lambda: S.group_by(0, lambda x: x), "group_by: max_substreams must be at least 1, got 0"),
        (lambda: S.recover_with_retries(-1, lambda e: None), "recover_with_retries: attempts must be at least 0, got -1"),
        (lambda: weir.Sink.for_each_async(_noop, 0), "Sink.for_each_async: parallelism must be at least 1, got 0"),
        (
            lambda: weir.RestartSource.with_backoff(S, min_backoff=-1.0, max_backoff=1.0),
            "RestartSource.with_backoff: min_backoff must not be negative, got -1s",
        ),
        (
            lambda: weir.RestartSource.on_failures_with_backoff(S, min_backoff=2.0, max_backoff=1.0),
            "RestartSource.on_failures_with_backoff: min_backoff 2s is greater than max_backoff 1s",
        ),
        (
            lambda: weir.RestartFlow.with_backoff(weir.Flow.create(), min_backoff=0.1, max_backoff=1.0, random_factor=-0.5),
            "RestartFlow.with_backoff: random_factor must be a finite number >= 0, got -0.5",
        ),
        (
            lambda: weir.RestartFlow.on_failures_with_backoff(
                weir.Flow.create(), min_backoff=0.1, max_backoff=1.0, random_factor=float("nan")
            ),
            "RestartFlow.on_failures_with_backoff: random_factor must be a finite number >= 0, got nan",
        ),
        (
            lambda: weir.RestartSink.with_backoff(weir.Sink.ignore(), min_backoff=0.1, max_backoff=1.0, max_restarts=-2),
            "RestartSink.with_backoff: max_restarts must be at least 0, got -2",
        ),
        (
            lambda: weir.RestartSink.with_backoff(
                weir.Sink.ignore(), min_backoff=0.1, max_backoff=1.0, max_restarts=2, max_restarts_within=-1
            ),
            "RestartSink.with_backoff: max_restarts_within must not be negative, got -1s",
        ),
    ],
)
def test_bad_durations_and_counts_are_value_errors_at_construction(build, msg):
    with _raises(ValueError, msg):
        build()


def test_non_number_durations_are_type_errors():
    with _raises(TypeError, "throttle: per must be a number of seconds, not str"):
        S.throttle(1, "1s")
    with _raises(TypeError, "Source.tick: interval must be a number of seconds, not bool"):
        weir.Source.tick(0, True, "t")


def test_durations_at_their_bound_still_run():
    assert S.delay(0).initial_delay(0).run_with(weir.Sink.collect()) == list(range(10))
    assert S.grouped_within(4, 0.5).run_with(weir.Sink.collect()) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert S.flat_map_merge(1, lambda x: weir.Source.from_iter([x, x])).run_with(weir.Sink.collect()) == [
        x for x in range(10) for _ in (0, 1)
    ]
    assert weir.Source.tick(0, 0.001, "t").take(3).run_with(weir.Sink.collect()) == ["t", "t", "t"]
    src = weir.RestartSource.with_backoff(weir.Source.single(1), min_backoff=0, max_backoff=0, max_restarts=2, max_restarts_within=60)
    assert src.run_with(weir.Sink.collect()) == [1, 1, 1]
