#!/usr/bin/env bash
# Builds the Python extension into a cached venv and runs the Python suite (pyapi/tests).
#
# - venv: $HOME/.cache/weir/venv (python3 -m venv), reinstalled when pyapi/requirements-test.txt
#   changes (its sha256 is stored in the venv);
# - build: `maturin develop --release` with its own target dir ($HOME/.cache/weir/target-py), so the
#   pyo3 feature set never invalidates the main target dir;
# - tests: pytest -q pyapi/tests (the example notebook under examples/python is executed too).
set -euo pipefail
cd "$(dirname "$0")/.."

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

echo "== maturin develop --release (target dir $CARGO_TARGET_DIR)"
(cd pyapi && "$VENV/bin/maturin" develop --release --locked)

echo "== pytest pyapi/tests"
set +e
"$VENV/bin/python" -m pytest -q pyapi/tests -p no:cacheprovider
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests"; exit 1
fi
exit "$rc"
