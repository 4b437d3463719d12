"""Keyed built-in aggregates from Python: ``key_by(f).sum/min/max/mean/first/last(field)`` and
``count()`` run per key in Rust (``weir_operators::keyed::aggregate_pairs``), checked exactly
against plain-Python references (``collections.Counter``, dict loops), with their errors,
supervision, parallelism, and a checkpoint that a second run restores."""

import collections
import operator
import random

import pytest

import weir
from weir import Sink, Source, testing
from helpers import until


def reference(func, pairs):
    """``(key, result)`` per key in first-seen order, as plain Python computes it."""
    groups = {}
    for k, v in pairs:
        groups.setdefault(k, []).append(v)
    fns = {
        "sum": sum,
        "min": min,
        "max": max,
        "mean": lambda vs: sum(vs) / len(vs),
        "first": lambda vs: vs[0],
        "last": lambda vs: vs[-1],
    }
    return [(k, fns[func](vs)) for k, vs in groups.items()]


def events(n, seed=7):
    rng = random.Random(seed)
    return [{"user": f"u{rng.randrange(50)}", "amount": rng.randrange(-1000, 1000)} for _ in range(n)]


@pytest.mark.parametrize("func", ["sum", "min", "max", "mean", "first", "last"])
def test_each_built_in_matches_plain_python_per_key(func):
    data = events(5000)
    want = reference(func, [(e["user"], e["amount"]) for e in data])
    by_name = getattr(Source.from_iter(data).key_by("user"), func)("amount").run_with(Sink.collect(), batch_size=64)
    assert by_name == want
    by_fn = getattr(Source.from_iter(data).key_by(lambda e: e["user"]), func)(lambda e: e["amount"]).run_with(Sink.collect())
    assert by_fn == want


def test_elements_are_their_own_values_and_keys_by_default_and_by_index():
    assert Source.from_iter([3, 1, 3, 2, 3]).key_by().sum().run_with(Sink.collect()) == [(3, 9), (1, 1), (2, 2)]
    rows = [("a", 1.5), ("b", 2), ("a", 3), ("b", 0.25), ("c", -4)]
    assert Source.from_iter(rows).key_by(0).sum(1).run_with(Sink.collect()) == [("a", 4.5), ("b", 2.25), ("c", -4)]
    assert Source.from_iter(rows).key_by(0).max(1).run_with(Sink.collect()) == [("a", 3), ("b", 2), ("c", -4)]
    assert Source.from_iter(rows).key_by(0).min(1).run_with(Sink.collect()) == [("a", 1.5), ("b", 0.25), ("c", -4)]
    assert Source.from_iter(rows).key_by(0).mean(1).run_with(Sink.collect()) == [("a", 2.25), ("b", 1.125), ("c", -4.0)]
    # first/last keep any object, the element itself without a field.
    assert Source.from_iter(rows).key_by(0).first().run_with(Sink.collect()) == [("a", ("a", 1.5)), ("b", ("b", 2)), ("c", ("c", -4))]
    assert Source.from_iter(rows).key_by(0).last().run_with(Sink.collect()) == [("a", ("a", 3)), ("b", ("b", 0.25)), ("c", ("c", -4))]
    # Sums of ints stay ints; a bool counts as an int.
    out = Source.from_iter([("x", True), ("x", 2)]).key_by(0).sum(1).run_with(Sink.collect())
    assert out == [("x", 3)] and type(out[0][1]) is int
    assert Source.empty().key_by().sum().run_with(Sink.collect()) == []


def test_count_matches_counter():
    rng = random.Random(3)
    words = [f"w{rng.randrange(300)}" for _ in range(20000)]
    want = list(collections.Counter(words).items())
    assert Source.from_iter(words).key_by().count().run_with(Sink.collect(), batch_size=100) == want


def test_a_parallel_aggregate_gives_every_key_once():
    data = events(3000, seed=11)
    want = dict(reference("sum", [(e["user"], e["amount"]) for e in data]))
    got = Source.from_iter(data).key_by("user").sum("amount").parallelism(3).run_with(Sink.collect())
    assert len(got) == len(want) and dict(got) == want


