"""Checkpoints from Python: ``run(state_dir=, checkpoint_interval=, retain=)`` mapped onto the
engine's ``CheckpointConfig``, the checkpoint ids on the run handle, and a job killed with
SIGKILL after its first complete checkpoint that resumes when started again on the same
directory (``tests/jobs/lines_to_files.py`` in a subprocess)."""

import glob
import json
import os
import signal
import subprocess
import sys
from collections import Counter

import pytest

import weir
from helpers import cancel_after_checkpoints, until

HERE = os.path.dirname(os.path.abspath(__file__))
JOB = os.path.join(HERE, "jobs", "lines_to_files.py")
N = 400


def test_checkpoint_settings_are_checked():
    g = weir.Source.range(0, 3).to(weir.Sink.collect(), "right")
    with pytest.raises(ValueError, match="checkpoint_interval and retain need state_dir"):
        g.run(checkpoint_interval=1.0)
    with pytest.raises(ValueError, match="checkpoint_interval and retain need state_dir"):
        g.start(retain=2)
    with pytest.raises(ValueError, match="checkpoint_interval must be positive, got 0s"):
        g.run(state_dir="unused", checkpoint_interval=0)
    with pytest.raises(ValueError, match="retain must be at least 1, got 0"):
        g.run(state_dir="unused", retain=0)


def test_run_async_and_run_with_take_the_checkpoint_settings(tmp_path):
    import asyncio

    src = weir.Source.range(0, 3)
    with pytest.raises(ValueError, match="checkpoint_interval and retain need state_dir"):
        asyncio.run(src.run_with_async(weir.Sink.collect(), checkpoint_interval=1.0))
    state = tmp_path / "state"
    assert asyncio.run(src.run_with_async(weir.Sink.collect(), state_dir=state, checkpoint_interval=60.0)) == [0, 1, 2]
    assert src.run_with(weir.Sink.collect(), state_dir=str(state), checkpoint_interval=60.0, retain=1) == [0, 1, 2]
    # No barrier came within the runs: the directory holds no checkpoint.
    assert complete_checkpoints(str(state)) == []


def test_a_run_without_checkpoints_reports_no_ids():
    h = weir.Source.range(0, 3).to(weir.Sink.collect(), "right").start()
    assert h.wait() == [0, 1, 2]
    assert (h.latest_checkpoint, h.restored_checkpoint) == (None, None)


def complete_checkpoints(state):
    """Ids of the checkpoints in ``state`` whose manifest is in place."""
    return sorted(int(os.path.basename(os.path.dirname(m))[4:]) for m in glob.glob(os.path.join(state, "chk-*", "MANIFEST")))


def job(tmp, delay):
    return [sys.executable, JOB, str(tmp / "in.txt"), str(tmp / "out"), str(tmp / "state"), "0.1", str(delay)]


