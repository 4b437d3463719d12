"""Event time and keyed event-time windows from Python: ``assign_timestamps`` and
``key_by(f).window(...)`` over the Rust window operators (exact outputs, lateness, sessions,
errors naming the stage and the element).

Where firing depends on the watermark, a probe source in virtual time offers one element at a
time and lets the run settle after each (``assign_timestamps`` emits a watermark after each
batch), so the firing points do not depend on how elements batch."""

import pytest

import weir
from weir import testing
from weir import BoundedOutOfOrderness, Monotonous, Session, Sliding, Tumbling

# (key, value, ts seconds): out of order within 0.1 s, then one element late by 0.6 s.
EVENTS = [
    ("a", 1, 0.1),
    ("b", 2, 0.5),
    ("a", 3, 1.05),
    ("a", 4, 0.96),  # behind the highest (1.05) but within the bound: on time
    ("b", 5, 1.2),  # watermark 1.099: [0, 1) fires
    ("a", 6, 0.5),  # [0, 1) is past its (zero) allowed lateness: late
]


def windowed(events, windows=Tumbling(1.0), watermarks=BoundedOutOfOrderness(0.1), source=None, **kw):
    return (
        (source or weir.Source.from_iter(events))
        .assign_timestamps(lambda e: e[2], watermarks)
        .key_by(lambda e: e[0])
        .window(windows, **kw)
    )


def drive(tail, events):
    """Runs ``tail(source)`` over ``events`` offered one at a time; returns what arrived after
    each element (one list per element) and, last, what arrived on completion."""
    clock = testing.VirtualClock()
    src, sink = clock.start(tail(testing.probe_source()).to(testing.probe_sink(), keep="both")).materialized
    sink.request(1000)
    steps = []
    for e in events:
        src.offer(e)
        steps.append([v for _, kind, v in sink.received() if kind == "next"])
    src.complete()
    got = sink.received()
    steps.append([v for _, kind, v in got if kind == "next"])
    assert got[-1][1] == "complete", got
    return steps


def test_tumbling_sum_fires_on_the_watermark_with_out_of_order_input_and_late_side_output():
    late = []
    steps = drive(
        lambda src: windowed(None, source=src, late_to=weir.Sink.for_each(late.append)).sum(lambda e: e[1]), EVENTS
    )
    assert steps == [
        [],
        [],
        [],
        [],
        [("a", 0.0, 1.0, 5), ("b", 0.0, 1.0, 2)],
        [],
        [("a", 1.0, 2.0, 3), ("b", 1.0, 2.0, 5)],
    ]
    assert late == [("a", 0.5, ("a", 6, 0.5))]


def test_from_iter_fires_every_window_by_the_end():
    late = []
    out = windowed(EVENTS[:5], late_to=weir.Sink.for_each(late.append)).sum(lambda e: e[1]).run_with(weir.Sink.collect())
    assert out == [("a", 0.0, 1.0, 5), ("b", 0.0, 1.0, 2), ("a", 1.0, 2.0, 3), ("b", 1.0, 2.0, 5)]
    assert late == []


def test_count_min_max_run_in_rust_and_keep_number_types():
    events = EVENTS[:5]
    w = lambda: windowed(events)  # noqa: E731
    assert w().count().run_with(weir.Sink.collect()) == [
        ("a", 0.0, 1.0, 2),
        ("b", 0.0, 1.0, 1),
        ("a", 1.0, 2.0, 1),
        ("b", 1.0, 2.0, 1),
    ]
    assert w().min(lambda e: e[1]).run_with(weir.Sink.collect()) == [
        ("a", 0.0, 1.0, 1),
        ("b", 0.0, 1.0, 2),
        ("a", 1.0, 2.0, 3),
        ("b", 1.0, 2.0, 5),
    ]
    assert w().max(lambda e: e[1] * 1.5).run_with(weir.Sink.collect()) == [
        ("a", 0.0, 1.0, 6.0),
        ("b", 0.0, 1.0, 3.0),
        ("a", 1.0, 2.0, 4.5),
        ("b", 1.0, 2.0, 7.5),
    ]
    assert w().mean(lambda e: e[1]).run_with(weir.Sink.collect()) == [
        ("a", 0.0, 1.0, 2.5),
        ("b", 0.0, 1.0, 2.0),
        ("a", 1.0, 2.0, 3.0),
        ("b", 1.0, 2.0, 5.0),
    ]
    mixed = [("k", 1, 0.0), ("k", 0.5, 0.1)]
    out = windowed(mixed).sum(lambda e: e[1]).run_with(weir.Sink.collect())
    assert out == [("k", 0.0, 1.0, 1.5)]
    assert type(out[0][3]) is float


