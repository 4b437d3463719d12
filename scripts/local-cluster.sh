#!/usr/bin/env bash
# A local cluster of N node processes on this machine running W3 as one job:
#   bash scripts/local-cluster.sh N [EVENTS] [WORKDIR]
# It writes EVENTS W3 events (default 1e6), runs `weir-bench w3-job --nodes N`, which makes a
# cluster CA and one certificate per node, starts N `w3-node` processes talking QUIC with
# mutual TLS on loopback, exchanges events by key between them, checkpoints every 200 ms with
# a commit log every node shares, and restarts every node from the newest complete checkpoint
# if one dies (try `kill -9` on a pid from WORKDIR/state/cluster/pids while it runs). Each
# node's committed windows land in WORKDIR/output/node-I; the script then checks that their
# union equals the single-process job's output.
set -euo pipefail
cd "$(dirname "$0")/.."
n="${1:?usage: scripts/local-cluster.sh N [EVENTS] [WORKDIR]}"
events="${2:-1e6}"
work="${3:-$(mktemp -d -t weir-local-cluster-XXXXXX)}"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/weir/target}"
source scripts/rocksdb-env.sh
cargo build --release --locked --quiet -p weir-bench
bench="$CARGO_TARGET_DIR/release/weir-bench"

rm -rf "$work/output" "$work/state" "$work/single" "$work/single-state"
mkdir -p "$work"
"$bench" w3-gen --events "$events" --output "$work/events.csv"
echo "== $n nodes: weir-bench w3-job --nodes $n (state and logs in $work/state/cluster)"
"$bench" w3-job --input "$work/events.csv" --output "$work/output" --state-dir "$work/state" \
  --checkpoint-interval-ms 200 --nodes "$n"
echo "== one process, for comparison"
"$bench" w3-job --input "$work/events.csv" --output "$work/single" --state-dir "$work/single-state" \
  --checkpoint-interval-ms 200
if diff <(cat "$work"/output/node-*/part-* | sort) <(cat "$work"/single/part-* | sort) >/dev/null; then
  echo "== the $n nodes committed exactly the single-process windows ($(cat "$work"/single/part-* | wc -l) windows)"
else
  echo "== MISMATCH between $work/output and $work/single" >&2
  exit 1
fi
