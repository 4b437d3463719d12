"""weir.testing: probes and the virtual clock, and the exact timing of the time operators."""

import pytest

import weir
from weir import testing
from weir.testing import VirtualClock, probe_sink, probe_source


def rig(flow_of):
    """probe source -> flow_of(source) -> probe sink on a fresh virtual clock."""
    clock = VirtualClock()
    run = clock.start(flow_of(probe_source()).to(probe_sink(), keep="both"))
    src, sink = run.materialized
    return clock, run, src, sink


def timeline(sink):
    """What arrived, as (ms, kind, value) with the failure's kind for errors."""
    out = []
    for t, kind, value in sink.received():
        if kind == "error":
            value = (type(value).__name__, getattr(value, "kind", None))
        out.append((round(t * 1000, 6), kind, value))
    return out


# --- probes -------------------------------------------------------------------------------


def test_probes_drive_a_python_stage_element_by_element():
    clock, run, src, sink = rig(lambda s: s.map(lambda x: x * 10))
    sink.request(2)
    src.offer(1)
    src.offer(2)
    src.offer(3)
    assert sink.expect_next(10) == 10
    assert sink.expect_next() == 20
    sink.expect_no_element(1.0)  # 30 is there, but not requested
    sink.request(1)
    sink.expect_next(30)
    src.complete()
    sink.expect_complete()
    assert run.result() == (src, sink)


def test_the_sink_takes_only_what_was_requested():
    clock, run, src, sink = rig(lambda s: s)
    src.offer_all([1, 2, 3, 4, 5])
    sink.expect_no_element()
    sink.request(3)
    assert sink.expect_next_n([1, 2, 3]) == [1, 2, 3]
    sink.expect_no_element()
    sink.request(10)
    assert sink.expect_next_n(2) == [4, 5]
    src.complete()
    sink.expect_complete()


def test_the_stage_in_front_of_the_sink_sees_exactly_the_requested_demand():
    clock, run, src, sink = rig(lambda s: s)
    src.offer_all(list(range(10)))
    assert src.delivered() == 0
    sink.request(3)
    assert sink.expect_next_n(3) == [0, 1, 2]
    assert src.delivered() == 3
    sink.request(1)
    sink.expect_next(3)
    assert src.delivered() == 4


def test_completion_is_seen_without_demand():
    clock, run, src, sink = rig(lambda s: s)
    src.complete()
    sink.expect_complete(at=0.0)
    run.result()


def test_a_failed_source_fails_the_sink_and_the_run():
    clock, run, src, sink = rig(lambda s: s.map(lambda x: x + 1))
    sink.request(5)
    src.offer(1)
    src.fail(ValueError("bad input"))
    assert sink.expect_next() == 2
    err = sink.expect_error(weir.StageFailed)
    assert isinstance(err.__cause__, ValueError)
    assert "bad input" in str(err)
    with pytest.raises(weir.StageFailed):
        run.result()


def test_cancelling_the_sink_cancels_the_source():
    clock, run, src, sink = rig(lambda s: s)
    assert not src.is_cancelled()
    sink.cancel()
    src.expect_cancellation()
    assert run.done()


def test_expectations_fail_with_what_arrived():
    clock, run, src, sink = rig(lambda s: s)
    sink.request(1)
    with pytest.raises(AssertionError, match="got nothing"):
        sink.expect_next()
    src.offer("a")
    with pytest.raises(AssertionError, match="expected 'b', got 'a'"):
        sink.expect_next("b")
    src.offer("c")
    sink.request(1)
    with pytest.raises(AssertionError, match="expected no signal, got next 'c'"):
        sink.expect_no_element(0.5)
    src.complete()
    with pytest.raises(AssertionError, match="came at t=0.5s"):
        sink.expect_complete(at=0.0)


def test_request_rejects_a_negative_count():
    clock, run, src, sink = rig(lambda s: s)
    with pytest.raises(ValueError, match="request"):
        sink.request(-1)


def test_advance_rejects_negative_time():
    with pytest.raises(ValueError):
        VirtualClock().advance(-1)


def test_start_takes_a_runnable_graph():
    with pytest.raises(TypeError):
        VirtualClock().start(probe_source())


# --- exact timing of the time operators ------------------------------------------------------


def test_grouped_within_timer_windows():
    clock, run, src, sink = rig(lambda s: s.grouped_within(3, 1.0))
    sink.request(100)
    clock.advance_to(0.2)
    src.offer(1)
    clock.advance_to(0.5)
    src.offer(2)
    clock.advance_to(1.5)
    # The window opened at the start, not with the first element.
    assert timeline(sink) == [(1000, "next", [1, 2])]
    src.offer_all([3, 4, 5])
    sink.expect_next([3, 4, 5], at=1.5)
    # Restarted at 1.5: fires empty at 2.5 (no empty group), next at 3.5.
    clock.advance_to(3.0)
    src.offer(6)
    sink.expect_no_element(0.499)
    clock.advance_to(3.6)
    sink.expect_next([6], at=3.5)
    src.offer(7)
    src.complete()
    sink.expect_next([7], at=3.6)
    sink.expect_complete(at=3.6)
    run.result()