def test_a_value_that_is_no_number_fails_naming_the_stage_and_the_element():
    rows = [("a", 1), ("b", "two"), ("a", 3)]
    with pytest.raises(weir.StageFailed) as e:
        Source.from_iter(rows).key_by(0).sum(1).run_with(Sink.collect())
    assert e.value.stage_name == "key_by"
    assert "sum: the value must be an int or a float, got str" in str(e.value)
    assert e.value.element == ("b", "two")
    with pytest.raises(weir.StageFailed, match="the value 1267650600228229401496703205376 does not fit in 64 bits"):
        Source.from_iter([("a", 2**100)]).key_by(0).max(1).run_with(Sink.collect())


def test_supervision_resumes_past_failed_keys_values_and_numbers():
    dead = []
    rows = [("a", 1), ("b", "two"), (None, 5), ("a", 3), ([1], 1), ("c", 4)]

    def key(r):
        if r[0] is None:
            raise KeyError("no key")
        return r[0]

    out = (
        Source.from_iter(rows)
        .key_by(key, supervision=[(Exception, "resume")], dead_letters=dead)
        .sum(1)
        .run_with(Sink.collect())
    )
    assert out == [("a", 4), ("c", 4)]
    # The key function runs over the whole batch first: its failures are reported first.
    assert [d[0] for d in dead] == [(None, 5), ("b", "two"), ([1], 1)]
    # A failing field call is dead-lettered once, and the elements after it keep their values.
    dead = []

    def value(r):
        if r[1] == 2:
            raise ValueError("bad value")
        return r[1]

    out = (
        Source.from_iter([("a", 1), ("a", 2), ("b", 3), ("a", 4)])
        .key_by(0, supervision=[(ValueError, "resume")], dead_letters=dead)
        .last(value)
        .run_with(Sink.collect())
    )
    assert out == [("a", 4), ("b", 3)]
    assert [d[0] for d in dead] == [("a", 2)]


def test_restart_keeps_the_rest_of_the_batch_and_the_accumulators():
    rows = [("a", 1), ("b", "x"), ("a", 2), ("b", 5), ([0], 1), ("a", 4)]
    out = (
        Source.from_iter(rows)
        .key_by(0, supervision=[(TypeError, "restart")])
        .sum(1)
        .run_with(Sink.collect(), batch_size=64)
    )
    assert out == [("a", 7), ("b", 5)]


def test_a_bad_field_or_key_argument_is_a_type_error():
    with pytest.raises(TypeError, match="sum: field must be None, a str or int item, or a function, got 1.5"):
        Source.empty().key_by().sum(1.5)
    with pytest.raises(TypeError, match="key_by: key must be None, a function, or a str or int item, got 2.5"):
        Source.empty().key_by(2.5)


def test_with_supervision_after_a_built_in_supervises_the_key_stage():
    dead = []
    out = (
        Source.from_iter([("a", 1), ("b", None), ("a", 2)])
        .key_by(0)
        .mean(1)
        .with_supervision([(TypeError, "resume")], dead_letters=dead)
        .run_with(Sink.collect())
    )
    assert out == [("a", 1.5)]
    assert [d[0] for d in dead] == [("b", None)]


@pytest.mark.parametrize("func", ["sum", "count", "min", "max", "mean", "first", "last"])
def test_keyed_built_ins_resume_their_accumulators_from_a_checkpoint(tmp_path, func):
    state = str(tmp_path / "state")
    data = [(f"k{i % 7}", (i * 37) % 101 - 50) for i in range(200)]
    before, after = data[:120], data[120:]

    def graph():
        keyed = testing.probe_source().key_by(0)
        agg = keyed.count() if func == "count" else getattr(keyed, func)(1)
        return agg.uid("agg").to(Sink.collect(), "both")

    clock = testing.VirtualClock()
    first = clock.start(graph(), state_dir=state, checkpoint_interval=1.0)
    first.materialized[0].offer_all(before)
    clock.advance(1.0)
    until(lambda: first.latest_checkpoint == 1, "checkpoint 1")
    first.cancel()

    again = testing.VirtualClock().start(graph(), state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all(after)
    src.complete()
    got = again.result()[1]
    if func == "count":
        want = list(collections.Counter(k for k, _ in data).items())
    else:
        want = reference(func, data)
    # Restored keys come back in key-group order: the same pairs, in another order.
    assert sorted(got) == sorted(want)
    assert len(got) == len(want)
