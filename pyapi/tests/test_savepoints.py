"""Savepoints from Python: ``RunHandle.savepoint(dir)`` / ``TestRun.savepoint(dir)`` over the
engine's ``RunHandle::savepoint``, ``run(restore_from=, allow_unmatched=)`` over
``CheckpointConfig::restore_from`` / ``allow_unmatched``, and the handle's ``started_empty``
and ``skipped``."""

import asyncio
import os
import re
import time

import pytest

import weir
from weir import testing

EVENTS = [("a", 0.1), ("b", 0.2), ("a", 0.3)]
LATER = [("b", 0.5), ("a", 1.5)]
# The windows of EVENTS + LATER: the restored run continues the open window of the first.
COUNTS = [("a", 0.0, 1.0, 2), ("b", 0.0, 1.0, 2), ("a", 1.0, 2.0, 1)]


def counts(extra_stage=False):
    """Per-key counts in 1 s event-time windows of a probe's ``(key, ts)`` events, into a
    collect sink with its own uid; ``extra_stage`` adds a map after the windows."""
    w = (
        testing.probe_source()
        .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
        .key_by(lambda e: e[0])
        .window(weir.Tumbling(1.0))
        .count()
    )
    if extra_stage:
        w = w.map(lambda r: r)
    return w.to(weir.Sink.collect().uid("out"), "both")


def stateful_stages(savepoint):
    """The stage ids (hex) of the savepoint's manifest lines that carry a state file."""
    with open(os.path.join(savepoint, "MANIFEST")) as f:
        lines = f.read().splitlines()
    return [l.split(" ")[1] for l in lines if l.startswith("stage ") and not l.endswith(" -")]


@pytest.fixture
def savepoint(tmp_path):
    """A savepoint of the window job after EVENTS (the run is cancelled afterwards)."""
    clock = testing.VirtualClock()
    run = clock.start(counts(), state_dir=tmp_path / "first", checkpoint_interval=60.0)
    run.materialized[0].offer_all(EVENTS)
    # The events reach the windows before the savepoint's barrier is injected.
    clock.settle()
    path = run.savepoint(tmp_path / "sp")
    run.cancel()
    with pytest.raises(weir.RunCancelled):
        run.result()
    return path


def test_a_savepoint_restored_into_a_new_run_continues_exactly(tmp_path, savepoint):
    assert savepoint == str(tmp_path / "sp")
    assert sorted(os.listdir(savepoint))[-1] == "MANIFEST"
    # The first run's own directory holds it too, as its checkpoint 1.
    assert os.path.exists(tmp_path / "first" / "chk-00000000000000000001" / "MANIFEST")
    again = testing.VirtualClock().start(
        counts(), state_dir=tmp_path / "second", checkpoint_interval=60.0, restore_from=savepoint
    )
    assert (again.restored_checkpoint, again.started_empty, again.skipped) == (1, [], [])
    src = again.materialized[0]
    src.offer_all(LATER)
    src.complete()
    assert again.result()[1] == COUNTS
    # No barrier came within the run: the savepoint is not copied into its directory.
    assert again.latest_checkpoint is None
    assert not os.path.exists(tmp_path / "second") or os.listdir(tmp_path / "second") == []


def test_a_run_on_a_directory_with_its_own_checkpoint_ignores_restore_from(tmp_path, savepoint):
    clock = testing.VirtualClock()
    own = clock.start(counts(), state_dir=tmp_path / "own", checkpoint_interval=1.0)
    own.materialized[0].offer_all([("c", 0.4)])
    clock.settle()
    own.savepoint(tmp_path / "unused")
    own.cancel()
    again = testing.VirtualClock().start(counts(), state_dir=tmp_path / "own", restore_from=savepoint)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all([("c", 0.6)])
    src.complete()
    assert again.result()[1] == [("c", 0.0, 1.0, 2)]


def test_an_added_stage_starts_empty_and_is_reported(tmp_path, savepoint):
    again = testing.VirtualClock().start(counts(extra_stage=True), state_dir=tmp_path / "second", restore_from=savepoint)
    assert again.restored_checkpoint == 1
    assert again.started_empty == [("map#8", 0)]
    src = again.materialized[0]
    src.offer_all(LATER)
    src.complete()
    assert again.result()[1] == COUNTS


