"""CPU use over one `clv run`, beside its debug log: where the run leaves cores idle.

Usage: python3 bench/timeline.py CLV_BINARY PIPELINE.yaml [--every 0.5] [--below 150] [--cache-dir DIR]

Runs `clv run PIPELINE --no-cache --log-level debug` (or with `--cache-dir DIR`: a rerun against
that cache) into a temporary output, samples the
process's CPU time (/proc/PID/stat) every `--every` seconds and prints one line per sample: the
cores in use (200% = both of two cores) and the log events of that interval. `--below` prints only
samples under that use or with events. The last line sums the idle core-seconds. Standard library
only; Linux only.
"""
import argparse
import datetime
import os
import re
import subprocess
import tempfile
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("pipeline")
    ap.add_argument("--every", type=float, default=0.5)
    ap.add_argument("--below", type=float, default=1e9, help="print only samples under this %% or with events")
    ap.add_argument("--cache-dir", help="run against this parse cache instead of --no-cache")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as work:
        log_path = os.path.join(work, "run.log")
        cmd = [args.binary, "run", args.pipeline, "--out", os.path.join(work, "out"), "--log-level", "debug"]
        cmd += ["--cache-dir", args.cache_dir] if args.cache_dir else ["--no-cache"]
        start = time.time()
        with open(log_path, "w") as log:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)
            tick = os.sysconf("SC_CLK_TCK")
            samples, last_cpu, last_t = [], 0.0, start
            while p.poll() is None:
                time.sleep(args.every)
                try:
                    fields = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()
                except OSError:
                    break
                cpu = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
                now = time.time()
                samples.append((now - start, (cpu - last_cpu) / (now - last_t)))
                last_cpu, last_t = cpu, now
        events = []
        for line in open(log_path):
            m = re.match(r"(\d{4}-\d\d-\d\dT[\d:.]+)Z\s+\w+\s+(.*)", line)
            if m and "computed lines of /" not in line:  # per-file steps are too many to show
                at = datetime.datetime.fromisoformat(m.group(1)).replace(tzinfo=datetime.timezone.utc)
                events.append((at.timestamp() - start, m.group(2)[:80]))
    for t, use in samples:
        here = [e for at, e in events if t - args.every < at <= t]
        if use * 100 < args.below or here:
            bar = "#" * int(use * 20)
            print(f"{t:6.1f} {bar:{20 * cores}s} {use * 100:4.0f}%  {' | '.join(here)[:160]}")
    idle = sum((cores - use) * args.every for _, use in samples)
    print(f"wall {samples[-1][0] if samples else 0:.1f} s, idle core-seconds {idle:.1f} ({cores} cores)")


if __name__ == "__main__":
    main()
