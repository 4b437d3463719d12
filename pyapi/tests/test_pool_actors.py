"""Actors whose hooks run in an interpreter pool (``pool=``): the same output as inline, replies,
stash and become, spawned children, a worker crash restarting the actor with its last state,
call timeouts, unpicklable messages, and checkpoints."""

import os
import time

import pytest

import weir
from helpers import until


@pytest.fixture(scope="module")
def pool():
    with weir.InterpreterPool(2) as p:
        yield p


class Counter(weir.Actor):
    def pre_start(self, ctx):
        self.n = 0

    def handle(self, ctx, msg):
        self.n += 1
        ctx.emit((msg, self.n))


class Where(weir.Actor):
    def handle(self, ctx, msg):
        ctx.emit(os.getpid())


def test_a_counter_in_the_pool_emits_what_it_emits_inline_at_every_batch_size(pool):
    xs = list(range(50))
    want = [(x, i + 1) for i, x in enumerate(xs)]
    for bs in (1, 3, 64):
        inline = weir.Source.from_iter(xs).via(weir.Flow.actor(Counter)).run_with(weir.Sink.collect(), batch_size=bs)
        pooled = weir.Source.from_iter(xs).via(weir.Flow.actor(Counter, pool=pool)).run_with(weir.Sink.collect(), batch_size=bs)
        assert inline == want, bs
        assert pooled == want, bs


def test_the_handlers_run_in_a_pool_worker(pool):
    pids = weir.Source.from_iter(range(5)).via(weir.Flow.actor(Where, pool=pool)).run_with(weir.Sink.collect())
    assert len(set(pids)) == 1
    assert pids[0] != os.getpid()
    assert pids[0] in pool.pids()


from test_actors import Account, Deposit, Open, Withdraw  # noqa: E402 - the inline test's account


def test_a_bank_account_in_the_pool_stashes_until_it_opens_and_keeps_the_order(pool):
    msgs = [Deposit(10), Withdraw(3), Open(), Deposit(5), Withdraw(20), Withdraw(12)]
    want = ["opened", ("balance", 10), ("balance", 7), ("balance", 12), ("refused", 20), ("balance", 0)]
    for bs in (1, 2, 64):
        flow = weir.Flow.actor(Account, pool=pool)
        assert weir.Source.from_iter(msgs).via(flow).run_with(weir.Sink.collect(), batch_size=bs) == want, bs


class Doubler(weir.Actor):
    def handle(self, ctx, msg):
        ctx.reply((msg * 2, ctx.sender))
        ctx.emit(msg)


def test_asks_to_a_pool_actor_are_answered_by_its_worker(pool):
    h = weir.Source.actor(Doubler, pool=pool).to(weir.Sink.collect(), "both").start()
    ref = h.materialized[0]
    assert [ref.ask(x, timeout=10.0) for x in (1, 2, 3)] == [(2, "ask"), (4, "ask"), (6, "ask")]
    assert ref.tell(7) == "enqueued"
    assert ref.ask(8, timeout=10.0) == (16, "ask")
    del ref
    h.cancel()


class Parent(weir.Actor):
    """Spawns an inline child and tells it every message; stops it on ``"stop"``."""

    def pre_start(self, ctx):
        self.child = ctx.spawn(Child, name="child")
        ctx.watch(self.child)

    def handle(self, ctx, msg):
        if msg == "stop":
            ctx.stop(self.child)
        else:
            ctx.tell(self.child, (msg, ctx.self_ref))

    def on_terminated(self, ctx, who):
        ctx.emit(("terminated", who == self.child))


class Child(weir.Actor):
    def handle(self, ctx, msg):
        x, parent = msg
        ctx.emit(("child", x, parent.path.endswith("Parent")))


def test_a_pool_actor_spawns_watches_and_tells_inline_children_through_refs(pool):
    out = weir.Source.from_iter([1, 2, "stop"]).via(weir.Flow.actor(Parent, pool=pool)).run_with(weir.Sink.collect(), batch_size=1)
    assert out == [("child", 1, True), ("child", 2, True), ("terminated", True)]


class Summer(weir.Actor):
    """A running sum; ``"die"`` kills its worker process."""

    def pre_start(self, ctx):
        self.total = 0

    def handle(self, ctx, msg):
        if msg == "die":
            os._exit(3)
        self.total += msg
        ctx.emit(self.total)


