"""A consumer asks for exactly what it can use (Sink.head: one element), an empty Source.queue
completes without demand, Source.lazy builds its source on the first demand, and a probe sink
that saw a failure fails the run."""

import pytest

import weir
from weir import GraphBuilder, Sink, Source
from weir.testing import VirtualClock, probe_sink, probe_source

from helpers import Boom


def balance_into_head_and_collect(n):
    b = GraphBuilder()
    src, _ = b.add_source(Source.from_iter(range(n)))
    bal = b.add(weir.Balance(2))
    b.connect(src, bal.inlet)
    head_in, kh = b.add_sink(Sink.head())
    rest_in, kr = b.add_sink(Sink.collect())
    b.connect(bal.outlets[0], head_in)
    b.connect(bal.outlets[1], rest_in)
    return b.build(kh, kr).run()


@pytest.mark.parametrize("n", [10, 5000])
def test_balance_into_head_and_collect_loses_nothing(n):
    head, rest = balance_into_head_and_collect(n)
    # head asked for one element and took it; every other one reached collect, in order.
    assert rest == [x for x in range(n) if x != head]


def test_take_behind_a_buffer_takes_exactly_what_it_needs():
    clock = VirtualClock()
    run = clock.start(
        probe_source().buffer(100, "drop_head").take(3).to(probe_sink(), keep="both")
    )
    src, sink = run.materialized
    src.offer_all(list(range(1000)))
    clock.settle()
    sink.request(10)
    assert sink.expect_next_n([900, 901, 902]) == [900, 901, 902]
    sink.expect_complete()
    src.expect_cancellation()
    run.result()


def test_an_empty_queue_completes_at_once_without_demand():
    clock = VirtualClock()
    run = clock.start(Source.queue(4).to(probe_sink(), keep="both"))
    q, sink = run.materialized
    q.complete()
    sink.expect_complete(at=0.0)
    run.result()


def lazy_counted(calls):
    def make():
        calls.append(1)
        return Source.from_iter([1, 2, 3])

    return Source.lazy(make)


def test_lazy_source_is_built_on_the_first_demand():
    calls = []
    clock = VirtualClock()
    run = clock.start(lazy_counted(calls).to(probe_sink(), keep="both"))
    _, sink = run.materialized
    sink.expect_no_element(1.0)
    assert calls == []
    sink.request(10)
    assert sink.expect_next_n([1, 2, 3]) == [1, 2, 3]
    sink.expect_complete()
    assert calls == [1]
    run.result()


def test_lazy_source_never_calls_its_factory_when_downstream_cancels_before_asking():
    calls = []
    clock = VirtualClock()
    run = clock.start(lazy_counted(calls).to(probe_sink(), keep="both"))
    _, sink = run.materialized
    sink.expect_no_element(1.0)
    sink.cancel()
    clock.settle()
    assert run.done()
    assert calls == []
    assert lazy_counted(calls).take(0).run_with(Sink.collect()) == []
    assert calls == []


def test_a_probe_sink_that_saw_a_failure_fails_the_run():
    clock = VirtualClock()
    run = clock.start(probe_source().to(probe_sink(), keep="both"))
    src, sink = run.materialized
    sink.request(2)
    src.offer(1)
    src.fail(Boom("bad input"))
    assert sink.expect_next() == 1
    err = sink.expect_error(weir.StageFailed)
    assert isinstance(err.__cause__, Boom)
    with pytest.raises(weir.StageFailed) as ei:
        run.result()
    assert isinstance(ei.value.__cause__, Boom)
    assert str(ei.value) == str(err)


def test_a_flat_map_behind_a_buffer_takes_one_element_at_a_time():
    # As Akka's mapConcat: the next element leaves the buffer only once the expansion of the
    # one before was handed out, so the buffer keeps deciding on everything else.
    clock = VirtualClock()
    run = clock.start(
        probe_source()
        .buffer(100, "drop_head")
        .flat_map(lambda x: [x, x])
        .to(probe_sink(), keep="both")
    )
    src, sink = run.materialized
    src.offer_all(list(range(1000)))
    clock.settle()
    sink.request(3)
    assert sink.expect_next_n([900, 900, 901]) == [900, 900, 901]
    clock.settle()
    # The buffer still holds 902..999: four more push 902 and 903 out of it.
    src.offer_all([1000, 1001, 1002, 1003])
    clock.settle()
    src.complete()
    sink.request(1000)
    rest = [901] + [y for x in range(904, 1004) for y in (x, x)]
    assert sink.expect_next_n(rest) == rest
    sink.expect_complete()
    run.result()
