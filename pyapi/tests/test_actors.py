"""Python actors (``weir.Actor``) in the Rust actor stage: the counter flow, ``on_<type>`` dispatch
and dead letters, parent/child supervision (one-for-one restarts, budget, backoff in virtual
time), a router over children, a bank account with become/stash, timers in virtual time, ask and
its timeout, tell backpressure, and failures naming the actor."""

import asyncio
import os
import runpy
import threading
from dataclasses import dataclass

import pytest

import weir
from weir import _native, testing
from weir._actors import handler_name


def names(out):
    """Elements ``(actor_name, *rest)`` grouped per actor, in emission order."""
    groups = {}
    for name, *rest in out:
        groups.setdefault(name, []).append(tuple(rest) if len(rest) > 1 else rest[0])
    return groups


def leaf(ctx):
    return ctx.path.rsplit("/", 1)[1]


# --- counter ---------------------------------------------------------------------------------


class Counter(weir.Actor):
    def pre_start(self, ctx):
        self.n = 0

    def handle(self, ctx, msg):
        self.n += 1
        ctx.emit(self.n)


def test_counter_flow_emits_a_running_count_for_every_element():
    for bs in (1, 7, 1024):
        out = weir.Source.from_iter(range(2000)).via(weir.Flow.actor(Counter)).run_with(weir.Sink.collect(), batch_size=bs)
        assert out == list(range(1, 2001)), bs


def test_handlers_run_on_the_thread_that_serves_the_run():
    seen = []

    class Where(weir.Actor):
        def handle(self, ctx, msg):
            seen.append(threading.current_thread().name)
            ctx.emit(msg)

    out = weir.Source.from_iter(range(5)).via(weir.Flow.actor(Where)).run_with(weir.Sink.collect())
    assert out == [0, 1, 2, 3, 4]
    # run() serves the run's Python dispatcher on the calling thread.
    assert seen == [threading.current_thread().name] * 5
    assert _native._gil_on_workers() == 0


def test_a_factory_makes_the_actor_and_sink_actor_materializes_its_ref():
    got = []

    class Collect(weir.Actor):
        def __init__(self, tag):
            self.tag = tag

        def handle(self, ctx, msg):
            got.append((self.tag, msg))

    ref = weir.Source.from_iter([1, 2, 3]).run_with(weir.Sink.actor(lambda: Collect("t"), name="collect"))
    assert got == [("t", 1), ("t", 2), ("t", 3)]
    assert isinstance(ref, weir.ActorRef)
    assert ref.path.endswith("/collect")
    assert ref.is_stopped()


# --- dispatch by type and dead letters --------------------------------------------------------


@dataclass(frozen=True)
class Deposit:
    amount: int


@dataclass(frozen=True)
class Withdraw:
    amount: int


class HTTPRequest:
    def __init__(self, path):
        self.path = path


def test_handler_names_are_on_plus_the_snake_case_type_name():
    assert handler_name(Deposit) == "on_deposit"
    assert handler_name(HTTPRequest) == "on_http_request"
    assert handler_name(int) == "on_int"
    assert handler_name(type(None)) == "on_none_type"
    assert handler_name(type("MyMsg2", (), {})) == "on_my_msg2"


class Typed(weir.Actor):
    def on_deposit(self, ctx, d):
        ctx.emit(("deposit", d.amount))

    def on_int(self, ctx, x):
        ctx.emit(("int", x))

    def on_http_request(self, ctx, r):
        ctx.emit(("http", r.path))


def test_messages_go_to_their_on_type_method_and_unhandled_ones_to_dead_letters():
    letters = []
    msgs = [1, Deposit(5), "nope", HTTPRequest("/a"), 2.5, 2]
    flow = weir.Flow.actor(Typed, name="typed", dead_letters=letters)
    out = weir.Source.from_iter(msgs).via(flow).run_with(weir.Sink.collect())
    assert out == [("int", 1), ("deposit", 5), ("http", "/a"), ("int", 2)]
    assert [d.element for d in letters] == ["nope", 2.5]
    assert [str(d.error) for d in letters] == [
        f"actor '{letters[0].stage}/typed': no handler for a message of type 'str'",
        f"actor '{letters[0].stage}/typed': no handler for a message of type 'float'",
    ]
    assert letters[0].stage.startswith("typed#")


def test_handle_takes_what_no_on_type_method_takes():
    class Fallback(Typed):
        def handle(self, ctx, msg):
            ctx.emit(("other", msg))

    out = weir.Source.from_iter([1, "x", Deposit(2), None]).via(weir.Flow.actor(Fallback)).run_with(weir.Sink.collect())
    assert out == [("int", 1), ("other", "x"), ("deposit", 2), ("other", None)]


def test_bad_props_are_refused_with_a_clear_error():
    with pytest.raises(TypeError, match="must subclass weir.Actor: int does not"):
        weir.Flow.actor(int)
    with pytest.raises(TypeError, match="zero-argument factory, not str"):
        weir.Flow.actor("Counter")
    with pytest.raises(ValueError, match="capacity must be at least 1"):
        weir.Flow.actor(Counter, mailbox=0)
    with pytest.raises(ValueError, match="overflow is 'drop_new'"):
        weir.Flow.actor(Counter, mailbox=weir.Mailbox(4, "spill"))
    with pytest.raises(weir.StageFailed, match="pre_start failed: TypeError: the actor factory actor returned int, not a weir.Actor"):
        weir.Source.from_iter([1]).via(weir.Flow.actor(lambda: 3)).run_with(weir.Sink.collect())


