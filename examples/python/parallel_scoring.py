"""CPU-bound Python in a pool of worker interpreters, with bad records skipped.

Each record is parsed inline (cheap), scored in worker processes (expensive pure Python), and
aggregated per category in Rust. Records that fail to parse are resumed past and collected as dead
letters instead of failing the run.

Run: python examples/python/parallel_scoring.py [workers]
"""

import sys

import weir


def score(record: tuple[str, int]) -> tuple[str, int]:
    """A deliberately CPU-heavy pure-Python score (runs in a worker process)."""
    category, value = record
    acc = 0
    for i in range(2_000):
        acc = (acc * 31 + value + i) % 1_000_003
    return category, acc


def parse(line: str) -> tuple[str, int]:
    category, value = line.split(",")
    return category.strip(), int(value)


def main(workers: int = 2) -> None:
    lines = [f"{'abc'[i % 3]}, {i}" for i in range(3_000)] + ["broken line", "d, not-a-number"]
    dead: list[weir.DeadLetter] = []
    with weir.InterpreterPool(workers=workers) as pool:
        totals = (
            weir.Source.from_iter(lines)
            .map(parse, supervision=[(ValueError, "resume")], dead_letters=dead)
            .map(score, pool=pool)
            .key_by(lambda kv: kv[0])
            .fold(0, lambda acc, kv: acc + kv[1])
            .run_with(weir.Sink.collect())
        )
    for category, total in sorted(totals):
        print(f"{category}: {total}")
    print(f"skipped {len(dead)} bad records: {[d.element for d in dead]}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
