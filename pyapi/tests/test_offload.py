"""``@weir.offload``: calls run in an interpreter pool from plain code, stages and actors; errors,
timeouts and validation; hedged second attempts (off by default)."""

import os
import time

import pytest

import weir


@pytest.fixture(scope="module")
def pool():
    with weir.InterpreterPool(2) as p:
        yield p


def square_where(x, *, plus=0):
    return x * x + plus, os.getpid()


def fails_on_three(x):
    if x == 3:
        raise ValueError(f"bad {x}")
    return x


def once_slow(path, sleep):
    """Sleeps ``sleep`` seconds the first time it is called with ``path`` (it creates the file);
    fast on every later call and when ``path`` is None."""
    if path is None:
        return "fast"
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL))
    except FileExistsError:
        return "fast"
    time.sleep(sleep)
    return "slow"


def test_a_call_runs_in_a_worker_of_the_pool_with_args_and_kwargs(pool):
    f = weir.offload(pool=pool)(square_where)
    value, pid = f(4, plus=1)
    assert value == 17
    assert pid != os.getpid() and pid in pool.pids()
    assert f.submit(5).result(timeout=30)[0] == 25
    assert f.stats() == {"calls": 2, "hedged": 0, "hedge_wins": 0, "cancelled": 0}
    assert f.__wrapped__ is square_where and f.__name__ == "square_where"


def test_stages_and_actors_call_it_and_get_every_result_in_order(pool):
    f = weir.offload(pool=pool)(square_where)
    out = weir.Source.from_iter(range(10)).map(lambda x: f(x)[0]).run_with(weir.Sink.collect())
    assert out == [x * x for x in range(10)]

    class Squares(weir.Actor):
        def handle(self, ctx, msg):
            ctx.emit(f(msg)[0])

    out = weir.Source.from_iter(range(6)).via(weir.Flow.actor(Squares)).run_with(weir.Sink.collect())
    assert out == [0, 1, 4, 9, 16, 25]


def test_the_functions_exception_reaches_the_caller_and_the_next_call_works(pool):
    f = weir.offload(pool=pool)(fails_on_three)
    with pytest.raises(ValueError, match="bad 3"):
        f(3)
    assert [f(x) for x in (1, 2, 4)] == [1, 2, 4]
    # In a stage it is the stage's failure, naming the element, like any exception of a lambda.
    with pytest.raises(weir.StageFailed, match="bad 3"):
        weir.Source.from_iter([1, 2, 3]).map(lambda x: f(x)).run_with(weir.Sink.collect())


def test_a_call_past_its_timeout_fails_with_call_timeout():
    with weir.InterpreterPool(1) as p:
        f = weir.offload(pool=p, timeout=0.5)(once_slow)
        assert f(None, 0) == "fast"
        with pytest.raises(weir.CallTimeout):
            f(_fresh(), 30)
        assert f(None, 0) == "fast"  # on the worker that replaced the killed one


def inner_pid():
    return os.getpid()


INNER = weir.offload(inner_pid)


def outer_pid():
    return os.getpid(), INNER()


def test_an_offloaded_function_called_inside_a_worker_runs_inline(pool):
    outer, inner = weir.offload(pool=pool)(outer_pid)()
    assert outer == inner and outer in pool.pids()


def _fresh():
    import tempfile

    d = tempfile.mkdtemp()
    return os.path.join(d, "slow")


def test_without_hedge_a_slow_call_is_waited_for(pool):
    f = weir.offload(pool=pool)(once_slow)
    for _ in range(25):
        assert f(None, 0) == "fast"
    assert f(_fresh(), 0.5) == "slow"
    assert f.stats() == {"calls": 26, "hedged": 0, "hedge_wins": 0, "cancelled": 0}


def test_a_call_slower_than_k_times_the_p99_gets_a_second_attempt_that_wins(pool):
    f = weir.offload(pool=pool, hedge=3)(once_slow)
    for _ in range(weir._offload.HEDGE_MIN_SAMPLES):
        assert f(None, 0) == "fast"
    assert f.p99() is not None
    t = time.monotonic()
    # The first attempt sleeps 5 s in one worker; the hedge runs in the other and returns first.
    assert f(_fresh(), 5) == "fast"
    assert time.monotonic() - t < 4
    assert f.stats() == {"calls": weir._offload.HEDGE_MIN_SAMPLES + 1, "hedged": 1, "hedge_wins": 1, "cancelled": 1}


def test_bad_arguments_are_refused_with_a_clear_error(pool):
    with pytest.raises(ValueError, match="hedge must be a factor >= 1"):
        weir.offload(pool=pool, hedge=0.5)(square_where)
    with pytest.raises(TypeError, match="pool= takes an InterpreterPool"):
        weir.offload(pool=3)(square_where)
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        weir.offload(timeout=-1)(square_where)
    with pytest.raises(ValueError, match="run-owned"):
        weir.offload(pool=weir.InterpreterPool.per_run(1))(square_where)
    with pytest.raises(TypeError, match="wraps a function"):
        weir.offload(3)


def test_a_closed_pool_fails_the_call():
    p = weir.InterpreterPool(1)
    f = weir.offload(pool=p)(square_where)
    assert f(2)[0] == 4
    p.close()
    with pytest.raises(weir.WeirError, match="closed"):
        f(2)
