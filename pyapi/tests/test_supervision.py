"""Supervision never loses accepted elements: under ``resume`` and ``restart`` every element of a
batch is emitted or dead-lettered (the failing one), whatever the batch size and whether the
stages are fused or separated by boundaries; ``restart`` resets a stage's state for the rest of
the batch; under ``stop`` what came before the failing element arrives first."""

import pytest
from helpers import Boom, boom_at

import weir
from weir import Sink, Source

SIZES = (1, 3, 1024)
DIRECTIVES = ("resume", "restart")


def sup(directive, dead):
    return lambda s: s.with_supervision([(Boom, directive)], dead_letters=dead)


def letters(dead):
    return [(d.element, type(d.error), d.stage.split("#")[0]) for d in dead]


@pytest.mark.parametrize("directive", DIRECTIVES)
@pytest.mark.parametrize("batch", SIZES)
@pytest.mark.parametrize("shape", ["fused", "boundary", "rust_stage_after"])
def test_map_failing_mid_batch_keeps_the_rest(directive, batch, shape):
    dead = []
    src = Source.from_iter(range(10))
    if shape == "boundary":
        src = src.async_boundary()
    src = sup(directive, dead)(src.map(boom_at(2)))
    if shape == "rust_stage_after":
        src = src.take(100)
    assert src.run_with(Sink.collect(), batch_size=batch) == [0, 1, 3, 4, 5, 6, 7, 8, 9]
    assert letters(dead) == [(2, Boom, "map")]


@pytest.mark.parametrize("directive", DIRECTIVES)
@pytest.mark.parametrize("batch", SIZES)
def test_element_wise_ops_keep_the_rest(directive, batch):
    def pred(x):
        boom_at(2)(x)
        return x % 3 != 0

    cases = [
        (lambda s: s.filter(pred), range(8), [1, 4, 5, 7], "filter"),
        (lambda s: s.flat_map(lambda x: [boom_at(2)(x)] * 2), range(4), [0, 0, 1, 1, 3, 3], "flat_map"),
        (lambda s: s.drop_while(lambda x: not pred(x) or x < 4), range(8), [4, 5, 6, 7], "drop_while"),
    ]
    for apply, data, want, name in cases:
        dead = []
        got = sup(directive, dead)(apply(Source.from_iter(data))).run_with(Sink.collect(), batch_size=batch)
        assert (name, got) == (name, want)
        assert letters(dead) == [(2, Boom, name)]


@pytest.mark.parametrize("batch", SIZES)
def test_restart_starts_scan_over_from_its_seed(batch):
    def add(a, x):
        if x == 3:
            raise Boom("three")
        return a + x

    run = lambda d: Source.from_iter(range(1, 7)).scan(0, add).with_supervision([(Boom, d)]).run_with(
        Sink.collect(), batch_size=batch
    )
    # A restarted scan emits its seed again, as Akka's does (and the Rust operator).
    assert run("restart") == [0, 1, 3, 0, 4, 9, 15]
    assert run("resume") == [0, 1, 3, 7, 12, 18]


@pytest.mark.parametrize("batch", SIZES)
def test_fold_resume_keeps_and_restart_resets_the_accumulator(batch):
    def add(a, x):
        return a + boom_at(2)(x)

    run = lambda d: Source.from_iter(range(10)).fold(0, add).with_supervision([(Boom, d)]).run_with(
        Sink.collect(), batch_size=batch
    )
    assert run("resume") == [43]
    assert run("restart") == [42]


@pytest.mark.parametrize("batch", SIZES)
def test_keyed_fold_restart_clears_every_key_and_goes_on(batch):
    def add(a, x):
        return a + boom_at(2)(x)

    for directive, odd in (("resume", 25), ("restart", 24)):
        got = (
            Source.from_iter(range(10))
            .key_by(lambda x: x % 2)
            .fold(0, add)
            .with_supervision([(Boom, directive)])
            .run_with(Sink.collect(), batch_size=batch)
        )
        assert sorted(got) == [(0, 18), (1, odd)]


@pytest.mark.parametrize("batch", SIZES)
def test_stop_delivers_what_came_before_the_failing_element(batch):
    got = []
    with pytest.raises(weir.StageFailed) as info:
        Source.from_iter(range(10)).map(boom_at(2)).async_boundary().run_with(
            Sink.for_each(got.append), batch_size=batch
        )
    assert got == [0, 1]
    assert isinstance(info.value.__cause__, Boom)


@pytest.mark.parametrize("directive", DIRECTIVES)
@pytest.mark.parametrize("batch", SIZES)
def test_sinks_keep_the_rest(directive, batch):
    got, dead = [], []
    sink = Sink.for_each(lambda x: got.append(boom_at(2)(x))).with_supervision([(Boom, directive)], dead_letters=dead)
    Source.from_iter(range(6)).map(lambda x: x).run_with(sink, batch_size=batch)
    assert got == [0, 1, 3, 4, 5]
    assert letters(dead) == [(2, Boom, "for_each")]
    total = Source.from_iter(range(6)).run_with(
        Sink.fold(0, lambda a, x: a + boom_at(2)(x)).with_supervision([(Boom, directive)]), batch_size=batch
    )
    assert total == 13
