#!/usr/bin/env bash
# Runs every check and test of the project: formatting, lints, the pyo3 isolation rule, the Rust
# test suite (unit, integration, examples, doc tests) and, when the Python package is present, its
# pytest suite against the real extension built by maturin into a project venv.
set -euo pipefail
cd "$(dirname "$0")/.."

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
export CARGO_INCREMENTAL=0
export CARGO_TERM_COLOR=never
mkdir -p "$CARGO_TARGET_DIR"

# Keep the persistent target directory from growing without bound.
size_kb=$(du -sk "$CARGO_TARGET_DIR" 2>/dev/null | cut -f1 || echo 0)
if [ "${size_kb:-0}" -gt $((15 * 1024 * 1024)) ]; then
  echo "== target dir above 15 GB: wiping it"
  rm -rf "$CARGO_TARGET_DIR"
  mkdir -p "$CARGO_TARGET_DIR"
fi

# RocksDB is linked from a library built once per machine and librocksdb-sys version.
source scripts/rocksdb-env.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

# The pyo3 crates are built and linted by scripts/python-tests.sh in their own target directory,
# so pyo3's feature unification never rebuilds the core crates here.
PY_EXCLUDES=(--exclude weir-py --exclude weir-py-ext)

echo "== cargo clippy --all-targets -D warnings"
cargo clippy --workspace "${PY_EXCLUDES[@]}" --all-targets --locked -- -D warnings

echo "== pyo3 stays in pyapi/"
for crate in weir-graph weir-state weir-state-rocksdb weir-engine weir-operators weir-connectors weir-ops weir-cluster weir weir-bench weir-examples; do
  if cargo tree -p "$crate" -e normal,dev --locked 2>/dev/null | grep -q 'pyo3'; then
    echo "error: $crate depends on pyo3 (only pyapi/ may)"; exit 1
  fi
done

echo "== tests (unit, integration, examples)"
source scripts/chromium-env.sh >/dev/null # headless Chromium for the web UI's browser test
if command -v cargo-nextest >/dev/null 2>&1; then
  cargo nextest run --workspace "${PY_EXCLUDES[@]}" --locked --no-fail-fast
else
  cargo test --workspace "${PY_EXCLUDES[@]}" --locked --no-fail-fast --all-targets
fi

echo "== doc tests"
cargo test --workspace "${PY_EXCLUDES[@]}" --doc --locked

echo "== crash tests at each named checkpoint phase and on a full disk (failpoints compiled in)"
cargo test -p weir-operators --features failpoints --locked --test failpoints --test disk_full

if [ -f pyapi/pyproject.toml ]; then
  echo "== python suite"
  bash scripts/python-tests.sh
fi

echo "== the README's demo command (scripts/demo.sh)"
bash scripts/demo.sh > /dev/null
