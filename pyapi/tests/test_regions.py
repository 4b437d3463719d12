"""Shard regions from Python: one actor per entity id made on its first message, per-entity
order at parallelism 1 and 2 and through one-message mailboxes and shard buffers, passivation on
the virtual clock, and an id function that raises."""

import pytest

import weir


class Counter(weir.Actor):
    def __init__(self, entity):
        self.entity = entity
        self.n = 0

    def handle(self, ctx, msg):
        self.n += 1
        ctx.emit((self.entity, self.n, msg[1]))


def test_each_entity_is_made_once_and_keeps_its_order():
    msgs = [("k%d" % (i % 4), i) for i in range(40)]
    for par in (1, 2):
        out = (
            weir.Source.from_iter(msgs)
            .via(weir.Flow.sharded(Counter, lambda m: m[0], parallelism=par))
            .run_with(weir.Sink.collect())
        )
        per = {}
        for e, n, x in out:
            per.setdefault(e, []).append((n, x))
        want = {}
        for k, x in msgs:
            v = want.setdefault(k, [])
            v.append((len(v) + 1, x))
        assert per == want, par


def test_tiny_mailboxes_and_shard_buffers_park_and_keep_the_order():
    msgs = [("k%d" % (i % 5), i) for i in range(200)]
    out = (
        weir.Source.from_iter(msgs)
        .via(weir.Flow.sharded(Counter, lambda m: m[0], mailbox=1, shard_buffer=1))
        .run_with(weir.Sink.collect())
    )
    per = {}
    for e, n, x in out:
        per.setdefault(e, []).append((n, x))
    want = {}
    for k, x in msgs:
        v = want.setdefault(k, [])
        v.append((len(v) + 1, x))
    assert per == want
    with pytest.raises(ValueError, match="shard buffer"):
        weir.Flow.sharded(Counter, lambda m: m[0], shard_buffer=0)


def test_an_id_function_that_raises_fails_the_run():
    def bad(m):
        if m[1] == 3:
            raise KeyError("no id")
        return m[0]

    with pytest.raises(weir.StageFailed) as e:
        (
            weir.Source.from_iter([("a", i) for i in range(5)])
            .via(weir.Flow.sharded(Counter, bad))
            .run_with(weir.Sink.collect())
        )
    assert "no id" in str(e.value)


def test_idle_entities_are_passivated_and_made_again():
    from weir import testing

    clock = testing.VirtualClock()
    graph = testing.probe_source().via(weir.Flow.sharded(Counter, lambda m: m[0], passivate_after=0.1))
    run = clock.start(graph.to(testing.probe_sink(), keep="both"))
    src, sink = run.materialized
    sink.request(100)
    src.offer(("a", 1))
    src.offer(("b", 2))
    assert sink.expect_next_n([("a", 1, 1), ("b", 1, 2)], at=0.0)
    clock.advance(0.06)
    src.offer(("a", 3))
    sink.expect_next(("a", 2, 3), at=0.06)
    clock.advance(0.06)
    # "b" was idle 0.12 s: passivated, so its next message meets a new entity.
    src.offer(("b", 4))
    sink.expect_next(("b", 1, 4), at=0.12)
    src.offer(("a", 5))
    sink.expect_next(("a", 3, 5), at=0.12)
    src.complete()
    sink.expect_complete()
