"""Stable stage ids from Python: ``uid(name)`` names the last stage's id, shows in diagrams, and
a duplicate fails the run with an error naming both stages."""

import re

import pytest

import weir


def test_a_uid_shows_in_the_diagram_and_the_graph_runs_unchanged():
    src = weir.Source.from_iter([1, 2, 3]).uid("numbers").async_boundary()
    flow = src.map(lambda x: x * 10).uid("times-ten")
    diagram = flow.to(weir.Sink.ignore()).to_mermaid()
    assert "uid=numbers" in diagram
    assert "uid=times-ten" in diagram
    assert flow.run_with(weir.Sink.collect()) == [10, 20, 30]


def test_a_duplicate_uid_fails_the_run_naming_both_stages():
    g = weir.Source.from_iter([1]).uid("same").async_boundary().map(lambda x: x).uid("same")
    msg = "invalid graph: uid 'same' is given to both stage 'from_iter#0' and stage 'map#1'"
    with pytest.raises(weir.GraphInvalid, match="^" + re.escape(msg) + "$"):
        g.run_with(weir.Sink.collect())
