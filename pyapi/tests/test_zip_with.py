"""`Source.zip_with` / `ZipWith`: the n-th elements combined by a function, with supervision."""

import pytest

import weir


def _f(a, b):
    if b == 5:
        raise ValueError("bad pair")
    return a * 10 + b


def _run(default):
    out = []
    src = weir.Source.from_iter([1, 2, 3]).zip_with(weir.Source.from_iter([4, 5, 6]), _f, default=default)
    src.to(weir.Sink.for_each(out.append)).run()
    return out


def test_resume_drops_only_the_failing_pair():
    assert _run("resume") == [14, 36]


def test_stop_fails_after_the_pairs_before():
    out = []
    src = weir.Source.from_iter([1, 2, 3]).zip_with(weir.Source.from_iter([4, 5, 6]), _f)
    with pytest.raises(Exception, match="bad pair"):
        src.to(weir.Sink.for_each(out.append)).run()
    assert out == [14]