# --- failures --------------------------------------------------------------------------------


class Picky(weir.Actor):
    def pre_start(self, ctx):
        self.n = 0

    def on_int(self, ctx, x):
        if x % 3 == 2:
            raise ValueError(f"bad {x}")
        self.n += 1
        ctx.emit((x, self.n))


def test_a_handler_exception_under_stop_fails_the_run_naming_the_actor_and_the_message():
    with pytest.raises(weir.StageFailed) as ei:
        weir.Source.from_iter(range(7)).via(weir.Flow.actor(Picky)).run_with(weir.Sink.collect())
    e = ei.value
    text = str(e)
    assert "/Picky' failed on element 2: ValueError: bad 2" in text, text
    assert "Traceback (most recent call last)" in text and "in on_int" in text, text
    assert e.element == 2
    assert isinstance(e.__cause__, ValueError) and str(e.__cause__) == "bad 2"


def test_the_root_follows_the_stage_supervision_without_losing_messages():
    def run(sup, bs):
        flow = weir.Flow.actor(Picky, supervision=sup)
        return weir.Source.from_iter(range(7)).via(flow).run_with(weir.Sink.collect(), batch_size=bs)

    for bs in (1, 4, 64):
        assert run("resume", bs) == [(0, 1), (1, 2), (3, 3), (4, 4), (6, 5)], bs
        assert run("restart", bs) == [(0, 1), (1, 2), (3, 1), (4, 2), (6, 1)], bs
        assert run([(ValueError, "resume")], bs) == [(0, 1), (1, 2), (3, 3), (4, 4), (6, 5)], bs


def test_the_context_is_refused_outside_its_actors_hooks():
    kept = []

    class Keeper(weir.Actor):
        def pre_start(self, ctx):
            kept.append(ctx)

        def handle(self, ctx, msg):
            ctx.emit(msg)

    assert weir.Source.from_iter([1]).via(weir.Flow.actor(Keeper)).run_with(weir.Sink.collect()) == [1]
    with pytest.raises(RuntimeError, match="only usable inside its actor's hooks"):
        kept[0].emit(2)
    assert repr(kept[0]) == "ActorContext(outside its actor's hooks)"


# --- parent / child supervision --------------------------------------------------------------

events = []


class Worker(weir.Actor):
    def pre_start(self, ctx):
        self.seen = 0
        events.append(f"{leaf(ctx)} start")

    def handle(self, ctx, msg):
        if msg == "boom":
            raise RuntimeError(f"{leaf(ctx)} boom")
        self.seen += 1
        ctx.emit((leaf(ctx), msg, self.seen))

    def pre_restart(self, ctx, error):
        events.append(f"{leaf(ctx)} restart after {type(error).__name__}: {error}")

    def post_stop(self, ctx):
        events.append(f"{leaf(ctx)} stop")


def parent_of(strategy, n=2):
    class Parent(weir.Actor):
        supervisor_strategy = strategy

        def pre_start(self, ctx):
            self.kids = [ctx.spawn(Worker, name=f"w{i}") for i in range(n)]
            for k in self.kids:
                ctx.watch(k)

        def handle(self, ctx, msg):
            i, m = msg
            ctx.tell(self.kids[i], m)

        def on_terminated(self, ctx, who):
            assert who in self.kids
            ctx.emit(("parent", "terminated", who.path.rsplit("/", 1)[1]))

    return Parent


def test_one_for_one_restarts_only_the_failed_child_with_fresh_state():
    events.clear()
    Parent = parent_of(weir.SupervisorStrategy.one_for_one(max_restarts=3, within=60.0))
    msgs = [(0, "a"), (1, "a"), (0, "boom"), (0, "b"), (1, "b")]
    for bs in (1, 64):
        events.clear()
        out = weir.Source.from_iter(msgs).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect(), batch_size=bs)
        assert names(out) == {"w0": [("a", 1), ("b", 1)], "w1": [("a", 1), ("b", 2)]}, bs
        assert events[:3] == ["w0 start", "w1 start", "w0 restart after RuntimeError: w0 boom"]
        assert events[3] == "w0 start"
        # Upstream completed: the tree stops, children first.
        assert sorted(events[4:]) == ["w0 stop", "w1 stop"]


def test_all_for_one_restarts_every_child():
    Parent = parent_of(weir.SupervisorStrategy.all_for_one())
    msgs = [(0, "a"), (1, "a"), (1, "boom"), (0, "b"), (1, "b")]
    out = weir.Source.from_iter(msgs).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect(), batch_size=1)
    assert names(out) == {"w0": [("a", 1), ("b", 1)], "w1": [("a", 1), ("b", 1)]}


