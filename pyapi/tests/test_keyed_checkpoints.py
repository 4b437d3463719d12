"""Python keyed state checkpoints: ``key_by(f).fold/reduce``, windows over Python functions
(``reduce``/``aggregate``/``process``) and ``key_by(f).process`` snapshot their Python state
(accumulators, buffered window elements, per-key state and timers) through ``weir.codec``, or as
pickles with ``key_codec="pickle"``; a run cancelled after a checkpoint and started again on the
same ``state_dir`` gives exactly what an uninterrupted run gives. A value the codec cannot encode
fails the run naming the stage and the value's type, and no checkpoint is written."""

import glob
import os

import pytest

import weir
from weir import Sink, testing
from helpers import until


def complete_checkpoints(state):
    return sorted(glob.glob(os.path.join(state, "chk-*", "MANIFEST")))


def uninterrupted(graph, events):
    run = testing.VirtualClock().start(graph())
    src = run.materialized[0]
    src.offer_all(events)
    src.complete()
    return run.result()[1]


def resumed(graph, before, after, state):
    """Runs ``before``, waits for checkpoint 1, cancels, then restores a second run from it and
    feeds it ``after``; the second run's output."""
    clock = testing.VirtualClock()
    first = clock.start(graph(), state_dir=state, checkpoint_interval=1.0)
    first.materialized[0].offer_all(before)
    clock.advance(1.0)
    until(lambda: first.latest_checkpoint == 1, "checkpoint 1")
    first.cancel()
    with pytest.raises(weir.RunCancelled):
        first.result()
    again = testing.VirtualClock().start(graph(), state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all(after)
    src.complete()
    return again.result()[1]


ROWS = [(f"k{i % 5}", i) for i in range(60)]


def keyed(build, **kw):
    return lambda: build(testing.probe_source().key_by(lambda r: r[0], **kw)).to(Sink.collect(), "both")


@pytest.mark.parametrize(
    "build",
    [
        lambda k: k.fold((0, []), lambda a, r: (a[0] + r[1], a[1] + [r[1] % 3])),
        lambda k: k.reduce(lambda a, r: (a[0], a[1] * 31 % 1000 + r[1])),
    ],
    ids=["fold", "reduce"],
)
def test_python_keyed_folds_and_reduces_resume_from_a_checkpoint(tmp_path, build):
    graph = keyed(build)
    want = uninterrupted(graph, ROWS)
    got = resumed(graph, ROWS[:25], ROWS[25:], str(tmp_path / "state"))
    # Restored keys come back in key-group order: the same pairs.
    assert sorted(got) == sorted(want) and len(got) == len(want) == 5


def test_an_accumulator_without_an_encoding_fails_the_run_naming_the_stage_and_its_type(tmp_path):
    state = str(tmp_path / "state")
    clock = testing.VirtualClock()
    run = clock.start(keyed(lambda k: k.fold(frozenset(), lambda a, r: a | {r[1] % 2}))(), state_dir=state, checkpoint_interval=1.0)
    run.materialized[0].offer_all(ROWS[:10])
    clock.advance(1.0)
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert e.value.stage_name == "fold"
    assert "cannot encode the stage state" in str(e.value)
    assert "cannot checkpoint a value: a frozenset has no stable encoding" in str(e.value)
    assert complete_checkpoints(state) == []


def test_key_codec_pickle_checkpoints_state_the_codec_cannot_encode(tmp_path):
    graph = keyed(lambda k: k.fold(frozenset(), lambda a, r: a | {r[1] % 4}), key_codec="pickle")
    want = uninterrupted(graph, ROWS)
    assert dict(want) == {f"k{i}": frozenset({i % 4, (i + 5) % 4, (i + 10) % 4, (i + 15) % 4}) for i in range(5)}
    got = resumed(graph, ROWS[:7], ROWS[7:], str(tmp_path / "state"))
    assert sorted(got, key=repr) == sorted(want, key=repr)


EVENTS_BEFORE = [("a", 0.1, 1), ("b", 0.2, 2), ("a", 0.3, 3), ("b", 0.5, 4), ("c", 0.6, 5)]
EVENTS_AFTER = [("a", 0.7, 6), ("b", 1.2, 7), ("a", 1.5, 8), ("c", 2.4, 9), ("a", 0.95, 10), ("b", 3.5, 11)]


def windowed(build, windows=None):
    def graph():
        w = (
            testing.probe_source()
            .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0])
            .window(windows or weir.Tumbling(1.0))
        )
        return build(w).uid("w").to(Sink.collect(), "both")

    return graph


