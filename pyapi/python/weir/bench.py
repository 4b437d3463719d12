"""Benchmarks of the Python API: ``python -m weir.bench <w1|w2|keyed|w3|pool|actors|all> [--n N] [--repeat R]``.

Prints one JSON object per line, like the Rust ``weir-bench``: ``workload``, ``variant``, ``n``,
``parallelism``, ``seconds`` (the **median** of ``repeat`` runs), ``best_seconds``,
``elements_per_s`` (from the median), ``peak_rss_mb``, ``checksum`` and, for weir variants,
``ratio`` to the plain-CPython baseline measured in the same process (median over median). The
machines are shared and noisy: use ``--repeat 7`` or more for numbers you report.

* ``w1``: ``map(lambda x: x * 2)``, ``filter(lambda x: x % 3 == 0)``, fold a sum; baseline
  ``sum(filter(g, map(f, range(n))))``; ``cpython_reduce`` is the same with the fold lambda
  (``functools.reduce``), the plain-Python ceiling for weir's pipeline. ``weir_fused`` is the whole pipeline in one stage
  (``from_iter`` + ops + the fold sink), ``weir_sink_stage`` keeps the sink a stage of its own,
  ``weir_boundary`` adds an ``async_boundary()`` between map and filter.
* ``w2``: word count over ``zipf_corpus(n / 10 lines, 10, 10_000, 42)`` (the same corpus and
  checksum as the Rust bench); ``flat_map(str.split)`` in Python, counting in Rust; baseline
  ``collections.Counter`` updated per line.
* ``keyed``: ``n`` rows ``(key, value)`` over 1000 keys summed per key: baseline a plain dict
  loop, ``weir_sum_item`` the Rust-side ``key_by(0).sum(1)``, ``weir_fold_lambda`` a Python
  ``fold``; then ``n`` distinct ints counted, ``collections.Counter(range(n))`` against
  ``key_by().count()`` (``keyed_count_distinct``).
* ``w3``: ``n`` W3-shaped events ``(key, value, ts_ms)`` (key 0..999, value 1..100, 10 events
  per event-time ms, up to 99 ms late) summed per key in 1 s tumbling event-time windows:
  baseline a plain Python loop (windows by start in a dict of per-key dicts, fired by the same
  bounded-out-of-orderness watermark), ``weir_windows`` is ``assign_timestamps(ts,
  BoundedOutOfOrderness(0.1)).key_by(itemgetter(0)).window(Tumbling(1.0)).sum(itemgetter(1))``
  (the windows and sums in Rust; Python calls only for the timestamp, key and value).
* ``pool``: a ~50 microsecond pure-Python CPU-bound function, inline vs ``InterpreterPool`` with
  ``--workers`` workers (default ``1,2``); ``--batch B`` sets ``.batch_size(B)`` on the pooled
  stage (default 0: none, the pool sizes its chunks by measured cost).
  ``weir_poolK`` runs on a pool created before the timed runs (workers already up: the steady
  state of a long-lived pool); ``weir_poolK_cold`` creates the pool inside the timed run (start-up
  included, one run). On a 16-core machine: ``--workers 1,2,4,8,16 --n 200000``.
  ``--backends`` picks the pool backends (default: every one this interpreter supports):
  ``weir_poolK`` is the process backend, ``weir_subinterpK`` the subinterpreter backend
  (CPython 3.12+). Each pool variant's runs alternate with runs of the CPython baseline, and its
  ``ratio`` is over those paired runs, so that a machine whose load drifts still compares like
  with like.

* ``actors``: ``n`` int messages through a Python actor (``weir.Flow.actor``) that sums them
  (``actors_sum``: emits the total from ``post_stop``) or emits a running count per message
  (``actors_emit``); baseline the same actor's ``handle(ctx, msg)`` called in a plain Python
  loop (``ctx.emit`` a ``list.append`` there), each weir run paired with a loop run for its
  ``ratio`` (>= 0.7 is the goal).

Needs only ``weir`` (and ``cloudpickle`` for ``pool``): no pyarrow/polars/numpy.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import functools
import hashlib
import json
import operator
import statistics
import time
from typing import Any, Callable, Dict, Iterable, List, Sequence, Tuple

import weir

MASK = (1 << 64) - 1


class SplitMix64:
    """The PRNG of ``weir::demo`` (bit-exact port)."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK

    def next_u64(self) -> int:
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)

    def next_f64(self) -> float:
        return (self.next_u64() >> 11) / float(1 << 53)