def test_an_exceeded_budget_stops_the_child_and_tells_its_watcher():
    events.clear()
    Parent = parent_of(weir.SupervisorStrategy.one_for_one(max_restarts=1, within=60.0), n=1)
    msgs = [(0, "a"), (0, "boom"), (0, "b"), (0, "boom"), (0, "c")]
    letters = []
    flow = weir.Flow.actor(Parent, dead_letters=letters)
    out = weir.Source.from_iter(msgs).via(flow).run_with(weir.Sink.collect(), batch_size=1)
    assert out == [("w0", "a", 1), ("w0", "b", 1), ("parent", "terminated", "w0")]
    assert events == ["w0 start", "w0 restart after RuntimeError: w0 boom", "w0 start", "w0 stop"]
    # What reached the stopped child went to dead letters.
    assert [d.element for d in letters] == ["c"]


def test_stop_and_escalate_directives():
    Parent = parent_of(weir.SupervisorStrategy.one_for_one(directive="stop"), n=1)
    out = weir.Source.from_iter([(0, "a"), (0, "boom"), (0, "b")]).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect())
    assert out == [("w0", "a", 1), ("parent", "terminated", "w0")]

    Parent = parent_of(weir.SupervisorStrategy.one_for_one(decider=lambda e: "escalate"), n=1)
    with pytest.raises(weir.StageFailed, match="escalated from child: .*w0 boom"):
        weir.Source.from_iter([(0, "boom")]).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect())


def test_a_decider_chooses_by_exception_type():
    def decide(e):
        return "resume" if isinstance(e, RuntimeError) else "restart"

    Parent = parent_of(weir.SupervisorStrategy.one_for_one(decider=decide), n=1)
    out = weir.Source.from_iter([(0, "a"), (0, "boom"), (0, "b")]).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect())
    # Resume keeps the child and its state.
    assert out == [("w0", "a", 1), ("w0", "b", 2)]


class Flaky(weir.Actor):
    def pre_start(self, ctx):
        ctx.emit(("started", ctx.now()))

    def handle(self, ctx, msg):
        if msg == "boom":
            raise RuntimeError("boom")
        ctx.emit((msg, ctx.now()))


class BackoffParent(weir.Actor):
    supervisor_strategy = weir.SupervisorStrategy.backoff(1.0, 3.0)

    def pre_start(self, ctx):
        self.child = ctx.spawn(Flaky, name="flaky")

    def handle(self, ctx, msg):
        ctx.tell(self.child, msg)


def test_a_backoff_supervisor_restarts_after_growing_delays_in_virtual_time():
    clock = testing.VirtualClock()
    run = clock.start(testing.probe_source().via(weir.Flow.actor(BackoffParent)).to(testing.probe_sink(), keep="both"))
    src, sink = run.materialized
    sink.request(100)
    sink.expect_next(("started", 0.0), at=0.0)
    src.offer("boom")
    src.offer("a")  # waits in the mailbox while the child is suspended
    sink.expect_no_element(0.999)
    clock.advance(0.001)
    assert sink.expect_next_n([("started", 1.0), ("a", 1.0)], at=1.0)
    src.offer("boom")
    src.offer("b")
    sink.expect_no_element(1.999)
    clock.advance(0.001)
    assert sink.expect_next_n([("started", 3.0), ("b", 3.0)], at=3.0)
    src.offer("boom")  # capped at max_backoff
    src.offer("c")
    clock.advance(3.0)
    assert sink.expect_next_n([("started", 6.0), ("c", 6.0)], at=6.0)
    src.complete()
    sink.expect_complete()


# --- router over children ----------------------------------------------------------------------


class Square(weir.Actor):
    def on_int(self, ctx, x):
        ctx.emit((leaf(ctx), x * x))


class RoundRobin(weir.Actor):
    def pre_start(self, ctx):
        self.routees = [ctx.spawn(Square, name=f"r{i}") for i in range(3)]
        self.i = 0

    def on_int(self, ctx, x):
        ctx.tell(self.routees[self.i % len(self.routees)], x)
        self.i += 1

    def on_str(self, ctx, cmd):
        # "broadcast" sends the next numbers to every routee
        for r in self.routees:
            ctx.tell(r, len(cmd))


def test_a_router_fans_out_to_its_children_round_robin():
    for bs in (1, 5, 64):
        out = weir.Source.from_iter(range(9)).via(weir.Flow.actor(RoundRobin)).run_with(weir.Sink.collect(), batch_size=bs)
        assert names(out) == {"r0": [0, 9, 36], "r1": [1, 16, 49], "r2": [4, 25, 64]}, bs


def test_a_router_broadcasts_to_every_child():
    out = weir.Source.from_iter(["abc"]).via(weir.Flow.actor(RoundRobin)).run_with(weir.Sink.collect())
    assert sorted(out) == [("r0", 9), ("r1", 9), ("r2", 9)]


