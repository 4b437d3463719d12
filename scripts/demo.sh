#!/usr/bin/env bash
# The main job on the embedded defaults: the Rust demo (a parallel word count over a generated
# corpus, printing per-stage metrics), then the same pipeline shape written in Python.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
source scripts/rocksdb-env.sh
echo "== Rust: cargo run --release -p weir -- demo"
cargo run --release --locked --quiet -p weir -- demo "$@"

echo
echo "== Python: examples/python/word_count.py"
source scripts/python-env.sh
python examples/python/word_count.py