def zipf_corpus(lines: int, words_per_line: int, vocab: int, seed: int) -> List[str]:
    """``weir::demo::zipf_corpus`` in Python: identical lines for identical arguments."""
    rng = SplitMix64(seed)
    words: List[str] = []
    seen = set()
    while len(words) < vocab:
        n = 3 + rng.next_u64() % 8
        w = "".join(chr(ord("a") + rng.next_u64() % 26) for _ in range(n))
        if w not in seen:
            seen.add(w)
            words.append(w)
    cdf: List[float] = []
    acc = 0.0
    for k in range(1, vocab + 1):
        acc += 1.0 / k
        cdf.append(acc)
    total = acc
    out = []
    for _ in range(lines):
        idx = [min(bisect.bisect_left(cdf, rng.next_f64() * total), vocab - 1) for _ in range(words_per_line)]
        out.append(" ".join(words[i] for i in idx))
    return out


def checksum(counts: Iterable[Tuple[str, int]]) -> str:
    """The Rust bench's checksum: sha256 over sorted ``word\\tcount\\n`` lines."""
    h = hashlib.sha256()
    for w, c in sorted(counts):
        h.update(f"{w}\t{c}\n".encode())
    return h.hexdigest()


def _reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def _measure(fn: Callable[[], Any], repeat: int) -> Tuple[float, float, Any, float]:
    """``(median, best, value, peak_rss_mb)`` over ``repeat`` runs of ``fn``."""
    times: List[float] = []
    value, peak = None, 0.0
    for _ in range(max(1, repeat)):
        _reset_peak()
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
        peak = max(peak, _peak_mb())
    return statistics.median(times), min(times), value, peak


def _paired(fn: Callable[[], Any], base_fn: Callable[[], Any], repeat: int) -> Tuple[float, float, Any, float, float]:
    """``(median, best, value, peak_rss_mb, baseline median)``: ``repeat`` runs of ``fn``, each
    right after a run of ``base_fn``, so that a ratio compares runs under the same load."""
    times: List[float] = []
    base: List[float] = []
    value, peak = None, 0.0
    for _ in range(max(1, repeat)):
        t = time.perf_counter()
        base_fn()
        base.append(time.perf_counter() - t)
        _reset_peak()
        t = time.perf_counter()
        value = fn()
        times.append(time.perf_counter() - t)
        peak = max(peak, _peak_mb())
    return statistics.median(times), min(times), value, peak, statistics.median(base)


def _emit(
    workload: str,
    variant: str,
    n: int,
    par: int,
    secs: Tuple[float, float],
    peak: float,
    check: Any,
    base: float = 0.0,
) -> Dict[str, Any]:
    med, best = secs
    rec: Dict[str, Any] = {
        "workload": workload,
        "variant": variant,
        "n": n,
        "parallelism": par,
        "seconds": round(med, 6),
        "best_seconds": round(best, 6),
        "elements_per_s": float(f"{n / med:.4e}"),
        "peak_rss_mb": round(peak, 1),
        "checksum": str(check),
    }
    if base:
        rec["ratio"] = round(base / med, 3)
    print(json.dumps(rec), flush=True)
    return rec


