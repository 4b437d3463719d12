"""Topics (publish/subscribe as stages): every subscriber gets each publisher's elements once
and in publish order, a slow subscriber holds the publishers back, closing completes the
subscribers, an element that is not a built-in value fails its publisher naming it, and two
node processes of a job share a topic, each subscriber getting both nodes' elements."""

import json
import os
import sys
import textwrap
import time

import pytest
import weir
from helpers import WAIT, until


def test_every_subscriber_gets_each_publishers_elements_in_order():
    topics = weir.Topics(buffer=4)
    t = topics.topic("prices")
    assert topics.names() == ["prices"] and topics.buffer == 4
    # Nobody reads yet: what is published is dropped and counted.
    weir.Source.from_iter([-1, -2]).to(t.sink()).run()
    assert t.stats()["unheard"] == 2
    subs = [t.source().take(60).to(weir.Sink.collect(), "right").start() for _ in range(2)]
    assert t.wait_for_readers(2, timeout=WAIT)
    pubs = [
        weir.Source.from_iter([(p, i, {"v": [i]}) for i in range(30)]).to(topics.topic("prices").sink()).start()
        for p in range(2)
    ]
    for p in pubs:
        p.wait(WAIT)
    for s in subs:
        got = s.wait(WAIT)
        assert len(got) == 60
        for p in range(2):
            assert [x for x in got if x[0] == p] == [(p, i, {"v": [i]}) for i in range(30)]
    st = t.stats()
    assert st["published"] == 60 and st["unheard"] == 2 and st["subscribers"] == 0


def test_a_slow_subscriber_holds_the_publisher_until_it_reads():
    t = weir.Topics(buffer=2).topic("t")
    q = t.source().to(weir.Sink.queue(1), "right").start()
    out = q.materialized
    assert t.wait_for_readers(1, timeout=WAIT)
    n = 30_000
    p = weir.Source.from_iter(range(n)).to(t.sink()).start()
    # The stages between the topic and the queue buffer a few batches; the topic holds 2.
    until(lambda: t.stats()["published"] > 0, "the first publication")
    time.sleep(0.3)
    st = t.stats()
    assert st["published"] < n // 2 and st["buffered"] <= 2, st
    got = [out.pull() for _ in range(n)]
    assert got == list(range(n))
    p.wait(WAIT)


def test_closing_a_topic_completes_its_subscribers_after_what_they_hold():
    t = weir.Topics().topic("t")
    s = t.source().to(weir.Sink.collect(), "right").start()
    assert t.wait_for_readers(1, timeout=WAIT)
    weir.Source.from_iter([1, 2, 3]).to(t.sink()).run()
    t.close()
    assert t.closed
    assert s.wait(WAIT) == [1, 2, 3]
    assert repr(t) == "Topic('t')"


def test_an_element_that_is_not_a_built_in_value_fails_its_publisher_naming_it():
    t = weir.Topics().topic("t")
    s = t.source().take(1).to(weir.Sink.collect(), "right").start()
    assert t.wait_for_readers(1, timeout=WAIT)

    class Opaque:
        def __repr__(self):
            return "Opaque()"

    with pytest.raises(weir.StageFailed) as e:
        weir.Source.from_iter([1, Opaque()]).to(t.sink()).run()
    assert "to_topic: a Opaque cannot cross nodes" in str(e.value)
    assert isinstance(e.value.element, Opaque)
    assert s.wait(WAIT) == [1]


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        weir.Topics(buffer=0)
    with pytest.raises(ValueError):
        weir.Topics().topic("t").wait_for_readers(1, timeout=-1)


NODE = textwrap.dedent(
    """
    import json
    import weir

    node = weir.cluster.join()
    t = node.topic("events")
    sub = t.source().take(400).to(weir.Sink.collect(), "right").start()
    # Wait until this node's subscriber and the other node's subscription are attached.
    assert t.wait_for_readers(1, 1, timeout=60), t.stats()
    weir.Source.from_iter([(node.node, i) for i in range(200)]).to(t.sink()).run()
    got = sub.wait(60)
    node.finish()
    print(json.dumps({"got": got, "stats": t.stats()}))
    """
)


def test_two_node_processes_share_a_topic(tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE)
    out = weir.cluster.run_local(2, [sys.executable, str(script)], dir=tmp_path / "cluster")
    for text in out.stdout:
        r = json.loads(text.strip().splitlines()[-1])
        got = [tuple(x) for x in r["got"]]
        for p in range(2):
            assert [i for (q, i) in got if q == p] == list(range(200))
        assert r["stats"]["received"] == 200
