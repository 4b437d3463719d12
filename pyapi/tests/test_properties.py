"""Property tests: random chains of operators, batch sizes and async boundaries give what the
same chain computes over a plain Python list (the model), including failures in the middle of a
batch (what came before the failing element still arrives), failures in the middle of a batch
under ``resume`` and ``restart`` (only the failing elements are gone; a restarted ``scan`` starts
over from its seed), ``recover``, ``reduce`` of an empty stream and early completion (``take``,
``take_while``)."""

import collections
import itertools
from typing import Any, Callable, Dict, List, Optional, Tuple

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import weir  # noqa: E402
from weir import Sink, Source  # noqa: E402


def encode(g: List[int]) -> int:
    """A group as one integer (so later operators keep working on integers)."""
    return sum(g) * 31 + len(g)


def sliding_model(v: List[int], n: int, step: int) -> List[List[int]]:
    out, start = [], 0
    while start < len(v):
        if start + n <= len(v):
            out.append(v[start : start + n])
        elif start == 0 or len(v) > start - step + n:
            out.append(v[start:])
        start += step
    return out


def intersperse_model(v: List[int], sep: int) -> List[int]:
    out: List[int] = []
    for i, x in enumerate(v):
        if i:
            out.append(sep)
        out.append(x)
    return out