def w1(n: int, repeat: int) -> None:
    f = lambda x: x * 2  # noqa: E731
    g = lambda x: x % 3 == 0  # noqa: E731
    base, best, expect, peak = _measure(lambda: sum(filter(g, map(f, range(n)))), repeat)
    _emit("w1", "cpython", n, 1, (base, best), peak, expect)
    # The same computation as weir's (a Python lambda folds) in plain CPython: the ceiling for a
    # lambda fold, since sum() adds in C.
    fold = lambda acc, x: acc + x  # noqa: E731
    med, best, got, peak = _measure(lambda: functools.reduce(fold, filter(g, map(f, range(n))), 0), repeat)
    assert got == expect
    _emit("w1", "cpython_reduce", n, 1, (med, best), peak, got, base)
    src = weir.Source.from_iter(range(n)).map(lambda x: x * 2).filter(lambda x: x % 3 == 0)
    variants = (
        ("weir_fused", src.to(weir.Sink.fold(0, lambda acc, x: acc + x), keep="right")),
        # .named() makes the sink a stage of its own (no source-to-sink fusion)
        ("weir_sink_stage", src.to(weir.Sink.fold(0, lambda acc, x: acc + x).named("fold"), keep="right")),
        (
            "weir_boundary",
            weir.Source.from_iter(range(n))
            .map(lambda x: x * 2)
            .async_boundary()
            .filter(lambda x: x % 3 == 0)
            .to(weir.Sink.fold(0, lambda acc, x: acc + x), keep="right"),
        ),
    )
    for variant, graph in variants:
        med, best, got, peak = _measure(graph.run, repeat)
        assert got == expect, (variant, got, expect)
        _emit("w1", variant, n, 1, (med, best), peak, got, base)


