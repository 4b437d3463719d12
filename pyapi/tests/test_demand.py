"""Rate-decoupling operators and fan junctions decide on the consumer's demand (the Rust
operators over Python objects): expand's extrapolation, Merge(eager_complete=),
Balance(eager_cancel=), and counts below 1 rejected at construction."""

import itertools
import time

import pytest

import weir
from weir import GraphBuilder, Sink, Source

from helpers import Boom
from weir.testing import VirtualClock, probe_sink


def collect(src):
    return src.run_with(Sink.collect())


# --- expand ------------------------------------------------------------------------------------


def test_expand_expands_every_element_once_and_completes_after_the_last():
    # Single-item iterators leave nothing to extrapolate: exactly the input, then completion.
    assert collect(Source.range(1000).expand(lambda x: iter([x]))) == list(range(1000))
    assert collect(Source.range(5).expand(lambda x: [x * 10])) == [0, 10, 20, 30, 40]


def test_expand_extrapolates_from_the_iterator_while_upstream_is_slower():
    big = 10**9
    h = Source.queue(4).expand(lambda x: itertools.count(x * big)).to(Sink.queue(2), "both").start()
    q, out = h.materialized
    q.offer(1)
    assert [out.pull() for _ in range(5)] == [big, big + 1, big + 2, big + 3, big + 4]
    q.offer(2)
    seen = []
    while not seen or seen[-1] < 2 * big:
        seen.append(out.pull())
    # Still counting from the first element until the second arrived, then its own iterator.
    assert seen[:-1] == list(range(big + 5, big + 5 + len(seen) - 1))
    assert seen[-1] == 2 * big
    assert [out.pull() for _ in range(3)] == [2 * big + 1, 2 * big + 2, 2 * big + 3]
    q.complete()
    # What was extrapolated before the completion arrived, then the end.
    rest = list(out)
    assert rest == list(range(2 * big + 4, 2 * big + 4 + len(rest)))
    h.wait(timeout=30)


def test_expand_with_an_empty_iterator_emits_nothing_for_that_element():
    assert collect(Source.range(6).expand(lambda x: [x] if x % 2 else [])) == [1, 3, 5]


def test_expand_extrapolation_failure_fails_the_stream_naming_the_stage():
    def extrapolate(x):
        if x == 2:
            raise Boom("no extrapolation for 2")
        return [x]

    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.range(4).expand(extrapolate))
    assert "expand" in ei.value.stage
    assert isinstance(ei.value.__cause__, Boom)


def test_expand_without_function_repeats_the_last_element():
    h = Source.queue(2).expand().take(3).to(Sink.collect(), "both").start()
    q, _ = h.materialized
    q.offer(7)
    _, out = h.wait(timeout=30)
    assert out == [7, 7, 7]


# --- Merge(eager_complete=) ---------------------------------------------------------------------


def merge_with_a_queue(junction):
    b = GraphBuilder()
    short, _ = b.add_source(Source.from_iter([1, 2, 3]))
    endless, kq = b.add_source(Source.queue(4))
    m = b.add(junction)
    b.connect(short, m.inlets[0])
    b.connect(endless, m.inlets[1])
    i, kc = b.add_sink(Sink.collect())
    b.connect(m.outlet, i)
    return b.build(kq, kc).start()


@pytest.mark.parametrize(
    "junction",
    [
        weir.Merge(2, eager_complete=True),
        weir.MergePreferred(1, eager_complete=True),
        weir.MergePrioritized([1, 1], eager_complete=True),
    ],
)
def test_eager_complete_merges_complete_with_their_first_input(junction):
    h = merge_with_a_queue(junction)
    q, out = h.wait(timeout=30)
    assert out == [1, 2, 3]
    assert q.offer(4) == "closed"


def test_merge_without_eager_complete_waits_for_every_input():
    h = merge_with_a_queue(weir.Merge(2))
    q, _ = h.materialized
    for x in (10, 11):
        assert q.offer(x) == "enqueued"
    q.complete()
    _, out = h.wait(timeout=30)
    assert sorted(out) == [1, 2, 3, 10, 11]


def test_merge_preferred_emits_everything_in_order_per_input():
    b = GraphBuilder()
    p, _ = b.add_source(Source.range(0, 50))
    s, _ = b.add_source(Source.range(100, 150))
    m = b.add(weir.MergePreferred(1))
    b.connect(p, m.inlets[0])
    b.connect(s, m.inlets[1])
    i, k = b.add_sink(Sink.collect())
    b.connect(m.outlet, i)
    out = b.build(k).run()
    assert [x for x in out if x < 100] == list(range(50))
    assert [x for x in out if x >= 100] == list(range(100, 150))


# --- Balance(eager_cancel=) ---------------------------------------------------------------------


def balance_into_head_and_collect(eager_cancel):
    b = GraphBuilder()
    src, kq = b.add_source(Source.queue(16))
    bal = b.add(weir.Balance(2, eager_cancel=eager_cancel))
    b.connect(src, bal.inlet)
    head_in, kh = b.add_sink(Sink.head())
    rest_in, kr = b.add_sink(Sink.collect())
    b.connect(bal.outlets[0], head_in)
    b.connect(bal.outlets[1], rest_in)
    return b.build(kq, kh, kr).start()


