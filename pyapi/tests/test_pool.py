"""Interpreter pools: order, errors, crashes, cleanup on finish / cancel / parent death."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import weir


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purposes
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def _wait_dead(pids, timeout=10.0):
    end = time.time() + timeout
    while time.time() < end:
        if not any(_alive(p) for p in pids):
            return True
        time.sleep(0.05)
    return False


def test_pool_map_preserves_order_and_stops_workers():
    pool = weir.InterpreterPool(workers=2)
    out = weir.Source.range(5000).map(lambda x: x * x, pool=pool).batch_size(64).run_with(weir.Sink.collect())
    assert out == [x * x for x in range(5000)]
    assert pool.pids() == []  # workers are stopped when the run ends


def test_pool_filter_flat_map_map_batches_for_each():
    pool = weir.InterpreterPool(workers=2)
    s = weir.Source.range(100)
    assert s.filter(lambda x: x % 7 == 0, pool=pool).run_with(weir.Sink.collect()) == list(range(0, 100, 7))
    assert s.take(3).flat_map(lambda x: [x] * x, pool=pool).run_with(weir.Sink.collect()) == [1, 2, 2]
    assert s.map_batches(lambda b: [sum(b)], pool=pool).run_with(weir.Sink.fold(0, lambda a, x: a + x)) == 4950
    s.for_each(lambda x: None, pool=pool).run()
    assert pool.pids() == []


def test_pool_worker_exception_is_reported_with_stage():
    def check(x):
        if x == 42:
            raise ValueError("no 42 here")
        return x

    pool = weir.InterpreterPool(workers=1)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(100).map(check, pool=pool, name="pooled").run_with(weir.Sink.collect())
    assert info.value.stage_name == "pooled"
    assert isinstance(info.value.__cause__, ValueError)
    assert "no 42 here" in str(info.value.__cause__)
    assert pool.pids() == []


def test_pool_worker_crash_is_reported_and_replaced():
    def crash(x):
        if x == 10:
            os._exit(3)
        return x

    pool = weir.InterpreterPool(workers=2)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(50).map(crash, pool=pool, name="crashy").batch_size(8).run_with(weir.Sink.collect())
    assert info.value.stage_name == "crashy"
    assert isinstance(info.value.__cause__, weir.WorkerCrashed)
    # resume: the crashed batch goes to the dead letters, the run goes on with a new worker
    dead = []
    out = (
        weir.Source.range(50)
        .map(crash, pool=pool, supervision=[(weir.WorkerCrashed, "resume")], dead_letters=dead)
        .batch_size(8)
        .run_with(weir.Sink.collect())
    )
    assert len(dead) == 1 and 10 in dead[0].element
    assert sorted(out + dead[0].element) == list(range(50))
    assert pool.crashes >= 2
    assert pool.pids() == []


def test_pool_segfault_is_a_crash():
    def segv(x):
        if x == 3:
            os.kill(os.getpid(), signal.SIGSEGV)
        return x

    pool = weir.InterpreterPool(workers=1)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).map(segv, pool=pool).batch_size(2).run_with(weir.Sink.collect())
    assert isinstance(info.value.__cause__, weir.WorkerCrashed)


def test_pool_cancel_leaves_no_worker():
    pool = weir.InterpreterPool(workers=2)
    h = weir.Source.from_iter(_Forever()).map(_slow, pool=pool).batch_size(4).to(weir.Sink.ignore(), keep="right").start()
    deadline = time.time() + 20
    while len(pool.pids()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    pids = pool.pids()
    assert len(pids) == 2
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)
    assert _wait_dead(pids)


def test_parent_death_leaves_no_worker(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys, time, weir
            def slow(x):
                time.sleep(0.01)
                return x
            class Forever:
                def __iter__(self):
                    i = 0
                    while True:
                        yield i
                        i += 1
            pool = weir.InterpreterPool(workers=2)
            h = weir.Source.from_iter(Forever()).map(slow, pool=pool).batch_size(4).to(weir.Sink.ignore()).start()
            while len(pool.pids()) < 2:
                time.sleep(0.05)
            print(" ".join(map(str, pool.pids())), flush=True)
            time.sleep(60)
            """
        )
    )
    p = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        pids = [int(x) for x in line.split()]
        assert len(pids) == 2 and all(_alive(x) for x in pids)
        p.kill()  # SIGKILL: no atexit, no cleanup in the parent
        p.wait()
        assert _wait_dead(pids), "pool workers outlived their parent"
    finally:
        if p.poll() is None:
            p.kill()


def test_interpreters_supported():
    s = weir.interpreters.supported()
    assert s["processes"] is True
    assert set(s) == {"processes", "subinterpreters", "free_threading"}


def _slow(x):
    time.sleep(0.01)
    return x


class _Forever:
    def __iter__(self):
        i = 0
        while True:
            yield i
            i += 1
