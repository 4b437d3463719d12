"""BidiFlow: composition order of join / atop / reversed, materialized values, completion,
failure and cancellation."""

import pytest

import weir
from weir import BidiFlow, Flow, Sink, Source

from helpers import Boom


def tag(t):
    return Flow.create().map(lambda s: s + t)


def collect(src):
    return src.run_with(Sink.collect())


def test_join_runs_top_then_flow_then_bottom():
    bidi = BidiFlow.from_flows(tag("T"), tag("B"))
    assert collect(Source.from_iter(["x", "y"]).via(bidi.join(tag("|")))) == ["xT|B", "yT|B"]


def test_atop_stacks_outer_then_inner_and_back():
    a = BidiFlow.from_flows(tag("a"), tag("A"))
    b = BidiFlow.from_flows(tag("b"), tag("B"))
    c = BidiFlow.from_flows(tag("c"), tag("C"))
    assert collect(Source.single("x").via(a.atop(b).atop(c).join(tag("|")))) == ["xabc|CBA"]


def test_reversed_swaps_directions():
    bidi = BidiFlow.from_flows(tag("T"), tag("B"))
    assert collect(Source.single("x").via(bidi.reversed().join(tag("|")))) == ["xB|T"]
    assert collect(Source.single("x").via(bidi.reversed().reversed().join(tag("|")))) == ["xT|B"]


def test_from_functions_codec():
    codec = BidiFlow.from_functions(lambda x: f"<{x}>", len)
    out = collect(Source.from_iter([1, 22, 333]).via(codec.join(Flow.create().map(lambda s: s + "!"))))
    assert out == [4, 5, 6]


def test_materialized_values_combine_with_keep():
    bidi = BidiFlow.from_flows(
        Flow.create().watch_termination(), Flow.create().watch_termination(), keep="both"
    )
    joined = bidi.join(Flow.create().watch_termination(), keep="both")
    got = Source.single("x").via(joined, keep="right").to(Sink.collect(), "both").run()
    assert got == ((("completed", "completed"), "completed"), ["x"])
    # from_flows keeps nothing by default; atop keeps the upper bidi's value.
    plain = BidiFlow.from_flows(Flow.create().watch_termination(), tag("B"))
    got = Source.single("x").via(plain.join(tag("|")), keep="right").to(Sink.collect(), "both").run()
    assert got == (None, ["x|B"])
    upper = BidiFlow.from_flows(Flow.create().watch_termination(), tag("B"), keep="left")
    stacked = upper.atop(BidiFlow.from_flows(tag("b"), tag("b")))
    got = Source.single("x").via(stacked.join(tag("|")), keep="right").to(Sink.collect(), "both").run()
    assert got == ("completed", ["xb|bB"])


def test_failure_in_a_direction_keeps_earlier_elements():
    def top(x):
        if x == 3:
            raise Boom("three")
        return x * 10

    seen = []
    bidi = BidiFlow.from_functions(top, lambda x: x + 1)
    with pytest.raises(weir.StageFailed) as ei:
        Source.from_iter([1, 2, 3, 4]).via(bidi.join(Flow.create())).run_with(Sink.for_each(seen.append))
    assert isinstance(ei.value.__cause__, Boom)
    assert seen == [11, 21]


def test_upstream_failure_and_cancellation_pass_through():
    bidi = BidiFlow.from_flows(tag("T"), tag("B"))
    with pytest.raises(weir.StageFailed) as ei:
        collect(Source.failed(Boom("down")).via(bidi.join(tag("|"))))
    assert isinstance(ei.value.__cause__, Boom)
    # take after a joined bidi cancels an infinite source through both directions.
    watched = Source.repeat("r").watch_termination()
    got = watched.via(bidi.join(tag("|"))).take(2).to(Sink.collect(), "both").run()
    assert got == ("cancelled", ["rT|B", "rT|B"])


def test_bad_keep_is_rejected():
    with pytest.raises(ValueError):
        BidiFlow.from_flows(tag("T"), tag("B"), keep="sideways")
    assert repr(BidiFlow.from_flows(tag("T"), tag("B"))).startswith("BidiFlow(")
