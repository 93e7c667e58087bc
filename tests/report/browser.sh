#!/usr/bin/env bash
# Opens an HTML report in headless Chromium (Debian's package, installed here when missing), takes
# a screenshot, and checks that the charts rendered and nothing failed in the page.
# usage: tests/report/browser.sh REPORT.html SCREENSHOT.png MIN_CHARTS
set -euo pipefail
cd "$(dirname "$0")/../.."
report="$(realpath "$1")"; shot="$2"; min_charts="$3"
if ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
venv="${CLV_BI_VENV:-$HOME/.cache/clv-bi-venv}"
if ! "$venv/bin/python" -c "import PIL" 2>/dev/null; then
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet "pillow==12.*"
fi
profile="$(mktemp -d)"
flags=(--headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking
       --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile")
chromium "${flags[@]}" --enable-logging=stderr --v=0 --dump-dom "file://$report" > "$profile/dom.html" 2> "$profile/console.log"
chromium "${flags[@]}" --window-size=1000,4000 --screenshot="$shot" "file://$report" > /dev/null 2>&1
exec "$venv/bin/python" - "$profile/dom.html" "$profile/console.log" "$shot" "$min_charts" <<'PY'
import re, sys
from PIL import Image
dom, console, shot, min_charts = open(sys.argv[1]).read(), open(sys.argv[2], errors="replace").read(), sys.argv[3], int(sys.argv[4])
problems = []
charts = len(re.findall(r'<svg class="chart"', dom))
if charts < min_charts:
    problems.append(f"{charts} charts in the rendered page, expected at least {min_charts}")
errors = [l for l in console.splitlines() if "CONSOLE" in l and ("Uncaught" in l or "Error" in l)]
if errors:
    problems.append("script errors: " + "; ".join(errors))
img = Image.open(shot).convert("RGB")
raw = img.resize((250, 1000)).tobytes()
pixels = zip(raw[0::3], raw[1::3], raw[2::3])
drawn = sum(1 for r, g, b in pixels if abs(r - g) > 40 or abs(g - b) > 40)  # coloured: bars, cells
if drawn < 2000:
    problems.append(f"only {drawn} coloured pixels in the screenshot: the charts did not render")
if problems:
    print("\n".join(problems)); sys.exit(1)
print(f"browser: {charts} charts rendered, {drawn} coloured pixels, no script errors; screenshot {shot}")
PY
