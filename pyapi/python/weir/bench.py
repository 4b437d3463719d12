"""Benchmarks of the Python API: ``python -m weir.bench <w1|w2|pool|all> [--n N] [--repeat R]``.

Prints one JSON object per line, like the Rust ``weir-bench``: ``workload``, ``variant``, ``n``,
``parallelism``, ``seconds``, ``elements_per_s``, ``peak_rss_mb``, ``checksum`` and, for weir
variants, ``ratio`` to the plain-CPython baseline measured in the same process. Each variant is
run ``repeat`` times and the fastest run is reported (the machines are shared and noisy).

* ``w1``: ``map(lambda x: x * 2)``, ``filter(lambda x: x % 3 == 0)``, fold a sum; baseline
  ``sum(filter(g, map(f, range(n))))``.
* ``w2``: word count over ``zipf_corpus(n / 10 lines, 10, 10_000, 42)`` (the same corpus and
  checksum as the Rust bench); ``flat_map(str.split)`` in Python, counting in Rust; baseline
  ``collections.Counter`` updated per line.
* ``pool``: a ~50 microsecond pure-Python CPU-bound function, inline vs ``InterpreterPool`` with 1
  and 2 workers (worker start-up included).
"""

from __future__ import annotations

import argparse
import bisect
import collections
import hashlib
import json
import time
from typing import Any, Callable, Dict, Iterable, List, Tuple

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


def _best(fn: Callable[[], Any], repeat: int) -> Tuple[float, Any, float]:
    best, value, peak = float("inf"), None, 0.0
    for _ in range(repeat):
        _reset_peak()
        t = time.perf_counter()
        value = fn()
        dt = time.perf_counter() - t
        if dt < best:
            best, peak = dt, _peak_mb()
    return best, value, peak


def _emit(workload: str, variant: str, n: int, par: int, secs: float, peak: float, check: Any, base: float = 0.0) -> Dict[str, Any]:
    rec: Dict[str, Any] = {
        "workload": workload,
        "variant": variant,
        "n": n,
        "parallelism": par,
        "seconds": round(secs, 6),
        "elements_per_s": float(f"{n / secs:.4e}"),
        "peak_rss_mb": round(peak, 1),
        "checksum": str(check),
    }
    if base:
        rec["ratio"] = round(base / secs, 3)
    print(json.dumps(rec), flush=True)
    return rec


def w1(n: int, repeat: int) -> None:
    f = lambda x: x * 2  # noqa: E731
    g = lambda x: x % 3 == 0  # noqa: E731
    base, expect, peak = _best(lambda: sum(filter(g, map(f, range(n)))), repeat)
    _emit("w1", "cpython", n, 1, base, peak, expect)
    graph = (
        weir.Source.from_iter(range(n))
        .map(lambda x: x * 2)
        .filter(lambda x: x % 3 == 0)
        .to(weir.Sink.fold(0, lambda acc, x: acc + x), keep="right")
    )
    secs, got, peak = _best(graph.run, repeat)
    assert got == expect, (got, expect)
    _emit("w1", "weir_fused", n, 1, secs, peak, got, base)
    graph = (
        weir.Source.from_iter(range(n))
        .map(lambda x: x * 2)
        .async_boundary()
        .filter(lambda x: x % 3 == 0)
        .to(weir.Sink.fold(0, lambda acc, x: acc + x), keep="right")
    )
    secs, got, peak = _best(graph.run, repeat)
    assert got == expect
    _emit("w1", "weir_boundary", n, 1, secs, peak, got, base)


def w2(n: int, repeat: int) -> None:
    lines = zipf_corpus(max(1, n // 10), 10, 10_000, 42)
    words = len(lines) * 10

    def baseline() -> Dict[str, int]:
        c: Dict[str, int] = collections.Counter()
        for line in lines:
            c.update(line.split())
        return c

    base, counts, peak = _best(baseline, repeat)
    expect = checksum(counts.items())
    _emit("w2", "cpython_counter", words, 1, base, peak, expect)
    for variant, key in (("weir_key_lambda", lambda w: w), ("weir_key_identity", None)):
        graph = weir.Source.from_iter(lines).flat_map(str.split).key_by(key).count().to(weir.Sink.collect(), keep="right")
        secs, got, peak = _best(graph.run, repeat)
        c = checksum(got)
        assert c == expect, f"w2 {variant}: checksum mismatch"
        _emit("w2", variant, words, 1, secs, peak, c, base)


def cpu_work(x: int) -> int:
    """About 50 microseconds of pure-Python arithmetic."""
    s = 0
    for i in range(1000):
        s = (s + i * x) % 1_000_003
    return s


def pool(n: int, repeat: int) -> None:
    base, expect, peak = _best(lambda: list(map(cpu_work, range(n))), repeat)
    check = sum(expect) % 1_000_000_007
    _emit("pool", "cpython_inline", n, 1, base, peak, check)
    graph = weir.Source.range(n).map(cpu_work).to(weir.Sink.collect(), keep="right")
    secs, got, peak = _best(graph.run, repeat)
    assert got == expect
    _emit("pool", "weir_inline", n, 1, secs, peak, check, base)
    for workers in (1, 2):
        p = weir.InterpreterPool(workers=workers)
        graph = weir.Source.range(n).map(cpu_work, pool=p).batch_size(256).to(weir.Sink.collect(), keep="right")
        secs, got, peak = _best(graph.run, repeat)
        assert got == expect
        _emit("pool", f"weir_pool{workers}", n, workers, secs, peak, check, base)


def main(argv: Any = None) -> None:
    """Entry point of ``python -m weir.bench``."""
    ap = argparse.ArgumentParser(prog="python -m weir.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("workload", nargs="?", default="all", choices=["w1", "w2", "pool", "all"])
    ap.add_argument("--n", type=float, default=None, help="elements (words for w2)")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args(argv)
    todo = ["w1", "w2", "pool"] if a.workload == "all" else [a.workload]
    for w in todo:
        if w == "w1":
            w1(int(a.n or 2_000_000), a.repeat)
        elif w == "w2":
            w2(int(a.n or 2_000_000), a.repeat)
        else:
            pool(int(a.n or 20_000), a.repeat)


if __name__ == "__main__":
    main()
