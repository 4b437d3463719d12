#!/usr/bin/env bash
# Makes headless Chromium available for the web UI's browser test (ops/tests/browser.rs):
# installs Debian's `chromium` package when no chromium is on PATH (apt, as rocksdb-env.sh installs
# libclang), exports WEIR_CHROMIUM and prints its path. Sourced by scripts/test.sh or run by hand.
# A machine where it cannot be installed keeps going: the browser test then skips, saying why.

__weir_chromium_env() {
  local bin sudo=""
  bin="${WEIR_CHROMIUM:-}"
  if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    bin="$(command -v chromium || command -v chromium-browser || true)"
  fi
  if [ -z "$bin" ]; then
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "warning: chromium is missing and neither root nor sudo can install it (the browser test will skip)" >&2
        return 0
      fi
    fi
    echo "== chromium: installing Debian's chromium package (browser test)" >&2
    $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1; } ||
      { echo "warning: apt-get install chromium failed (the browser test will skip)" >&2; return 0; }
    bin="$(command -v chromium || true)"
  fi
  if [ -n "$bin" ]; then
    export WEIR_CHROMIUM="$bin"
    echo "$bin"
  fi
}

__weir_chromium_opts="$(set +o)"
case $- in *e*) __weir_chromium_errexit=1 ;; *) __weir_chromium_errexit=0 ;; esac
set +e
__weir_chromium_env
eval "$__weir_chromium_opts"
if [ "$__weir_chromium_errexit" = 1 ]; then set -e; fi
unset -v __weir_chromium_opts __weir_chromium_errexit
unset -f __weir_chromium_env