def test_throttle_burst_zero_spaces_every_element():
    clock, run, src, sink = rig(lambda s: s.throttle(1, 0.1))
    sink.request(100)
    src.offer_all([1, 2, 3])
    src.complete()
    clock.advance(1.0)
    assert timeline(sink) == [
        (100, "next", 1),
        (200, "next", 2),
        (300, "next", 3),
        (300, "complete", None),
    ]
    run.result()


def test_throttle_burst_passes_then_shapes_then_refills():
    clock, run, src, sink = rig(lambda s: s.throttle(1, 0.1, burst=2))
    sink.request(100)
    src.offer_all([1, 2, 3, 4])
    clock.advance_to(1.0)
    src.offer_all([5, 6, 7])
    clock.advance_to(2.0)
    assert timeline(sink) == [
        (0, "next", 1),
        (0, "next", 2),
        (100, "next", 3),
        (200, "next", 4),
        (1000, "next", 5),
        (1000, "next", 6),
        (1100, "next", 7),
    ]


def test_throttle_enforcing_fails_when_upstream_is_too_fast():
    clock, run, src, sink = rig(lambda s: s.throttle(1, 0.1, burst=1, mode="enforcing"))
    sink.request(100)
    src.offer(1)
    clock.advance_to(0.1)
    src.offer(2)
    clock.advance_to(0.15)
    src.offer(3)
    sink.expect_next(1, at=0.0)
    sink.expect_next(2, at=0.1)
    err = sink.expect_error(weir.StageFailed, at=0.15)
    assert "maximum throughput exceeded" in str(err)
    with pytest.raises(weir.StageFailed, match="exceeded"):
        run.result()


def test_throttle_rejects_an_unknown_mode():
    with pytest.raises(ValueError, match="enforcing"):
        weir.Flow.create().throttle(1, 1.0, mode="strict")


def test_delay_shifts_by_exactly_the_delay():
    clock, run, src, sink = rig(lambda s: s.delay(0.3))
    sink.request(100)
    src.offer("a")
    clock.advance_to(0.1)
    src.offer_all(["b", "c"])
    src.complete()
    clock.advance_to(1.0)
    assert timeline(sink) == [
        (300, "next", "a"),
        (400, "next", "b"),
        (400, "next", "c"),
        (400, "complete", None),
    ]
    run.result()


def test_idle_timeout_fails_exactly_after_the_quiet_period():
    clock, run, src, sink = rig(lambda s: s.idle_timeout(0.5))
    sink.request(100)
    clock.advance_to(0.2)
    src.offer(1)
    clock.advance_to(0.6)
    src.offer(2)
    clock.advance_to(2.0)
    assert timeline(sink) == [
        (200, "next", 1),
        (600, "next", 2),
        (1100, "error", ("StageFailed", "timeout")),
    ]
    with pytest.raises(weir.StageFailed, match="idle_timeout"):
        run.result()


def test_completion_and_initial_timeouts():
    clock, run, src, sink = rig(lambda s: s.completion_timeout(1.0))
    sink.request(100)
    clock.advance_to(0.9)
    src.offer(1)
    clock.advance_to(2.0)
    assert timeline(sink) == [(900, "next", 1), (1000, "error", ("StageFailed", "timeout"))]

    clock, run, src, sink = rig(lambda s: s.initial_timeout(0.5))
    sink.request(100)
    clock.advance_to(0.499)
    src.offer(1)
    clock.advance_to(5.0)
    src.complete()
    assert timeline(sink) == [(499, "next", 1), (5000, "complete", None)]

    clock, run, src, sink = rig(lambda s: s.initial_timeout(0.5))
    sink.request(1)
    clock.advance(1.0)
    err = sink.expect_error(weir.StageFailed, at=0.5)
    assert err.kind == "timeout"


def test_keep_alive_injects_after_each_quiet_period():
    clock, run, src, sink = rig(lambda s: s.keep_alive(0.3, "ping"))
    sink.request(100)
    clock.advance_to(0.1)
    src.offer("a")
    clock.advance_to(0.8)
    src.offer("b")
    clock.advance_to(1.2)
    src.complete()
    assert timeline(sink) == [
        (100, "next", "a"),
        (400, "next", "ping"),
        (700, "next", "ping"),
        (800, "next", "b"),
        (1100, "next", "ping"),
        (1200, "complete", None),
    ]
    run.result()


