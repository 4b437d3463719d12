"""Word count with weir from Python: split in Python, count in Rust.

Run: python examples/python/word_count.py
"""

import weir

LINES = [
    "the quick brown fox jumps over the lazy dog",
    "the dog barks",
    "a quick brown dog",
]


def main() -> None:
    counts = (
        weir.Source.from_iter(LINES)
        .flat_map(str.split)
        .key_by(lambda w: w)
        .count()
        .run_with(weir.Sink.collect())
    )
    for word, n in sorted(counts, key=lambda kv: (-kv[1], kv[0]))[:5]:
        print(f"{word:>8} {n}")


if __name__ == "__main__":
    main()