def test_a_crashed_pool_actor_is_restarted_with_its_last_state_when_checkpointed():
    msgs = [1, 2, 3, "die", 4, 5]
    for bs in (1, 2, 64):
        with weir.InterpreterPool(1) as p:
            before = p.pids()
            flow = weir.Flow.actor(Summer, pool=p, checkpointed=True, supervision="restart")
            out = weir.Source.from_iter(msgs).via(flow).run_with(weir.Sink.collect(), batch_size=bs)
            assert out == [1, 3, 6, 10, 15], bs
            assert p.pids() != before
            assert p.stats()["restarts"] == 1


def test_without_checkpointing_a_crashed_pool_actor_restarts_fresh_and_the_crash_names_the_message():
    with weir.InterpreterPool(1) as p:
        flow = weir.Flow.actor(Summer, pool=p, supervision="restart")
        out = weir.Source.from_iter([1, 2, 3, "die", 4, 5]).via(flow).run_with(weir.Sink.collect(), batch_size=1)
        assert out == [1, 3, 6, 4, 9]
        stop = weir.Flow.actor(Summer, pool=p)
        with pytest.raises(weir.StageFailed, match=r"failed on element 'die': WorkerCrashed: pool worker \(pid \d+\) exited with code 3 while running this message"):
            weir.Source.from_iter([1, "die", 2]).via(stop).run_with(weir.Sink.collect(), batch_size=64)


class Sleepy(weir.Actor):
    def handle(self, ctx, msg):
        if msg == "slow":
            time.sleep(30)
        ctx.emit(msg)


def test_handler_time_limit_is_the_pool_call_timeout_and_the_late_message_fails_alone():
    with weir.InterpreterPool(1) as p:
        flow = weir.Flow.actor(Sleepy, pool=p, handler_time_limit=0.5, supervision="resume")
        t0 = time.monotonic()
        out = weir.Source.from_iter(["a", "b", "slow", "c"]).via(flow).run_with(weir.Sink.collect(), batch_size=64)
        assert out == ["a", "b", "c"]
        assert time.monotonic() - t0 < 20
        assert p.backend.timeouts == 1
        assert p.stats()["restarts"] == 1


def test_a_message_that_does_not_pickle_fails_alone_after_those_before_it(pool):
    flow = weir.Flow.actor(Counter, pool=pool, supervision="resume")
    import threading

    bad = threading.Lock()  # no pickle ships a lock
    out = weir.Source.from_iter(["a", "b", bad, "c"]).via(flow).run_with(weir.Sink.collect(), batch_size=64)
    assert out == [("a", 1), ("b", 2), ("c", 3)]
    with pytest.raises(weir.StageFailed, match="a message to an actor in an interpreter pool must pickle"):
        weir.Source.from_iter(["a", bad]).via(weir.Flow.actor(Counter, pool=pool)).run_with(weir.Sink.collect())


class Waiter(weir.Actor):
    async def handle(self, ctx, msg):
        await ctx.receive(int)


def test_selective_receive_is_refused_in_the_pool(pool):
    with pytest.raises(weir.StageFailed, match="cannot run in an interpreter pool"):
        weir.Source.from_iter([1]).via(weir.Flow.actor(Waiter, pool=pool)).run_with(weir.Sink.collect())


def test_pool_actors_need_a_process_pool():
    with pytest.raises(TypeError, match="pool= takes a weir.InterpreterPool"):
        weir.Flow.actor(Counter, pool="four")


def test_a_checkpointed_pool_actor_resumes_from_its_checkpoint(tmp_path, pool):
    from weir import testing

    def graph():
        flow = weir.Flow.actor(Summer, name="sum", pool=pool, checkpointed=True)
        return testing.probe_source().via(flow).to(weir.Sink.collect(), "both")

    state = str(tmp_path / "state")
    first = testing.VirtualClock()
    run = first.start(graph(), state_dir=state, checkpoint_interval=1.0)
    run.materialized[0].offer_all([1, 2, 3])
    first.advance(1.0)
    until(lambda: run.latest_checkpoint == 1, "checkpoint 1")
    run.cancel()
    again = testing.VirtualClock().start(graph(), state_dir=state, checkpoint_interval=1.0)
    assert again.restored_checkpoint == 1
    src = again.materialized[0]
    src.offer_all([4, 5])
    src.complete()
    assert again.result()[1] == [10, 15]


# --- zero-copy bytes payloads --------------------------------------------------------------------