def test_a_reply_to_an_actor_comes_back_as_its_message():
    class Echo(weir.Actor):
        def on_int(self, ctx, x):
            ctx.emit(("echo saw", leaf_of(ctx.sender)))
            ctx.reply(x + 1)

    class Asker(weir.Actor):
        def pre_start(self, ctx):
            self.echo = ctx.spawn(Echo, name="echo")

        def on_str(self, ctx, s):
            ctx.tell(self.echo, len(s))

        def on_int(self, ctx, n):
            ctx.emit(("reply", n, leaf_of(ctx.sender)))

    def leaf_of(path):
        return None if path is None else path.rsplit("/", 1)[1]

    out = weir.Source.from_iter(["ab", "abcd"]).via(weir.Flow.actor(Asker, name="asker")).run_with(weir.Sink.collect(), batch_size=1)
    # A reply arrives as a plain message (no sender), as in Rust.
    assert out == [("echo saw", "asker"), ("reply", 3, None), ("echo saw", "asker"), ("reply", 5, None)]


def test_max_actors_caps_the_stage():
    with pytest.raises(weir.StageFailed, match="holds its maximum of 2 actors"):
        weir.Source.from_iter([1]).via(weir.Flow.actor(RoundRobin, max_actors=2)).run_with(weir.Sink.collect())


# --- whole batches: what ends one early ----------------------------------------------------


class Switcher(weir.Actor):
    """``x * 10`` until 3, then ``x`` itself (a behaviour) until 6, then ``x * 10`` again."""

    def on_int(self, ctx, x):
        ctx.emit(x * 10)
        if x == 3:
            ctx.become(self.plain)

    def plain(self, ctx, x):
        ctx.emit(x)
        if x == 6:
            ctx.unbecome()


def test_a_behaviour_installed_mid_batch_takes_the_next_message():
    for bs in (1, 4, 64):
        out = weir.Source.from_iter(range(10)).via(weir.Flow.actor(Switcher)).run_with(weir.Sink.collect(), batch_size=bs)
        assert out == [0, 10, 20, 30, 4, 5, 6, 70, 80, 90], bs


def test_stopping_mid_batch_ends_the_stage_and_dead_letters_the_rest():
    class StopAt5(weir.Actor):
        def on_int(self, ctx, x):
            ctx.emit(x)
            if x == 5:
                ctx.stop()

    for bs in (1, 4, 64):
        letters = []
        flow = weir.Flow.actor(StopAt5, dead_letters=letters)
        out = weir.Source.from_iter(range(10)).via(flow).run_with(weir.Sink.collect(), batch_size=bs)
        assert out == [0, 1, 2, 3, 4, 5], bs
        if bs == 64:
            assert [d.element for d in letters] == [6, 7, 8, 9]


def test_stash_and_unstash_mid_batch_keep_the_order():
    class Holder(weir.Actor):
        def pre_start(self, ctx):
            self.flushed = False

        def on_int(self, ctx, x):
            if x % 2 and not self.flushed:
                ctx.stash()
            else:
                ctx.emit(x)

        def on_str(self, ctx, cmd):
            self.flushed = True
            ctx.unstash_all()

    for bs in (1, 3, 64):
        out = weir.Source.from_iter([1, 2, 3, 4, "flush", 5, 6]).via(weir.Flow.actor(Holder)).run_with(weir.Sink.collect(), batch_size=bs)
        assert out == [2, 4, 1, 3, 5, 6], bs


# --- bank account: become / stash ------------------------------------------------------------


class Open:
    pass


class Account(weir.Actor):
    """Closed until it gets ``Open``: what comes before is stashed, then handled in order."""

    def pre_start(self, ctx):
        self.balance = 0
        ctx.become(self.closed)

    def closed(self, ctx, msg):
        if isinstance(msg, Open):
            ctx.unbecome()
            ctx.unstash_all()
            ctx.emit("opened")
        else:
            ctx.stash()

    def on_deposit(self, ctx, d):
        self.balance += d.amount
        ctx.emit(("balance", self.balance))

    def on_withdraw(self, ctx, w):
        if w.amount > self.balance:
            ctx.emit(("refused", w.amount))
        else:
            self.balance -= w.amount
            ctx.emit(("balance", self.balance))


def test_a_bank_account_stashes_until_it_opens_and_keeps_the_order():
    msgs = [Deposit(10), Withdraw(3), Open(), Deposit(5), Withdraw(20), Withdraw(12)]
    for bs in (1, 2, 64):
        out = weir.Source.from_iter(msgs).via(weir.Flow.actor(Account)).run_with(weir.Sink.collect(), batch_size=bs)
        assert out == ["opened", ("balance", 10), ("balance", 7), ("balance", 12), ("refused", 20), ("balance", 0)], bs


def test_a_full_stash_fails_the_handler_naming_the_actor():
    with pytest.raises(weir.StageFailed, match="Account': stash full \\(1 messages\\)"):
        weir.Source.from_iter([Deposit(1), Deposit(2)]).via(weir.Flow.actor(Account, stash_capacity=1)).run_with(weir.Sink.collect())


# --- timers in virtual time --------------------------------------------------------------------


class Ticker(weir.Actor):
    def pre_start(self, ctx):
        self.n = 0
        ctx.schedule_periodically("tick", 1.0, "tick")
        ctx.schedule_once("once", 2.5, "once")

    def on_str(self, ctx, m):
        if m == "tick":
            self.n += 1
            ctx.emit(("tick", self.n, ctx.now()))
            if self.n == 3:
                assert ctx.cancel_timer("tick") is True
                assert ctx.cancel_timer("tick") is False
        elif m == "once":
            ctx.emit(("once", ctx.now(), ctx.is_timer_active("tick"), ctx.is_timer_active("once")))
        elif m == "stop":
            ctx.stop()


