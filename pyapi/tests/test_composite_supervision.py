"""Supervision of an operator built of several stages applies to the stage that calls the user's
function (``take_while``'s predicate, ``key_by``'s key function, ``filter_map``'s function),
whether given as ``supervision=`` or by ``with_supervision`` right after the operator."""

import pytest
from helpers import Boom, boom_at

import weir
from weir import Sink, Source

SIZES = (1, 3, 1024)


def letters(dead):
    return [(d.element, type(d.error), d.stage.split("#")[0]) for d in dead]


def key_or_boom(x):
    if x == 4:
        raise Boom(x)
    return x % 3


@pytest.mark.parametrize("batch", SIZES)
@pytest.mark.parametrize("how", ["with_supervision", "kwarg"])
def test_take_while_predicate_resumes_past_the_failing_element(batch, how):
    dead = []

    def pred(x):
        boom_at(2)(x)
        return x < 6

    src = Source.from_iter(range(10))
    if how == "kwarg":
        src = src.take_while(pred, supervision=[(Boom, "resume")], dead_letters=dead)
    else:
        src = src.take_while(pred).with_supervision([(Boom, "resume")], dead_letters=dead)
    assert src.run_with(Sink.collect(), batch_size=batch) == [0, 1, 3, 4, 5]
    assert letters(dead) == [(2, Boom, "take_while")]


def test_take_while_predicate_stop_fails_naming_the_element():
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(10)).take_while(lambda x: boom_at(2)(x) is not None).with_supervision(default="stop").run_with(Sink.collect())
    assert info.value.element == 2
    assert info.value.stage_name == "take_while"


@pytest.mark.parametrize("batch", SIZES)
@pytest.mark.parametrize("shape", ["fused_source", "after_boundary"])
@pytest.mark.parametrize("how", ["with_supervision", "kwarg"])
def test_key_count_key_function_resumes_keeping_every_other_element(batch, shape, how):
    dead = []
    src = Source.from_iter(range(10))
    if shape == "after_boundary":
        src = src.map(lambda x: x).async_boundary()
    if how == "kwarg":
        counted = src.key_by(key_or_boom, supervision=[(Boom, "resume")], dead_letters=dead).count()
    else:
        counted = src.key_by(key_or_boom).count().with_supervision([(Boom, "resume")], dead_letters=dead)
    got = counted.run_with(Sink.collect(), batch_size=batch)
    # 0..9 without 4: keys 0 -> {0, 3, 6, 9}, 1 -> {1, 7}, 2 -> {2, 5, 8}.
    assert sorted(got) == [(0, 4), (1, 2), (2, 3)]
    assert letters(dead) == [(4, Boom, "key_by")]


def test_key_count_key_function_failure_without_supervision_names_the_element():
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(10)).key_by(key_or_boom).count().run_with(Sink.collect())
    assert info.value.element == 4
    assert info.value.stage_name == "key_by"


@pytest.mark.parametrize("batch", SIZES)
def test_key_fold_key_function_supervision_by_kwarg(batch):
    dead = []
    got = (
        Source.from_iter(range(10))
        .key_by(key_or_boom, supervision=[(Boom, "resume")], dead_letters=dead)
        .fold(0, lambda a, x: a + x)
        .run_with(Sink.collect(), batch_size=batch)
    )
    assert sorted(got) == [(0, 18), (1, 8), (2, 15)]
    assert letters(dead) == [(4, Boom, "key_by")]


@pytest.mark.parametrize("batch", SIZES)
def test_filter_map_with_supervision_lands_on_the_function(batch):
    dead = []

    def f(x):
        boom_at(2)(x)
        return None if x % 2 else x * 10

    got = (
        Source.from_iter(range(10))
        .filter_map(f)
        .with_supervision([(Boom, "resume")], dead_letters=dead)
        .run_with(Sink.collect(), batch_size=batch)
    )
    assert got == [0, 40, 60, 80]
    assert letters(dead) == [(2, Boom, "filter_map")]


def test_supervision_after_a_following_stage_applies_to_that_stage():
    # `take_while(...).map(g).with_supervision(...)` supervises `map`, not the predicate.
    with pytest.raises(weir.StageFailed) as info:
        (
            Source.from_iter(range(10))
            .take_while(lambda x: boom_at(2)(x) is not None)
            .map(lambda x: x)
            .with_supervision([(Boom, "resume")])
            .run_with(Sink.collect())
        )
    assert info.value.stage_name == "take_while"
