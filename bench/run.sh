#!/usr/bin/env bash
# `make bench` (1M, 3M and 10M order lines) and `make bench-quick` (1M): builds clv and the floor
# in release mode, installs the Python alternative's packages into a virtualenv (pinned) and GNU
# time if missing, then runs bench/bench.py, which writes its section of bench/RESULTS.md.
# Generated data is kept in ~/.cache/clv-bench-data (BENCH_DATA) between runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/clv-target}"
label="$1"; shift
cargo build --release --quiet --bin clv --example bench_floor
if [ ! -x /usr/bin/time ]; then
    apt-get update -qq && apt-get install -y -qq time
fi
venv="${BENCH_VENV:-$HOME/.cache/clv-bench-venv}"
if ! "$venv/bin/python" -c "import polars, lifetimes, pyarrow" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet polars==2.1.0 lifetimes==0.11.3 pandas==3.1.1 numpy==2.4.6 scipy==1.17.1 pyarrow==26.0.1
fi
exec "$venv/bin/python" bench/bench.py --label "$label" --data "${BENCH_DATA:-$HOME/.cache/clv-bench-data}" "$@"
