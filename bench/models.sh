#!/usr/bin/env bash
# Model-fitting benchmark, clv against `lifetimes`, on the same simulated customers.
# Installs lifetimes into a virtualenv itself; builds clv's benchmark in release mode.
# usage: bench/models.sh [CUSTOMERS] [PNBD_ROWS_FOR_LIFETIMES]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clv-target}"
n="${1:-1000000}"
pnbd_rows="${2:-100000}"
venv="${BENCH_VENV:-$HOME/.cache/clv-bench-venv}"
work="$(mktemp -d)"
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet lifetimes
fi
cargo build --release --example bench_models
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; $n customers"
echo "clv:       $("$CARGO_TARGET_DIR/release/examples/bench_models" "$n" "$work/models.csv" 3)"
echo "lifetimes: $("$venv/bin/python" bench/models.py "$work/models.csv" "$pnbd_rows")"
rm -rf "$work"
