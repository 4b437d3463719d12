"""The run's default parallelism: ``run(parallelism=n)``, ``run_async`` and ``start`` pass it to
the engine, which gives it to the stages that take one (Rust ``map``/``filter``/``flat_map`` and
``range``); Python stages keep one subtask unless they set ``.parallelism(k)`` themselves."""

import asyncio
import re

import pytest

import weir


def _raises(exc, msg):
    return pytest.raises(exc, match="^" + re.escape(msg) + "$")


def _graph():
    return (
        weir.Source.range(5000)
        .map(lambda x: x * 2)
        .filter(lambda x: x % 3 == 0)
        .to(weir.Sink.collect(), keep="right")
    )


EXPECTED = [x * 2 for x in range(5000) if (x * 2) % 3 == 0]


def test_run_with_parallelism_gives_the_same_elements():
    assert _graph().run(parallelism=4) == EXPECTED
    assert _graph().run(parallelism=1) == EXPECTED


def test_start_with_parallelism_keeps_python_stages_at_one_subtask():
    h = _graph().start(parallelism=3)
    assert h.wait(timeout=30) == EXPECTED
    subtasks = {}
    for m in h.metrics():
        subtasks.setdefault(m["path"].split("#")[0], set()).add(m["subtask"])
    assert subtasks and all(s == {0} for s in subtasks.values()), subtasks


def test_explicit_stage_parallelism_still_wins():
    g = weir.Source.range(3000).map(lambda x: x + 1).parallelism(2).to(weir.Sink.collect(), keep="right")
    h = g.start(parallelism=3)
    assert sorted(h.wait(timeout=30)) == list(range(1, 3001))
    mapped = {m["subtask"] for m in h.metrics() if m["path"].startswith("map")}
    assert mapped == {0, 1}


def test_run_async_with_parallelism():
    assert asyncio.run(_graph().run_async(parallelism=2)) == EXPECTED


def test_run_with_passes_parallelism():
    assert weir.Source.range(10).map(lambda x: -x).run_with(weir.Sink.collect(), parallelism=2) == [
        -x for x in range(10)
    ]


@pytest.mark.parametrize(
    "value, exc, msg",
    [
        (0, ValueError, "run: parallelism must be at least 1, got 0"),
        (-2, ValueError, "run: parallelism must be at least 1, got -2"),
        (129, ValueError, "run: parallelism must be at most 128, got 129"),
        ("2", TypeError, "run: parallelism must be an int, not str"),
        (True, TypeError, "run: parallelism must be an int, not bool"),
    ],
)
def test_bad_run_parallelism_is_rejected_before_the_run(value, exc, msg):
    with _raises(exc, msg):
        _graph().run(parallelism=value)
    with _raises(exc, msg):
        _graph().start(parallelism=value)
