"""Every Python keyed stage recovers exactly: ``key_by(f)`` with ``count``, the built-ins
(``sum``, ``min``, ``max``, ``mean``, ``first``, ``last``), ``fold``, ``reduce`` and ``process``,
and ``key_by(f).window(...)`` with each window function, run at parallelism 2 with checkpoints,
stopped after checkpoint 1 (cancelled, or failed by a stage after it) and started again on the
same ``state_dir``, give exactly the output of a run without failure (no update lost, none
doubled); a savepoint taken at parallelism 2 and restored at parallelism 3 gives it too (the
keyed state moves by key group, keys routed by the stable hash of their codec encoding)."""

import pytest

import weir
from weir import Sink, testing
from helpers import until

# Keys 0..22 as strings, ints and tuples (three codec types), values 0..239.
ROWS = [((f"k{i % 23}" if i % 3 else (i % 23, "t")) if i % 2 else i % 23, i) for i in range(240)]
SPLIT = 100


# What makes a run fail (a map before the keyed stage raises on it).
POISON = ("z", -9.0, -1)


class Poison(Exception):
    pass


def stop_on(poison):
    """``x -> x`` that raises on ``poison`` (the failure after the checkpoint)."""

    def f(x):
        if x == poison:
            raise Poison(f"poison {x!r}")
        return x

    return f


def exact(rows):
    """The output as a sorted list of reprs: lost or doubled results show."""
    return sorted(map(repr, rows))


KEYED = {
    "count": lambda k: k.count(),
    "sum": lambda k: k.sum(1),
    "min": lambda k: k.min(1),
    "max": lambda k: k.max(1),
    "mean": lambda k: k.mean(1),
    "first": lambda k: k.first(1),
    "last": lambda k: k.last(1),
    "fold": lambda k: k.fold((0, 1), lambda a, r: (a[0] + r[1], a[1] * 31 % 10007 + r[1])),
    "reduce": lambda k: k.reduce(lambda a, r: (a[0], a[1] * 7 % 1009 + r[1])),
}


def keyed_graph(build, par, poison=(-1, -1)):
    def graph(sink):
        # Every run has the same stages: the poison is only fed to the run that fails.
        src = testing.probe_source().map(stop_on(poison))
        return build(src.key_by(0)).uid("agg").parallelism(par).to(sink, "both")

    return graph


# Timestamped events (key, ts, value): keys a..e, 0.05 s apart, some up to 0.08 s late.
EVENTS = [("abcde"[i % 5], round(i * 0.05 - (0.08 if i % 7 == 3 else 0.0), 3), i) for i in range(1, 120)]
# Windows close and timers fire before the split (checkpoint 1) and after it.
EV_SPLIT = 50

WINDOWED = {
    "count": lambda w: w.count(),
    "sum": lambda w: w.sum(lambda e: e[2]),
    "min": lambda w: w.min(lambda e: e[2]),
    "max": lambda w: w.max(lambda e: e[2]),
    "mean": lambda w: w.mean(lambda e: e[2]),
    "reduce": lambda w: w.reduce(lambda a, e: (a[0], a[1], a[2] * 10 % 997 + e[2])),
    "aggregate": lambda w: w.aggregate(lambda: [], lambda acc, e: acc + [e[2]], merge=lambda a, b: a + b, result=tuple),
    "process": lambda w: w.process(lambda k, s, e, xs: sorted(x[2] for x in xs)),
}

WINDOWS = {"tumbling": weir.Tumbling(1.0), "sliding": weir.Sliding(1.0, 0.5), "session": weir.Session(0.2)}


def windowed_graph(build, windows, par, poison=POISON):
    def graph(sink):
        # Every run has the same stages: the poison is only fed to the run that fails.
        src = testing.probe_source().map(stop_on(poison))
        w = (
            src.assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0])
            .window(windows)
        )
        return build(w).uid("w").parallelism(par).to(sink, "both")

    return graph


def process_graph(par, poison=POISON):
    """``key_by(f).process``: per key, the sum of each second's values in state (a dict) and
    an event-time timer at the second's end that emits and drops it (the watermark passes a
    second only after all of its elements: what fires does not depend on batching)."""

    def on_element(e, ctx):
        s = int(e[1])
        sums = dict(ctx.state or {})
        sums[s] = sums.get(s, 0) + e[2]
        ctx.set_state(sums)
        ctx.register_event_timer(s + 1.0)

    def on_timer(t, kind, ctx):
        sums = dict(ctx.state)
        ctx.emit((ctx.key, t, kind, sums.pop(int(t) - 1)))
        if sums:
            ctx.set_state(sums)
        else:
            ctx.clear_state()

    def graph(sink):
        # Every run has the same stages: the poison is only fed to the run that fails.
        src = testing.probe_source().map(stop_on(poison))
        p = (
            src.assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0])
            .process(on_element, on_timer)
        )
        return p.uid("p").parallelism(par).to(sink, "both")

    return graph


class Out:
    """What a run's sink received (a ``for_each`` sink appending to a list)."""

    def __init__(self):
        self.rows = []

    def sink(self):
        return Sink.for_each(self.rows.append).uid("out")


def uninterrupted(make, rows, par=2):
    out = Out()
    run = testing.VirtualClock().start(make(par)(out.sink()))
    src = run.materialized[0]
    src.offer_all(rows)
    src.complete()
    run.result()
    return out.rows


def first_run(graph, before, state):
    """Starts ``graph`` on ``state``, feeds it ``before`` and waits for checkpoint 1."""
    clock = testing.VirtualClock()
    run = clock.start(graph, state_dir=state, checkpoint_interval=1.0)
    run.materialized[0].offer_all(before)
    clock.settle()
    clock.advance(1.0)
    until(lambda: run.latest_checkpoint == 1, "checkpoint 1")
    return run


