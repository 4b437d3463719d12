"""Errors surface with the stage name and the original exception; supervision by class."""

import traceback

import pytest

import weir


def boom(x):
    if x == 7:
        raise ValueError(f"bad element {x}")
    return x


def test_error_carries_stage_and_cause():
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).map(boom, name="checker").run_with(weir.Sink.collect())
    err = info.value
    assert err.stage_name == "checker"
    assert err.stage.startswith("checker#")
    assert "checker" in str(err)
    assert err.element == 7
    assert "failed on element 7: ValueError" in str(err)
    assert isinstance(err.__cause__, ValueError)
    assert "bad element 7" in str(err.__cause__)
    tb = "".join(traceback.format_tb(err.__cause__.__traceback__))
    assert "boom" in tb  # the user function's frame is kept


def test_error_in_unfused_stage_and_sink():
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).async_boundary().filter(lambda x: 1 / (x - 3)).run_with(weir.Sink.ignore())
    assert info.value.stage_name == "filter"
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).run_with(weir.Sink.fold(0, lambda a, x: a + 1 / (x - 5)))
    assert info.value.stage_name == "fold"


def test_supervision_resume_by_class_with_dead_letters():
    dead = []
    out = (
        weir.Source.range(10)
        .map(boom, supervision=[(ValueError, "resume")], default="stop", dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    assert out == [0, 1, 2, 3, 4, 5, 6, 8, 9]
    assert len(dead) == 1
    d = dead[0]
    assert d.element == 7 and isinstance(d.error, ValueError) and d.stage.startswith("map#")


def test_error_names_a_huge_element_briefly():
    big = list(range(100_000))
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.single(big).map(lambda xs: xs[-1] / 0).run_with(weir.Sink.collect())
    assert info.value.element is big
    assert len(str(info.value)) < 300
    assert "failed on element [0, 1, 2" in str(info.value)


def test_supervision_other_class_stops():
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).map(boom, supervision=[(KeyError, "resume")]).run_with(weir.Sink.collect())
    assert isinstance(info.value.__cause__, ValueError)


def test_with_supervision_and_callback_dead_letters():
    seen = []
    out = (
        weir.Source.range(6)
        .map(lambda x: 10 // (x % 3))
        .with_supervision([(ZeroDivisionError, "resume")], dead_letters=lambda e, err, st: seen.append((e, type(err))))
        .run_with(weir.Sink.collect())
    )
    assert out == [10, 5, 10, 5]
    assert seen == [(0, ZeroDivisionError), (3, ZeroDivisionError)]


def test_source_iterator_error():
    def gen():
        yield 1
        raise RuntimeError("source broke")

    with pytest.raises(weir.StageFailed) as info:
        weir.Source.from_iter(_Reiter(gen)).run_with(weir.Sink.collect())
    assert isinstance(info.value.__cause__, RuntimeError)


class _Reiter:
    def __init__(self, g):
        self.g = g

    def __iter__(self):
        return self.g()
