#!/usr/bin/env bash
# The main job on the embedded defaults: the Rust demo (a parallel word count over a generated
# corpus, printing per-stage metrics) with its web UI serving while it runs (its URL is printed;
# `--linger SECS` keeps it up after the job ends), then the same pipeline shape written in Python,
# run through `python -m weir run` so it serves the UI too.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
source scripts/rocksdb-env.sh
echo "== Rust: cargo run --release -p weir -- run --example demo $*"
cargo run --release --locked --quiet -p weir -- run --example demo "$@"

echo
echo "== Python: python -m weir run examples/python/word_count.py"
source scripts/python-env.sh
python -m weir run examples/python/word_count.py
