"""A sharded counter from Python: a shard region makes one counter actor per word on the word's
first message, spread over two subtasks by a hash of the word; each emits its running count.

Run: python examples/python/sharded_counter.py
"""

from typing import Any, Dict, List, Tuple

import weir


class WordCounter(weir.Actor):
    """Counts the messages of one word."""

    def __init__(self, word: str) -> None:
        self.word = word
        self.n = 0

    def handle(self, ctx: weir.ActorContext, msg: Any) -> None:
        self.n += 1
        ctx.emit((self.word, self.n))


def count(text: str) -> Dict[str, int]:
    """The last count of every word of `text`."""
    flow = weir.Flow.sharded(WordCounter, lambda w: w, parallelism=2)
    pairs: List[Tuple[str, int]] = weir.Source.from_iter(text.split()).via(flow).run_with(weir.Sink.collect())
    counts: Dict[str, int] = {}
    for word, n in pairs:
        counts[word] = max(counts.get(word, 0), n)
    return counts


def main() -> None:
    for word, n in sorted(count("the quick brown fox jumps over the lazy dog the end").items()):
        print(f"{word:<6} {n}")


if __name__ == "__main__":
    main()