def second_run(graph, after, state, **kw):
    """Restores ``graph`` from checkpoint 1 (of ``state`` or ``restore_from``) and feeds it
    ``after`` to the end."""
    again = testing.VirtualClock().start(graph, state_dir=state, checkpoint_interval=1.0, **kw)
    assert again.restored_checkpoint == 1
    if "restore_from" not in kw:
        assert again.started_empty == []
    src = again.materialized[0]
    src.offer_all(after)
    src.complete()
    again.result()


def cancelled_and_resumed(make, rows, split, state):
    """What the sink received up to checkpoint 1 of a run cancelled after it, and then from
    the run restored from it."""
    out = Out()
    run = first_run(make(2)(out.sink()), rows[:split], state)
    run.cancel()
    with pytest.raises(weir.RunCancelled):
        run.result()
    second_run(make(2)(out.sink()), rows[split:], state)
    return out.rows


def failed_and_resumed(make, rows, split, poison, state):
    """As :func:`cancelled_and_resumed`, the first run failing on ``poison`` after rows it
    processed past checkpoint 1: what its sink received after the checkpoint is dropped (as a
    transactional sink aborts it), the restored run gets those rows again."""
    out = Out()
    run = first_run(make(2)(out.sink()), rows[:split], state)
    committed = list(out.rows)
    run.materialized[0].offer_all(rows[split : split + 5] + [poison])
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert "poison" in str(e.value)
    out.rows = committed
    second_run(make(2)(out.sink()), rows[split:], state)
    return out.rows


def rescaled(make, rows, split, tmp_path):
    """A savepoint at parallelism 2 after ``rows[:split]``, restored at parallelism 3."""
    out = Out()
    clock = testing.VirtualClock()
    run = clock.start(make(2)(out.sink()), state_dir=tmp_path / "a", checkpoint_interval=60.0)
    run.materialized[0].offer_all(rows[:split])
    clock.settle()
    sp = run.savepoint(tmp_path / "sp")
    run.cancel()
    with pytest.raises(weir.RunCancelled):
        run.result()
    second_run(make(3)(out.sink()), rows[split:], tmp_path / "b", restore_from=sp)
    return out.rows


def keyed_want(name):
    by = {}
    for k, v in ROWS:
        by.setdefault(k, []).append(v)
    if name == "count":
        return {k: len(vs) for k, vs in by.items()}
    if name in ("sum", "min", "max"):
        return {k: {"sum": sum, "min": min, "max": max}[name](vs) for k, vs in by.items()}
    if name == "mean":
        return {k: sum(vs) / len(vs) for k, vs in by.items()}
    if name in ("first", "last"):
        return {k: vs[0 if name == "first" else -1] for k, vs in by.items()}
    return None


@pytest.mark.parametrize("name", list(KEYED))
def test_keyed_aggregates_recover_exactly(tmp_path, name):
    build = KEYED[name]
    make = lambda par: keyed_graph(build, par)  # noqa: E731
    want = uninterrupted(make, ROWS)
    assert len(want) == 23 * 3
    expected = keyed_want(name)
    if expected is not None:
        assert dict(want) == expected
    assert exact(want) == exact(uninterrupted(make, ROWS, par=1))
    got = cancelled_and_resumed(make, ROWS, SPLIT, str(tmp_path / "cancelled"))
    assert exact(got) == exact(want)
    got = failed_and_resumed(make, ROWS, SPLIT, (-1, -1), str(tmp_path / "failed"))
    assert exact(got) == exact(want)
    assert exact(rescaled(make, ROWS, SPLIT, tmp_path)) == exact(want)


def test_keyed_process_recovers_exactly(tmp_path):
    want = uninterrupted(process_graph, EVENTS)
    sums = {}
    for k, t, v in EVENTS:
        sums[(k, float(int(t) + 1))] = sums.get((k, float(int(t) + 1)), 0) + v
    assert sorted(want) == sorted((k, t, "event", v) for (k, t), v in sums.items())
    assert exact(want) == exact(uninterrupted(process_graph, EVENTS, par=1))
    got = cancelled_and_resumed(process_graph, EVENTS, EV_SPLIT, str(tmp_path / "cancelled"))
    assert exact(got) == exact(want)
    got = failed_and_resumed(process_graph, EVENTS, EV_SPLIT, POISON, str(tmp_path / "failed"))
    assert exact(got) == exact(want)
    assert exact(rescaled(process_graph, EVENTS, EV_SPLIT, tmp_path)) == exact(want)


@pytest.mark.parametrize("windows", list(WINDOWS))
@pytest.mark.parametrize("name", list(WINDOWED))
def test_windows_recover_exactly(tmp_path, name, windows):
    build, kind = WINDOWED[name], WINDOWS[windows]
    make = lambda par: windowed_graph(build, kind, par)  # noqa: E731
    want = uninterrupted(make, EVENTS)
    assert exact(want) == exact(uninterrupted(make, EVENTS, par=1))
    if name == "count" and windows == "tumbling":
        counts = {}
        for k, t, v in EVENTS:
            w = (k, float(int(t)), float(int(t)) + 1.0)
            counts[w] = counts.get(w, 0) + 1
        assert sorted(want) == sorted((k, s, e, n) for (k, s, e), n in counts.items())
    assert len(want) >= 15
    got = cancelled_and_resumed(make, EVENTS, EV_SPLIT, str(tmp_path / "cancelled"))
    assert exact(got) == exact(want)
    got = failed_and_resumed(make, EVENTS, EV_SPLIT, POISON, str(tmp_path / "failed"))
    assert exact(got) == exact(want)
    assert exact(rescaled(make, EVENTS, EV_SPLIT, tmp_path)) == exact(want)
