"""`make bench` / `make bench-quick`: clv end to end against the floor (a minimal Polars scan of
the same files) and against the Python alternative (bench/reference.py), side by side on the same
data, alternating and repeated; then clv's nightly rerun with one new file (yesterday's parse
cache and yesterday's output root, as a cron job finds them). Writes a section
of bench/RESULTS.md and checks that the race was fair (clv and the reference agree on customers,
revenue and parameters).

Usage: bench.py --sizes 1000000 3000000 --repeats 3 --label quick
(run by bench/run.sh, which builds clv and prepares the virtualenv)
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import pyarrow.parquet as pq

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/clv-target"))
CLV = os.path.join(TARGET, "release", "clv")
FLOOR = os.path.join(TARGET, "release", "examples", "bench_floor")
AS_OF = "2026-01-01"
# The file that arrives "today" in the incremental run: the web shop's newest monthly export.
NEW_FILE = os.path.join("shop", "webtoffee_orders_2025-12.csv")


def read_through(root):
    """Reads every file under `root`, so that each timed run finds its inputs in the page cache.
    The bench machine pages out file data untouched for a minute (DAMON's `pageout` scheme):
    without this, a run after the minute-long Python one read its inputs from disk and the next
    run did not."""
    for d, _, files in os.walk(root):
        for name in files:
            with open(os.path.join(d, name), "rb") as f:
                while f.read(1 << 24):
                    pass


def timed(cmd, inputs=None, **kw):
    """Runs cmd under /usr/bin/time: wall s, CPU s (user + sys), peak RSS MB, stdout. The files
    under `inputs` are read first (`read_through`), outside the clock."""
    if inputs:
        read_through(inputs)
    with tempfile.NamedTemporaryFile("r") as t:
        start = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", t.name, *cmd], capture_output=True, text=True, **kw)
        wall = time.perf_counter() - start
        if p.returncode != 0:
            sys.exit(f"failed: {' '.join(cmd)}\n{p.stderr[-3000:]}")
        user, sys_, rss_kb = t.read().split()[-3:]
    return {"wall": wall, "cpu": float(user) + float(sys_), "rss": int(rss_kb) / 1024, "stdout": p.stdout}


def dataset(root, lines):
    data = os.path.join(root, f"lines-{lines}")
    if not os.path.exists(os.path.join(data, "pipeline.yaml")):
        shutil.rmtree(data, ignore_errors=True)
        subprocess.run([CLV, "sample", "--out", data, "--lines", str(lines), "--monthly", "--seed", "3"],
                       check=True, stdout=subprocess.DEVNULL)
        with open(os.path.join(ROOT, "pipelines", "nightly.yaml")) as f:
            text = f.read().replace("sample_data/", data + "/")
        with open(os.path.join(data, "pipeline.yaml"), "w") as f:
            f.write(text)
    return data


def count_lines(data):
    """Order lines (records of the order exports; Amazon's shipments report, read for buyers, not
    counted), all records read, and bytes of input."""
    out = subprocess.run([FLOOR, data], check=True, capture_output=True, text=True).stdout
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(data) for f in fs if f != "pipeline.yaml")
    counts = json.loads(out)
    return counts["order_rows"], counts["rows"], size


def clv_run(data, out, cache, previous=None):
    """One `clv run` into `out`: an empty root, or a copy of the `previous` run's root."""
    shutil.rmtree(out, ignore_errors=True)
    if previous:
        shutil.copytree(previous, out)
    # Copies made just before (the output root, the parse cache) are on disk by then at night:
    # their dirty pages must not be flushed inside the timed run.
    os.sync()
    r = timed([CLV, "run", os.path.join(data, "pipeline.yaml"), "--out", out, "--as-of", AS_OF, "--cache-dir", cache],
              inputs=data)
    with open(os.path.join(out, "manifest.json")) as f:
        r["stages"] = json.load(f)["timings_ms"]
    return r


def fresh_cache_run(data, out, work):
    """A full run: `clv_run` with an empty parse cache, removed afterwards (at 10M lines each
    cache holds ~0.5 GB, and a bench keeps only the last run's output)."""
    cache = tempfile.mkdtemp(dir=work)
    try:
        return clv_run(data, out, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def compare(out, reference):
    """clv's published figures against the reference's, per market."""
    customers = pq.read_table(os.path.join(out, "customers")).to_pandas()
    markets = pq.read_table(os.path.join(out, "markets")).to_pandas().set_index("market")
    rows = []
    for market, ref in sorted(reference.items()):
        m = markets.loc[market]
        modelled = int(customers[(customers["market"] == market) & customers["frequency"].notna()].shape[0])
        bg = [m["bgnbd_r"], m["bgnbd_alpha"], m["bgnbd_a"], m["bgnbd_b"]]
        gg = [m["gg_p"], m["gg_q"], m["gg_gamma"]]
        rel = lambda a, b: abs(a - b) / max(abs(b), 1e-12)
        rows.append({
            "market": market,
            "customers": (modelled, ref["customers"], rel(modelled, ref["customers"])),
            "revenue": (float(m["revenue"]), ref["revenue"], rel(float(m["revenue"]), ref["revenue"])),
            "bgnbd": (bg, ref["bgnbd"], max(rel(a, b) for a, b in zip(bg, ref["bgnbd"]))),
            "gg": (gg, ref["gg"], max(rel(a, b) for a, b in zip(gg, ref["gg"]))),
        })
    return rows


def med(xs):
    return statistics.median(xs)


def spread(xs):
    return f"{min(xs):.1f}-{max(xs):.1f}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--label", required=True)
    ap.add_argument("--data", default=os.path.expanduser("~/.cache/clv-bench-data"))
    args = ap.parse_args()
    results = []
    for lines in args.sizes:
        work = tempfile.mkdtemp(prefix=f"clv-bench-{lines}-")
        data = dataset(args.data, lines)
        records, all_records, size = count_lines(data)
        print(f"== {lines:,} lines requested: {records:,} order lines ({all_records:,} records with the "
              f"shipments report), {size / 1e6:.0f} MB", flush=True)
        # Output roots, parse caches and their copies take up to ~1.25x the input at once (10M:
        # ~4 GB for 3.2 GB of exports); a disk that fills kills a run midway.
        free = shutil.disk_usage(work).free
        if free < 1.25 * size:
            shutil.rmtree(work, ignore_errors=True)
            sys.exit(f"bench: {lines:,} lines need ~{1.25 * size / 1e9:.1f} GB free for the runs' outputs and "
                     f"caches, {free / 1e9:.1f} GB are; RESULTS.md keeps the sizes measured before")
        runs = {"clv": [], "floor": [], "python": []}
        out, ref_out = os.path.join(work, "out"), os.path.join(work, "ref")
        contestants = {
            "clv": lambda: fresh_cache_run(data, out, work),
            "floor": lambda: timed([FLOOR, data], inputs=data),
            "python": lambda: timed([sys.executable, os.path.join(ROOT, "bench", "reference.py"), data, ref_out, AS_OF],
                                    inputs=data),
        }
        order = list(contestants)
        for rep in range(args.repeats):
            for name in order[rep % 3:] + order[:rep % 3]:  # alternate who goes first
                r = contestants[name]()
                runs[name].append(r)
                print(f"  {name:6} run {rep + 1}: {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU, {r['rss']:.0f} MB", flush=True)
        # The summary is the last line: lifetimes prints scipy's result when a fit complains.
        reference = json.loads(runs["python"][-1]["stdout"].strip().splitlines()[-1])
        fairness = compare(out, reference)
        # Incremental: yesterday's run (without today's file) leaves its cache and its output
        # root; today's run finds both. The held file goes back even if yesterday's run fails:
        # later benches reuse the data set.
        held = os.path.join(work, "held.csv")
        shutil.move(os.path.join(data, NEW_FILE), held)
        warm, yesterday = os.path.join(work, "warm-cache"), os.path.join(work, "yesterday")
        try:
            clv_run(data, yesterday, warm)
        finally:
            shutil.move(held, os.path.join(data, NEW_FILE))
        incremental = []
        for rep in range(args.repeats):
            cache = os.path.join(work, f"cache-{rep}")
            shutil.copytree(warm, cache)
            incremental.append(clv_run(data, out, cache, previous=yesterday))
            shutil.rmtree(cache, ignore_errors=True)
            print(f"  clv incremental run {rep + 1}: {incremental[-1]['wall']:.1f} s", flush=True)
        results.append({"lines": lines, "records": records, "all_records": all_records, "bytes": size, "runs": runs,
                        "incremental": incremental, "fairness": fairness})
        shutil.rmtree(work, ignore_errors=True)
        write_results(args.label, results)  # after every size: a later failure keeps these


def write_results(label, results):
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = next((int(l.split()[1]) / 1024 / 1024 for l in open("/proc/meminfo") if l.startswith("MemTotal")), 0)
    lines = [
        f"<!-- bench:{label} -->",
        f"### `make bench{'-quick' if label == 'quick' else ''}`, {time.strftime('%Y-%m-%d')}",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.platform()}. clv release build; "
        f"Python {platform.python_version()} with the packages bench/run.sh pins. Data: `clv sample --lines N "
        f"--monthly --seed 3` (three platforms, four markets, one export per platform and month; order lines "
        f"exclude Amazon's shipments report, which is read too). Each figure is "
        f"the median of {len(results[0]['runs']['clv'])} runs (range in brackets); contestants alternate, "
        f"each starting with its input files read into the page cache.",
        "",
        "| order lines | input | contestant | wall s | CPU s | peak RSS MB |",
        "|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        for name in ["clv", "floor", "python"]:
            runs = r["runs"][name]
            w, c, m = [x["wall"] for x in runs], [x["cpu"] for x in runs], [x["rss"] for x in runs]
            lines.append(f"| {r['records']:,} | {r['bytes'] / 1e6:.0f} MB | {name} | {med(w):.1f} ({spread(w)}) | "
                         f"{med(c):.1f} | {med(m):.0f} |")
        inc = [x["wall"] for x in r["incremental"]]
        lines.append(f"| {r['records']:,} | | clv, rerun with one new file | {med(inc):.1f} ({spread(inc)}) | "
                     f"{med([x['cpu'] for x in r['incremental']]):.1f} | {med([x['rss'] for x in r['incremental']]):.0f} |")
    lines += ["", "Ratios and targets (medians of wall time):", "",
              "| order lines | clv / floor (target <= 2) | python / clv (target >= 5) | clv peak RSS (target <= 3 GB at 10M) | "
              "rerun / full (target <= 0.2) | clv s per million lines |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        clv = med([x["wall"] for x in r["runs"]["clv"]])
        floor = med([x["wall"] for x in r["runs"]["floor"]])
        py = med([x["wall"] for x in r["runs"]["python"]])
        inc = med([x["wall"] for x in r["incremental"]])
        rss = med([x["rss"] for x in r["runs"]["clv"]])
        lines.append(f"| {r['records']:,} | {clv / floor:.1f} | {py / clv:.1f} | {rss / 1024:.2f} GB | {inc / clv:.2f} | "
                     f"{clv / (r['records'] / 1e6):.1f} |")
    lines += ["", "clv's time per stage (ms, median; from manifest.json), full runs and reruns with one new file:", ""]
    stages = sorted({s for r in results for x in r["runs"]["clv"] + r["incremental"] for s in x["stages"]})
    lines += ["| order lines | run | " + " | ".join(stages) + " |", "|---:|---|" + "---:|" * len(stages)]
    for r in results:
        for run, xs in (("full", r["runs"]["clv"]), ("rerun", r["incremental"])):
            cells = [f"{med([x['stages'].get(s, 0) for x in xs]):,.0f}" for s in stages]
            lines.append(f"| {r['records']:,} | {run} | " + " | ".join(cells) + " |")
    lines += ["", "Fairness: clv's published figures against the reference's (relative difference, largest over the "
              "parameters). Customers are those with a purchase event (modelled).", "",
              "| order lines | market | customers clv / python | revenue diff | BG/NBD diff | Gamma-Gamma diff |",
              "|---:|---|---:|---:|---:|---:|"]
    for r in results:
        for f in r["fairness"]:
            lines.append(f"| {r['records']:,} | {f['market']} | {f['customers'][0]:,} / {f['customers'][1]:,} | "
                         f"{f['revenue'][2]:.2%} | {f['bgnbd'][2]:.2%} | {f['gg'][2]:.2%} |")
    lines.append(f"<!-- /bench:{label} -->")
    section = "\n".join(lines)
    path = os.path.join(ROOT, "bench", "RESULTS.md")
    text = open(path).read()
    start, end = f"<!-- bench:{label} -->", f"<!-- /bench:{label} -->"
    if start in text:
        text = text[:text.index(start)] + section + text[text.index(end) + len(end):]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    open(path, "w").write(text)
    print(section)


main()