def test_balance_eager_cancel_stops_when_the_first_output_cancels():
    h = balance_into_head_and_collect(True)
    q, _, _ = h.materialized
    offered = 0
    while q.offer(offered) == "enqueued":
        offered += 1
        assert offered < 100_000, "the balance never cancelled upstream"
    _, head, rest = h.wait(timeout=30)
    assert head not in rest
    assert sorted(rest + [head]) == sorted(set(rest + [head]))
    assert set(rest) | {head} <= set(range(offered))


def test_balance_goes_on_after_one_output_cancels():
    h = balance_into_head_and_collect(False)
    q, head_done, _ = h.materialized
    assert q.offer(0) == "enqueued"
    while not head_done.done():
        time.sleep(0.001)
    # Everything offered once the head output cancelled goes to the other one.
    for x in range(1, 201):
        assert q.offer(x) == "enqueued"
    q.complete()
    _, head, rest = h.wait(timeout=30)
    assert head == 0
    assert rest == list(range(1, 201))


# --- counts -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("junction", "message"),
    [
        (lambda: weir.Balance(-1), "Balance: n must be at least 1, got -1"),
        (lambda: weir.Balance(0), "Balance: n must be at least 1, got 0"),
        (lambda: weir.Merge(-2), "Merge: n must be at least 1, got -2"),
        (lambda: weir.MergePreferred(-1), "MergePreferred: n must be at least 1, got -1"),
        (lambda: weir.MergePrioritized([1, -3]), "MergePrioritized: priority must be at least 1, got -3"),
        (lambda: weir.MergePrioritized([]), "MergePrioritized: needs at least one priority"),
    ],
)
def test_bad_counts_are_rejected_naming_the_junction(junction, message):
    b = GraphBuilder()
    with pytest.raises(ValueError) as ei:
        b.add(junction())
    assert str(ei.value) == message


# --- conflate / batch ---------------------------------------------------------------------------


def test_conflate_hands_a_slow_consumer_the_backlog_as_few_aggregates():
    # Elements pass on their own only against demand: the consumer's buffer of one and the one
    # it asks for next, the fold stage's pipeline of 4 groups and the one it asks for, the
    # group it is sending. Everything else offered meanwhile is conflated (without demand
    # every element would pass on its own); nothing is lost.
    h = (
        Source.queue(200)
        .conflate(lambda acc, x: acc + [x], seed=lambda x: [x])
        .to(Sink.queue(1), "both")
        .start(batch_size=1)
    )
    q, out = h.materialized
    for x in range(1, 101):
        assert q.offer(x) == "enqueued"
    q.complete()
    groups = list(out)
    assert [x for g in groups for x in g] == list(range(1, 101))
    assert len(groups) <= 10, groups
    h.wait(timeout=30)


def test_batch_folds_groups_of_at_most_max_and_supervises_the_fold():
    h = (
        Source.queue(200)
        .batch(10, lambda x: [x], lambda acc, x: acc + [x])
        .to(Sink.queue(1), "both")
        .start(batch_size=1)
    )
    q, out = h.materialized
    for x in range(50):
        assert q.offer(x) == "enqueued"
    q.complete()
    groups = list(out)
    assert [x for g in groups for x in g] == list(range(50))
    assert all(1 <= len(g) <= 10 for g in groups)
    h.wait(timeout=30)

    def seed(x):
        if x == 3:
            raise Boom("cannot fold 3")
        return x

    def fold(acc, x):
        return seed(x) + acc

    # 3 is either the first of its group (seed) or folded into one (aggregate): it fails.
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.range(6).conflate(fold, seed=seed))
    assert "conflate" in ei.value.stage
    assert isinstance(ei.value.__cause__, Boom)


# --- Source.queue -------------------------------------------------------------------------------


def wait_until(cond, what):
    deadline = time.monotonic() + 10
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.001)


def test_queue_keeps_exactly_its_capacity_of_what_the_consumer_did_not_request():
    h = Source.queue(2, "drop_head").to(Sink.queue(1), "both").start(batch_size=1)
    q, out = h.materialized
    # The consumer's buffer of one takes 1, the one element it asks for next is 2.
    for x in (1, 2):
        assert q.offer(x) == "enqueued"
        wait_until(lambda: q.buffered() == 0, f"{x} was never taken")
    for x in range(3, 11):
        assert q.offer(x) == "enqueued"
    assert q.buffered() == 2
    q.complete()
    assert list(out) == [1, 2, 9, 10]
    h.wait(timeout=30)


@pytest.mark.parametrize("strategy, kept", [("drop_head", [4, 5]), ("drop_new", [1, 2])])
def test_a_queue_in_front_of_a_silent_consumer_keeps_exactly_its_capacity(strategy, kept):
    clock = VirtualClock()
    run = clock.start(weir.Source.queue(2, strategy).to(probe_sink(), keep="both"))
    queue, sink = run.materialized
    for x in [1, 2, 3, 4, 5]:
        queue.offer(x)
    clock.settle()
    queue.complete()
    sink.request(10)
    clock.settle()
    assert sink.received() == [(0.0, "next", kept[0]), (0.0, "next", kept[1]), (0.0, "complete", None)]
