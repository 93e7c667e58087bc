#!/usr/bin/env bash
# A/B runs of two clv binaries on `make bench`'s 10M data, alternating, for changes too small for
# `make bench`'s medians (the host's speed moves by a fifth within the hour). Not run by CI.
#
#   bench/ab.sh full  BIN_A BIN_B [PAIRS]   full runs with an empty cache
#   bench/ab.sh rerun BIN_A BIN_B [PAIRS]   warm reruns: the web shop's newest file is new
#
# Each line: the binary, wall, user and system seconds, peak RSS (KiB), minor page faults, and for
# reruns the seconds to the end of the loads, of unify, and the rest (from the debug log). A rerun
# needs a cache warmed by the same binary (the cache key holds the build's fingerprint), so each
# binary first gets its own warm cache and output root: a full run without the newest file.
# Copy the binaries out of the target directory and `strip` them first: each unstripped copy is
# ~1.5 GB, each 10M cache and output ~1.3 GB (under $WORK, default /tmp/clv-ab; removed at the
# end unless KEEP=1).
set -euo pipefail
mode=${1:?full or rerun}; a=${2:?binary A}; b=${3:?binary B}; pairs=${4:-3}
data=${CLV_BENCH_DATA:-$HOME/.cache/clv-bench-data}/lines-10000000
work=${WORK:-/tmp/clv-ab}
newest=shop/webtoffee_orders_2025-12.csv
[ -f "$data/pipeline.yaml" ] || { echo "no bench data at $data: run make bench first" >&2; exit 2; }
mkdir -p "$work"
# A rerun A/B holds two warm caches, two previous outputs and a copy of each (~5 GB at 10M), a
# full one two outputs and two caches (~3.5 GB); a run that fills the disk fails mid-publication.
need_gb=$([ "$mode" = rerun ] && echo 6 || echo 4)
free_gb=$(df -P -BG "$work" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
[ "$free_gb" -ge "$need_gb" ] || { echo "$work has ${free_gb} GB free; this A/B needs ~${need_gb} GB" >&2; exit 2; }

# run TAG BIN OUT CACHE: one timed run with a debug log; prints the /usr/bin/time figures. A
# failed run stops the A/B with its log's last lines.
run() {
  local tag=$1 bin=$2 out=$3 cache=$4
  if ! /usr/bin/time -f "%e %U %S %M %R" -o "$work/$tag.time" "$bin" run "$data/pipeline.yaml" --out "$out" \
    --as-of 2026-01-01 --cache-dir "$cache" --log-level debug >/dev/null 2>"$work/$tag.log"; then
    echo "$tag: $bin failed; the end of $work/$tag.log:" >&2
    tail -3 "$work/$tag.log" >&2
    exit 1
  fi
  cat "$work/$tag.time"
}

# phases TAG WALL: seconds to the end of the loads and of unify, and the rest.
phases() {
  python3 - "$work/$1.log" "$2" <<'EOF'
import datetime, sys
lines = open(sys.argv[1]).read().splitlines()
wall = float(sys.argv[2])
t = lambda l: datetime.datetime.strptime(l[:26], "%Y-%m-%dT%H:%M:%S.%f")
end = t([l for l in lines if "published run_id" in l][-1])
start = end - datetime.timedelta(seconds=wall)
at = lambda s: (t(next(l for l in lines if s in l)) - start).total_seconds()
loads, unified = at("computed all lines"), at("unified stage")
print(f"loads {loads:.2f} unify {unified - loads:.2f} rest {wall - unified:.2f}")
EOF
}

if [ "$mode" = rerun ]; then
  for side in A B; do
    bin=$a; [ $side = B ] && bin=$b
    rm -rf "$work/warm-$side" "$work/prev-$side"
    mv "$data/$newest" "$work/held.csv"
    trap 'mv "$work/held.csv" "$data/$newest"' EXIT
    run "prep-$side" "$bin" "$work/prev-$side" "$work/warm-$side" >/dev/null
    mv "$work/held.csv" "$data/$newest"
    trap - EXIT
  done
fi
for _ in $(seq "$pairs"); do
  for side in A B; do
    bin=$a; [ $side = B ] && bin=$b
    rm -rf "$work/out-$side" "$work/cache-$side"
    if [ "$mode" = rerun ]; then
      cp -r "$work/warm-$side" "$work/cache-$side"
      cp -r "$work/prev-$side" "$work/out-$side"
    fi
    sync
    figures=$(run "$side" "$bin" "$work/out-$side" "$work/cache-$side")
    extra=""
    [ "$mode" = rerun ] && extra=$(phases "$side" "${figures%% *}")
    echo "$side $figures $extra"
  done
done
echo "outputs differ (beyond the manifest's timings and the locks):"
differ=$(diff -rq "$work/out-A" "$work/out-B" | grep -v -e manifest.json -e '\.lock' || true)
echo "${differ:-  none}"
[ "${KEEP:-0}" = 1 ] || rm -rf "$work"