def test_grouped_within_keeps_filling_a_due_group_until_downstream_demands():
    clock, run, src, sink = rig(lambda s: s.grouped_within(3, 0.1))
    clock.advance_to(0.01)
    src.offer(1)
    # 100 ms: the timer fires without demand; the group stays open and takes 2.
    clock.advance_to(0.15)
    src.offer(2)
    sink.expect_no_element(0.05)
    sink.request(1)
    sink.expect_next([1, 2], at=0.2)
    # Restarted at 200 ms; full at 350 ms without demand, it waits and takes nothing more.
    clock.advance_to(0.35)
    src.offer_all([3, 4, 5, 6])
    sink.expect_no_element(0.05)
    sink.request(10)
    sink.expect_next([3, 4, 5], at=0.4)
    clock.advance_to(0.6)
    assert timeline(sink) == [(500, "next", [6])]
    src.complete()
    sink.expect_complete(at=0.6)
    run.result()


def test_initial_delay_emits_the_held_elements_before_an_upstream_failure():
    clock, run, src, sink = rig(lambda s: s.initial_delay(0.5))
    sink.request(100)
    src.offer_all([1, 2])
    clock.advance_to(0.1)
    src.fail(ValueError("boom"))
    sink.expect_no_element(0.399)
    clock.advance_to(0.6)
    got = timeline(sink)
    assert got[:2] == [(500, "next", 1), (500, "next", 2)]
    assert [(t, kind) for t, kind, _ in got[2:]] == [(500, "error")]
    with pytest.raises(weir.StageFailed):
        run.result()


def test_initial_delay_holds_the_stream_back():
    clock, run, src, sink = rig(lambda s: s.initial_delay(0.5))
    sink.request(100)
    src.offer(1)
    clock.advance_to(0.1)
    src.offer(2)
    sink.expect_no_element(0.399)
    clock.advance_to(0.6)
    src.offer(3)
    src.complete()
    assert timeline(sink) == [
        (500, "next", 1),
        (500, "next", 2),
        (600, "next", 3),
        (600, "complete", None),
    ]
    run.result()


def test_tick_keeps_its_rate_for_a_ready_consumer():
    clock = VirtualClock()
    run = clock.start(weir.Source.tick(0, 0.001, "t").to(probe_sink(), keep="right"))
    sink = run.materialized
    sink.request(1000)
    clock.advance(0.010)
    got = timeline(sink)
    assert [t for t, _, _ in got] == [float(ms) for ms in range(11)]
    assert {v for _, _, v in got} == {"t"}
    run.cancel()
    assert run.done()
    with pytest.raises(weir.RunCancelled):
        run.result()


def test_tick_drops_the_ticks_that_found_no_demand():
    clock = VirtualClock()
    run = clock.start(weir.Source.tick(0, 0.001, "t").to(probe_sink(), keep="right"))
    sink = run.materialized
    clock.advance(0.005)
    assert timeline(sink) == []
    # The ticks of 0 to 4 ms found no demand and were dropped (none queued in front of the
    # sink); the tick of 5 ms goes out at once, then one per ms, exactly as requested.
    sink.request(3)
    clock.advance(0.005)
    assert timeline(sink) == [(5.0, "next", "t"), (6.0, "next", "t"), (7.0, "next", "t")]
    clock.advance(0.0105)
    sink.request(2)
    clock.advance(0.003)
    assert timeline(sink) == [(21.0, "next", "t"), (22.0, "next", "t")]
    run.cancel()
    assert run.done()
    with pytest.raises(weir.RunCancelled):
        run.result()


def test_time_moves_only_when_the_test_moves_it():
    clock, run, src, sink = rig(lambda s: s.delay(10.0))
    sink.request(1)
    src.offer(1)
    clock.settle()
    assert clock.now() == 0.0
    assert clock.pending_timers() >= 1
    clock.advance(9.999)
    sink.expect_no_element()
    clock.advance(0.001)
    sink.expect_next(1, at=10.0)


def test_module_exports():
    assert set(testing.__all__) >= {"VirtualClock", "probe_source", "probe_sink", "SinkProbe", "SourceProbe"}


def test_an_ordinary_sink_on_the_virtual_clock_resolves_its_result():
    clock = VirtualClock()
    run = clock.start(probe_source().delay(1.0).map(lambda x: x * 2).to(weir.Sink.collect(), keep="both"))
    src, _ = run.materialized
    src.offer_all([1, 2, 3])
    src.complete()
    clock.advance(0.999)
    with pytest.raises(AssertionError, match="still going"):
        run.result()
    clock.advance(0.001)
    assert run.result()[1] == [2, 4, 6]
