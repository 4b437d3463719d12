#!/usr/bin/env bash
# Builds the Python extension into the project venv (scripts/python-env.sh), lints the pyo3 crates
# in their own target dir, and runs the Python suite (pyapi/tests, which also executes the example
# scripts and the example notebook under examples/python), then the pool tests on a second venv
# with CPython 3.12+ (scripts/python-subinterp-env.sh) for the subinterpreter backend.
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
[ "$rc" -eq 0 ] || exit "$rc"

# The pool tests again on CPython 3.12+, for the subinterpreter backend only (the process backend
# ran above).
source scripts/python-subinterp-env.sh
if [ -z "$SUBINTERP_PY" ]; then
  echo "== pool tests on subinterpreters: SKIPPED ($SUBINTERP_SKIP)"
  exit 0
fi
echo "== pool tests on subinterpreters ($("$SUBINTERP_PY" -c 'import sys; print(sys.version.split()[0])'))"
WEIR_TEST_POOL_BACKENDS=subinterpreter "$SUBINTERP_PY" -m pytest -q pyapi/tests/test_pool.py pyapi/tests/test_pool_faults.py -p no:cacheprovider