def test_timers_fire_on_the_run_clock_and_cancel():
    clock = testing.VirtualClock()
    run = clock.start(weir.Source.actor(Ticker).to(testing.probe_sink(), keep="both"))
    ref, sink = run.materialized
    sink.request(100)
    sink.expect_no_element(0.5)
    clock.advance(0.5)
    sink.expect_next(("tick", 1, 1.0), at=1.0)
    clock.advance(1.0)
    sink.expect_next(("tick", 2, 2.0), at=2.0)
    clock.advance(0.5)
    sink.expect_next(("once", 2.5, True, False), at=2.5)
    clock.advance(0.5)
    sink.expect_next(("tick", 3, 3.0), at=3.0)
    sink.expect_no_element(10.0)
    assert ref.try_tell("stop") == "enqueued"
    clock.settle()
    sink.expect_complete()
    assert ref.is_stopped()


def test_a_source_actor_completes_once_the_last_outside_ref_is_gone():
    class Hello(weir.Actor):
        def pre_start(self, ctx):
            # Its own ref, asked for and let go, does not keep the source open.
            ctx.emit(ctx.self_ref.path.rsplit("/", 1)[1])

    clock = testing.VirtualClock()
    # keep="right": the source's ref is dropped when the run starts.
    run = clock.start(weir.Source.actor(Hello, name="hello").to(testing.probe_sink(), keep="right"))
    sink = run.materialized
    sink.request(10)
    sink.expect_next("hello")
    sink.expect_complete()


# --- ask, tell and backpressure from outside the graph --------------------------------------


class KV(weir.Actor):
    def pre_start(self, ctx):
        self.d = {}

    def on_tuple(self, ctx, msg):
        op, *args = msg
        if op == "put":
            self.d[args[0]] = args[1]
            ctx.emit(args[0])
        elif op == "get":
            assert ctx.sender == "ask"
            ctx.reply(self.d.get(args[0]))
        elif op == "hold":
            ctx.stash()  # keeps the asker waiting
        elif op == "stop":
            ctx.stop()


def test_ask_gets_the_reply_and_times_out_naming_the_actor():
    h = weir.Source.actor(KV, name="kv").to(weir.Sink.collect(), keep="both").start()
    ref, done = h.materialized
    assert ref.tell(("put", "a", 1)) == "enqueued"
    assert ref.ask(("get", "a"), 5.0) == 1
    assert ref.ask(("get", "zz"), 5.0) is None
    with pytest.raises(weir.AskTimeout, match="ask of actor 'kv#.*/kv' timed out") as ei:
        ref.ask(("hold",), 0.05)
    assert isinstance(ei.value, TimeoutError)
    with pytest.raises(weir.WeirError, match="did not reply"):
        ref.ask(("put", "b", 2), 5.0)

    async def both():
        return await ref.ask_async(("get", "b"), 5.0), await ref.tell_async(("put", "c", 3))

    assert asyncio.run(both()) == (2, "enqueued")
    assert ref.tell(("stop",)) == "enqueued"
    h.wait()
    assert done.result() == ["a", "b", "c"]
    assert ref.is_stopped()
    assert ref.tell(("put", "x", 0)) == "stopped"
    assert ref.try_tell(("put", "x", 0)) == "stopped"


def test_ask_as_a_stage_emits_replies_in_order_and_fails_a_timed_out_element():
    h = weir.Source.actor(KV, name="kv").to(weir.Sink.ignore()).start()
    ref = h.materialized
    for k, v in [("a", 1), ("b", 2)]:
        ref.tell(("put", k, v))
    asks = [("get", "a"), ("get", "b"), ("get", "zz"), ("get", "a")]
    out = weir.Source.from_iter(asks).ask(ref, parallelism=3, timeout=5.0).run_with(weir.Sink.collect())
    assert out == [1, 2, None, 1]
    with pytest.raises(weir.StageFailed, match="ask of actor 'kv#.*/kv' timed out"):
        weir.Source.from_iter([("get", "a"), ("hold",)]).ask(ref, 1, 0.05).run_with(weir.Sink.collect())
    letters = []
    flow = weir.Flow.create().ask(ref, 1, 0.05).with_supervision(default="resume", dead_letters=letters)
    out = weir.Source.from_iter([("get", "a"), ("hold",), ("get", "b")]).via(flow).run_with(weir.Sink.collect())
    assert out == [1, 2]
    # The Rust ask stage moves the message into the ask: its dead letter names the actor only.
    assert [d.element for d in letters] == [None]
    assert "ask of actor 'kv#" in str(letters[0].error) and "timed out" in str(letters[0].error)
    with pytest.raises(ValueError, match="parallelism"):
        weir.Flow.create().ask(ref, 0)
    ref.tell(("stop",))
    h.wait()


