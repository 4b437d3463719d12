"""Replicated data from Python (``weir.crdt``): exact values of each CRDT, merges between two
replicas in either order and through deltas, the state as bytes, the errors for bad input, and a
local replicator shared by the stages of a run."""

import pytest

import weir
from weir import Sink, Source, codec
from weir.crdt import GCounter, LWWMap, ORSet, PNCounter, Replicator


def test_gcounter_sums_the_increments_of_every_replica():
    a, b = GCounter(replica=1), GCounter(replica=2)
    a.increment()
    a.increment(4)
    b.increment(10)
    assert (a.value, b.value, a.replica, b.replica) == (5, 10, 1, 2)
    ab, ba = a.copy(), b.copy()
    ab.merge(b)
    ba.merge(a)
    assert ab == ba and ab.value == ba.value == 15
    # Merging again, or merging itself, changes nothing.
    ab.merge(b)
    ab.merge(ab)
    assert ab.value == 15
    assert repr(ab) == "GCounter(value=15)"
    big = GCounter()
    big.increment(2**64 - 1)
    assert big.value == 2**64 - 1


def test_pncounter_counts_up_and_down_across_replicas():
    a, b = PNCounter(replica=1), PNCounter(replica=2)
    a.increment(7)
    a.decrement(2)
    b.decrement(9)
    b.decrement()
    a.merge(b)
    b.merge(a)
    assert (a.value, b.value) == (-5, -5)
    assert a == b
    assert repr(a) == "PNCounter(value=-5)"


def test_deltas_carry_only_the_changes_since_the_last_take():
    a, b = PNCounter(replica=1), PNCounter(replica=2)
    a.increment(3)
    d1 = a.take_delta()
    assert d1 is not None and d1.value == 3
    assert a.take_delta() is None
    a.decrement(1)
    d2 = a.take_delta()
    assert d2 is not None and d2.value == -1
    # In any order, with duplicates: the replica ends where the full state is.
    for d in (d2, d1, d2, d1):
        b.merge(d)
    assert b.value == a.value == 2
    assert b == a


def test_orset_add_wins_over_a_concurrent_remove():
    a = ORSet(replica=1)
    a.add("x")
    a.add(("t", 1))
    b = ORSet.from_bytes(a.to_bytes(), replica=2)
    assert b == a
    # a removes "x" while b adds it again, concurrently.
    a.remove("x")
    b.add("x")
    b.add(3)
    a2, b2 = a.copy(), b.copy()
    a2.merge(b)
    b2.merge(a)
    assert a2 == b2
    assert sorted(map(repr, a2.elements())) == sorted(map(repr, ["x", ("t", 1), 3]))
    assert "x" in a2 and ("t", 1) in a2 and 4 not in a2
    assert len(a2) == 3
    # A remove that saw every add removes the element on both.
    a2.remove("x")
    b2.merge(a2)
    assert set(b2.elements()) == {("t", 1), 3}
    # Elements are compared by their encoding: 1 and 1.0 are two elements.
    s = ORSet()
    s.add(1)
    s.add(1.0)
    assert len(s) == 2
    assert s.elements() == [1, 1.0]  # encoding order: int (0x03) before float (0x05)
    s.discard("absent")
    s.clear()
    assert (len(s), s.elements(), repr(s)) == (0, [], "ORSet({})")


def test_orset_delta_from_one_replica_applies_on_another():
    a, b = ORSet(replica=1), ORSet(replica=2)
    a.add("p")
    a.add("q")
    a.remove("p")
    d = a.take_delta()
    assert d is not None
    b.merge(d)
    assert b.elements() == ["q"]
    assert repr(b) == "ORSet({'q'})"


def test_lwwmap_latest_write_wins_then_the_higher_replica():
    a, b = LWWMap(replica=1), LWWMap(replica=2)
    a.put("k", [1, 2], now_ms=100)
    b.put("k", {"v": 2}, now_ms=200)
    a.put("only-a", None, now_ms=50)
    # Same timestamp: replica 2 wins on both sides.
    a.put("tie", "from 1", now_ms=300)
    b.put("tie", "from 2", now_ms=300)
    a.merge(b)
    b.merge(a)
    assert a == b
    assert a.items() == b.items()
    assert dict(a.items()) == {"k": {"v": 2}, "only-a": None, "tie": "from 2"}
    assert a["k"] == {"v": 2} and a.get("missing", 0) == 0 and a.get("missing") is None
    assert len(a) == 3 and "tie" in a
    # A removal is a tombstone: the older write arriving later does not resurrect the key.
    old = LWWMap(replica=3)
    old.put("k", "stale", now_ms=150)
    a.remove("k", now_ms=400)
    a.merge(old)
    assert "k" not in a and len(a) == 2
    # A replica's own later write always supersedes what it has seen, whatever its clock says.
    a.put("tie", "again", now_ms=1)
    b.merge(a)
    assert b["tie"] == "again" and "k" not in b
    m = LWWMap()
    m["a"] = 1
    m["b"] = 2
    del m["a"]
    assert repr(m) == "LWWMap({'b': 2})"


def test_state_round_trips_through_bytes():
    for c in (GCounter(replica=4), PNCounter(replica=4)):
        c.increment(3)
        back = type(c).from_bytes(c.to_bytes(), replica=9)
        assert back == c and back.value == 3 and back.replica == 9
    m = LWWMap()
    m.put(("a", 1), [b"x", 2.5], now_ms=7)
    back = LWWMap.from_bytes(m.to_bytes())
    assert back.items() == [(("a", 1), [b"x", 2.5])]
    # The empty counter is one byte (postcard: an empty map).
    assert GCounter().to_bytes() == b"\x00"


