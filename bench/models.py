"""The same fits with `lifetimes` (the Python library an analyst would use), on the CSV written by
bench/models.rs. Prints one JSON line. usage: python models.py CSV [PNBD_ROWS]"""
import json, sys, time
import pandas as pd
from lifetimes import BetaGeoFitter, ParetoNBDFitter

csv = sys.argv[1]
pnbd_rows = int(sys.argv[2]) if len(sys.argv) > 2 else None
df = pd.read_csv(csv)
out = {"customers": len(df)}
t0 = time.perf_counter()
bg = BetaGeoFitter().fit(df["x"], df["t_x"], df["T"])
out["bgnbd_s"] = time.perf_counter() - t0
out["bgnbd_params"] = [bg.params_[k] for k in ("r", "alpha", "a", "b")]
sub = df if pnbd_rows is None else df.iloc[:pnbd_rows]
t0 = time.perf_counter()
try:
    pn = ParetoNBDFitter().fit(sub["x"], sub["t_x"], sub["T"])
    out["pnbd_params"] = [pn.params_[k] for k in ("r", "alpha", "s", "beta")]
except Exception as e:  # lifetimes fails to converge on some data sets
    out["pnbd_error"] = f"{type(e).__name__}: {e}"
out["pnbd_s"] = time.perf_counter() - t0
out["pnbd_customers"] = len(sub)
print(json.dumps(out))