class Digest(weir.Actor):
    def handle(self, ctx, msg):
        import hashlib

        ctx.emit((type(msg).__name__, msg.nbytes, hashlib.sha256(msg).hexdigest()))
        ctx.emit(msg[:4])


def test_memoryview_payloads_reach_a_pool_actor_and_come_back_as_memoryviews(pool):
    import hashlib

    data = bytearray(os.urandom(1 << 20)) * 8
    out = weir.Source.from_iter([memoryview(data)]).via(weir.Flow.actor(Digest, pool=pool)).run_with(weir.Sink.collect())
    assert out[0] == ("memoryview", len(data), hashlib.sha256(data).hexdigest())
    assert type(out[1]) is memoryview and bytes(out[1]) == bytes(data[:4])


def test_a_memoryview_pickles_out_of_band_without_a_copy():
    import pickle

    from weir import _pool_actor, _worker

    data = bytearray(b"ab" * (1 << 22))
    payload, bufs = _worker.dumps(("tag", memoryview(data)))
    assert len(payload) < 100
    assert [b.nbytes for b in bufs] == [len(data)]
    data[0:2] = b"zz"  # the buffer to send is the payload's own memory
    assert bytes(bufs[0][:2]) == b"zz"
    tag, view = pickle.loads(payload, buffers=[bytearray(b) for b in bufs])
    assert (tag, type(view), bytes(view[:4])) == ("tag", memoryview, b"zzab")
    # What a pool actor's handler emits travels the same way.
    ctx = _pool_actor._Hosted(weir.Actor(), "a", 1).ctx
    ctx.emit(memoryview(data))
    (blob, fx_bufs), err = _pool_actor._effects(ctx)
    assert err is None and len(blob) < 200
    assert [b.nbytes for b in fx_bufs] == [len(data)]


SHARED = {}


class Same(weir.Actor):
    def handle(self, ctx, msg):
        ctx.emit(msg is SHARED["view"] and msg.obj is SHARED["data"])


def test_an_inline_actor_gets_the_very_buffer_it_is_told():
    SHARED["data"] = data = bytearray(1 << 24)
    SHARED["view"] = view = memoryview(data)
    assert weir.Source.from_iter([view, view]).via(weir.Flow.actor(Same)).run_with(weir.Sink.collect()) == [True, True]


class Slow(weir.Actor):
    def handle(self, ctx, msg):
        t0 = time.time()
        time.sleep(0.2)
        ctx.emit((msg[0], os.getpid(), t0, time.time()))


def test_two_pool_actors_of_one_run_work_at_once_in_two_workers():
    with weir.InterpreterPool(2) as p:
        a = weir.Source.from_iter(["a1", "a2", "a3"]).via(weir.Flow.actor(Slow, pool=p, name="A"))
        b = weir.Source.from_iter(["b1", "b2", "b3"]).via(weir.Flow.actor(Slow, pool=p, name="B"))
        out = a.merge(b).run_with(weir.Sink.collect())
    by = {k: [o for o in out if o[0] == k] for k in "ab"}
    assert [len(by["a"]), len(by["b"])] == [3, 3]
    # Each actor lives in its own worker, and the run's dispatcher waits for neither: their
    # handlers overlap in time.
    assert len({o[1] for o in by["a"]}) == 1 and len({o[1] for o in by["b"]}) == 1
    assert by["a"][0][1] != by["b"][0][1]
    assert any(x[2] < y[3] and y[2] < x[3] for x in by["a"] for y in by["b"])


POOL_FOR_CHILD = []


class InlineParent(weir.Actor):
    """Inline, with a child whose hooks run in the pool (``ctx.spawn(..., pool=)``)."""

    def pre_start(self, ctx):
        self.child = ctx.spawn(Where, name="where", pool=POOL_FOR_CHILD[0])

    def handle(self, ctx, msg):
        ctx.tell(self.child, msg)
        ctx.emit(("parent", os.getpid()))


def test_an_inline_parent_spawns_a_child_in_the_pool(pool):
    POOL_FOR_CHILD[:] = [pool]
    out = weir.Source.from_iter([1, 2]).via(weir.Flow.actor(InlineParent)).run_with(weir.Sink.collect(), batch_size=1)
    parents = [o for o in out if isinstance(o, tuple)]
    children = [o for o in out if not isinstance(o, tuple)]
    assert parents == [("parent", os.getpid())] * 2
    assert len(children) == 2 and set(children) <= set(pool.pids())