def test_tell_blocks_while_the_mailbox_is_full_and_try_tell_applies_the_overflow():
    entered, gate = threading.Event(), threading.Event()
    letters = []

    class Slow(weir.Actor):
        def on_int(self, ctx, x):
            if x == 0:
                entered.set()
                gate.wait(20)
            ctx.emit(x)

        def on_str(self, ctx, m):
            ctx.stop()

    h = weir.Source.actor(Slow, mailbox=2, dead_letters=letters).to(weir.Sink.collect(), keep="both").start()
    ref, done = h.materialized
    assert ref.tell(0) == "enqueued"
    assert entered.wait(20)
    # The actor is busy with 0: two more fill its mailbox.
    assert ref.tell(1) == "enqueued" and ref.tell(2) == "enqueued"
    assert (len(ref), ref.capacity, ref.pressure) == (2, 2, "critical")
    with pytest.raises(TimeoutError, match="stayed full"):
        ref.tell(3, timeout=0.05)
    assert ref.try_tell(99) == "dropped"
    gate.set()
    assert ref.tell(3) == "enqueued"
    assert ref.tell("stop") == "enqueued"
    h.wait()
    assert done.result() == [0, 1, 2, 3]
    assert [d.element for d in letters] == [99]


def test_an_actor_flow_held_by_downstream_holds_its_source():
    class Double(weir.Actor):
        def on_int(self, ctx, x):
            ctx.emit(2 * x)

    clock = testing.VirtualClock()
    graph = testing.probe_source().via(weir.Flow.actor(Double)).to(testing.probe_sink(), keep="both")
    run = clock.start(graph, batch_size=16)
    src, sink = run.materialized
    src.offer_all(list(range(10_000)))
    clock.settle()
    # No demand: the actor's output waits for credit, so it takes no more input, and the
    # source hands over only what the channels between them hold.
    held = src.delivered()
    assert 0 < held < 1_000, held
    sink.expect_no_element()
    sink.request(10_000)
    assert sink.expect_next_n(10_000) == [2 * x for x in range(10_000)]
    assert src.delivered() == 10_000


def test_tell_inside_a_stage_is_refused_rather_than_blocking_the_run():
    errors = []

    class Teller(weir.Actor):
        def handle(self, ctx, msg):
            try:
                ctx.self_ref.tell(msg)
            except RuntimeError as e:
                errors.append(str(e))

    weir.Source.from_iter([1]).run_with(weir.Sink.actor(Teller))
    assert len(errors) == 1 and "would block the run's Python dispatcher" in errors[0]


def test_overflow_drop_old_and_fail():
    class Idle(weir.Actor):
        def handle(self, ctx, msg):
            ctx.emit(msg)

    clock = testing.VirtualClock()
    letters = []
    run = clock.start(weir.Source.actor(Idle, mailbox=weir.Mailbox(2, "drop_old"), dead_letters=letters).to(testing.probe_sink(), keep="both"))
    ref, sink = run.materialized
    # No demand: the actor is not called, the mailbox fills.
    assert [ref.try_tell(i) for i in range(4)] == ["enqueued"] * 4
    assert [d.element for d in letters] == [0, 1]
    sink.request(10)
    assert sink.expect_next_n([2, 3])
    run.cancel()

    clock = testing.VirtualClock()
    run = clock.start(weir.Source.actor(Idle, mailbox=weir.Mailbox(1, "fail"), name="strict").to(testing.probe_sink(), keep="both"))
    ref, sink = run.materialized
    assert [ref.try_tell(i) for i in range(2)] == ["enqueued", "overflowed"]
    # What the actor emitted before the overflow goes out first.
    sink.request(10)
    sink.expect_next(0)
    err = sink.expect_error(weir.StageFailed)
    assert "mailbox of actor 'strict#" in str(err) and "overflowed (policy fail)" in str(err)


# --- examples -----------------------------------------------------------------------------------


def test_actor_examples_run(repo_root, capsys):
    for name in ("actors_counter.py", "actors_bank.py"):
        runpy.run_path(os.path.join(repo_root, "examples", "python", name), run_name="__main__")
    out = capsys.readouterr().out
    assert "counts: [1, 2, 3, 4, 5]" in out, out
    assert "workers: {'w0': [1, 1], 'w1': [1, 2]}" in out, out
    assert "router: {'r0': [0, 9], 'r1': [1, 16], 'r2': [4, 25]}" in out, out
    assert "backoff restarts at: [1.0, 3.0]" in out, out
    assert "bank: ['opened', 100, 70, 'refused 500', 95]" in out, out
    assert "bank in the pool: ['opened', 100, 70, 'refused 500', 95]" in out, out
    assert "balance asked: 95" in out, out


def test_the_actors_bench_agrees_with_its_baseline(capsys):
    import json

    from weir import bench

    bench.actors(3000, 1)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    by = {(r["workload"], r["variant"]): r for r in lines}
    assert by[("actors_sum", "weir_actor_flow")]["checksum"] == by[("actors_sum", "cpython_method_loop")]["checksum"] == str(sum(range(3000)))
    assert by[("actors_emit", "weir_actor_flow")]["checksum"] == by[("actors_emit", "cpython_method_loop")]["checksum"] == "3000"
    assert by[("actors_sum", "weir_pool_actor_flow")]["checksum"] == str(sum(range(3000)))
    assert by[("actors_emit", "weir_pool_actor_flow")]["checksum"] == "3000"
    assert {r["variant"] for r in lines} == {"cpython_method_loop", "weir_actor_flow", "weir_pool_actor_flow"}