def test_sum_of_the_element_itself_and_the_element_as_key():
    out = (
        weir.Source.from_iter([3, 5, 3, 7])
        .assign_timestamps(lambda x: 0.0, Monotonous())
        .key_by()
        .window(Tumbling(10.0))
        .sum()
        .run_with(weir.Sink.collect())
    )
    assert out == [(3, 0.0, 10.0, 6), (5, 0.0, 10.0, 5), (7, 0.0, 10.0, 7)]


def test_allowed_lateness_fires_a_window_again_then_sends_later_elements_aside():
    events = [
        ("a", 1, 0.1),
        ("a", 2, 1.2),  # watermark 1.099: [0, 1) fires with 1
        ("a", 3, 0.5),  # within 0.5 s of lateness: [0, 1) fires again with 4
        ("a", 4, 1.7),  # watermark 1.599: [0, 1) is gone
        ("a", 5, 0.2),  # late
    ]
    late = []
    steps = drive(
        lambda src: windowed(None, source=src, allowed_lateness=0.5, late_to=weir.Sink.for_each(late.append)).sum(
            lambda e: e[1]
        ),
        events,
    )
    assert steps == [[], [("a", 0.0, 1.0, 1)], [("a", 0.0, 1.0, 4)], [], [], [("a", 1.0, 2.0, 6)]]
    assert late == [("a", 0.2, ("a", 5, 0.2))]


def test_late_element_without_late_to_fails_naming_stage_and_element():
    clock = testing.VirtualClock()
    graph = windowed(None, source=testing.probe_source()).sum(lambda e: e[1]).to(testing.probe_sink(), keep="both")
    src, sink = clock.start(graph).materialized
    sink.request(100)
    for e in EVENTS:
        src.offer(e)
        clock.settle()
    sink.expect_next(("a", 0.0, 1.0, 5))
    sink.expect_next(("b", 0.0, 1.0, 2))
    err = sink.expect_error(weir.StageFailed)
    assert err.stage_name == "window_sum"
    assert "late element at 0.5s" in str(err)
    assert "late_to=" in str(err)
    assert "('a', 6, 0.5)" in str(err)


def test_sessions_merge_when_an_element_bridges_them():
    events = [("a", 1, 0.0), ("a", 2, 1.8), ("b", 10, 5.0), ("a", 4, 0.9)]
    slow = BoundedOutOfOrderness(10.0)  # nothing fires before the end
    out = windowed(events, Session(1.0), slow).reduce(lambda x, y: (x[0], x[1] + y[1], 0)).run_with(weir.Sink.collect())
    assert out == [("a", 0.0, 2.8, ("a", 7, 0)), ("b", 5.0, 6.0, ("b", 10, 5.0))]
    seen = windowed(events, Session(1.0), slow).process(lambda k, s, e, xs: [x[1] for x in xs]).run_with(weir.Sink.collect())
    # merged sessions keep their elements in window order, the merging element last
    assert seen == [("a", 0.0, 2.8, [1, 2, 4]), ("b", 5.0, 6.0, [10])]
    late = []
    steps = drive(
        lambda src: windowed(None, Session(1.0), Monotonous(), source=src, late_to=weir.Sink.for_each(late.append)).count(),
        events,
    )
    # monotonous: each session fires once the next one starts; 0.9 comes after both fired
    assert steps == [[], [("a", 0.0, 1.0, 1)], [("a", 1.8, 2.8, 1)], [], [("b", 5.0, 6.0, 1)]]
    assert late == [("a", 0.9, ("a", 4, 0.9))]


def test_sliding_windows_count_an_element_in_each_window_covering_it():
    events = [("k", 0, 0.5), ("k", 0, 1.5)]
    out = windowed(events, Sliding(2.0, 1.0), Monotonous()).count().run_with(weir.Sink.collect())
    assert out == [("k", -1.0, 1.0, 1), ("k", 0.0, 2.0, 2), ("k", 1.0, 3.0, 1)]


def test_aggregate_with_result_gives_a_mean():
    events = [("a", 2, 0.1), ("a", 4, 0.2), ("b", 9, 0.3)]
    out = (
        windowed(events)
        .aggregate(lambda: (0, 0), lambda acc, e: (acc[0] + e[1], acc[1] + 1), result=lambda acc: acc[0] / acc[1])
        .run_with(weir.Sink.collect())
    )
    assert out == [("a", 0.0, 1.0, 3.0), ("b", 0.0, 1.0, 9.0)]


def test_assign_timestamps_alone_passes_elements_unchanged():
    out = weir.Source.from_iter([3, 1, 2]).assign_timestamps(float, Monotonous(), idleness=5.0).run_with(weir.Sink.collect())
    assert out == [3, 1, 2]


