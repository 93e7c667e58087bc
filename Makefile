# clv: the two commands a newcomer needs are `make report MARKET=us` and `make test`.
# The cargo target directory lives outside the clone so that CI and reruns build incrementally.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/clv-target
CARGO ?= cargo
PIPELINE ?= pipelines/nightly.yaml
MARKET ?=
OUT ?= out
MARKET_FLAGS := $(foreach m,$(MARKET),--market $(m))

.PHONY: report run test lint fmt validate sample clean bench bench-quick bench-models fuzz

## report: run the nightly pipeline on sample_data/ (MARKET=us for one market) into $(OUT)/
report:
	$(CARGO) run --quiet -- run $(PIPELINE) --out $(OUT) $(MARKET_FLAGS)
	@for f in $(if $(MARKET),$(foreach m,$(MARKET),$(OUT)/reports/$(m).md $(OUT)/reports/$(m).html),$$(ls $(OUT)/reports/*)); do echo "report: $$f"; done

run: report

## test: unit and integration tests (debug build; shares the build with `make report`)
test:
	$(CARGO) test --all-targets

## lint: formatting and clippy, warnings are errors
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

## validate: check every shipped pipeline without reading data
validate:
	$(CARGO) run --quiet -- validate pipelines/*.yaml

## sample: regenerate the committed sample data (deterministic)
sample:
	rm -rf sample_data/amazon sample_data/shopify sample_data/shop sample_data/fx_rates.csv sample_data/marketing_spend.csv
	$(CARGO) run --quiet -- sample --out sample_data --customers 400 --seed 7

## bench: clv end to end vs the floor (minimal Polars scan) vs Python (Polars + lifetimes) at
## 1M, 3M and 10M order lines, plus the incremental rerun; writes bench/RESULTS.md
bench:
	bench/run.sh full --sizes 1000000 3000000 10000000 --repeats 3

## bench-quick: the same at 1M order lines
bench-quick:
	bench/run.sh quick --sizes 1000000 --repeats 3

## fuzz: every fuzz target for FUZZ_SECONDS each; crash inputs land in fuzz/regressions/
FUZZ_SECONDS ?= 60
fuzz:
	fuzz/run.sh $(FUZZ_SECONDS)

## bench-models: fit BG/NBD and Pareto/NBD on 1M simulated customers, next to lifetimes
bench-models:
	bench/models.sh 1000000 100000

clean:
	rm -rf $(OUT)