# name -> (apply to a weir source, model). A model maps what reaches the operator and whether
# upstream failed after it to what the operator emits and whether the stream still fails: one
# element at a time, a failing stage has emitted everything before the failing element, stages
# that emit on completion emit nothing, a full `take` completes first, and `recover` turns the
# failure into one last element.
Model = Callable[[List[int], int, bool], Tuple[List[int], bool]]
OPS: Dict[str, Tuple[Callable[[Any, int], Any], Model]] = {
    "map": (lambda s, p: s.map(lambda x: x * p + 1), lambda v, p, f: ([x * p + 1 for x in v], f)),
    "filter": (
        lambda s, p: s.filter(lambda x: x % (p + 1) != 0),
        lambda v, p, f: ([x for x in v if x % (p + 1) != 0], f),
    ),
    "filter_map": (
        lambda s, p: s.filter_map(lambda x: x // (p + 1) if x % (p + 1) == 0 else None),
        lambda v, p, f: ([x // (p + 1) for x in v if x % (p + 1) == 0], f),
    ),
    "flat_map": (
        lambda s, p: s.flat_map(lambda x: [x] * (p - 1)),
        lambda v, p, f: ([x for x in v for _ in range(p - 1)], f),
    ),
    # Python's scan emits its zero when the stage starts.
    "scan": (
        lambda s, p: s.scan(0, lambda a, x: a + x),
        lambda v, p, f: ([0] + list(itertools.accumulate(v)), f),
    ),
    "fold": (
        lambda s, p: s.fold(7, lambda a, x: (a * 3 + x) % 1_000_003),
        lambda v, p, f: ([], True) if f else ([_fold(v)], False),
    ),
    "reduce": (
        lambda s, p: s.reduce(lambda a, b: a - b),
        lambda v, p, f: ([], True) if f or not v else ([_reduce(v)], False),
    ),
    "take": (lambda s, p: s.take(p * 3), lambda v, p, f: (v[: p * 3], False) if len(v) >= p * 3 else (v, f)),
    "drop": (lambda s, p: s.drop(p * 3), lambda v, p, f: (v[p * 3 :], f)),
    "take_while": (
        lambda s, p: s.take_while(lambda x: x < 10 * p),
        lambda v, p, f: _take_while(v, 10 * p, f, inclusive=False),
    ),
    "take_while_inclusive": (
        lambda s, p: s.take_while(lambda x: x < 10 * p, inclusive=True),
        lambda v, p, f: _take_while(v, 10 * p, f, inclusive=True),
    ),
    "drop_while": (
        lambda s, p: s.drop_while(lambda x: x < 10 * p),
        lambda v, p, f: (list(itertools.dropwhile(lambda x: x < 10 * p, v)), f),
    ),
    "grouped": (
        lambda s, p: s.grouped(p).map(encode),
        lambda v, p, f: ([encode(v[i : i + p]) for i in range(0, len(v), p) if not f or i + p <= len(v)], f),
    ),
    "sliding": (
        lambda s, p: s.sliding(p + 1, (p % 3) + 1).map(encode),
        lambda v, p, f: ([encode(g) for g in sliding_model(v, p + 1, (p % 3) + 1) if not f or len(g) == p + 1], f),
    ),
    "intersperse": (lambda s, p: s.intersperse(-p), lambda v, p, f: (intersperse_model(v, -p), f)),
    # The start marker comes when the stage starts, the end marker on completion only.
    "intersperse_around": (
        lambda s, p: s.intersperse(-1, -2, -3),
        # As Akka's: `start` comes with the first element or the completion, so a stream that
        # fails before any element emits nothing.
        lambda v, p, f: (([] if f and not v else [-2]) + intersperse_model(v, -1) + ([] if f else [-3]), f),
    ),
    "zip_with_index": (
        lambda s, p: s.zip_with_index().map(lambda t: t[0] * 1000 + t[1]),
        lambda v, p, f: ([x * 1000 + i for i, x in enumerate(v)], f),
    ),
    "key_count": (
        lambda s, p: s.key_by(lambda x: x % (p + 2)).count().map(lambda kv: kv[0] * 1000 + kv[1]),
        lambda v, p, f: ([], True) if f else (_keyed(v, p, len), False),
    ),
    "key_fold": (
        lambda s, p: s.key_by(lambda x: x % (p + 2)).fold(0, lambda a, x: a + x).map(lambda kv: kv[0] * 100_000 + kv[1]),
        lambda v, p, f: ([], True) if f else (_keyed(v, p, sum, scale=100_000), False),
    ),
    # Raises on the first element >= 10 * p - 25 (a failure under the default "stop").
    "fail_at": (lambda s, p: s.map(_fail_at(10 * p - 25)), lambda v, p, f: _fail_model(v, 10 * p - 25, f)),
    "recover": (lambda s, p: s.recover(lambda e: -100 - p), lambda v, p, f: (v + [-100 - p], False) if f else (v, False)),
    # Raise on multiples of p + 1 in the middle of batches, supervised: only those elements go.
    "map_resume": (
        lambda s, p: s.map(_fail_on_multiple(p + 1)).with_supervision([(Boom, "resume")]),
        lambda v, p, f: ([x for x in v if x % (p + 1) != 0], f),
    ),
    "map_restart": (
        lambda s, p: s.map(_fail_on_multiple(p + 1)).with_supervision([(Boom, "restart")]),
        lambda v, p, f: ([x for x in v if x % (p + 1) != 0], f),
    ),
    "filter_restart": (
        lambda s, p: s.filter(lambda x: _fail_on_multiple(p + 1)(x) % 2 == 0).with_supervision([(Boom, "restart")]),
        lambda v, p, f: ([x for x in v if x % (p + 1) != 0 and x % 2 == 0], f),
    ),
    "scan_resume": (
        lambda s, p: s.scan(0, lambda a, x: a + _fail_on_multiple(p + 1)(x)).with_supervision([(Boom, "resume")]),
        lambda v, p, f: _scan_model(v, p + 1, f, restart=False),
    ),
    "scan_restart": (
        lambda s, p: s.scan(0, lambda a, x: a + _fail_on_multiple(p + 1)(x)).with_supervision([(Boom, "restart")]),
        lambda v, p, f: _scan_model(v, p + 1, f, restart=True),
    ),
}


def _fail_on_multiple(m: int) -> Callable[[int], int]:
    def f(x: int) -> int:
        if x % m == 0:
            raise Boom(f"multiple of {m}: {x}")
        return x

    return f


def _scan_model(v: List[int], m: int, failed: bool, restart: bool) -> Tuple[List[int], bool]:
    """A running sum skipping multiples of ``m``; a restart emits the seed again at once and
    starts over (as Akka's scan does, also when the restart was on the last element)."""
    out, acc = [0], 0
    for x in v:
        if x % m != 0:
            acc += x
            out.append(acc)
        elif restart:
            acc = 0
            out.append(0)
    return out, failed


class Boom(Exception):
    pass


def _fail_at(t: int) -> Callable[[int], int]:
    def f(x: int) -> int:
        if x >= t:
            raise Boom(f"boom at {x}")
        return x

    return f


def _fail_model(v: List[int], t: int, failed: bool) -> Tuple[List[int], bool]:
    p = next((i for i, x in enumerate(v) if x >= t), None)
    return (v, failed) if p is None else (v[:p], True)


def _take_while(v: List[int], t: int, failed: bool, inclusive: bool) -> Tuple[List[int], bool]:
    p = next((i for i, x in enumerate(v) if x >= t), None)
    if p is None:
        return v, failed
    return v[: p + 1] if inclusive else v[:p], False


# Operators whose output order is not the input order: the chain's result is compared sorted.
UNORDERED = {"key_count", "key_fold"}
ELEMENTWISE = {"map", "filter", "filter_map", "flat_map", "map_resume", "map_restart", "filter_restart"}


def _fold(v: List[int]) -> int:
    a = 7
    for x in v:
        a = (a * 3 + x) % 1_000_003
    return a


def _reduce(v: List[int]) -> int:
    a = v[0]
    for x in v[1:]:
        a = a - x
    return a


def _keyed(v: List[int], p: int, agg: Callable[[List[int]], int], scale: int = 1000) -> List[int]:
    groups: "collections.OrderedDict[int, List[int]]" = collections.OrderedDict()
    for x in v:
        groups.setdefault(x % (p + 2), []).append(x)
    return [k * scale + agg(g) for k, g in groups.items()]


op_st = st.tuples(st.sampled_from(sorted(OPS)), st.integers(1, 4), st.booleans())


def model(v: List[int], chain: List[Tuple[str, int, bool]]) -> Tuple[List[int], bool, bool]:
    """The chain over a list: (what reaches the sink, whether the run fails, whether the order
    is unspecified)."""
    failed = unordered = False
    for name, p, _ in chain:
        v, failed = OPS[name][1](v, p, failed)
        unordered = unordered or name in UNORDERED
    return v, failed, unordered


@settings(max_examples=200, deadline=None)
@given(
    v=st.lists(st.integers(-50, 50), max_size=60),
    chain=st.lists(op_st, min_size=1, max_size=4),
    batch=st.sampled_from([1, 2, 3, 7, 64, 1024]),
)
def test_operator_chains_match_the_list_model(v, chain, batch):
    # After a keyed aggregate (output order unspecified) only element-wise operators keep the
    # comparison meaningful as a multiset.
    seen_unordered = False
    for name, _, _ in chain:
        hypothesis.assume(not seen_unordered or name in ELEMENTWISE | UNORDERED)
        seen_unordered = seen_unordered or name in UNORDERED
    expect, fails, unordered = model(v, chain)
    src = Source.from_iter(v)
    for name, p, boundary in chain:
        src = OPS[name][0](src, p)
        if boundary:
            src = src.async_boundary()
    got: List[int] = []
    graph = src.to(Sink.for_each(got.append), keep="right")
    if fails:
        with pytest.raises(weir.StageFailed):
            graph.run(batch_size=batch)
    else:
        graph.run(batch_size=batch)
    if unordered:
        assert sorted(got) == sorted(expect)
    else:
        assert got == expect
