#!/usr/bin/env bash
# Checks a clv output directory against docs/outputs.md with pyarrow and DuckDB, installed from
# PyPI into a virtualenv kept outside the clone (created on first use).
# usage: tests/bi/check.sh OUT
set -euo pipefail
cd "$(dirname "$0")/../.."
venv="${CLV_BI_VENV:-$HOME/.cache/clv-bi-venv}"
if ! "$venv/bin/python" -c "import duckdb, pyarrow" 2>/dev/null; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "duckdb==2.0.0" "pyarrow==26.0.1"
fi
exec "$venv/bin/python" tests/bi/check_outputs.py "$1" docs/outputs.md
