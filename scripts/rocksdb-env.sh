#!/usr/bin/env bash
# Sourced by the other scripts (and by hand before cargo or maturin): links RocksDB from a library
# built once per machine and per librocksdb-sys version instead of compiling its C++ on every build.
#
# - installs libclang-dev (bindgen needs it) when missing;
# - reads the locked librocksdb-sys version from Cargo.lock;
# - builds `librocksdb.a` and `libsnappy.a` once into $WEIR_ROCKSDB_CACHE/rocksdb-<version>
#   (default $HOME/.cache/weir) from a scratch cargo project with the workspace's features, under an
#   flock so concurrent builds wait for one another (release, ~11 minutes on 2 cores);
# - exports ROCKSDB_LIB_DIR, ROCKSDB_STATIC, SNAPPY_LIB_DIR, SNAPPY_STATIC.
# Idempotent and safe under `set -euo pipefail`; the caller's shell options are restored.

__weir_rocksdb_env() {
  local root lock version cache lib_dir scratch sudo=""
  root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  lock="$root/Cargo.lock"

  if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'install ok installed'; then
    if [ "$(id -u)" != 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "error: libclang-dev is missing and neither root nor sudo can install it" >&2
        return 1
      fi
    fi
    echo "== rocksdb: installing libclang-dev (bindgen)" >&2
    $sudo apt-get install -y -q libclang-dev >/dev/null 2>&1 ||
      { $sudo apt-get update -q >/dev/null 2>&1 && $sudo apt-get install -y -q libclang-dev >/dev/null; } ||
      { echo "error: apt-get install libclang-dev failed" >&2; return 1; }
  fi

  version="$(awk '/^name = "librocksdb-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' "$lock")"
  if [ -z "$version" ]; then
    echo "error: librocksdb-sys is not in $lock" >&2
    return 1
  fi
  cache="${WEIR_ROCKSDB_CACHE:-$HOME/.cache/weir}/rocksdb-$version"
  lib_dir="$cache/lib"
  mkdir -p "$cache"

  if [ ! -f "$lib_dir/librocksdb.a" ] || [ ! -f "$lib_dir/libsnappy.a" ]; then
    (
      exec 9>"$cache/.lock"
      echo "== rocksdb: waiting for the build lock $cache/.lock" >&2
      flock 9
      if [ -f "$lib_dir/librocksdb.a" ] && [ -f "$lib_dir/libsnappy.a" ]; then exit 0; fi
      scratch="$cache/build"
      mkdir -p "$scratch/src"
      echo 'fn main() {}' > "$scratch/src/main.rs"
      cat > "$scratch/Cargo.toml" <<EOF
[package]
name = "weir-rocksdb-build"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
librocksdb-sys = { version = "=$version", default-features = false, features = ["snappy", "bindgen-runtime"] }

[profile.release]
debug = false
EOF
      echo "== rocksdb: building librocksdb-sys $version once (release, ~11+ min) in $scratch" >&2
      (
        cd "$scratch"
        unset ROCKSDB_LIB_DIR ROCKSDB_STATIC SNAPPY_LIB_DIR SNAPPY_STATIC
        CARGO_TARGET_DIR="$scratch/target" CARGO_INCREMENTAL=0 cargo build --release --quiet
      ) || { echo "error: building librocksdb-sys $version failed" >&2; exit 1; }
      mkdir -p "$lib_dir.tmp"
      for a in librocksdb.a libsnappy.a; do
        found="$(find "$scratch/target/release/build" -path '*/out/*' -name "$a" -print -quit)"
        if [ -z "$found" ]; then echo "error: $a not found under $scratch/target" >&2; exit 1; fi
        cp "$found" "$lib_dir.tmp/$a"
      done
      rm -rf "$lib_dir" && mv "$lib_dir.tmp" "$lib_dir"
      rm -rf "$scratch/target"
      echo "== rocksdb: cached $(du -sh "$lib_dir" | cut -f1) in $lib_dir" >&2
    ) || return 1
  fi

  export ROCKSDB_LIB_DIR="$lib_dir" ROCKSDB_STATIC=1 SNAPPY_LIB_DIR="$lib_dir" SNAPPY_STATIC=1
}

# `$(set +o)` runs in a subshell, which drops errexit: remember it from `$-`.
__weir_rocksdb_opts="$(set +o)"
case $- in *e*) __weir_rocksdb_errexit=1 ;; *) __weir_rocksdb_errexit=0 ;; esac
set +e
__weir_rocksdb_env
__weir_rocksdb_rc=$?
eval "$__weir_rocksdb_opts"
if [ "$__weir_rocksdb_errexit" = 1 ]; then set -e; fi
unset -v __weir_rocksdb_opts __weir_rocksdb_errexit
unset -f __weir_rocksdb_env
if [ "$__weir_rocksdb_rc" != 0 ]; then
  unset -v __weir_rocksdb_rc
  return 1 2>/dev/null || exit 1
fi
unset -v __weir_rocksdb_rc