def test_a_removed_stateful_stage_raises_unless_allow_unmatched(tmp_path, savepoint):
    (window,) = stateful_stages(savepoint)
    plain = testing.probe_source().to(weir.Sink.collect().uid("out"), "both")
    msg = f"savepoint {savepoint} holds state of stages not in the graph: {window}#0 (allow_unmatched() ignores them)"
    with pytest.raises(weir.WeirError, match="^" + re.escape(msg) + "$"):
        testing.VirtualClock().start(plain, state_dir=tmp_path / "second", restore_from=savepoint)
    # Nothing was written for the refused run.
    assert not os.path.exists(tmp_path / "second") or os.listdir(tmp_path / "second") == []
    run = testing.VirtualClock().start(plain, state_dir=tmp_path / "third", restore_from=savepoint, allow_unmatched=True)
    assert (run.restored_checkpoint, run.started_empty) == (1, [])
    src = run.materialized[0]
    src.offer_all([1, 2])
    src.complete()
    assert run.result()[1] == [1, 2]


def test_restore_settings_need_a_state_dir(tmp_path):
    g = weir.Source.range(0, 3).to(weir.Sink.collect(), "right")
    msg = "run: restore_from and allow_unmatched need state_dir (where the restored run keeps its checkpoints)"
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        g.run(restore_from=tmp_path)
    with pytest.raises(ValueError, match="^" + re.escape(msg) + "$"):
        g.start(allow_unmatched=True)


def test_restoring_a_missing_savepoint_names_its_manifest(tmp_path):
    g = weir.Source.range(0, 3).to(weir.Sink.collect(), "right")
    missing = tmp_path / "nowhere"
    with pytest.raises(weir.WeirError, match="^" + re.escape(f"checkpoint file {missing}/MANIFEST: ")):
        g.run(state_dir=tmp_path / "state", restore_from=missing)


def test_a_savepoint_of_a_run_without_checkpoints_or_after_its_end_raises(tmp_path):
    h = weir.Source.range(0, 3).to(weir.Sink.collect(), "right").start()
    msg = f"savepoint into {tmp_path / 'a'} failed: savepoint 0: the run was materialized without checkpoints"
    with pytest.raises(weir.WeirError, match="^" + re.escape(msg) + "$"):
        h.savepoint(tmp_path / "a")
    assert h.wait() == [0, 1, 2]
    done = weir.Source.range(0, 3).to(weir.Sink.collect(), "right").start(state_dir=tmp_path / "s")
    assert done.wait() == [0, 1, 2]
    msg = f"savepoint into {tmp_path / 'b'} failed: savepoint 0: the run ended before it completed"
    with pytest.raises(weir.WeirError, match="^" + re.escape(msg) + "$"):
        done.savepoint(tmp_path / "b")
    assert not os.path.exists(tmp_path / "b")


N = 100_000


def slow(x):
    time.sleep(0.0002)
    return x


def test_a_running_handle_takes_savepoints_blocking_and_async_and_a_restore_continues(tmp_path):
    inp = tmp_path / "in.txt"
    inp.write_text("".join(f"{i}\n" for i in range(N)))
    src = weir.Source.from_lines(inp).map(int)
    h = src.map(slow).to(weir.Sink.collect(), "right").start(batch_size=16, state_dir=tmp_path / "s", checkpoint_interval=600.0)
    first = h.savepoint(tmp_path / "sp1", timeout=60)
    second = asyncio.run(h.savepoint_async(tmp_path / "sp2"))
    assert (first, second) == (str(tmp_path / "sp1"), str(tmp_path / "sp2"))
    assert h.latest_checkpoint == 2
    assert not h.done(), "the run outlived its savepoints"
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait()
    # The second savepoint's source position (a byte offset in the file): the restored run
    # emits the rest of the lines, in order, each once.
    rest = src.map(lambda x: x).to(weir.Sink.collect(), "right").run(state_dir=tmp_path / "r", restore_from=second)
    assert rest, "the savepoint was taken before the source's end"
    assert rest[0] > 0
    assert rest == list(range(rest[0], N))
