#!/usr/bin/env bash
# Builds the Python extension into the project venv (scripts/python-env.sh), lints the pyo3 crates
# in their own target dir, and runs the Python suite (pyapi/tests, which also executes the example
# scripts and the example notebook under examples/python).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/python-env.sh

echo "== cargo clippy (pyo3 crates)"
cargo clippy -p weir-py -p weir-py-ext --all-targets --locked -- -D warnings

echo "== pytest pyapi/tests"
set +e
"$VIRTUAL_ENV/bin/python" -m pytest -q pyapi/tests -p no:cacheprovider
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests"; exit 1
fi
exit "$rc"
