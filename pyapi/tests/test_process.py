"""Keyed process functions from Python: ``key_by(f).process(on_element, on_timer)`` over the
Rust keyed process stage (per-key state, event-time timers on the watermark, processing-time
timers on the run's clock), checked on the virtual clock with exact output."""

import pytest

import weir
from weir import testing
from weir import Monotonous


def start(tail):
    clock = testing.VirtualClock()
    src, sink = clock.start(tail(testing.probe_source()).to(testing.probe_sink(), keep="both")).materialized
    sink.request(1000)
    return clock, src, sink


def counting(src):
    def on_element(e, ctx):
        ctx.set_state((ctx.state or 0) + 1)
        ctx.register_event_timer(e[1] + 0.01)
        ctx.register_processing_timer(ctx.processing_time + 0.1)

    def on_timer(t, kind, ctx):
        ctx.emit((ctx.key, kind, round(t, 3), ctx.state))

    return src.assign_timestamps(lambda e: e[1], Monotonous()).key_by(lambda e: e[0]).process(on_element, on_timer)


def test_event_timers_fire_on_the_watermark_processing_timers_on_the_clock_and_pending_event_timers_at_the_end():
    clock, src, sink = start(counting)
    src.offer(("a", 0.001))
    clock.advance_to(0.05)
    src.offer(("b", 0.005))
    clock.advance_to(0.12)
    src.offer(("a", 0.02))
    clock.advance_to(0.25)
    assert sink.received() == [
        (0.1, "next", ("a", "processing", 0.1, 1)),
        (0.12, "next", ("a", "event", 0.011, 2)),
        (0.12, "next", ("b", "event", 0.015, 1)),
        (0.15, "next", ("b", "processing", 0.15, 1)),
        (0.22, "next", ("a", "processing", 0.22, 2)),
    ]
    src.complete()
    assert sink.received() == [(0.25, "next", ("a", "event", 0.03, 2)), (0.25, "complete", None)]


def test_state_is_per_key_and_clear_state_forgets_it():
    def on_element(x, ctx):
        if x < 0:
            ctx.clear_state()
            return
        total = (ctx.state or 0) + x
        ctx.set_state(total)
        ctx.emit((ctx.key, total))

    out = weir.Source.from_iter([1, 2, 3, 4, -2, 6]).key_by(lambda x: abs(x) % 2).process(on_element).run_with(
        weir.Sink.collect()
    )
    assert out == [(1, 1), (0, 2), (1, 4), (0, 6), (0, 6)]


def test_an_exception_names_the_stage_and_the_element_after_what_was_emitted():
    def on_element(x, ctx):
        ctx.emit(x)
        if x == 3:
            raise ValueError("three")

    clock, src, sink = start(lambda s: s.key_by(lambda x: x % 2).process(on_element))
    src.offer_all([1, 2, 3, 4])
    sink.expect_next(1)
    sink.expect_next(2)
    sink.expect_next(3)
    err = sink.expect_error(weir.StageFailed)
    assert err.stage_name == "keyed_process"
    assert err.element == 3
    assert isinstance(err.__cause__, ValueError)


def test_a_context_kept_past_its_call_raises():
    kept = []

    def on_element(x, ctx):
        kept.append(ctx)

    weir.Source.from_iter([1]).key_by(lambda x: x).process(on_element).run_with(weir.Sink.ignore())
    with pytest.raises(RuntimeError, match="only valid during the call"):
        kept[0].emit(1)
