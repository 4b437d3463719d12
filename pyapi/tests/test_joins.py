"""``assign_timestamps(..).join_by(other, key).window(..)`` / ``.interval(..)``: the Rust window
and interval joins over Python objects. Exact results (against nested loops over the input),
late elements to ``late_to`` or failing the run, and recovery: a join run at parallelism 2 with
checkpoints, stopped after checkpoint 1 (cancelled, or failed by a stage after it) and started
again on the same ``state_dir``, or restored from a savepoint at parallelism 3, gives exactly
the output of a run without failure."""

import pytest

import weir
from weir import Sink, testing
from helpers import until

BOUND = weir.BoundedOutOfOrderness(0.1)
# (key, ts, id): left ids 0.., right ids 1000..; keys a..d, some elements up to 0.08 s late.
LEFT = [("abcd"[i % 4], round(i * 0.07 - (0.08 if i % 5 == 2 else 0.0), 3), i) for i in range(1, 60)]
RIGHT = [("abcd"[i % 4 if i % 6 else 1], round(i * 0.05 + 0.02 - (0.06 if i % 4 == 1 else 0.0), 3), 1000 + i) for i in range(1, 80)]
POISON = ("z", -9.0, -1)
SPLIT_L, SPLIT_R = 25, 36


class Poison(Exception):
    pass


def stop_on_poison(x):
    if x == POISON:
        raise Poison(f"poison {x!r}")
    return x


def pair(l, r):
    return (l[0], l[2], r[2])


def window_model(size, slide, left, right):
    """Every pair of equal key, once per window ``[start, start + size)`` holding both."""
    size, slide = round(size * 1000), round(slide * 1000)
    out = []
    for l in left:
        for r in right:
            if l[0] != r[0]:
                continue
            lo, hi = sorted((round(l[1] * 1000), round(r[1] * 1000)))
            start = lo // slide * slide
            while start + size > hi:
                out.append(pair(l, r))
                start -= slide
    return out


def interval_model(lower, upper, left, right):
    return [
        pair(l, r)
        for l in left
        for r in right
        if l[0] == r[0] and round(l[1] * 1000) + round(lower * 1000) <= round(r[1] * 1000) <= round(l[1] * 1000) + round(upper * 1000)
    ]


JOINS = {
    "tumbling": (lambda j: j.window(weir.Tumbling(0.5), pair), lambda l, r: window_model(0.5, 0.5, l, r)),
    "sliding": (lambda j: j.window(weir.Sliding(0.6, 0.3), pair), lambda l, r: window_model(0.6, 0.3, l, r)),
    "interval": (lambda j: j.interval(-0.15, 0.1, pair), lambda l, r: interval_model(-0.15, 0.1, l, r)),
}


def join_graph(build, par):
    def graph(sink):
        left = testing.probe_source().map(stop_on_poison).assign_timestamps(lambda e: e[1], BOUND)
        right = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
        j = build(left.join_by(right, lambda e: e[0]))
        return j.uid("j").parallelism(par).to(sink, "both")

    return graph


class Out:
    """What a run's sink received."""

    def __init__(self):
        self.rows = []

    def sink(self):
        return Sink.for_each(self.rows.append).uid("out")


def probes(run):
    (left, right), _ = run.materialized
    return left, right


def feed(run, left, right, complete=False):
    l, r = probes(run)
    l.offer_all(left)
    r.offer_all(right)
    if complete:
        l.complete()
        r.complete()


def uninterrupted(make, par=2):
    out = Out()
    run = testing.VirtualClock().start(make(par)(out.sink()))
    feed(run, LEFT, RIGHT, complete=True)
    run.result()
    return out.rows


def first_run(graph, state):
    clock = testing.VirtualClock()
    run = clock.start(graph, state_dir=state, checkpoint_interval=1.0)
    feed(run, LEFT[:SPLIT_L], RIGHT[:SPLIT_R])
    clock.settle()
    clock.advance(1.0)
    until(lambda: run.latest_checkpoint == 1, "checkpoint 1")
    return run


def second_run(graph, state, **kw):
    again = testing.VirtualClock().start(graph, state_dir=state, checkpoint_interval=1.0, **kw)
    assert again.restored_checkpoint == 1
    if "restore_from" not in kw:
        assert again.started_empty == []
    feed(again, LEFT[SPLIT_L:], RIGHT[SPLIT_R:], complete=True)
    again.result()


def exact(rows):
    return sorted(rows)


@pytest.mark.parametrize("name", list(JOINS))
def test_joins_give_every_pair_once(name):
    build, model = JOINS[name]
    want = model(LEFT, RIGHT)
    assert len(want) >= 40
    for par in (1, 2, 3):
        assert exact(uninterrupted(lambda p: join_graph(build, p), par)) == exact(want)