@pytest.mark.parametrize(
    "build",
    [
        lambda w: w.reduce(lambda a, e: (a[0], a[1], a[2] * 10 + e[2])),
        lambda w: w.aggregate(lambda: [], lambda acc, e: acc + [e[2]], merge=lambda a, b: a + b, result=tuple),
        lambda w: w.process(lambda k, s, e, xs: [x[2] for x in xs]),
    ],
    ids=["reduce", "aggregate", "process"],
)
@pytest.mark.parametrize("windows", [weir.Tumbling(1.0), weir.Session(0.3)], ids=["tumbling", "session"])
def test_python_function_windows_resume_their_open_windows(tmp_path, build, windows):
    graph = windowed(build, windows)
    want = uninterrupted(graph, EVENTS_BEFORE + EVENTS_AFTER)
    got = resumed(graph, EVENTS_BEFORE, EVENTS_AFTER, str(tmp_path / "state"))
    assert got == want
    assert len(want) >= 5


def test_a_window_value_without_an_encoding_fails_the_run_naming_the_stage(tmp_path):
    state = str(tmp_path / "state")
    clock = testing.VirtualClock()
    g = windowed(lambda w: w.aggregate(set, lambda acc, e: acc | {e[2]}))()
    run = clock.start(g, state_dir=state, checkpoint_interval=1.0)
    run.materialized[0].offer_all(EVENTS_BEFORE)
    clock.advance(1.0)
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert e.value.stage_name == "window_aggregate"
    assert "cannot checkpoint a value: a set has no stable encoding" in str(e.value)
    assert complete_checkpoints(state) == []


def summing(key_codec="builtin", state=lambda total: total):
    def on_element(e, ctx):
        ctx.set_state(state(unwrap(ctx.state) + e[2]))
        ctx.register_event_timer(int(e[1]) + 1.0)

    def on_timer(t, kind, ctx):
        ctx.emit((ctx.key, t, kind, unwrap(ctx.state)))

    def unwrap(s):
        if s is None:
            return 0
        return s if isinstance(s, int) else sum(s)

    def graph():
        return (
            testing.probe_source()
            .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0], key_codec=key_codec)
            .process(on_element, on_timer)
            .uid("p")
            .to(Sink.collect(), "both")
        )

    return graph


@pytest.mark.parametrize("codec", ["builtin", "pickle"])
def test_a_keyed_process_stage_resumes_its_state_and_timers(tmp_path, codec):
    # With the pickle codec the state is a frozenset (no built-in encoding).
    graph = summing(codec, (lambda t: t) if codec == "builtin" else (lambda t: frozenset([t])))
    want = uninterrupted(graph, EVENTS_BEFORE + EVENTS_AFTER)
    # The input is one batch: its watermark comes after it, so every sum is complete when the
    # timers fire (in time order, then by key).
    a, b, c = 1 + 3 + 6 + 8 + 10, 2 + 4 + 7 + 11, 5 + 9
    assert want == [
        ("a", 1.0, "event", a),
        ("b", 1.0, "event", b),
        ("c", 1.0, "event", c),
        ("a", 2.0, "event", a),
        ("b", 2.0, "event", b),
        ("c", 3.0, "event", c),
        ("b", 4.0, "event", b),
    ]
    got = resumed(graph, EVENTS_BEFORE, EVENTS_AFTER, str(tmp_path / "state"))
    assert got == want


def test_uid_after_a_window_names_the_window_stage(tmp_path):
    diagram = windowed(lambda w: w.count())().to_mermaid()
    assert '["window_aggregate uid=w"]' in diagram
    assert "window_count uid" not in diagram
    # Its state follows the uid: a savepoint restores into a graph with a stage added before
    # the windows (which moves every derived id after it).
    def moved():
        w = (
            testing.probe_source()
            .map(lambda e: e)
            .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0])
            .window(weir.Tumbling(1.0))
            .count()
            .uid("w")
        )
        return w.to(Sink.collect(), "both")

    clock = testing.VirtualClock()
    run = clock.start(windowed(lambda w: w.count())(), state_dir=tmp_path / "a", checkpoint_interval=60.0)
    run.materialized[0].offer_all(EVENTS_BEFORE)
    clock.settle()
    sp = run.savepoint(tmp_path / "sp")
    run.cancel()
    again = testing.VirtualClock().start(moved(), state_dir=tmp_path / "b", restore_from=sp, allow_unmatched=True)
    src = again.materialized[0]
    src.offer_all(EVENTS_AFTER)
    src.complete()
    assert again.result()[1] == uninterrupted(windowed(lambda w: w.count()), EVENTS_BEFORE + EVENTS_AFTER)


