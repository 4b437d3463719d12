"""Python keys route by a hash that is the same in every process: `str`, `bytes` and tuples by
their contents (Python's own `hash()` of them is salted per process), numbers by Python's
deterministic `hash()`; equal keys of any type still count as one key."""

import os
import subprocess
import sys
from collections import namedtuple

from weir import Sink, Source, _native

KEYS = ["word", "", "é", b"raw", ("a", 1), ("a", ("b", b"c")), 7, -1, 1.5, None, True]

PROBE = (
    "from weir import _native\n"
    "keys = ['word', '', '\\u00e9', b'raw', ('a', 1), ('a', ('b', b'c')), 7, -1, 1.5, None, True]\n"
    "print([_native._key_routing_hash(k) for k in keys])\n"
)


def routing_hashes_in_a_process_with(seed):
    env = dict(os.environ, PYTHONHASHSEED=seed)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_routing_hashes_are_the_same_whatever_the_process_hash_seed():
    here = str([_native._key_routing_hash(k) for k in KEYS])
    assert routing_hashes_in_a_process_with("1") == here
    assert routing_hashes_in_a_process_with("4242") == here
    # A str key hashes as a Rust &str key (the pinned value of the Rust tests).
    assert _native._key_routing_hash("word") == 1971814602714486930


def test_equal_keys_of_different_types_route_alike_and_count_as_one():
    Point = namedtuple("Point", "x y")
    assert _native._key_routing_hash((1, "a")) == _native._key_routing_hash((1.0, "a"))
    assert _native._key_routing_hash(Point(1, "a")) == _native._key_routing_hash((1, "a"))
    assert _native._key_routing_hash(1) == _native._key_routing_hash(True)
    keys = [(1, "a"), (1.0, "a"), Point(True, "a"), ("a", 1), "a", b"a"]
    got = (
        Source.from_iter(keys)
        .key_by()
        .count()
        .parallelism(3)
        .run_with(Sink.collect())
    )
    assert sorted(got, key=repr) == sorted([((1, "a"), 3), (("a", 1), 1), ("a", 1), (b"a", 1)], key=repr)