def w2(n: int, repeat: int) -> None:
    lines = zipf_corpus(max(1, n // 10), 10, 10_000, 42)
    words = len(lines) * 10

    def baseline() -> Dict[str, int]:
        c: Dict[str, int] = collections.Counter()
        for line in lines:
            c.update(line.split())
        return c

    base, best, counts, peak = _measure(baseline, repeat)
    expect = checksum(counts.items())
    _emit("w2", "cpython_counter", words, 1, (base, best), peak, expect)
    for variant, key in (("weir_key_lambda", lambda w: w), ("weir_key_identity", None)):
        graph = weir.Source.from_iter(lines).flat_map(str.split).key_by(key).count().to(weir.Sink.collect(), keep="right")
        med, best, got, peak = _measure(graph.run, repeat)
        c = checksum(got)
        assert c == expect, f"w2 {variant}: checksum mismatch"
        _emit("w2", variant, words, 1, (med, best), peak, c, base)


def keyed(n: int, repeat: int) -> None:
    """Keyed sums of ``(key, value)`` rows over 1000 keys (plain dict loop, ``key_by(0).sum(1)``
    in Rust, a Python ``fold``), and ``key_by().count()`` of ``n`` distinct keys against
    ``collections.Counter``."""
    rows = [(i * 7919 % 1000, i % 100) for i in range(n)]

    def baseline() -> Dict[int, int]:
        d: Dict[int, int] = {}
        for k, v in rows:
            d[k] = d.get(k, 0) + v
        return d

    base, best, sums, peak = _measure(baseline, repeat)
    expect = checksum((str(k), v) for k, v in sums.items())
    _emit("keyed_sum", "cpython_dict", n, 1, (base, best), peak, expect)
    variants = (
        ("weir_sum_item", weir.Source.from_iter(rows).key_by(0).sum(1)),
        ("weir_fold_lambda", weir.Source.from_iter(rows).key_by(lambda r: r[0]).fold(0, lambda a, r: a + r[1])),
    )
    for variant, src in variants:
        graph = src.to(weir.Sink.collect(), keep="right")
        med, best, got, peak = _measure(graph.run, repeat)
        c = checksum((str(k), v) for k, v in got)
        assert c == expect, f"keyed_sum {variant}: checksum mismatch"
        _emit("keyed_sum", variant, n, 1, (med, best), peak, c, base)
    distinct = range(n)
    base, best, counts, peak = _measure(lambda: collections.Counter(distinct), repeat)
    expect = checksum((str(k), v) for k, v in counts.items())
    _emit("keyed_count_distinct", "cpython_counter", n, 1, (base, best), peak, expect)
    graph = weir.Source.from_iter(distinct).key_by().count().to(weir.Sink.collect(), keep="right")
    med, best, got, peak = _measure(graph.run, repeat)
    c = checksum((str(k), v) for k, v in got)
    assert c == expect, "keyed_count_distinct: checksum mismatch"
    _emit("keyed_count_distinct", "weir_count", n, 1, (med, best), peak, c, base)


def w3_events(n: int) -> List[Tuple[int, int, int]]:
    """``n`` W3-shaped events: 10 per event-time ms, each up to 99 ms late."""
    return [(i * 7919 % 1000, i % 100 + 1, max(0, i // 10 - (i * 31 % 100))) for i in range(n)]


def w3_loop(events: List[Tuple[int, int, int]]) -> List[Tuple[int, int, int]]:
    """Tumbling 1 s sums per key fired by a watermark 100 ms (and 1 ms) behind the highest
    timestamp, the rest at the end: ``(key, window start ms, sum)``."""
    open_: Dict[int, Dict[int, int]] = {}
    out: List[Tuple[int, int, int]] = []
    high = -1
    first = None
    for k, v, ts in events:
        start = ts - ts % 1000
        w = open_.get(start)
        if w is None:
            w = open_[start] = {}
            if first is None or start < first:
                first = start
        w[k] = w.get(k, 0) + v
        if ts > high:
            high = ts
            wm = high - 101
            while first is not None and first + 999 <= wm:
                for key, total in open_.pop(first).items():
                    out.append((key, first, total))
                first = min(open_) if open_ else None
    for start in sorted(open_):
        for key, total in open_[start].items():
            out.append((key, start, total))
    return out


def w3(n: int, repeat: int) -> None:
    """W3 in Python: a plain loop against weir's Rust-side event-time windows."""
    events = w3_events(n)

    def digest(rows: Iterable[Tuple[int, int, int]]) -> str:
        return checksum((f"{k},{s}", t) for k, s, t in rows)

    base, best, rows, peak = _measure(lambda: w3_loop(events), repeat)
    expect = digest(rows)
    _emit("w3", "cpython_loop", n, 1, (base, best), peak, expect)
    graph = (
        weir.Source.from_iter(events)
        .assign_timestamps(lambda e: e[2] / 1000, weir.BoundedOutOfOrderness(0.1))
        .key_by(operator.itemgetter(0))
        .window(weir.Tumbling(1.0))
        .sum(operator.itemgetter(1))
        .to(weir.Sink.collect(), keep="right")
    )
    med, best, got, peak = _measure(graph.run, repeat)
    c = digest((k, round(start * 1000), total) for k, start, _end, total in got)
    assert c == expect, "w3 weir_windows: checksum mismatch"
    _emit("w3", "weir_windows", n, 1, (med, best), peak, c, base)


def cpu_work(x: int) -> int:
    """About 50 microseconds of pure-Python arithmetic."""
    s = 0
    for i in range(1000):
        s = (s + i * x) % 1_000_003
    return s


def _pooled(n: int, p: Any, batch: int) -> Any:
    g = weir.Source.range(n).map(cpu_work, pool=p)
    return g.batch_size(batch) if batch > 0 else g


def pool(n: int, repeat: int, workers: Sequence[int] = (1, 2), batch: int = 0, backends: Sequence[str] = ()) -> None:
    def baseline() -> List[int]:
        return list(map(cpu_work, range(n)))

    base, best, expect, peak = _measure(baseline, repeat)
    check = sum(expect) % 1_000_000_007
    _emit("pool", "cpython_inline", n, 1, (base, best), peak, check)
    graph = weir.Source.range(n).map(cpu_work).to(weir.Sink.collect(), keep="right")
    med, best, got, peak, base = _paired(graph.run, baseline, repeat)
    assert got == expect
    _emit("pool", "weir_inline", n, 1, (med, best), peak, check, base)
    for backend in backends or weir.interpreters.backends():
        label = "weir_pool" if backend == "process" else "weir_subinterp"
        for w in workers:
            with weir.InterpreterPool(workers=w, backend=backend) as p:
                graph = _pooled(n, p, batch).to(weir.Sink.collect(), keep="right")
                assert graph.run() == expect  # warm-up: the function reaches every worker
                med, best, got, peak, base = _paired(graph.run, baseline, repeat)
                assert got == expect
                _emit("pool", f"{label}{w}", n, w, (med, best), peak, check, base)

            def cold() -> Any:
                with weir.InterpreterPool(workers=w, backend=backend) as p:
                    return _pooled(n, p, batch).run_with(weir.Sink.collect())

            med, best, got, peak, base = _paired(cold, baseline, 1)
            assert got == expect
            _emit("pool", f"{label}{w}_cold", n, w, (med, best), peak, check, base)


def _ints(s: str) -> List[int]:
    try:
        out = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, not {s!r}") from None
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError("worker counts must be >= 1")
    return out


class _SumActor(weir.Actor):
    """Sums its messages; emits the total when it stops."""

    def pre_start(self, ctx: Any) -> None:
        self.total = 0

    def handle(self, ctx: Any, msg: Any) -> None:
        self.total += msg

    def post_stop(self, ctx: Any) -> None:
        ctx.emit(self.total)


class _CountActor(weir.Actor):
    """Emits the running count of its messages."""

    def pre_start(self, ctx: Any) -> None:
        self.n = 0

    def handle(self, ctx: Any, msg: Any) -> None:
        self.n += 1
        ctx.emit(self.n)


class _ListCtx:
    """The baseline's context: ``emit`` appends to a list."""

    def __init__(self) -> None:
        self.out: List[Any] = []
        self.emit = self.out.append


def _method_loop(cls: Any, msgs: List[int]) -> Any:
    """The plain-Python baseline: the actor's hooks called in a loop."""
    actor, ctx = cls(), _ListCtx()
    actor.pre_start(ctx)
    for m in msgs:
        actor.handle(ctx, m)
    actor.post_stop(ctx)
    return ctx.out[-1]


def actors(n: int, repeat: int) -> None:
    msgs = list(range(n))
    for workload, cls, sink in (
        ("actors_sum", _SumActor, weir.Sink.head),
        ("actors_emit", _CountActor, weir.Sink.last),
    ):
        loop = functools.partial(_method_loop, cls, msgs)
        med, best, expect, peak = _measure(loop, repeat)
        _emit(workload, "cpython_method_loop", n, 1, (med, best), peak, expect)
        graph = weir.Source.from_iter(msgs).via(weir.Flow.actor(cls)).to(sink(), keep="right")
        # Each weir run right after a loop run: the ratio compares runs under the same load.
        med2, best2, got, peak2, base = _paired(graph.run, loop, repeat)
        if got != expect:
            raise AssertionError(f"{workload}: weir_actor_flow gave {got}, the loop {expect}")
        _emit(workload, "weir_actor_flow", n, 1, (med2, best2), peak2, got, base)
        # The same actor with its hooks in a pool worker (one, started before): what crossing
        # to the worker and back costs per message.
        with weir.InterpreterPool(1) as p:
            p.backend.start()
            pooled = weir.Source.from_iter(msgs).via(weir.Flow.actor(cls, pool=p)).to(sink(), keep="right")
            med3, best3, got3, peak3, base3 = _paired(pooled.run, loop, repeat)
        if got3 != expect:
            raise AssertionError(f"{workload}: weir_pool_actor_flow gave {got3}, the loop {expect}")
        _emit(workload, "weir_pool_actor_flow", n, 1, (med3, best3), peak3, got3, base3)


def main(argv: Any = None) -> None:
    """Entry point of ``python -m weir.bench``."""
    ap = argparse.ArgumentParser(prog="python -m weir.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", nargs="?", default="all", choices=["w1", "w2", "keyed", "w3", "pool", "actors", "all"])
    ap.add_argument("--n", type=float, default=None, help="elements (words for w2)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per variant (the median is reported)")
    ap.add_argument("--workers", type=_ints, default=[1, 2], help="pool: worker counts, e.g. 1,2,4,8,16")
    ap.add_argument("--batch", type=int, default=0, help="pool: .batch_size() of the pooled stage (0: none)")
    ap.add_argument(
        "--backends",
        type=lambda s: [b for b in s.split(",") if b],
        default=[],
        help="pool: backends to measure, e.g. process,subinterpreter (default: every supported one)",
    )
    a = ap.parse_args(argv)
    todo = ["w1", "w2", "keyed", "w3", "pool", "actors"] if a.workload == "all" else [a.workload]
    for w in todo:
        if w == "w1":
            w1(int(a.n or 2_000_000), a.repeat)
        elif w == "w2":
            w2(int(a.n or 2_000_000), a.repeat)
        elif w == "keyed":
            keyed(int(a.n or 1_000_000), a.repeat)
        elif w == "w3":
            w3(int(a.n or 1_000_000), a.repeat)
        elif w == "actors":
            actors(int(a.n or 1_000_000), a.repeat)
        else:
            pool(int(a.n or 20_000), a.repeat, a.workers, max(0, a.batch), a.backends)


if __name__ == "__main__":
    main()
