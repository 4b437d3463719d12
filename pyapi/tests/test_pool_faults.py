"""Interpreter pool faults and defaults: crashes lose only their element, unreadable results,
per-call timeouts (pools and map_async), the parent's import path, chunks sized by cost. Every
test taking ``backend`` or ``pool`` runs on each pool backend this interpreter supports."""

import asyncio
import os
import subprocess
import sys
import textwrap
import time

import pytest

import weir
from weir.interpreters import InterpreterPool

from helpers import pool_backend_params


def _crash_on(bad):
    def f(x):
        if x == bad:
            os._exit(3)
        return x * 10

    return f


@pytest.fixture(scope="module", params=pool_backend_params())
def pool(request):
    with InterpreterPool(workers=2, backend=request.param) as p:
        yield p


def test_crash_dead_letters_only_the_element_that_kills_the_worker(pool):
    dead = []
    crashes = pool.crashes
    out = (
        weir.Source.range(40)
        .map(_crash_on(13), pool=pool, name="crashy", supervision=[(weir.WorkerCrashed, "resume")], dead_letters=dead)
        .batch_size(8)
        .run_with(weir.Sink.collect())
    )
    assert out == [x * 10 for x in range(40) if x != 13]
    assert [(d.element, type(d.error)) for d in dead] == [(13, weir.WorkerCrashed)]
    assert "while running this element" in str(dead[0].error)
    assert pool.crashes == crashes + 1  # the culprit is known: it is not run again
    assert len(pool.worker_ids()) == 2


def test_crash_under_stop_emits_the_elements_before_it_then_fails(pool):
    got = []
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(40).map(_crash_on(13), pool=pool, name="crashy").batch_size(8).run_with(weir.Sink.for_each(got.append))
    assert got == [x * 10 for x in range(13)]
    assert info.value.stage_name == "crashy"
    assert info.value.element == 13
    assert isinstance(info.value.__cause__, weir.WorkerCrashed)


def test_a_function_that_kills_every_worker_is_not_retried_forever(backend):
    class Bomb:
        def __reduce__(self):
            return (os._exit, (7,))

    bomb = Bomb()

    def f(x):  # loading it (with the bomb it captures) kills the worker
        return (bomb, x)[1]

    dead = []
    with InterpreterPool(workers=1, backend=backend) as p:
        t = time.monotonic()
        out = weir.Source.range(3).map(f, pool=p, supervision=[(weir.WorkerCrashed, "resume")], dead_letters=dead).run_with(
            weir.Sink.collect()
        )
        assert out == []
        assert [(d.element, type(d.error)) for d in dead] == [(0, weir.WorkerCrashed), (1, weir.WorkerCrashed), (2, weir.WorkerCrashed)]
        assert "exited with code 7" in str(dead[0].error)
        assert p.crashes == 9  # each element: its first run and two retries
        assert time.monotonic() - t < 30


