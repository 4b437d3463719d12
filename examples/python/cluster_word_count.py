"""Word count as one job over three node processes: each node splits its share of the lines,
an exchange sends each word to the node that owns it (over QUIC with mutual TLS), and each node
counts the words it owns, checkpointing as part of the job (a checkpoint completes only once
every node wrote it). The union of the nodes' counts is the single-process word count.

Run: python examples/python/cluster_word_count.py   (it starts itself as 3 local node processes)
On the nodes of a coordinator: weir run --cluster ADDR --certs DIR --parallelism 3 -- \
    examples/python/cluster_word_count.py
"""

import os
import sys
import tempfile
from collections import Counter
from typing import Dict

import weir
from weir.cluster import ClusterNode

WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "barks", "a"]
LINES = [" ".join(WORDS[(i * j + j) % len(WORDS)] for j in range(1, 7)) for i in range(600)]


def run_node(node: ClusterNode) -> None:
    """One node: its share of the lines, the exchange by word, the count of its own words."""
    mine = LINES[node.node :: node.nodes]
    state = os.path.join(os.environ["WEIR_CLUSTER_DIR"], f"state-{node.node}")
    counts = (
        weir.Source.from_iter(mine)
        .flat_map(str.split)
        .via(node.exchange(key=lambda w: w))
        .key_by(lambda w: w)
        .count()
        .run_with(weir.Sink.collect(), cluster=node, state_dir=state, checkpoint_interval=0.05)
    )
    node.finish()
    for word, n in sorted(counts):
        if node.owner(word) != node.node:
            sys.exit(f"node {node.node} counted {word!r}, which node {node.owner(word)} owns")
        print(f"{word}\t{n}")


def main() -> None:
    node = weir.cluster.join()
    if node is not None:
        run_node(node)
        return
    with tempfile.TemporaryDirectory() as d:
        outcome = weir.cluster.run_local(3, [sys.executable, os.path.abspath(__file__)], dir=d)
    counts: Dict[str, int] = {}
    for out in outcome.stdout:
        for line in out.splitlines():
            word, count = line.split("\t")
            counts[word] = counts.get(word, 0) + int(count)
    model = Counter(w for line in LINES for w in line.split())
    if counts != dict(model):
        sys.exit(f"the nodes' counts differ from one process's: {counts} != {dict(model)}")
    print(f"{len(counts)} words over 3 nodes in attempt {outcome.epoch}, as one process counts them:")
    for word, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:5]:
        print(f"{word:>8} {n}")


if __name__ == "__main__":
    main()
