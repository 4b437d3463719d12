"""Actors as stages from Python: a counter, a parent restarting its failed child (one-for-one),
a round-robin router over children, and a backoff supervisor driven in virtual time.

Run: python examples/python/actors_counter.py
"""

from typing import Any, Dict, List, Tuple

import weir
from weir import testing


class Counter(weir.Actor):
    """Emits the running count of the messages it handled."""

    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.n = 0

    def handle(self, ctx: weir.ActorContext, msg: Any) -> None:
        self.n += 1
        ctx.emit(self.n)


class Worker(weir.Actor):
    """Counts its messages; fails on "boom" (a restart starts the count over)."""

    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.seen = 0

    def on_str(self, ctx: weir.ActorContext, msg: str) -> None:
        if msg == "boom":
            raise RuntimeError("boom")
        self.seen += 1
        ctx.emit((ctx.path.rsplit("/", 1)[1], self.seen))


class Parent(weir.Actor):
    """Sends ``(i, msg)`` to child ``i``; restarts a failed child, at most 3 times a minute."""

    supervisor_strategy = weir.SupervisorStrategy.one_for_one(max_restarts=3, within=60.0)

    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.kids = [ctx.spawn(Worker, name=f"w{i}") for i in range(2)]

    def on_tuple(self, ctx: weir.ActorContext, msg: Tuple[int, str]) -> None:
        ctx.tell(self.kids[msg[0]], msg[1])


class Square(weir.Actor):
    def on_int(self, ctx: weir.ActorContext, x: int) -> None:
        ctx.emit((ctx.path.rsplit("/", 1)[1], x * x))


class Router(weir.Actor):
    """Round robin over three children."""

    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.routees = [ctx.spawn(Square, name=f"r{i}") for i in range(3)]
        self.i = 0

    def on_int(self, ctx: weir.ActorContext, x: int) -> None:
        ctx.tell(self.routees[self.i % 3], x)
        self.i += 1


class Flaky(weir.Actor):
    def pre_start(self, ctx: weir.ActorContext) -> None:
        ctx.emit(ctx.now())

    def on_str(self, ctx: weir.ActorContext, msg: str) -> None:
        raise RuntimeError(msg)


class BackoffParent(weir.Actor):
    """Restarts its child 1 s after the first failure, 2 s after the next (up to 10 s)."""

    supervisor_strategy = weir.SupervisorStrategy.backoff(1.0, 10.0)

    def pre_start(self, ctx: weir.ActorContext) -> None:
        self.child = ctx.spawn(Flaky)

    def handle(self, ctx: weir.ActorContext, msg: Any) -> None:
        ctx.tell(self.child, msg)


def grouped(pairs: List[Tuple[str, int]]) -> Dict[str, List[int]]:
    out: Dict[str, List[int]] = {}
    for name, v in pairs:
        out.setdefault(name, []).append(v)
    return out


def main() -> None:
    counts = weir.Source.from_iter("abcde").via(weir.Flow.actor(Counter)).run_with(weir.Sink.collect())
    print("counts:", counts)

    msgs = [(0, "a"), (1, "a"), (0, "boom"), (0, "b"), (1, "b")]
    out = weir.Source.from_iter(msgs).via(weir.Flow.actor(Parent)).run_with(weir.Sink.collect())
    print("workers:", grouped(out))

    out = weir.Source.from_iter(range(6)).via(weir.Flow.actor(Router)).run_with(weir.Sink.collect())
    print("router:", grouped(out))

    clock = testing.VirtualClock()
    run = clock.start(testing.probe_source().via(weir.Flow.actor(BackoffParent)).to(testing.probe_sink(), keep="both"))
    src, sink = run.materialized
    sink.request(10)
    sink.expect_next(0.0)
    src.offer("first failure")
    clock.advance(1.0)
    src.offer("second failure")
    clock.advance(2.0)
    restarts = [sink.expect_next(), sink.expect_next()]
    src.complete()
    sink.expect_complete()
    print("backoff restarts at:", restarts)


if __name__ == "__main__":
    main()