def test_bad_input_is_refused_with_a_clear_error():
    c = GCounter()
    with pytest.raises(ValueError, match=r"GCounter.increment: the count must be an int in 0..2\*\*64, got -1"):
        c.increment(-1)
    with pytest.raises(TypeError, match="GCounter.increment: the count must be an int, not str"):
        c.increment("3")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"PNCounter.decrement: the count must be an int in 0..2\*\*64, got 18446744073709551616"):
        PNCounter().decrement(2**64)
    full = GCounter()
    full.increment(2**64 - 1)
    with pytest.raises(OverflowError, match="counter overflow: replica 0 would count past 18446744073709551615"):
        full.increment()
    assert c.value == 0 and full.value == 2**64 - 1
    s = ORSet()
    with pytest.raises(TypeError, match="ORSet.add: a list has no stable encoding"):
        s.add([1])
    with pytest.raises(KeyError):
        s.remove("absent")
    m = LWWMap()
    with pytest.raises(TypeError, match=r"LWWMap.put \(key\): a dict has no stable encoding"):
        m.put({}, 1)
    with pytest.raises(TypeError, match=r"LWWMap.put \(value\): a set has no stable encoding"):
        m.put("k", {1})
    with pytest.raises(KeyError):
        m["absent"]
    with pytest.raises(KeyError):
        del m["absent"]
    assert len(m) == 0
    with pytest.raises(TypeError, match="'PNCounter' object is not an instance of 'GCounter'"):
        c.merge(PNCounter())  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="^cannot decode bytes as GCounter: "):
        GCounter.from_bytes(b"\x05\x01")
    with pytest.raises(ValueError, match="^cannot decode bytes as ORSet: 2 trailing bytes$"):
        ORSet.from_bytes(ORSet().to_bytes() + b"\x00\x00")


def test_local_replicator_updates_and_reads_every_kind():
    r = Replicator.local()
    assert (r.replica, r.keys(), r.get("n")) == (0, [], None)
    assert r.update("n", PNCounter, lambda c: c.increment(5)).value == 5
    r.update("n", PNCounter, lambda c: c.decrement(2), consistency="majority")
    r.update("s", ORSet, lambda s: (s.add("a"), s.add("b")))
    r.update("s", ORSet, lambda s: s.remove("a"), consistency="all")
    r.update("m", LWWMap, lambda m: m.put("k", [1], now_ms=10))
    r.update("g", GCounter, lambda g: g.increment())
    assert r.keys() == ["g", "m", "n", "s"]
    n = r.get("n")
    assert isinstance(n, PNCounter) and n.value == 3
    s = r.read("s", consistency="majority")
    assert isinstance(s, ORSet) and s.elements() == ["b"]
    m = r.read("m", consistency="all")
    assert isinstance(m, LWWMap) and m.items() == [("k", [1])]
    assert repr(r) == "Replicator(replica=0, keys=4)"
    # A view handed out is a copy: changing it does not change the replicator.
    n.increment(100)
    got = r.get("n")
    assert isinstance(got, PNCounter) and got.value == 3


def test_replicator_errors():
    r = Replicator.local()
    r.update("n", PNCounter, lambda c: c.increment())
    with pytest.raises(TypeError, match="key 'n' holds a PNCounter, not an ORSet"):
        r.update("n", ORSet, lambda s: s.add(1))
    with pytest.raises(TypeError, match="kind must be GCounter, PNCounter, ORSet or LWWMap, not int"):
        r.update("n", int, lambda c: None)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="^Replicator.update: consistency must be 'local', 'majority' or 'all', not \"quorum\"$"):
        r.update("n", PNCounter, lambda c: c.increment(), consistency="quorum")
    with pytest.raises(ValueError, match="Replicator.read: timeout must be a non-negative number of seconds, got -1$"):
        r.read("n", timeout=-1.0)

    def boom(c: PNCounter) -> None:
        c.increment(10)
        raise RuntimeError("no")

    # An update function that raises changes nothing.
    with pytest.raises(RuntimeError, match="no"):
        r.update("n", PNCounter, boom)
    got = r.get("n")
    assert isinstance(got, PNCounter) and got.value == 1


def test_python_stages_share_a_local_replicator():
    r = Replicator.local()

    def count(x: int) -> int:
        r.update("total", PNCounter, lambda c: c.increment(x) if x >= 0 else c.decrement(-x))
        r.update("seen", ORSet, lambda s: s.add(x % 3))
        return x

    def observe(x: int) -> tuple:
        total = r.get("total")
        assert isinstance(total, PNCounter)
        return (x, total.value)

    out = Source.from_iter([4, -1, 6, 2]).map(count).map(observe).run_with(Sink.collect(), batch_size=1)
    assert out == [(4, 4), (-1, 3), (6, 9), (2, 11)]
    seen = r.get("seen")
    assert isinstance(seen, ORSet) and seen.elements() == [0, 1, 2]
    # A bad element fails the stage, naming it; what was merged before stays.
    with pytest.raises(weir.StageFailed) as e:
        Source.from_iter([1, "x"]).map(count).run_with(Sink.collect())
    assert e.value.element == "x"
    total = r.get("total")
    assert isinstance(total, PNCounter) and total.value == 12


def test_set_elements_use_the_codec_encoding():
    s = ORSet()
    s.add(("k", 2))
    (elem,) = s.elements()
    assert codec.decode(codec.encode(elem)) == ("k", 2)
