"""Source.maybe / never / lazy, Sink.lazy, watch_termination and log: completion, failure and
cancellation."""

import logging

import pytest

import weir
from weir import Sink, Source

from helpers import Boom


def test_maybe_success_empty_and_dropped_handle():
    h = Source.maybe().map(lambda x: x * 2).to(Sink.collect(), "both").start()
    handle, _ = h.materialized
    assert isinstance(handle, weir.MaybeHandle)
    assert not handle.is_completed()
    assert handle.success(21)
    assert not handle.success(22)
    assert h.wait(timeout=30)[1] == [42]
    assert handle.is_completed()

    h = Source.maybe().to(Sink.collect(), "both").start()
    handle, _ = h.materialized
    assert handle.empty()
    assert h.wait(timeout=30)[1] == []

    # keep="right" drops the handle: the source completes without an element.
    assert Source.maybe().run_with(Sink.collect()) == []


def test_maybe_fail_and_cancel():
    h = Source.maybe().to(Sink.collect(), "both").start()
    handle, _ = h.materialized
    assert handle.fail(Boom("no value"))
    with pytest.raises(weir.StageFailed) as ei:
        h.wait(timeout=30)
    assert isinstance(ei.value.__cause__, Boom)

    h = Source.maybe().to(Sink.collect(), "both").start()
    handle, _ = h.materialized
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)
    assert handle.is_stopped()
    assert not handle.success(1)


def test_never_ends_only_by_cancellation():
    h = Source.never().to(Sink.collect(), "right").start()
    with pytest.raises(TimeoutError):
        h.wait(timeout=0.2)
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)
    got = Source.never().merge(Source.from_iter([1, 2])).take(2).run_with(Sink.collect())
    assert sorted(got) == [1, 2]


def test_lazy_source_is_built_per_run_and_materializes_the_inner_value():
    calls = []

    def make():
        calls.append(1)
        return Source.from_iter([1, 2, 3]).watch_termination()

    src = Source.lazy(make)
    assert calls == []
    inner, out = src.to(Sink.collect(), "both").run()
    assert out == [1, 2, 3]
    # run() resolves the lazy source's completion: the inner value is the watch's Completion.
    assert isinstance(inner, weir.SinkFuture)
    assert inner.result() == "completed"
    assert calls == [1]
    assert src.map(lambda x: -x).run_with(Sink.collect()) == [-1, -2, -3]
    assert calls == [1, 1]


def test_lazy_source_factory_errors_and_inner_failure():
    def bad():
        raise Boom("no connection")

    with pytest.raises(weir.StageFailed) as ei:
        Source.lazy(bad).run_with(Sink.collect())
    assert isinstance(ei.value.__cause__, Boom)
    assert ei.value.stage_name == "lazy_source"
    with pytest.raises(weir.StageFailed, match="must return a Source"):
        Source.lazy(lambda: Sink.collect()).run_with(Sink.collect())
    with pytest.raises(weir.StageFailed) as ei:
        Source.lazy(lambda: Source.failed(Boom("inner"))).run_with(Sink.collect())
    assert isinstance(ei.value.__cause__, Boom)


def test_lazy_source_cancellation_reaches_the_inner_source():
    watched = []

    def make():
        src = Source.repeat(7).watch_termination()
        watched.append(src)
        return src

    inner, out = Source.lazy(make).take(3).to(Sink.collect(), "both").run()
    assert out == [7, 7, 7]
    assert inner.result() == "cancelled"


def test_lazy_sink_built_on_first_element():
    calls = []

    def make():
        calls.append(1)
        return Sink.collect()

    inner = Source.from_iter([1, 2]).run_with(Sink.lazy(make))
    assert isinstance(inner, weir.SinkFuture)
    assert inner.result() == [1, 2]
    assert calls == [1]
    with pytest.raises(weir.RunCancelled, match="never materialized"):
        Source.empty().run_with(Sink.lazy(make))
    assert calls == [1]


def test_lazy_sink_failure_and_cancellation():
    inner = Source.failed(Boom("up")).to(Sink.lazy(Sink.collect), "right")
    with pytest.raises(weir.StageFailed) as ei:
        inner.run()
    assert isinstance(ei.value.__cause__, Boom)
    # The inner head cancels: the infinite upstream stops and the run ends.
    watched, inner = Source.repeat(5).watch_termination().to(Sink.lazy(Sink.head), "both").run()
    assert inner.result() == 5
    assert watched == "cancelled"
    with pytest.raises(weir.StageFailed, match="must return a Sink"):
        Source.single(1).run_with(Sink.lazy(lambda: Source.single(1)))


def test_watch_termination_completed_failed_cancelled():
    assert Source.from_iter([1, 2]).watch_termination().to(Sink.collect(), "both").run() == ("completed", [1, 2])
    with pytest.raises(weir.StageFailed):
        Source.failed(Boom("x")).watch_termination().to(Sink.collect(), "left").run()
    h = Source.failed(Boom("x")).watch_termination().to(Sink.ignore(), "left").start()
    with pytest.raises(weir.StageFailed):
        h.wait(timeout=30)
    with pytest.raises(weir.StageFailed) as ei:
        h._n.materialized.result()
    assert isinstance(ei.value.__cause__, Boom)
    got = Source.repeat(1).watch_termination().take(2).to(Sink.collect(), "both").run()
    assert got == ("cancelled", [1, 1])
    # keep="both" pairs it with the upstream's value.
    h = Source.maybe().watch_termination(keep="both").to(Sink.collect(), "both").start()
    (handle, _), _ = h.materialized
    assert handle.success("m")
    (_, watched), out = h.wait(timeout=30)
    assert (watched, out) == ("completed", ["m"])


def test_log_elements_completion_and_failure(caplog):
    caplog.set_level(logging.DEBUG, logger="weir")
    out = Source.from_iter([1, "a"]).log("nums", "INFO").run_with(Sink.collect())
    assert out == [1, "a"]
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "[nums] element: 1"),
        ("INFO", "[nums] element: 'a'"),
        ("INFO", "[nums] upstream completed"),
    ]
    caplog.clear()
    with pytest.raises(weir.StageFailed):
        Source.failed(Boom("cut")).log("f", logging.DEBUG).run_with(Sink.collect())
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [("ERROR", "[f] upstream failed: cut")]
    with pytest.raises(ValueError):
        Source.single(1).log("x", "LOUD")
