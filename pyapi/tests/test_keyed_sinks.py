"""Python keys in the Rust keyed operators (hash taken when the key is extracted, == through
Python) and the Rust sinks' results and errors seen from Python."""

import pytest
from helpers import Boom

import weir
from weir import Sink, Source


def letters(dead):
    return [(d.element, type(d.error), d.stage.split("#")[0]) for d in dead]


def test_keys_compare_with_python_equality_and_hash():
    # 1, 1.0 and True are one key in Python (equal, same hash); the first one seen is kept.
    got = Source.from_iter([1, 2, 1.0, True, 2, "1"]).key_by().count().run_with(Sink.collect())
    assert got == [(1, 3), (2, 2), ("1", 1)]
    assert type(got[0][0]) is int


class Colliding:
    """Every instance hashes alike; equal when the tags are."""

    def __init__(self, tag):
        self.tag = tag

    def __hash__(self):
        return 7

    def __eq__(self, other):
        return isinstance(other, Colliding) and self.tag == other.tag


def test_user_class_keys_need_the_pickle_codec_and_compare_by_equality():
    # Keys route by their stable encoding, not by __hash__: a user class is a pickled key.
    keys = [Colliding(t) for t in "abab"]
    got = Source.from_iter(range(4)).key_by(lambda i: keys[i], key_codec="pickle").count().run_with(Sink.collect())
    assert [(k.tag, n) for k, n in got] == [("a", 2), ("b", 2)]
    folded = (
        Source.from_iter(range(4))
        .key_by(lambda i: keys[i], key_codec="pickle")
        .fold(0, lambda a, i: a + i)
        .run_with(Sink.collect())
    )
    assert [(k.tag, s) for k, s in folded] == [("a", 2), ("b", 4)]
    with pytest.raises(weir.StageFailed, match="a Colliding has no stable encoding"):
        Source.from_iter(range(4)).key_by(lambda i: keys[i]).count().run_with(Sink.collect())


@pytest.mark.parametrize("batch", [1, 2, 1024])
def test_an_unhashable_key_is_an_element_failure_of_key_by(batch):
    dead = []
    src = Source.from_iter([1, [2], 3, 1])
    got = src.key_by(supervision=[(TypeError, "resume")], dead_letters=dead).count().run_with(Sink.collect(), batch_size=batch)
    assert got == [(1, 2), (3, 1)]
    assert letters(dead) == [([2], TypeError, "key_by")]
    with pytest.raises(weir.StageFailed) as info:
        src.key_by().count().run_with(Sink.collect(), batch_size=batch)
    assert info.value.stage_name == "key_by" and info.value.element == [2]
    assert isinstance(info.value.__cause__, TypeError)
    dead = []
    folded = src.key_by(supervision=[(TypeError, "resume")], dead_letters=dead).reduce(lambda a, b: a + b).run_with(Sink.collect(), batch_size=batch)
    assert folded == [(1, 2), (3, 3)]
    assert letters(dead) == [([2], TypeError, "key_by")]


def test_a_failing_fold_function_fails_the_fold_stage_naming_the_element():
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(6)).key_by(lambda x: x % 2).fold(0, lambda a, x: a + 1 // (x - 3)).run_with(Sink.collect())
    assert info.value.stage_name == "fold" and info.value.element == 3
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(6)).key_by(lambda x: x % 2).reduce(lambda a, x: a + 1 // (x - 4)).run_with(Sink.collect())
    assert info.value.stage_name == "reduce" and info.value.element == 4


def test_keyed_counts_on_parallel_subtasks_keep_every_key_once():
    words = [f"w{i % 11}" for i in range(1000)]
    got = Source.from_iter(words).map(lambda w: w).parallelism(2).key_by().count().parallelism(3).run_with(Sink.collect())
    assert sorted(got) == sorted((f"w{k}", len(range(k, 1000, 11))) for k in range(11))


def test_head_and_last_of_an_empty_stream():
    for sink, name in ((Sink.head(), "head"), (Sink.last(), "last")):
        with pytest.raises(weir.StageFailed) as info:
            Source.empty().run_with(sink)
        assert info.value.stage_name == name
        assert info.value.message == "stream completed without elements"
    assert Source.empty().run_with(Sink.head_option()) is None
    assert Source.empty().run_with(Sink.last_option()) is None
    assert Source.from_iter([4, 5, 6]).run_with(Sink.head()) == 4
    assert Source.from_iter([4, 5, 6]).run_with(Sink.last_option()) == 6


def test_collect_finish_and_its_failure_name_the_sink():
    assert Source.from_iter([3, 1, 2]).run_with(Sink.collect()) == [3, 1, 2]
    assert Source.empty().run_with(Sink.collect()) == []

    def bad(rows):
        raise Boom(len(rows))

    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter([1, 2]).run_with(weir.Sink(weir._native.sink_collect(bad)))
    assert info.value.stage_name == "collect"
    assert isinstance(info.value.__cause__, Boom)


@pytest.mark.parametrize("batch", [1, 3, 1024])
def test_fold_and_for_each_sinks_resume_past_a_failing_element(batch):
    seen, dead = [], []

    def visit(x):
        if x == 2:
            raise Boom(x)
        seen.append(x)

    done = Source.from_iter(range(5)).run_with(Sink.for_each(visit).with_supervision([(Boom, "resume")], dead_letters=dead), batch_size=batch)
    assert done is None
    assert seen == [0, 1, 3, 4]
    assert letters(dead) == [(2, Boom, "for_each")]
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(5)).run_with(Sink.for_each(visit), batch_size=batch)
    assert info.value.stage_name == "for_each" and info.value.element == 2
    assert Source.from_iter(range(5)).run_with(Sink.ignore(), batch_size=batch) is None


class RaisingEq:
    def __hash__(self):
        return 1

    def __eq__(self, other):
        raise Boom("no ==")


def test_a_key_whose_equality_raises_is_kept_apart():
    a, b = RaisingEq(), RaisingEq()
    # Both pickle alike, so they share a hash and meet in ==.
    got = Source.from_iter([a, b, a]).key_by(key_codec="pickle").count().run_with(Sink.collect())
    # The same object is equal to itself without calling ==.
    assert [(k is a, k is b, n) for k, n in got] == [(True, False, 2), (False, True, 1)]
