"""Stable Python keys: the ``weir.codec`` encoding of built-in keys and values (exact bytes,
round trips, errors), the routing hash and key group that ``key_by`` uses (the same in a process
with another ``PYTHONHASHSEED``), ``key_codec="pickle"`` as the opt-in for other keys, and keyed
aggregation keeping Python ``==`` semantics."""

import collections
import json
import os
import subprocess
import sys

import pytest

import weir
from weir import Sink, Source, codec

Point = collections.namedtuple("Point", "x y")

KEYS = ["word", "", "héllo", b"raw", 0, 1, -1, 2**40, -(2**70), 1.5, None, True, ("a", 1, (None, b"x"))]


def test_encodings_are_the_documented_bytes():
    assert codec.encode(None) == b"\x00"
    assert codec.encode(False) == b"\x01"
    assert codec.encode(True) == b"\x02"
    assert codec.encode(0) == b"\x03\x00"
    assert codec.encode(-1) == b"\x03\x01"
    assert codec.encode(300) == b"\x03\xd8\x04"  # zigzag 600 as LEB128
    assert codec.encode(2**64) == b"\x04\x09" + (2**64).to_bytes(9, "little", signed=True)
    assert codec.encode(1.5) == b"\x05" + bytes.fromhex("000000000000f83f")
    assert codec.encode("hé") == b"\x06\x03h\xc3\xa9"
    assert codec.encode(b"ab") == b"\x07\x02ab"
    assert codec.encode(("a", 1)) == b"\x08\x02\x06\x01a\x03\x02"
    assert codec.encode([1, {"k": None}], kind="value") == b"\x09\x02\x03\x02\x0a\x01\x06\x01k\x00"


@pytest.mark.parametrize("x", KEYS + [[1, [2.5, "s"]], {"a": (1, 2), 3: [b""]}], ids=repr)
def test_values_round_trip_exactly(x):
    back = codec.decode(codec.encode(x, kind="value"))
    assert back == x
    assert type(back) is type(x)


def test_keys_without_an_encoding_are_a_type_error_naming_the_type_unless_pickled():
    for bad, name in [([1], "list"), (frozenset([1]), "frozenset"), (Point(1, 2), "Point"), ({"a": 1}, "dict")]:
        with pytest.raises(TypeError, match=f"a {name} has no stable encoding"):
            codec.encode(bad)
    assert codec.decode(codec.encode(Point(1, 2), pickle=True)) == Point(1, 2)
    assert codec.encode(Point(1, 2), pickle=True)[:1] == b"\x50"
    # Built-in keys keep their own encoding under the pickle opt-in.
    assert codec.encode("word", pickle=True) == codec.encode("word")


def test_malformed_bytes_are_a_value_error():
    for b in [b"", b"\x06\x05ab", b"\x03\x00\x00", b"\x7f", b"\x08\xff\x01"]:
        with pytest.raises(ValueError, match="cannot decode a weir key or value"):
            codec.decode(b)


def test_keys_equal_in_python_route_alike():
    assert codec.stable_hash(1) == codec.stable_hash(True) == codec.stable_hash(1.0)
    assert codec.stable_hash(0) == codec.stable_hash(-0.0) == codec.stable_hash(False)
    assert codec.stable_hash((1, "a")) == codec.stable_hash((1.0, "a"))
    assert codec.stable_hash("a") != codec.stable_hash(b"a")
    assert all(0 <= codec.key_group(k) < codec.KEY_GROUPS for k in KEYS)


SCRIPT = """
import json, sys
from weir import codec
keys = json.loads(sys.argv[1])
keys = [tuple(k) if isinstance(k, list) else k for k in keys]
print(json.dumps([[codec.key_group(k), codec.stable_hash(k), hash(k)] for k in keys]))
"""


def test_the_key_to_key_group_map_is_the_same_under_another_hash_seed():
    keys = [f"user-{i}" for i in range(200)] + [i * 7919 for i in range(50)] + [["a", i] for i in range(20)]

    def groups(seed):
        env = dict(os.environ, PYTHONHASHSEED=str(seed))
        r = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(keys)], env=env, capture_output=True, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        return json.loads(r.stdout)

    a, b = groups(1), groups(2)
    assert [x[:2] for x in a] == [x[:2] for x in b]
    # Python's own hash of the same strings differs between the seeds (what must not route).
    assert [x[2] for x in a[:200]] != [x[2] for x in b[:200]]
    # Keys spread over the key groups.
    assert len({g for g, _, _ in a}) > 64
    # Pinned: a change here breaks every persisted checkpoint and the routing of restored runs.
    assert a[0][:2] == [codec.key_group("user-0"), codec.stable_hash("user-0")]


