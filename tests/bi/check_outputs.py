"""Reads every output table of a clv run with pyarrow and DuckDB and checks it against the contract
in docs/outputs.md: each column's physical and logical Parquet type, the key-value metadata, and
that hive partitioning gives readers the partition column. usage: check_outputs.py OUT docs/outputs.md"""
import glob, os, re, sys

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq

out, doc = sys.argv[1], sys.argv[2]
problems = []


def contract(path):
    tables, current = {}, None
    for line in open(path, encoding="utf-8"):
        m = re.match(r"^## (\w+)\s*$", line)
        if m:
            current = tables.setdefault(m.group(1), [])
            continue
        m = re.match(r"^\| `(\w+)` \| (\w+) \| ([^|]+?) \|", line)
        if m and current is not None:
            current.append((m.group(1), m.group(2), m.group(3).strip()))
    return tables


def logical(col):
    lt = str(col.logical_type)
    if lt == "String":
        return "STRING"
    if lt == "Date":
        return "DATE"
    if lt.startswith("Timestamp"):
        unit = "MICROS" if "microseconds" in lt else "NANOS" if "nanoseconds" in lt else "MILLIS"
        return f"TIMESTAMP({unit}, {'UTC' if 'isAdjustedToUTC=true' in lt else 'LOCAL'})"
    if lt.startswith("Decimal"):
        p, s = re.findall(r"\d+", lt)[:2]
        return f"DECIMAL({p},{s})"
    return "-" if lt == "None" else lt


tables = contract(doc)
assert tables, f"no tables found in {doc}"
checked = 0
for table, columns in tables.items():
    files = sorted(glob.glob(os.path.join(out, table, "*", "*.parquet")))
    if not files:
        problems.append(f"{table}: no files under {out}/{table}/")
        continue
    for f in files:
        pf = pq.ParquetFile(f)
        schema = pf.schema
        found = [(schema.column(i).name, schema.column(i).physical_type, logical(schema.column(i))) for i in range(len(schema))]
        if found != columns:
            problems.append(f"{f}:\n  documented {columns}\n  written    {found}")
        meta = {k.decode(): v.decode() for k, v in (pf.metadata.metadata or {}).items()}
        for key in ("schema_version", "run_id", "as_of", "pipeline"):
            if key not in meta:
                problems.append(f"{f}: key-value metadata lacks {key}")
        checked += 1
    partition = "source" if table == "rejects" else "market"
    dirs = [os.path.basename(os.path.dirname(f)).split("=", 1)[1] for f in files]
    con = duckdb.connect()
    pattern = os.path.join(out, table, "*", "*.parquet")
    seen = sorted(r[0] for r in con.execute(
        f"SELECT DISTINCT {partition} FROM read_parquet('{pattern}', hive_partitioning=true)").fetchall())
    rows = con.execute(f"SELECT count(*) FROM read_parquet('{pattern}', hive_partitioning=true)").fetchone()[0]
    expected_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    non_empty = sorted({d for d, f in zip(dirs, files) if pq.ParquetFile(f).metadata.num_rows > 0})
    if seen != non_empty:
        problems.append(f"{table}: DuckDB sees {partition} {seen}, expected {non_empty}")
    if rows != expected_rows:
        problems.append(f"{table}: DuckDB reads {rows} rows, the files hold {expected_rows}")
    described = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{pattern}', hive_partitioning=true)").fetchall()
    types = {r[0]: r[1] for r in described}
    for name, _, lt in columns:
        want = {"DECIMAL(18,2)": "DECIMAL(18,2)", "TIMESTAMP(MICROS, UTC)": "TIMESTAMP WITH TIME ZONE", "DATE": "DATE"}.get(lt)
        if want and types.get(name) != want:
            problems.append(f"{table}.{name}: DuckDB type {types.get(name)}, expected {want}")
    # The file list, not the folder: action lists keep a .csv copy beside each .parquet.
    dataset = ds.dataset(files, format="parquet", partitioning="hive", partition_base_dir=os.path.join(out, table))
    if partition not in dataset.schema.names:
        problems.append(f"{table}: pyarrow's hive dataset has no {partition} column")

# Flat copies for Power BI: the partition column first, then the documented columns; the same rows.
for table, columns in tables.items():
    flat = os.path.join(out, "bi", f"{table}.parquet")
    parts = sorted(glob.glob(os.path.join(out, table, "*", "part-0.parquet")))
    if not parts:
        continue
    if not os.path.exists(flat):
        problems.append(f"bi/{table}.parquet is missing")
        continue
    partition = "source" if table == "rejects" else "market"
    schema = pq.ParquetFile(flat).schema
    found = [(schema.column(i).name, schema.column(i).physical_type, logical(schema.column(i))) for i in range(len(schema))]
    if found != [(partition, "BYTE_ARRAY", "STRING")] + columns:
        problems.append(f"bi/{table}.parquet:\n  expected {partition} then the documented columns\n  written {found}")
    rows = pq.ParquetFile(flat).metadata.num_rows
    expected = sum(pq.ParquetFile(f).metadata.num_rows for f in parts)
    if rows != expected:
        problems.append(f"bi/{table}.parquet holds {rows} rows, the partitions {expected}")
    checked += 1

if problems:
    print("BI contract violations:\n" + "\n".join(problems))
    sys.exit(1)
print(f"BI contract: {checked} files in {len(tables)} tables match {doc}; DuckDB and pyarrow read them")
