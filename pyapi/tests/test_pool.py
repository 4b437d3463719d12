"""Interpreter pools: order, errors, crashes, lifetime (user pools live until closed, run-owned
pools die with their run), cleanup on finish / cancel / parent death. Every test taking
``backend`` runs on each pool backend (process, subinterpreter) this interpreter supports."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

import weir

from helpers import Counting, Forever, wait_workers_gone


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


def _per_run(backend, n):
    """``pool=`` for a run-owned pool of ``n`` workers on ``backend`` (``pool=n`` is processes)."""
    return n if backend == "process" else weir.InterpreterPool.per_run(n, backend=backend)


def test_pool_map_preserves_order_and_reuses_workers(backend):
    with weir.InterpreterPool(workers=2, backend=backend) as pool:
        assert pool.backend_name == backend
        ids = pool.worker_ids()
        assert len(ids) == 2 and len(set(ids)) == 2  # started with the pool
        assert pool.pids() == (ids if backend == "process" else [])
        g = weir.Source.range(5000).map(lambda x: x * x, pool=pool).batch_size(64).to(weir.Sink.collect(), keep="right")
        assert g.run() == [x * x for x in range(5000)]
        assert pool.worker_ids() == ids  # runs do not stop a user's pool
        assert g.run() == [x * x for x in range(5000)]  # ... and later runs reuse its workers
        other = weir.Source.range(10).map(lambda x: -x, pool=pool).run_with(weir.Sink.collect())
        assert other == [-x for x in range(10)]
        assert pool.worker_ids() == ids
    assert wait_workers_gone(backend, ids)  # the with-block closed it
    assert pool.worker_ids() == []
    with pytest.raises(weir.StageFailed) as info:
        g.run()
    assert "closed" in str(info.value.__cause__)


def test_run_owned_pool_stops_with_the_run(backend):
    g = weir.Source.range(200).map(lambda x: x + 1, pool=_per_run(backend, 2)).batch_size(16).to(weir.Sink.collect(), keep="right")
    assert g.run() == list(range(1, 201))
    pool = next(iter(g._meta.pools))
    assert pool.run_owned and pool.worker_ids() == []
    assert pool.backend_name == backend
    assert g.run() == list(range(1, 201))  # a new run starts new workers
    assert pool.worker_ids() == []
    with pytest.raises(ValueError):
        weir.Source.range(3).map(abs, pool=0)


def test_pool_backend_is_validated():
    with pytest.raises(ValueError, match=r"^InterpreterPool: unknown backend 'threads'; the backends are \['process', 'subinterpreter'\]$"):
        weir.InterpreterPool(1, backend="threads")
    if "subinterpreter" not in weir.interpreters.backends():
        with pytest.raises(ValueError, match=r"^InterpreterPool: backend 'subinterpreter' is not available: .*3\.12"):
            weir.InterpreterPool(1, backend="subinterpreter")


def test_pool_garbage_collected_stops_workers(backend):
    import gc

    pool = weir.InterpreterPool(workers=1, backend=backend)
    ids = pool.worker_ids()
    assert len(ids) == 1
    del pool
    gc.collect()
    assert wait_workers_gone(backend, ids)


def test_pool_filter_flat_map_map_batches_for_each(backend):
    pool = weir.InterpreterPool(workers=2, backend=backend)
    s = weir.Source.range(100)
    assert s.filter(lambda x: x % 7 == 0, pool=pool).run_with(weir.Sink.collect()) == list(range(0, 100, 7))
    assert s.take(3).flat_map(lambda x: [x] * x, pool=pool).run_with(weir.Sink.collect()) == [1, 2, 2]
    assert s.map_batches(lambda b: [sum(b)], pool=pool).run_with(weir.Sink.fold(0, lambda a, x: a + x)) == 4950
    seen, dead = [], []
    assert s.take(5).for_each(
        lambda x: seen.append(1 // (x - 3)), pool=pool, supervision=[(ZeroDivisionError, "resume")], dead_letters=dead
    ).run() is None
    assert [d.element for d in dead] == [3]  # it ran on every element ...
    assert seen == []  # ... in the workers, on their copies of the list
    pool.close()
    assert pool.worker_ids() == []


def test_pool_worker_exception_is_reported_with_stage(backend):
    def check(x):
        if x == 42:
            raise ValueError("no 42 here")
        return x

    pool = weir.InterpreterPool(workers=1, backend=backend)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(100).map(check, pool=pool, name="pooled").run_with(weir.Sink.collect())
    assert info.value.stage_name == "pooled"
    assert isinstance(info.value.__cause__, ValueError)
    assert "no 42 here" in str(info.value.__cause__)
    assert len(pool.worker_ids()) == 1  # a failing function does not kill the worker
    pool.close()


def test_pool_worker_crash_is_reported_and_replaced(backend):
    def crash(x):  # a subinterpreter's os._exit ends that worker only, like a process's
        if x == 10:
            os._exit(3)
        return x

    pool = weir.InterpreterPool(workers=2, backend=backend)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(50).map(crash, pool=pool, name="crashy").batch_size(8).run_with(weir.Sink.collect())
    assert info.value.stage_name == "crashy"
    assert isinstance(info.value.__cause__, weir.WorkerCrashed)
    # resume: only the element that kills a worker is a dead letter; the rest of its batch runs
    # again on a fresh worker
    dead = []
    out = (
        weir.Source.range(50)
        .map(crash, pool=pool, supervision=[(weir.WorkerCrashed, "resume")], dead_letters=dead)
        .batch_size(8)
        .run_with(weir.Sink.collect())
    )
    assert out == [x for x in range(50) if x != 10]
    assert [d.element for d in dead] == [10]
    assert isinstance(dead[0].error, weir.WorkerCrashed)
    assert "exited with code 3 while running this element" in str(dead[0].error)
    assert pool.crashes >= 2
    assert len(pool.worker_ids()) == 2  # crashed workers were replaced
    pool.close()
    assert pool.worker_ids() == []


def test_pool_segfault_is_a_crash():
    # Processes only: a subinterpreter shares the process, which a segfault ends.
    def segv(x):
        if x == 3:
            os.kill(os.getpid(), signal.SIGSEGV)
        return x

    pool = weir.InterpreterPool(workers=1)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(10).map(segv, pool=pool).batch_size(2).run_with(weir.Sink.collect())
    assert isinstance(info.value.__cause__, weir.WorkerCrashed)


def test_pool_cancel_leaves_no_worker_of_a_run_owned_pool(backend):
    def slow(x):
        time.sleep(0.01)
        return x

    g = weir.Source.from_iter(Forever()).map(slow, pool=_per_run(backend, 2)).batch_size(4).to(weir.Sink.ignore(), keep="right")
    pool = next(iter(g._meta.pools))
    h = g.start()
    deadline = time.time() + 20
    while len(pool.worker_ids()) < 2 and time.time() < deadline:
        time.sleep(0.05)
    ids = pool.worker_ids()
    assert len(ids) == 2
    h.cancel()
    with pytest.raises(weir.RunCancelled):
        h.wait(timeout=30)
    assert wait_workers_gone(backend, ids)


def test_pool_cancel_keeps_a_user_pool_usable(backend):
    def slow(x):  # defined here: shipped by value (the workers cannot import this test module)
        time.sleep(0.01)
        return x

    with weir.InterpreterPool(workers=2, backend=backend) as pool:
        pids = pool.worker_ids()
        h = weir.Source.from_iter(Forever()).map(slow, pool=pool).batch_size(4).to(weir.Sink.ignore(), keep="right").start()
        time.sleep(0.3)
        h.cancel()
        with pytest.raises(weir.RunCancelled):
            h.wait(timeout=30)
        assert pool.worker_ids() == pids
        assert weir.Source.range(20).map(slow, pool=pool).run_with(weir.Sink.collect()) == list(range(20))
    assert wait_workers_gone(backend, pids)


def test_parent_death_leaves_no_worker(tmp_path):
    # Processes only: subinterpreters are threads of the parent and cannot outlive it.
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
    assert s["subinterpreters"] is (sys.version_info >= (3, 12))
    expect = ["process", "subinterpreter"] if sys.version_info >= (3, 12) else ["process"]
    assert weir.interpreters.backends() == expect


def test_function_the_worker_cannot_load_fails_the_stage(tmp_path, monkeypatch, backend):
    (tmp_path / "gone_module.py").write_text("def f(x):\n    return x\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module

    (tmp_path / "gone_module.py").unlink()  # pickled by reference: the workers cannot import it
    with weir.InterpreterPool(workers=1, backend=backend) as pool:
        pids = pool.worker_ids()
        with pytest.raises(weir.StageFailed) as info:
            weir.Source.range(5).map(gone_module.f, pool=pool).run_with(weir.Sink.collect())
        assert isinstance(info.value.__cause__, ModuleNotFoundError)
        assert info.value.element == [0]  # the batch it failed: the first element, sent alone to measure the cost
        assert pool.worker_ids() == pids  # the worker survived


def test_large_buffers_travel_out_of_band():
    # Processes only: numpy does not load in an isolated subinterpreter.
    np = pytest.importorskip("numpy")
    from weir._worker import dumps

    arr = np.arange(1 << 16, dtype=np.int64)
    payload, buffers = dumps([arr])
    assert [b.nbytes for b in buffers] == [arr.nbytes]  # not copied into the pickle
    assert len(payload) < 1024
    with weir.InterpreterPool(workers=1) as pool:
        out = weir.Source.from_iter([arr, arr[::2], arr + 1]).map(lambda a: a * 2, pool=pool).run_with(
            weir.Sink.collect()
        )
    assert [o.tolist() for o in out] == [(arr * 2).tolist(), (arr[::2] * 2).tolist(), ((arr + 1) * 2).tolist()]


def test_unordered_pool_emits_batches_as_they_complete(backend):
    # The first batch (elements 0-3) is slow: unordered, the later batches overtake it.
    slow_first = lambda x: (__import__("time").sleep(0.5) if x < 4 else None, x)[1]  # noqa: E731
    with weir.InterpreterPool(workers=2, backend=backend) as pool:
        g = weir.Source.range(40).batch_size(4).map(slow_first, pool=pool, ordered=False).batch_size(4)
        out = g.run_with(weir.Sink.collect())
        assert sorted(out) == list(range(40))
        assert out.index(0) > 4, out
        ordered = weir.Source.range(40).batch_size(4).map(slow_first, pool=pool).batch_size(4)
        assert ordered.run_with(weir.Sink.collect()) == list(range(40))


def test_pool_keeps_in_flight_batches_bounded(backend):
    source = Counting()
    out = []
    slow = lambda x: (__import__("time").sleep(0.002), x)[1]  # noqa: E731
    with weir.InterpreterPool(workers=1, backend=backend) as pool:
        g = weir.Source.from_iter(source).map(slow, pool=pool).batch_size(4).to(weir.Sink.for_each(out.append), keep="right")
        h = g.start(batch_size=4)
        gaps = []
        for _ in range(3):
            time.sleep(0.4)
            gaps.append(source.pulled - len(out))
        h.cancel()
        with pytest.raises(weir.RunCancelled):
            h.wait(timeout=30)
    assert len(out) > 50
    assert max(gaps) < 500, gaps  # max_inflight batches at the pool plus a few channel credits
    assert gaps[-1] <= gaps[0] + 100, gaps


def test_workers_are_processes_or_interpreters_of_this_process(backend):
    def where(_):
        import os
        import sys

        if sys.version_info >= (3, 13):
            import _interpreters

            iid = _interpreters.get_current()[0]
        elif sys.version_info >= (3, 12):
            import _xxsubinterpreters

            iid = int(_xxsubinterpreters.get_current())
        else:
            iid = 0  # processes only: the main interpreter
        return os.getpid(), iid

    with weir.InterpreterPool(workers=2, backend=backend) as pool:
        got = set(weir.Source.range(40).map(where, pool=pool).batch_size(4).run_with(weir.Sink.collect()))
        if backend == "process":
            assert {pid for pid, _ in got} <= set(pool.pids()) and os.getpid() not in {pid for pid, _ in got}
            assert {iid for _, iid in got} == {0}  # each process's main interpreter
        else:
            assert {pid for pid, _ in got} == {os.getpid()}
            assert {iid for _, iid in got} <= set(pool.worker_ids()) and 0 not in {iid for _, iid in got}


def test_functions_from_modules_that_import_weir_load_in_every_backend(tmp_path, monkeypatch, backend):
    # A subinterpreter cannot load weir's native module: `import weir` there gives the package
    # without it, and using the engine fails that element with the reason.
    (tmp_path / "uses_weir.py").write_text(
        "import weir\n\ndef inc(x):\n    return x + 1\n\ndef build(x):\n    return type(weir.Source).__name__\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import uses_weir

    with weir.InterpreterPool(workers=1, backend=backend) as pool:
        assert weir.Source.range(5).map(uses_weir.inc, pool=pool).run_with(weir.Sink.collect()) == [1, 2, 3, 4, 5]
        g = weir.Source.range(2).map(uses_weir.build, pool=pool, name="build")
        if backend == "process":
            assert g.run_with(weir.Sink.collect()) == ["type", "type"]
        else:
            with pytest.raises(weir.StageFailed) as info:
                g.run_with(weir.Sink.collect())
            assert info.value.stage_name == "build" and info.value.element == 0
            assert isinstance(info.value.__cause__, ImportError)
            assert str(info.value.__cause__).startswith(
                "weir.Source is not available in a pool subinterpreter: weir's native module cannot load there"
            )
