"""Keyed processing-time windows from Python: ``key_by(f).window(..., processing_time=True)``
over the Rust operator (windows on the run's clock, fired by its timers), checked on the virtual
clock with the time each result arrived at."""

import pytest

import weir
from weir import testing
from weir import Session, Sliding, Tumbling


def start(tail):
    clock = testing.VirtualClock()
    src, sink = clock.start(tail(testing.probe_source()).to(testing.probe_sink(), keep="both")).materialized
    sink.request(1000)
    return clock, src, sink


def test_tumbling_sum_fires_when_the_clock_reaches_the_window_end_and_the_rest_at_completion():
    clock, src, sink = start(
        lambda s: s.key_by(lambda e: e[0]).window(Tumbling(1.0), processing_time=True).sum(lambda e: e[1])
    )
    clock.advance_to(0.1)
    src.offer_all([("a", 1), ("b", 2)])
    clock.advance_to(0.5)
    src.offer(("a", 3))
    clock.advance_to(1.2)
    src.offer(("a", 4))
    clock.advance_to(2.5)
    src.offer(("b", 5))
    clock.advance_to(2.6)
    assert sink.received() == [
        (1.0, "next", ("a", 0.0, 1.0, 4)),
        (1.0, "next", ("b", 0.0, 1.0, 2)),
        (2.0, "next", ("a", 1.0, 2.0, 4)),
    ]
    src.complete()
    assert sink.received() == [(2.6, "next", ("b", 2.0, 3.0, 5)), (2.6, "complete", None)]


def test_sliding_count_and_session_process_on_the_clock():
    clock, src, sink = start(
        lambda s: s.key_by(lambda e: e).window(Sliding(1.0, 0.5), processing_time=True).count()
    )
    clock.advance_to(0.6)
    src.offer("k")
    clock.advance_to(1.2)
    src.offer("k")
    clock.advance_to(3.0)
    assert sink.received() == [
        (1.0, "next", ("k", 0.0, 1.0, 1)),
        (1.5, "next", ("k", 0.5, 1.5, 2)),
        (2.0, "next", ("k", 1.0, 2.0, 1)),
    ]
    src.complete()
    assert sink.received() == [(3.0, "complete", None)]

    clock, src, sink = start(
        lambda s: s.key_by(lambda e: e[0])
        .window(Session(0.5), processing_time=True)
        .process(lambda k, start, end, xs: [x[1] for x in xs])
    )
    clock.advance_to(0.1)
    src.offer(("a", 1))
    clock.advance_to(0.4)
    src.offer(("a", 2))
    clock.advance_to(2.0)
    src.offer(("a", 3))
    clock.advance_to(2.1)
    assert sink.received() == [(0.9, "next", ("a", 0.1, 0.9, [1, 2]))]
    src.complete()
    assert sink.received() == [(2.1, "next", ("a", 2.0, 2.5, [3])), (2.1, "complete", None)]


def test_a_failing_key_function_names_the_stage_and_the_element():
    clock, src, sink = start(
        lambda s: s.key_by(lambda e: 1 // e).window(Tumbling(1.0), processing_time=True).count()
    )
    src.offer_all([1, 0])
    err = sink.expect_error(weir.StageFailed)
    assert err.stage_name == "key_by"
    assert err.element == 0
    assert isinstance(err.__cause__, ZeroDivisionError)


def test_lateness_does_not_apply_to_processing_time():
    with pytest.raises(ValueError, match="processing_time=True"):
        weir.Source.from_iter([1]).key_by(lambda e: e).window(Tumbling(1.0), processing_time=True, allowed_lateness=1.0)
    with pytest.raises(TypeError, match="expected Tumbling"):
        weir.Source.from_iter([1]).key_by(lambda e: e).window(1.0, processing_time=True)