def test_key_by_count_merges_keys_equal_in_python_in_first_seen_order():
    got = Source.from_iter([1, "a", True, 1.0, "a", b"a", None, (1, 2), (1.0, 2)]).key_by().count().run_with(Sink.collect())
    assert got == [(1, 3), ("a", 2), (b"a", 1), (None, 1), ((1, 2), 2)]


def test_key_by_count_over_parallel_subtasks_counts_each_key_once():
    words = [f"w{i % 37}" for i in range(2000)]
    got = Source.from_iter(words).key_by().count().parallelism(4).run_with(Sink.collect())
    assert sorted(got) == sorted(collections.Counter(words).items())


def test_a_key_without_an_encoding_fails_key_by_naming_the_key():
    with pytest.raises(weir.StageFailed) as e:
        Source.from_iter([(1,), [2]]).key_by().count().run_with(Sink.collect())
    assert e.value.stage_name == "key_by"
    assert e.value.element == [2]
    assert "key [2]: a list has no stable encoding" in str(e.value)
    assert 'key_codec="pickle"' in str(e.value)


def test_a_key_without_an_encoding_under_resume_is_dead_lettered():
    dead = []
    got = (
        Source.from_iter(["a", frozenset([1]), "a"])
        .key_by(supervision=[(TypeError, "resume")], dead_letters=dead)
        .count()
        .run_with(Sink.collect())
    )
    assert got == [("a", 2)]
    assert [d[0] for d in dead] == [frozenset([1])]


def test_key_codec_pickle_opts_into_other_keys_for_count_fold_and_reduce():
    data = [Point(1, 2), Point(3, 4), Point(1, 2)]
    counted = Source.from_iter(data).key_by(key_codec="pickle").count().run_with(Sink.collect())
    assert counted == [(Point(1, 2), 2), (Point(3, 4), 1)]
    folded = (
        Source.from_iter(data)
        .key_by(lambda p: frozenset([p.x]), key_codec="pickle")
        .fold(0, lambda a, p: a + p.y)
        .run_with(Sink.collect())
    )
    assert folded == [(frozenset([1]), 4), (frozenset([3]), 4)]
    reduced = Source.from_iter(data).key_by(key_codec="pickle").reduce(lambda a, b: a).run_with(Sink.collect())
    assert reduced == [(Point(1, 2), Point(1, 2)), (Point(3, 4), Point(3, 4))]
    with pytest.raises(ValueError, match="key_codec must be 'builtin' or 'pickle', not 'json'"):
        Source.from_iter(data).key_by(key_codec="json")


def test_keyed_state_goes_through_a_snapshot_as_its_codec_encoding():
    from weir import _native

    entries = [("word", 3), ((1, "a"), [1, {"x": None}]), (Point(1, 2), b"v"), (2**80, -1.5)]
    assert _native._snapshot_roundtrip(entries) == entries
    # A value the codec cannot encode refuses the snapshot (postcard drops serde's message: the
    # stage's failure names the stage, the log names the value's type).
    with pytest.raises(TypeError, match="cannot encode the stage state"):
        _native._snapshot_roundtrip([("k", {1, 2})])


def test_window_keys_take_the_same_codec():
    events = [(Point(1, 2), 0.1), (Point(1, 2), 0.5), ("a", 0.7)]

    def windowed(**kw):
        return (
            Source.from_iter(events)
            .assign_timestamps(lambda e: e[1], weir.BoundedOutOfOrderness(0.1))
            .key_by(lambda e: e[0], **kw)
            .window(weir.Tumbling(1.0))
            .count()
        )

    assert windowed(key_codec="pickle").run_with(Sink.collect()) == [(Point(1, 2), 0.0, 1.0, 2), ("a", 0.0, 1.0, 1)]
    with pytest.raises(weir.StageFailed, match="a Point has no stable encoding"):
        windowed().run_with(Sink.collect())