def test_a_raising_timestamp_function_names_the_element():
    def ts(e):
        if e[1] == 2:
            raise ValueError("no time")
        return e[2]

    with pytest.raises(weir.StageFailed) as info:
        (
            weir.Source.from_iter(EVENTS)
            .assign_timestamps(ts, Monotonous())
            .key_by(lambda e: e[0])
            .window(Tumbling(1.0))
            .count()
            .run_with(weir.Sink.collect())
        )
    assert info.value.stage_name == "key_by"
    assert info.value.element == ("b", 2, 0.5)
    assert isinstance(info.value.__cause__, ValueError)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.from_iter(["x"]).assign_timestamps(lambda e: e, Monotonous()).run_with(weir.Sink.collect())
    assert info.value.stage_name == "assign_timestamps"
    assert info.value.element == "x"
    assert "timestamp must be a number of seconds, got str" in str(info.value)


def test_a_value_that_is_no_number_fails_naming_the_element():
    with pytest.raises(weir.StageFailed) as info:
        windowed([("a", 1, 0.0), ("a", "two", 0.1)]).sum(lambda e: e[1]).run_with(weir.Sink.collect())
    assert info.value.stage_name == "key_by"
    assert info.value.element == ("a", "two", 0.1)
    assert "window value must be an int or a float, got str" in str(info.value)


def test_a_raising_reduce_fails_the_run_naming_the_element():
    def add(x, y):
        if y[1] == 4:
            raise ZeroDivisionError("bad")
        return (x[0], x[1] + y[1], 0)

    with pytest.raises(weir.StageFailed) as info:
        windowed(EVENTS[:5]).reduce(add).run_with(weir.Sink.collect())
    assert info.value.stage_name == "window_reduce"
    assert info.value.element == ("a", 4, 0.96)
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_invalid_windows_and_missing_event_time_are_refused():
    with pytest.raises(ValueError, match="Tumbling: size must be a positive number of seconds"):
        Tumbling(0)
    with pytest.raises(ValueError, match="slide"):
        Sliding(1.0, 2.0)
    with pytest.raises(ValueError, match="bound"):
        BoundedOutOfOrderness(-1)
    with pytest.raises(TypeError, match="assign_timestamps"):
        weir.Source.from_iter([1]).key_by().window(Tumbling(1.0))
    with pytest.raises(TypeError, match="assign_timestamps"):
        weir.Source.from_iter([1]).assign_timestamps(float, Monotonous()).map(str).key_by().window(Tumbling(1.0))
    with pytest.raises(ValueError, match="merge="):
        windowed(EVENTS, Session(1.0)).aggregate(lambda: 0, lambda a, e: a + 1)
    with pytest.raises(ValueError, match="idleness must be positive"):
        weir.Source.from_iter([1]).assign_timestamps(float, Monotonous(), idleness=0)
    with pytest.raises(TypeError, match="BoundedOutOfOrderness or Monotonous"):
        weir.Source.from_iter([1]).assign_timestamps(float, 0.1)
    with pytest.raises(weir.GraphInvalid, match="tumbling window: size must be at least 1 ms"):
        windowed(EVENTS, Tumbling(0.0001)).count().run_with(weir.Sink.collect())


def test_key_by_supervision_resumes_past_a_bad_timestamp_and_dead_letters_it():
    dead = []
    events = [("a", 1, 0.1), ("a", 2, "noon"), ("a", 3, 0.2)]
    out = (
        weir.Source.from_iter(events)
        .assign_timestamps(lambda e: e[2], Monotonous())
        .key_by(lambda e: e[0], supervision=[(TypeError, "resume")], dead_letters=dead)
        .window(Tumbling(1.0))
        .sum(lambda e: e[1])
        .run_with(weir.Sink.collect())
    )
    assert out == [("a", 0.0, 1.0, 4)]
    assert [d.element for d in dead] == [("a", 2, "noon")]
    assert dead[0].stage.startswith("key_by#")
    assert "timestamp must be a number of seconds, got str" in str(dead[0].error)


def test_a_windowed_flow_is_reusable_blueprint():
    counts = weir.Flow.create().assign_timestamps(lambda e: e[2], Monotonous()).key_by(lambda e: e[0]).window(Tumbling(1.0)).count()
    src = weir.Source.from_iter([("a", 0, 0.1), ("b", 0, 0.2), ("a", 0, 0.3)])
    expected = [("a", 0.0, 1.0, 2), ("b", 0.0, 1.0, 1)]
    assert src.via(counts).run_with(weir.Sink.collect()) == expected
    assert src.via(counts).run_with(weir.Sink.collect()) == expected