@pytest.fixture(scope="module")
def killed_and_resumed(tmp_path_factory):
    """The job killed after its first complete checkpoint, then run again to the end."""
    tmp = tmp_path_factory.mktemp("ckpt")
    (tmp / "in.txt").write_text("".join(f"k{i},{i}\n" for i in range(N)))
    state = str(tmp / "state")
    first = subprocess.Popen(job(tmp, 0.01), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        until(lambda: complete_checkpoints(state) or first.poll() is not None, "the first checkpoint")
        assert first.poll() is None, first.stderr.read().decode()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    at_kill = complete_checkpoints(state)
    second = subprocess.run(job(tmp, 0), capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr.decode()
    report = json.loads(second.stdout.decode().strip().splitlines()[-1])
    return at_kill, report, read_lines(sorted(glob.glob(str(tmp / "out" / "part-*"))))


def read_lines(paths):
    lines = []
    for p in paths:
        with open(p) as f:
            lines.extend(f.read().splitlines())
    return lines


EXPECTED = [f"k{i}:{i * 10}" for i in range(N)]


def test_a_killed_job_resumes_from_its_newest_complete_checkpoint(killed_and_resumed):
    at_kill, report, _ = killed_and_resumed
    assert at_kill, "the first run was killed after a checkpoint completed"
    # The restart restored the newest complete checkpoint and went on after it.
    assert report["restored"] == at_kill[-1]
    assert report["latest"] is None or report["latest"] > at_kill[-1]
    # What it committed continues the input exactly where the restored source position was:
    # the lines after it, in order, each once, and not the ones before (those were read by the
    # killed run, after about ten lines a checkpoint interval).
    lines = read_lines(report["committed"])
    assert lines, "the resumed run wrote the rest"
    start = EXPECTED.index(lines[0])
    assert start > 0
    assert lines == EXPECTED[start:]


def test_the_committed_files_hold_every_line_exactly_once(killed_and_resumed):
    _, _, lines = killed_and_resumed
    assert lines == EXPECTED


def test_barriers_follow_the_virtual_clock_and_a_run_on_the_same_directory_restores(tmp_path):
    from weir import testing

    state = str(tmp_path / "state")
    clock = testing.VirtualClock()
    g = testing.probe_source().map(lambda x: x * 2).to(weir.Sink.collect(), "both")
    run = clock.start(g, state_dir=state, checkpoint_interval=1.0, retain=1)
    src, _ = run.materialized
    src.offer_all([1, 2, 3])
    clock.advance(0.999)
    assert run.latest_checkpoint is None
    clock.advance(0.001)
    # The checkpoint is written off the run's tasks: wait (bounded) for the notice.
    until(lambda: run.latest_checkpoint == 1, "checkpoint 1")
    clock.advance(1.0)
    until(lambda: run.latest_checkpoint == 2, "checkpoint 2")
    assert complete_checkpoints(state) == [2]  # retain=1 keeps the newest only
    assert run.restored_checkpoint is None
    src.complete()
    assert run.result()[1] == [2, 4, 6]

    again = testing.VirtualClock().start(g, state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 2
    again.materialized[0].complete()
    assert again.result()[1] == []


def windowed_counts(build):
    from weir import testing

    windows = (
        testing.probe_source()
        .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
        .key_by(lambda e: e[0])
        .window(weir.Tumbling(1.0))
    )
    return build(windows).to(weir.Sink.collect(), "both")


def test_window_state_without_an_encoding_fails_the_checkpoint_naming_the_stage(tmp_path):
    from weir import testing

    clock = testing.VirtualClock()
    # A Python reduce's accumulator is checkpointed through weir.codec: a set has no encoding.
    g = windowed_counts(lambda w: w.reduce(lambda a, b: {a[0], b[0]}))
    run = clock.start(g, state_dir=str(tmp_path / "state"), checkpoint_interval=1.0)
    src, _ = run.materialized
    src.offer_all([("a", 0.1), ("b", 0.2), ("a", 0.3)])
    clock.advance(1.0)
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert e.value.stage_name == "window_aggregate"
    assert "cannot checkpoint a value: a set has no stable encoding" in str(e.value)
    assert complete_checkpoints(str(tmp_path / "state")) == []


def test_built_in_window_counts_resume_from_the_latest_checkpoint(tmp_path):
    from weir import testing

    state = str(tmp_path / "state")
    g = windowed_counts(lambda w: w.count())
    run = testing.VirtualClock()
    first = run.start(g, state_dir=state, checkpoint_interval=1.0)
    first.materialized[0].offer_all([("a", 0.1), ("b", 0.2), ("a", 0.3)])
    run.advance(1.0)
    until(lambda: first.latest_checkpoint == 1, "checkpoint 1")
    first.cancel()
    # The open windows' counts come back: the second run continues them.
    again = testing.VirtualClock().start(g, state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all([("b", 0.5), ("a", 1.5)])
    src.complete()
    assert again.result()[1] == [("a", 0.0, 1.0, 2), ("b", 0.0, 1.0, 2), ("a", 1.0, 2.0, 1)]


def test_from_iter_over_a_list_resumes_at_its_checkpointed_position(tmp_path):
    words = [f"w{i % 11}" for i in range(4000)]

    def graph():
        return (
            weir.Source.from_iter(words)
            .throttle(4000, 1.0, burst=20)
            .key_by(lambda w: w)
            .count()
            .to(weir.Sink.collect(), "right")
        )

    state = tmp_path / "st"
    cancel_after_checkpoints(graph(), state, 2)
    again = graph().start(state_dir=state, checkpoint_interval=0.05)
    counts = again.wait()
    assert again.restored_checkpoint is not None and again.restored_checkpoint >= 2
    assert sorted(counts) == sorted(Counter(words).items())


def test_from_iter_over_a_generator_function_resumes_at_its_checkpointed_position(tmp_path):
    words = [f"w{i % 11}" for i in range(4000)]
    calls = []

    def gen():
        calls.append(1)
        for w in words:
            yield w

    def graph():
        return (
            weir.Source.from_iter(gen)
            .throttle(4000, 1.0, burst=20)
            .key_by(lambda w: w)
            .count()
            .to(weir.Sink.collect(), "right")
        )

    state = tmp_path / "st"
    cancel_after_checkpoints(graph(), state, 2)
    again = graph().start(state_dir=state, checkpoint_interval=0.05)
    counts = again.wait()
    assert again.restored_checkpoint is not None and again.restored_checkpoint >= 2
    # One fresh generator per run; the restored one skipped what the checkpoint counted.
    assert len(calls) == 2
    assert sorted(counts) == sorted(Counter(words).items())


def test_a_generator_function_shorter_than_the_restored_position_fails_naming_it(tmp_path):
    n = [3000]

    def gen():
        yield from range(n[0])

    def graph():
        return weir.Source.from_iter(gen).throttle(3000, 1.0, burst=20).to(weir.Sink.ignore())

    state = tmp_path / "st"
    cancel_after_checkpoints(graph(), state, 2)
    n[0] = 1
    with pytest.raises(weir.StageFailed, match=r"the iterator ended after 1 items, before the restored position \d+"):
        graph().run(state_dir=state, checkpoint_interval=0.05)


def test_from_iter_over_a_set_is_refused_at_its_first_checkpoint(tmp_path):
    h = (
        weir.Source.from_iter({"a", "b", "c"})
        .throttle(10, 1.0)
        .to(weir.Sink.ignore())
        .start(state_dir=tmp_path / "st", checkpoint_interval=0.05)
    )
    with pytest.raises(weir.StageFailed, match="from_iter over a set cannot be checkpointed"):
        h.wait()


# --- checkpointed Python actors ----------------------------------------------------------------


class Running(weir.Actor):
    """Sums what it handles and counts it in a child (both checkpointed); ``_note`` is not saved."""

    def pre_start(self, ctx):
        self.total = 0
        self.seen = []
        self._note = "made in pre_start"
        self._child = ctx.spawn(Tally, name="tally", checkpointed=True)

    def handle(self, ctx, msg):
        self.total += msg
        self.seen.append(msg)
        ctx.emit(("sum", msg, self.total, len(self.seen), self._note))
        ctx.tell(self._child, msg)


class Tally(weir.Actor):
    def pre_start(self, ctx):
        self.n = 0

    def handle(self, ctx, msg):
        self.n += 1
        ctx.emit(("tally", msg, self.n))


def _running(checkpointed=True):
    from weir import testing

    flow = weir.Flow.actor(Running, name="running", checkpointed=checkpointed)
    return testing.probe_source().via(flow).to(weir.Sink.collect(), "both")


def test_a_checkpointed_actor_tree_resumes_with_its_state_after_pre_start(tmp_path):
    from weir import testing

    state = str(tmp_path / "state")
    first = testing.VirtualClock()
    run = first.start(_running(), state_dir=state, checkpoint_interval=1.0)
    run.materialized[0].offer_all([1, 2, 3])
    first.advance(1.0)
    until(lambda: run.latest_checkpoint == 1, "checkpoint 1")
    run.cancel()
    again = testing.VirtualClock().start(_running(), state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all([4, 5])
    src.complete()
    out = sorted(again.result()[1])
    assert out == sorted(
        [
            ("sum", 4, 10, 4, "made in pre_start"),
            ("sum", 5, 15, 5, "made in pre_start"),
            ("tally", 4, 4),
            ("tally", 5, 5),
        ]
    )


class Unencodable(weir.Actor):
    def pre_start(self, ctx):
        self.seen = set()

    def handle(self, ctx, msg):
        self.seen.add(msg)


def test_actor_state_without_an_encoding_fails_the_checkpoint_naming_the_actor(tmp_path):
    from weir import testing

    clock = testing.VirtualClock()
    g = testing.probe_source().via(weir.Flow.actor(Unencodable, name="keeper", checkpointed=True)).to(weir.Sink.ignore())
    run = clock.start(g, state_dir=str(tmp_path / "state"), checkpoint_interval=1.0)
    run.materialized.offer_all([1, 2])
    clock.advance(1.0)
    with pytest.raises(weir.StageFailed) as e:
        run.result()
    assert "actor '" in str(e.value) and "keeper" in str(e.value)
    assert "cannot checkpoint a value: a set has no stable encoding" in str(e.value)
    assert complete_checkpoints(str(tmp_path / "state")) == []
    with pytest.raises(TypeError, match="checkpointed= takes True or False"):
        weir.Flow.actor(Running, checkpointed="yes")


def test_an_actor_not_checkpointed_fails_a_checkpointing_run_saying_how_to_opt_in(tmp_path):
    from weir import testing

    clock = testing.VirtualClock()
    run = clock.start(_running(checkpointed=False), state_dir=str(tmp_path / "state"), checkpoint_interval=1.0)
    run.materialized[0].offer_all([1])
    clock.advance(1.0)
    with pytest.raises(weir.StageFailed, match=r"actor 'running#\d+/running' is not checkpointed.*`checkpointed=True`"):
        run.result()