def test_a_result_that_cannot_be_pickled_fails_its_element_only(pool):
    dead = []
    out = (
        weir.Source.range(6)
        .map(lambda x: (lambda: x) if x == 2 else x, pool=pool, name="unpicklable", supervision=[(Exception, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    assert out == [0, 1, 3, 4, 5]
    assert [d.element for d in dead] == [2]
    assert "the result cannot be pickled" in str(dead[0].error)
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(6).map(lambda x: (lambda: x) if x == 2 else x, pool=pool, name="unpicklable").run_with(weir.Sink.collect())
    assert info.value.stage_name == "unpicklable" and info.value.element == 2
    assert "stage 'unpicklable#1' failed on element 2" in str(info.value)


def test_a_result_the_parent_cannot_unpickle_fails_its_element_only(pool):
    class Unreadable:  # pickles in the worker; unpickling calls int("boom") in the parent
        def __reduce__(self):
            return (int, ("boom",))

    dead = []
    g = weir.Source.range(5).map(lambda x: Unreadable() if x == 3 else -x, pool=pool, name="unreadable")
    out = g.with_supervision([(weir.errors.WorkerError, "resume")], dead_letters=dead).run_with(weir.Sink.collect())
    assert out == [0, -1, -2, -4]
    assert [d.element for d in dead] == [3]
    assert isinstance(dead[0].error, weir.errors.WorkerError)
    assert "cannot be unpickled: ValueError: invalid literal for int() with base 10: 'boom'" in str(dead[0].error)
    with pytest.raises(weir.StageFailed) as info:
        g.run_with(weir.Sink.collect())
    assert info.value.stage_name == "unreadable" and info.value.element == 3


def _hang_on(bad, backend):
    # A killed worker process does not finish its call; an abandoned subinterpreter finishes it in
    # the background (so it is kept short).
    secs = 60 if backend == "process" else 3

    def f(x):
        if x == bad:
            time.sleep(secs)
        return x + 100

    return f


def test_timeout_kills_a_hung_worker_and_fails_only_that_element(backend):
    with InterpreterPool(workers=2, backend=backend) as p:
        assert weir.Source.range(4).map(abs, pool=p).run_with(weir.Sink.collect()) == [0, 1, 2, 3]  # warm
        before = set(p.worker_ids())
        dead = []
        t = time.monotonic()
        out = (
            weir.Source.range(10)
            .map(_hang_on(4, backend), pool=p, timeout=0.5, name="slow", supervision=[(TimeoutError, "resume")], dead_letters=dead)
            .run_with(weir.Sink.collect())
        )
        elapsed = time.monotonic() - t
        assert out == [x + 100 for x in range(10) if x != 4]
        assert [(d.element, type(d.error)) for d in dead] == [(4, weir.CallTimeout)]
        verb = "killed" if backend == "process" else "abandoned"
        assert f"exceeded timeout=0.5s; pool worker (" in str(dead[0].error)
        assert str(dead[0].error).endswith(f") was {verb} and replaced")
        assert elapsed < 0.5 + 1.0, elapsed
        after = set(p.worker_ids())
        assert len(after) == 2 and len(before - after) == 1  # the hung worker was replaced
        assert p.backend.timeouts == 1


def test_timeout_under_stop_fails_the_stage_with_the_element(backend):
    with InterpreterPool(workers=1, backend=backend) as p:
        got = []
        t = time.monotonic()
        with pytest.raises(weir.StageFailed) as info:
            weir.Source.range(10).map(_hang_on(2, backend), pool=p, timeout=0.3, name="slow").run_with(weir.Sink.for_each(got.append))
        assert time.monotonic() - t < 0.3 + 1.5
        assert got == [100, 101]
        assert info.value.stage_name == "slow" and info.value.element == 2
        assert isinstance(info.value.__cause__, weir.CallTimeout)


def test_timeout_is_validated():
    with pytest.raises(ValueError, match=r"^slow: timeout must be a positive number of seconds, not 0$"):
        weir.Source.range(3).map(abs, pool=1, timeout=0, name="slow")
    with pytest.raises(ValueError, match=r"^map\(timeout=\.\.\.\) needs pool=: a call running in this process cannot be interrupted$"):
        weir.Source.range(3).map(abs, timeout=1)

    async def f(x):
        return x

    with pytest.raises(ValueError, match=r"^map_async: timeout must be a positive number of seconds, not -1$"):
        weir.Source.range(3).map_async(f, timeout=-1)


def test_map_async_timeout_cancels_the_coroutine():
    cancelled = []

    async def f(x):
        if x == 1:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.append(x)
                raise
        return x * 2

    dead = []
    t = time.monotonic()
    out = (
        weir.Source.range(4)
        .map_async(f, timeout=0.2, name="fetch", supervision=[(weir.CallTimeout, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    assert time.monotonic() - t < 0.2 + 1.0
    assert out == [0, 4, 6]
    assert [(d.element, type(d.error)) for d in dead] == [(1, weir.CallTimeout)]
    assert str(dead[0].error) == "coroutine exceeded timeout=0.2s and was cancelled"
    assert cancelled == [1]
    with pytest.raises(weir.StageFailed) as info:
        weir.Source.range(4).map_async(f, timeout=0.2, name="fetch").run_with(weir.Sink.collect())
    assert info.value.stage_name == "fetch" and info.value.element == 1


def test_workers_import_modules_next_to_the_script_run_from_elsewhere(tmp_path, backend):
    app = tmp_path / "app"
    app.mkdir()
    (app / "helpers_next_to_script.py").write_text("def triple(x):\n    return 3 * x\n")
    (app / "main.py").write_text(
        textwrap.dedent(
            """
            import weir
            from helpers_next_to_script import triple
            with weir.InterpreterPool(workers=2, backend=BACKEND) as pool:
                print(weir.Source.range(5).map(triple, pool=pool).run_with(weir.Sink.collect()))
            """
        ).replace("BACKEND", repr(backend))
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = subprocess.run([sys.executable, str(app / "main.py")], cwd=elsewhere, capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "[0, 3, 6, 9, 12]\n", "")


class _Recording:
    """A backend that runs batches inline and reports a fixed cost per element."""

    def __init__(self, per_element):
        self.per_element = per_element
        self.fns = {}
        self.sizes = []

    def register(self, fid, kind, fn):
        self.fns[fid] = (kind, fn)

    def submit(self, fid, batch, done, timeout=None, observe=None):
        self.sizes.append(len(batch))
        if observe is not None:
            observe(len(batch), self.per_element * len(batch))
        kind, fn = self.fns[fid]
        done(list(fn(batch)) if kind == "map_batches" else [fn(x) for x in batch], [])

    def close(self):
        pass

    def pids(self):
        return []


def test_chunks_are_sized_to_the_measured_cost():
    rec = _Recording(per_element=0.001)  # 1 ms: chunks of 5 ms are 5 elements
    p = InterpreterPool(workers=2, backend=rec)
    out = weir.Source.range(100).map(lambda x: x + 1, pool=p).batch_size(50).run_with(weir.Sink.collect())
    assert out == list(range(1, 101))
    # The first element alone measures the cost; then 49 elements in even chunks of at most 5,
    # and the second batch of 50 in chunks of 5.
    assert rec.sizes == [1] + [5] * 9 + [4] + [5] * 10
    cheap = _Recording(per_element=1e-6)  # cheap elements travel in whole batches
    p = InterpreterPool(workers=2, backend=cheap)
    assert weir.Source.range(3000).batch_size(1000).map(abs, pool=p).batch_size(1000).run_with(weir.Sink.collect()) == list(range(3000))
    assert cheap.sizes == [1, 999, 1000, 1000]
    batches = _Recording(per_element=1.0)  # map_batches: the user's function sees whole batches
    p = InterpreterPool(workers=2, backend=batches)
    assert weir.Source.range(10).map_batches(lambda b: [sum(b)], pool=p).batch_size(5).run_with(weir.Sink.collect()) == [10, 35]
    assert batches.sizes == [5, 5]


def _slow_echo(b):
    time.sleep(0.003)  # 3 ms: the rest of the batch goes out one element per chunk
    return b


def test_large_chunks_handed_out_after_the_cost_probe_do_not_deadlock(backend):
    # The rest of a batch is handed out after its first element's result is read: never from
    # the thread reading that worker's replies (both sides would block on full sockets).
    blobs = [bytes([i]) * (1 << 20) for i in range(12)]
    with InterpreterPool(workers=1, backend=backend) as p:
        out = weir.Source.from_iter(blobs).map(_slow_echo, pool=p).run_with(weir.Sink.collect())
    assert out == blobs


def test_an_element_that_cannot_be_pickled_to_a_worker_fails_alone(pool):
    gen = (i for i in range(3))  # generators do not pickle
    dead = []
    out = (
        weir.Source.from_iter([1, gen, 3])
        .map(lambda x: x * 2, pool=pool, name="double", supervision=[(Exception, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    assert out == [2, 6]
    assert [d.element for d in dead] == [gen]
    assert isinstance(dead[0].error, TypeError)
    assert "cannot pickle 'generator' object" in str(dead[0].error)


def test_exit_with_a_timed_out_call_still_running_is_clean(tmp_path, backend):
    # A killed worker process is gone; an abandoned subinterpreter call is still sleeping when the
    # script ends (CPython 3.12 would abort at exit if its interpreter were left: exit waits).
    script = tmp_path / "main.py"
    script.write_text(
        textwrap.dedent(
            """
            import time, weir
            def f(x):
                if x == 1:
                    time.sleep(1.5)
                return x
            dead = []
            with weir.InterpreterPool(workers=1, backend=BACKEND) as pool:
                out = weir.Source.range(3).map(
                    f, pool=pool, timeout=0.3, supervision=[(weir.CallTimeout, "resume")], dead_letters=dead
                ).run_with(weir.Sink.collect())
            print(out, [d.element for d in dead], flush=True)
            """
        ).replace("BACKEND", repr(backend))
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert (r.returncode, r.stdout, r.stderr) == (0, "[0, 2] [1]\n", "")


def test_an_exception_that_cannot_be_pickled_back_fails_its_element_with_its_text(pool):
    class Unpicklable(Exception):
        def __init__(self, msg):
            super().__init__(msg)
            self.gen = (i for i in range(1))  # generators do not pickle

    def f(x):
        if x == 2:
            raise Unpicklable(f"bad {x}")
        return x

    dead = []
    out = (
        weir.Source.range(4)
        .map(f, pool=pool, supervision=[(weir.errors.WorkerError, "resume")], dead_letters=dead)
        .run_with(weir.Sink.collect())
    )
    assert out == [0, 1, 3]
    assert [d.element for d in dead] == [2]
    assert type(dead[0].error) is weir.errors.WorkerError
    text = str(dead[0].error)
    assert text.startswith("Unpicklable: bad 2\nTraceback (most recent call last):\n")
    assert text.endswith("Unpicklable: bad 2\n")


def test_sys_exit_in_a_worker_is_a_crash_too(pool):
    def f(x):
        if x == 5:
            sys.exit(4)
        return x

    dead = []
    out = weir.Source.range(8).map(f, pool=pool, supervision=[(weir.WorkerCrashed, "resume")], dead_letters=dead).run_with(
        weir.Sink.collect()
    )
    assert out == [0, 1, 2, 3, 4, 6, 7]
    assert [d.element for d in dead] == [5]
    assert str(dead[0].error).endswith("exited with code 4 while running this element")
    assert len(pool.worker_ids()) == 2