# --- priority and control-aware mailboxes ------------------------------------------------------


class Gated(weir.Actor):
    """Emits every message it handles; ``("gate",)`` blocks it until the test opens the gate, so
    what is told meanwhile waits in the mailbox; ``("stop",)`` stops it."""

    entered = None
    gate = None

    def handle(self, ctx, msg):
        if msg == ("gate",):
            Gated.entered.set()
            assert Gated.gate.wait(10)
        elif msg == ("stop",):
            ctx.stop()
        else:
            ctx.emit(msg)


def _gated_order(mailbox, msgs):
    """What a ``Gated`` source handles after ``msgs`` were told while it was blocked."""
    import threading

    Gated.entered, Gated.gate = threading.Event(), threading.Event()
    h = weir.Source.actor(Gated, mailbox=mailbox).to(weir.Sink.collect(), keep="both").start()
    ref, done = h.materialized
    ref.tell(("gate",))
    assert Gated.entered.wait(10)
    for m in msgs:
        assert ref.try_tell(m) == "enqueued"
    Gated.gate.set()
    h.wait()
    return done.result()


def test_a_priority_mailbox_hands_out_the_highest_priority_first_in_arrival_order_within_one():
    rank = {"stop": 0, "low": 1, "mid": 5, "high": 9}
    msgs = [("low", 1), ("high", 1), ("mid", 1), ("low", 2), ("high", 2), ("stop",), ("mid", 2)]
    out = _gated_order(weir.Mailbox(16, priority=lambda m: rank[m[0]]), msgs)
    assert out == [("high", 1), ("high", 2), ("mid", 1), ("mid", 2), ("low", 1), ("low", 2)]
    # Without a priority: arrival order (the stop comes before ("mid", 2)).
    out = _gated_order(weir.Mailbox(16), msgs)
    assert out == [("low", 1), ("high", 1), ("mid", 1), ("low", 2), ("high", 2)]


class Urgent(tuple):
    pass


def test_a_control_aware_mailbox_puts_control_messages_first_by_type_or_predicate():
    msgs = [("a",), Urgent(("u1",)), ("b",), Urgent(("u2",)), ("stop",)]
    want = [Urgent(("u1",)), Urgent(("u2",)), ("a",), ("b",)]
    assert _gated_order(weir.Mailbox(16, control=Urgent), msgs) == want
    assert _gated_order(weir.Mailbox(16, control=(Urgent, bytes)), msgs) == want
    assert _gated_order(weir.Mailbox(16, control=lambda m: isinstance(m, Urgent)), msgs) == want


def test_a_failing_priority_function_keeps_the_message_at_the_lowest_priority():
    def rank(m):
        if m == ("odd",):
            raise KeyError("no rank")
        return 3 if m[0] == "x" else 0

    out = _gated_order(weir.Mailbox(16, priority=rank), [("odd",), ("x", 1), ("stop",)])
    assert out == [("x", 1), ("odd",)]


def test_bad_mailbox_orders_are_refused():
    with pytest.raises(ValueError, match="priority= or control=, not both"):
        weir.Source.actor(Gated, mailbox=weir.Mailbox(4, priority=len, control=Urgent))
    with pytest.raises(TypeError, match="control= takes a type"):
        weir.Source.actor(Gated, mailbox=weir.Mailbox(4, control=3))
    with pytest.raises(TypeError, match="priority= takes a function"):
        weir.Source.actor(Gated, mailbox=weir.Mailbox(4, priority=3))


# --- selective receive -------------------------------------------------------------------------


class Reply(tuple):
    pass


class Conversation(weir.Actor):
    """On ``("ask", n)`` it waits for the ``Reply`` of ``n``: what else comes meanwhile waits
    in order and is handled after; a second receive follows a ``("ask", 0)``."""

    async def handle(self, ctx, msg):
        if isinstance(msg, tuple) and msg[0] == "ask":
            n = msg[1]
            ctx.emit(("asked", n))
            try:
                got = await ctx.receive(lambda m: isinstance(m, Reply) and m[0] == n, timeout=0.5)
            except TimeoutError as e:
                ctx.emit(("gave up", n, str(e)))
                return
            ctx.emit(("got", tuple(got)))
            if n == 0:
                more = await ctx.receive(Reply)
                ctx.emit(("then", tuple(more)))
        else:
            ctx.emit(("handled", msg))


def test_an_async_handler_awaits_the_matching_message_and_the_others_follow_in_order():
    msgs = [("ask", 1), "a", Reply((2,)), "b", Reply((1,)), "c", ("ask", 0), "d", Reply((0,)), "e", Reply((9,)), "f"]
    out = weir.Source.from_iter(msgs).via(weir.Flow.actor(Conversation)).run_with(weir.Sink.collect(), batch_size=3)
    assert out == [
        ("asked", 1),
        ("got", (1,)),
        ("handled", "a"),
        ("handled", Reply((2,))),
        ("handled", "b"),
        ("handled", "c"),
        ("asked", 0),
        ("got", (0,)),
        ("then", (9,)),
        ("handled", "d"),
        ("handled", "e"),
        ("handled", "f"),
    ]


