"""Python operators are the Rust operators over Python objects: a raising user function fails
the stage naming it and the element (or dead-letters the element under supervision), exactly as
the Rust ``try_*`` operators do; copying operators (broadcast, zip, sliding, ...) hand
out new references; none of it takes the GIL on a tokio worker."""

import pytest
from helpers import Boom, boom_at

import weir
from weir import Sink, Source
from weir import _native


def failure(src):
    with pytest.raises(weir.StageFailed) as info:
        src.run_with(Sink.collect())
    return info.value


def partial(src):
    """What reached the sink before the failure, and the failure."""
    got = []
    with pytest.raises(weir.StageFailed) as info:
        src.run_with(Sink.for_each(got.append))
    return got, info.value


@pytest.mark.parametrize(
    "build, stage, before",
    [
        (lambda s: s.scan(0, lambda a, x: a + boom_at(3)(x)), "scan", [0, 1, 3]),
        (lambda s: s.fold(0, lambda a, x: a + boom_at(3)(x)), "fold", []),
        (lambda s: s.reduce(lambda a, x: a + boom_at(3)(x)), "reduce", []),
        (lambda s: s.take_while(lambda x: boom_at(3)(x) < 9), "take_while", [1, 2]),
        (lambda s: s.drop_while(lambda x: boom_at(3)(x) < 4), "drop_while", []),
        (lambda s: s.inspect(boom_at(3)), "inspect", [1, 2]),
    ],
)
def test_a_raising_function_fails_its_stage_on_the_element_after_the_output_before_it(build, stage, before):
    got, err = partial(build(Source.from_iter([1, 2, 3, 4])))
    assert got == before
    assert err.stage_name == stage
    assert err.element == 3
    assert "failed on element 3: Boom: boom at 3" in str(err)
    assert isinstance(err.__cause__, Boom)


@pytest.mark.parametrize(
    "build, want, stage",
    [
        (lambda s: s.scan(0, lambda a, x: a + boom_at(3)(x)), [0, 1, 3, 7], "scan"),
        (lambda s: s.fold(0, lambda a, x: a + boom_at(3)(x)), [7], "fold"),
        (lambda s: s.take_while(lambda x: boom_at(3)(x) < 9), [1, 2, 4], "take_while"),
        (lambda s: s.drop_while(lambda x: boom_at(3)(x) < 4), [4], "drop_while"),
        (lambda s: s.inspect(boom_at(3)), [1, 2, 4], "inspect"),
    ],
)
def test_resume_dead_letters_the_element_and_keeps_the_state(build, want, stage):
    dead = []
    src = build(Source.from_iter([1, 2, 3, 4])).with_supervision([(Boom, "resume")], dead_letters=dead)
    assert src.run_with(Sink.collect()) == want
    assert [(d.element, type(d.error), d.stage.split("#")[0]) for d in dead] == [(3, Boom, stage)]


def test_inspect_on_complete_failing_fails_the_stage_after_every_element():
    def done():
        raise Boom("done")

    got, err = partial(Source.from_iter([1, 2]).inspect(lambda x: None, on_complete=done))
    assert got == [1, 2]
    assert err.stage_name == "inspect"
    assert isinstance(err.__cause__, Boom)


def test_merge_sorted_fails_on_an_incomparable_element_after_what_it_merged():
    got, err = partial(Source.from_iter([1, 4, "x"]).merge_sorted(Source.from_iter([2, 3, 5])))
    assert got == [1, 2, 3, 4]
    assert err.stage_name == "merge_sorted"
    assert err.element == 5
    assert isinstance(err.__cause__, TypeError)


def test_recover_function_raising_fails_with_its_exception():
    def recover(e):
        raise Boom(f"cannot recover {type(e).__name__}")

    got, err = partial(Source.from_iter([1, 2, 3]).map(boom_at(3, ValueError)).recover(recover))
    assert got == [1, 2]
    assert err.stage_name == "recover"
    assert str(err.__cause__) == "cannot recover ValueError"


def test_copying_operators_hand_out_the_same_objects_and_never_take_the_gil_on_a_worker():
    before = _native._gil_on_workers()
    items = [object() for _ in range(5)]
    tapped = []
    out = Source.from_iter(items).also_to(Sink.for_each(tapped.append)).run_with(Sink.collect())
    assert out == items and tapped == items
    windows = Source.from_iter(items).sliding(2, 1).run_with(Sink.collect())
    assert windows == [items[i : i + 2] for i in range(4)]
    assert all(a is b for w, i in zip(windows, range(4)) for a, b in zip(w, items[i : i + 2]))
    pairs = Source.from_iter(items).zip(Source.from_iter("abcde")).run_with(Sink.collect())
    assert pairs == list(zip(items, "abcde"))
    assert Source.from_iter(items).grouped(2).run_with(Sink.collect()) == [items[0:2], items[2:4], items[4:]]
    assert _native._gil_on_workers() == before