@pytest.mark.parametrize("name", list(JOINS))
def test_joins_recover_exactly_after_cancel_failure_and_rescale(tmp_path, name):
    build, model = JOINS[name]
    make = lambda par: join_graph(build, par)  # noqa: E731
    want = exact(model(LEFT, RIGHT))

    out = Out()
    run = first_run(make(2)(out.sink()), str(tmp_path / "cancelled"))
    # Pairs came out before the checkpoint: the restored run does not repeat them.
    assert 0 < len(out.rows) < len(want)
    run.cancel()
    with pytest.raises(weir.RunCancelled):
        run.result()
    second_run(make(2)(out.sink()), str(tmp_path / "cancelled"))
    assert exact(out.rows) == want

    out = Out()
    run = first_run(make(2)(out.sink()), str(tmp_path / "failed"))
    committed = list(out.rows)
    # Elements past the checkpoint, then the failure: what they gave is dropped with the run.
    feed(run, LEFT[SPLIT_L : SPLIT_L + 4] + [POISON], RIGHT[SPLIT_R : SPLIT_R + 4])
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert "poison" in str(e.value)
    out.rows = committed
    second_run(make(2)(out.sink()), str(tmp_path / "failed"))
    assert exact(out.rows) == want

    out = Out()
    clock = testing.VirtualClock()
    run = clock.start(make(2)(out.sink()), state_dir=tmp_path / "a", checkpoint_interval=60.0)
    feed(run, LEFT[:SPLIT_L], RIGHT[:SPLIT_R])
    clock.settle()
    sp = run.savepoint(tmp_path / "sp")
    run.cancel()
    with pytest.raises(weir.RunCancelled):
        run.result()
    second_run(make(3)(out.sink()), tmp_path / "b", restore_from=sp)
    assert exact(out.rows) == want


def test_late_elements_go_to_late_to_or_fail_the_run():
    def run_with(late_to):
        left = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
        right = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
        j = left.join_by(right, lambda e: e[0]).interval(0.0, 0.5, pair, late_to=late_to)
        clock = testing.VirtualClock()
        run = clock.start(j.to(Sink.collect(), "both"))
        joined = run.materialized[0]
        # With late_to the join materializes (left, (right, late_to's value)).
        l, r = joined[0], joined[1][0] if late_to is not None else joined[1]
        l.offer_all([("a", 1.0, 1), ("a", 2.0, 2)])
        r.offer_all([("a", 1.2, 1001), ("a", 2.1, 1002)])
        clock.settle()
        # Both watermarks are past 1.8 s now: these two are late.
        l.offer_all([("a", 0.5, 3)])
        r.offer_all([("a", 0.9, 1003)])
        l.complete()
        r.complete()
        return run

    late = []
    run = run_with(Sink.for_each(late.append))
    assert run.result()[1] == [("a", 1, 1001), ("a", 2, 1002)]
    assert sorted(late) == [("left", "a", 0.5, ("a", 0.5, 3)), ("right", "a", 0.9, ("a", 0.9, 1003))]
    with pytest.raises(weir.StageFailed, match=r"late (left|right) element at 0\.[59]s: the join's watermark passed it"):
        run_with(None).result()


def test_join_by_needs_event_time_on_both_sides_and_no_sessions():
    src = testing.probe_source()
    timed = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
    with pytest.raises(TypeError, match="join_by: this stream needs event time"):
        src.join_by(timed, 0)
    with pytest.raises(TypeError, match="join_by: other needs event time"):
        timed.join_by(src, 0)
    with pytest.raises(ValueError, match="session windows cannot be joined"):
        timed.join_by(timed, 0).window(weir.Session(1.0), pair)
    with pytest.raises(ValueError, match=r"lower \(1.0\) is above upper \(0.5\)"):
        timed.join_by(timed, 0).interval(1.0, 0.5, pair)


def test_a_raising_join_function_fails_the_join_naming_the_left_element():
    def boom(l, r):
        raise ValueError(f"no pair for {l[2]}")

    left = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
    right = testing.probe_source().assign_timestamps(lambda e: e[1], BOUND)
    g = left.join_by(right, 0).interval(0.0, 1.0, boom).to(Sink.collect(), "both")
    run = testing.VirtualClock().start(g)
    l, r = run.materialized[0]
    l.offer_all([("a", 1.0, 7)])
    r.offer_all([("a", 1.5, 1007)])
    l.complete()
    r.complete()
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert e.value.stage_name == "join"
    assert "no pair for 7" in str(e.value)
    assert e.value.element == ("a", 1.0, 7)