def test_a_receive_times_out_on_the_virtual_clock_and_raises_in_the_handler():
    from weir import testing

    clock = testing.VirtualClock()
    run = clock.start(weir.Source.actor(Conversation).to(testing.probe_sink(), keep="both"))
    ref, probe = run.materialized
    probe.request(10)
    assert ref.try_tell(("ask", 5)) == "enqueued"
    assert ref.try_tell("x") == "enqueued"
    probe.expect_next(("asked", 5), at=0.0)
    probe.expect_no_element(0.4)
    # At 0.5 s the handler sees TimeoutError; "x", set aside meanwhile, is handled after.
    clock.advance(0.1)
    probe.expect_next_n([("gave up", 5, "receive timed out after 0.5s"), ("handled", "x")], at=0.5)
    run.cancel()


class Impatient(weir.Actor):
    async def handle(self, ctx, msg):
        import asyncio

        await asyncio.sleep(0)


def test_awaiting_anything_but_receive_fails_the_handler_and_bad_matchers_are_refused():
    with pytest.raises(weir.StageFailed, match="may await only ctx.receive"):
        weir.Source.from_iter([1]).via(weir.Flow.actor(Impatient)).run_with(weir.Sink.collect())

    class BadMatcher(weir.Actor):
        async def handle(self, ctx, msg):
            await ctx.receive(3)

    with pytest.raises(weir.StageFailed, match="receive takes a type, a tuple of types or a predicate"):
        weir.Source.from_iter([1]).via(weir.Flow.actor(BadMatcher)).run_with(weir.Sink.collect())


# --- quotas --------------------------------------------------------------------------------------


class Sleepy(weir.Actor):
    def handle(self, ctx, msg):
        if msg == "slow":
            import time

            time.sleep(0.05)
        ctx.emit(msg)


def test_a_handler_over_its_time_limit_is_a_supervised_failure_naming_the_actor():
    flow = weir.Flow.actor(Sleepy, name="sleepy", handler_time_limit=0.01)
    with pytest.raises(weir.StageFailed, match=r"actor 'sleepy#\d+/sleepy': handler took .* over its time limit of 10ms"):
        weir.Source.from_iter(["a", "slow", "b"]).via(flow).run_with(weir.Sink.collect())
    # Under resume the slow call's effects stand and the rest goes on.
    flow = weir.Flow.actor(Sleepy, handler_time_limit=0.01, supervision="resume")
    assert weir.Source.from_iter(["a", "slow", "b"]).via(flow).run_with(weir.Sink.collect()) == ["a", "slow", "b"]
    with pytest.raises(ValueError, match="handler_time_limit must be a positive number of seconds"):
        weir.Flow.actor(Sleepy, handler_time_limit=0)


def test_the_mailbox_budget_of_a_stage_bounds_what_its_mailboxes_hold_together():
    import threading

    Gated.entered, Gated.gate = threading.Event(), threading.Event()
    budget = 3 * weir.ActorRef.message_bytes()
    h = weir.Source.actor(Gated, mailbox=weir.Mailbox(100), mailbox_budget=budget).to(weir.Sink.collect(), keep="both").start()
    ref, done = h.materialized
    ref.tell(("gate",))
    assert Gated.entered.wait(10)
    # The capacity is 100, the budget three messages: the fourth is dropped (drop_new).
    assert [ref.try_tell(("m", i)) for i in range(4)] == ["enqueued"] * 3 + ["dropped"]
    Gated.gate.set()
    assert ref.tell(("stop",)) == "enqueued"
    h.wait()
    assert done.result() == [("m", 0), ("m", 1), ("m", 2)]
    with pytest.raises(ValueError, match="mailbox_budget must be a number of bytes >= 1"):
        weir.Source.actor(Gated, mailbox_budget=0)


def test_send_after_and_send_interval_deliver_on_the_run_clock_until_cancelled():
    from weir import testing

    clock = testing.VirtualClock()
    run = clock.start(weir.Source.actor(Sleepy).to(testing.probe_sink(), keep="both"))
    ref, probe = run.materialized
    probe.request(100)
    once = ref.send_after("once", 0.5)
    tick = ref.send_interval("tick", 0.2)
    assert once.is_active and not once.is_cancelled
    clock.advance(0.2)
    probe.expect_next("tick", at=0.2)
    clock.advance(0.2)
    probe.expect_next("tick", at=0.4)
    clock.advance(0.1)
    probe.expect_next("once", at=0.5)
    assert not once.is_active and not once.cancel()
    clock.advance(0.1)
    probe.expect_next("tick", at=0.6)
    assert tick.cancel() and tick.is_cancelled
    clock.advance(1.0)
    probe.expect_no_element()
    late = ref.send_after("never", 0.1)
    assert late.cancel()
    clock.advance(0.2)
    probe.expect_no_element()
    run.cancel()
    with pytest.raises(ValueError, match="send_interval: interval must be more than 0 seconds"):
        ref.send_interval("x", 0)
