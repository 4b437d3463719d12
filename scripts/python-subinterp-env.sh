#!/usr/bin/env bash
# Sourced after scripts/python-env.sh: a second venv on CPython 3.12+ for the pool tests of the
# subinterpreter backend. It uses the same abi3 build of the extension (the module maturin put
# under pyapi/python, reached through a .pth file), so nothing is compiled twice.
#
# - interpreter: $WEIR_SUBINTERP_PYTHON, else the newest 3.13/3.12 under `pyenv root`, else
#   python3.13/python3.12 on PATH; none found: SUBINTERP_PY is left empty and SUBINTERP_SKIP
#   says why (the caller prints it and skips these tests);
# - venv: $CACHE/venv-subinterp (pytest and cloudpickle pinned as in pyapi/requirements-test.txt).
set -euo pipefail

CACHE="${WEIR_CACHE:-$HOME/.cache/weir}"
SUBINTERP_VENV="$CACHE/venv-subinterp"
SUBINTERP_PY=""
SUBINTERP_SKIP=""

find_py() {
  if [ -n "${WEIR_SUBINTERP_PYTHON:-}" ]; then echo "$WEIR_SUBINTERP_PYTHON"; return; fi
  local root
  root=$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")
  for minor in 3.13 3.12; do
    local found
    found=$(ls -d "$root"/versions/"$minor".* 2>/dev/null | grep -E "/$minor\.[0-9]+$" | sort -V | tail -1 || true)
    if [ -n "$found" ] && [ -x "$found/bin/python3" ]; then echo "$found/bin/python3"; return; fi
  done
  for exe in python3.13 python3.12; do
    if command -v "$exe" >/dev/null 2>&1; then command -v "$exe"; return; fi
  done
}

base=$(find_py || true)
if [ -z "$base" ]; then
  SUBINTERP_SKIP="no CPython 3.12+ found (pyenv or PATH; set WEIR_SUBINTERP_PYTHON)"
elif ! "$base" -c 'import sys; sys.exit(sys.version_info < (3, 12))'; then
  SUBINTERP_SKIP="$base is not CPython 3.12+"
else
  pins=$(grep -E '^(pytest|cloudpickle)==' pyapi/requirements-test.txt | sort | tr '\n' ' ')
  want=$(echo "$base $pins" | sha256sum | cut -d' ' -f1)
  have=$(cat "$SUBINTERP_VENV/.weir-requirements" 2>/dev/null || true)
  if [ ! -x "$SUBINTERP_VENV/bin/python" ] || [ "$want" != "$have" ]; then
    echo "== python venv for subinterpreters: (re)creating $SUBINTERP_VENV ($base)"
    rm -rf "$SUBINTERP_VENV"
    "$base" -m venv "$SUBINTERP_VENV"
    # shellcheck disable=SC2086
    "$SUBINTERP_VENV/bin/python" -m pip install --quiet $pins
    echo "$want" > "$SUBINTERP_VENV/.weir-requirements"
  fi
  site=$("$SUBINTERP_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "$(pwd)/pyapi/python" > "$site/weir.pth"
  SUBINTERP_PY="$SUBINTERP_VENV/bin/python"
fi
export SUBINTERP_PY SUBINTERP_SKIP
