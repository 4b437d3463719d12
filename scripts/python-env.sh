#!/usr/bin/env bash
# Sourced by the other scripts: creates (or reuses) the project venv and builds the weir extension
# into it. Exports VIRTUAL_ENV, PATH and CARGO_TARGET_DIR for the caller.
#
# - venv: $HOME/.cache/weir/venv (python3 -m venv), reinstalled when pyapi/requirements-test.txt
#   changes (its sha256 is stored in the venv);
# - build: `maturin develop --release` with its own target dir ($HOME/.cache/weir/target-py), so the
#   pyo3 feature set never invalidates the main target dir.
set -euo pipefail

CACHE="${WEIR_CACHE:-$HOME/.cache/weir}"
VENV="$CACHE/venv"
REQ=pyapi/requirements-test.txt
PY="${PYTHON:-python3}"

mkdir -p "$CACHE"
want=$(sha256sum "$REQ" | cut -d' ' -f1)
have=$(cat "$VENV/.weir-requirements" 2>/dev/null || true)
if [ ! -x "$VENV/bin/python" ] || [ "$want" != "$have" ]; then
  echo "== python venv: (re)creating $VENV"
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  "$VENV/bin/python" -m pip install --quiet -r "$REQ"
  echo "$want" > "$VENV/.weir-requirements"
fi

export VIRTUAL_ENV="$VENV"
export PATH="$VENV/bin:$PATH"
export CARGO_TARGET_DIR="${WEIR_PY_TARGET_DIR:-$CACHE/target-py}"
export CARGO_INCREMENTAL=0
unset PYO3_CONFIG_FILE
# maturin links the same cached RocksDB library as cargo (scripts/rocksdb-env.sh).
source "$(dirname "${BASH_SOURCE[0]}")/rocksdb-env.sh"

echo "== maturin develop --release (target dir $CARGO_TARGET_DIR)"
(cd pyapi && "$VENV/bin/maturin" develop --release --locked --quiet)