def test_a_killed_keyed_job_resumes_its_sums_exactly(tmp_path):
    import json
    import signal
    import subprocess
    import sys

    job = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jobs", "keyed_sums.py")
    n = 300
    (tmp_path / "in.txt").write_text("".join(f"k{i % 7},{i}\n" for i in range(n)))
    state = str(tmp_path / "state")

    def cmd(delay):
        return [sys.executable, job, str(tmp_path / "in.txt"), str(tmp_path / "out"), state, "0.1", str(delay)]

    first = subprocess.Popen(cmd(0.01), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        until(lambda: complete_checkpoints(state) or first.poll() is not None, "the first checkpoint")
        assert first.poll() is None, first.stderr.read().decode()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    assert complete_checkpoints(state), "the first run was killed after a checkpoint completed"
    second = subprocess.run(cmd(0), capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr.decode()
    report = json.loads(second.stdout.decode().strip().splitlines()[-1])
    assert report["restored"] is not None
    lines = []
    for p in sorted(glob.glob(str(tmp_path / "out" / "part-*"))):
        with open(p) as f:
            lines.extend(f.read().splitlines())
    want = {f"k{k}": sum(i for i in range(n) if i % 7 == k) for k in range(7)}
    assert sorted(lines) == sorted(f"{k},{v}" for k, v in want.items())


def test_keyed_sums_restore_at_another_parallelism_by_key_group(tmp_path):
    rows = [(f"k{i % 23}", i) for i in range(200)]

    def graph(par):
        return testing.probe_source().key_by(0).sum(1).uid("sums").parallelism(par).to(Sink.collect().uid("out"), "both")

    clock = testing.VirtualClock()
    run = clock.start(graph(1), state_dir=tmp_path / "a", checkpoint_interval=60.0)
    run.materialized[0].offer_all(rows[:90])
    clock.settle()
    sp = run.savepoint(tmp_path / "sp")
    run.cancel()
    for par in (3, 2):
        again = testing.VirtualClock().start(graph(par), state_dir=tmp_path / f"b{par}", restore_from=sp)
        assert again.restored_checkpoint == 1
        src = again.materialized[0]
        src.offer_all(rows[90:])
        src.complete()
        got = again.result()[1]
        want = {f"k{k}": sum(v for kk, v in rows if kk == f"k{k}") for k in range(23)}
        assert len(got) == 23 and dict(got) == want


@pytest.mark.parametrize(
    "build",
    [
        lambda w: w.aggregate(frozenset, lambda acc, e: acc | {e[2]}, merge=lambda a, b: a | b, result=sorted),
        lambda w: w.reduce(lambda a, e: (a[0], a[1], frozenset([a[2]]) | {e[2]} if isinstance(a[2], int) else a[2] | {e[2]})),
        lambda w: w.process(lambda k, s, e, xs: sorted(x[2] for x in xs)),
    ],
    ids=["aggregate", "reduce", "process"],
)
def test_key_codec_pickle_checkpoints_window_state_the_codec_cannot_encode(tmp_path, build):
    # Elements carry a frozenset (buffered by `process`), accumulators are frozensets.
    def graph():
        w = (
            testing.probe_source()
            .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0], key_codec="pickle")
            .window(weir.Session(0.3))
        )
        return build(w).to(Sink.collect(), "both")

    before = [(k, t, v, frozenset([v])) for k, t, v in EVENTS_BEFORE]
    after = [(k, t, v, frozenset([v])) for k, t, v in EVENTS_AFTER]
    want = uninterrupted(graph, before + after)
    got = resumed(graph, before, after, str(tmp_path / "state"))
    assert got == want
    assert len(want) >= 5


@pytest.mark.parametrize(
    "build",
    [
        lambda w: w.sum(lambda r: r[1]),
        lambda w: w.reduce(lambda a, r: (a[0], a[1] * 7 % 1000 + r[1])),
        lambda w: w.process(lambda k, start, end, rows: [(k, sorted(r[1] for r in rows))]),
    ],
    ids=["sum", "reduce", "process"],
)
def test_processing_time_windows_resume_their_open_windows(tmp_path, build):
    from weir import Tumbling

    def graph():
        s = testing.probe_source().key_by(lambda r: r[0]).window(Tumbling(10.0), processing_time=True)
        return build(s).to(Sink.collect(), "both")

    want = uninterrupted(graph, ROWS)
    got = resumed(graph, ROWS[:25], ROWS[25:], str(tmp_path / "state"))
    assert sorted(map(repr, got)) == sorted(map(repr, want))
    assert len(want) == 5
