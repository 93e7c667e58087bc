#!/usr/bin/env bash
# Runs every fuzz target for a bounded time (`make fuzz FUZZ_SECONDS=60`). Seeds come from the
# test fixtures; the corpus grows in ~/.cache/clv-fuzz-corpus between runs. A crash input is moved
# to fuzz/regressions/<target>/ (replayed by `make test`) and the run fails.
#
# cargo fuzz needs nightly-only flags for its coverage instrumentation; RUSTC_BOOTSTRAP=1 lets the
# machine's stable toolchain accept them. No sanitizer (-s none): the code is safe Rust, and
# AddressSanitizer over Polars multiplies the run time for nothing it could find.
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
targets="${TARGETS:-amazon shopify woocommerce csv config}"
export RUSTC_BOOTSTRAP=1
# Instrumented builds differ from the project's: their own target directory, kept across runs.
export CARGO_TARGET_DIR="${CLV_FUZZ_TARGET_DIR:-$HOME/.cache/clv-fuzz-target}"
corpus_root="${CLV_FUZZ_CORPUS:-$HOME/.cache/clv-fuzz-corpus}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.2

seed() {
    local target="$1" dir="$2"
    case "$target" in
        amazon) cp ../tests/fixtures/amazon_real/*.t* "$dir"/ ;;
        shopify) cp ../tests/fixtures/shopify_real/*.csv "$dir"/ ;;
        woocommerce) cp ../tests/fixtures/woocommerce_real/*.csv ../tests/fixtures/woocommerce_real/*.txt ../sample_data/shop/*.csv "$dir"/ ;;
        csv) printf 'order,customer,date,amount\nA1,a@b.io,2024-01-05,12.50\nA2,"c, d",2024-02-29T23:59:59+09:00,"1.234,5"\n' > "$dir/minimal.csv" ;;
        config) cp ../pipelines/*.yaml "$dir"/ ;;
    esac
    # Seeds larger than libFuzzer's input limit only slow it down: keep their first 16 KiB.
    for f in "$dir"/*; do [ "$(stat -c %s "$f")" -le 16384 ] || truncate -s 16384 "$f"; done
}

cargo fuzz build -s none  # every target
status=0
for target in $targets; do
    corpus="$corpus_root/$target"
    if [ ! -d "$corpus" ]; then mkdir -p "$corpus"; seed "$target" "$corpus"; fi
    mkdir -p "artifacts/$target"
    echo "fuzz: $target for ${seconds}s"
    if ! cargo fuzz run -s none "$target" "$corpus" -- -max_total_time="$seconds" -max_len=16384 \
        -timeout=20 -rss_limit_mb=4096 -print_final_stats=1 2>&1 | tail -n 25; then
        status=1
    fi
    for crash in artifacts/"$target"/*; do
        [ -e "$crash" ] || continue
        mkdir -p "regressions/$target"
        mv "$crash" "regressions/$target/"
        echo "fuzz: $target found $(basename "$crash"): kept in fuzz/regressions/$target/" >&2
        status=1
    done
done
exit $status
