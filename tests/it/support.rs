//! Helpers shared by the integration tests.

use clv::config::{self, Pipeline, Stage};
use clv::fx::FxRates;
use clv::sources::{self, LoadCtx, Loaded};
use std::path::Path;

/// `clv run pipelines/nightly.yaml --as-of 2026-01-01` with `extra` arguments into `out`; must
/// succeed.
pub fn run_nightly(out: &Path, extra: &[&str]) {
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", "pipelines/nightly.yaml", "--as-of", "2026-01-01"])
        .args(extra)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

/// `clv run` of the pipeline at `p` into `out`, the parse cache in `cache` (`None`:
/// `--no-cache`); must succeed. Returns its log (stderr).
pub fn run_cached(p: &Path, out: &Path, cache: Option<&Path>) -> String {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_clv"));
    c.arg("run").arg(p).arg("--out").arg(out);
    match cache {
        Some(dir) => c.arg("--cache-dir").arg(dir),
        None => c.arg("--no-cache"),
    };
    let o = c.output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");
    stderr
}

/// A pipeline around one load stage (given as YAML flow mapping text), parsed for real.
pub fn pipeline_with(load: &str) -> Pipeline {
    let yaml = format!(
        "name: t\nbase_currency: USD\nfx_rates: tests/fixtures/fx_rates_test.csv\nmarkets: {{ us: [US] }}\nstages:\n  - load: {load}\n  - unify: {{ id: orders, inputs: [src] }}\n"
    );
    match config::parse(Path::new("test.yaml"), &yaml) {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// Loads the pipeline's first stage.
pub fn load(load: &str) -> Loaded {
    let p = pipeline_with(load);
    let Stage::Load(spec) = &p.stages[0] else { panic!("first stage is a load") };
    let fx = FxRates::load(p.fx_rates.as_ref().unwrap(), "USD").unwrap();
    match sources::load(&LoadCtx::new(spec, &fx, p.timezone)) {
        Ok(l) => l,
        Err(e) => panic!("{e}"),
    }
}

/// Loads the pipeline's first stage, returning the error instead of panicking.
pub fn try_load(load: &str) -> clv::error::Result<Loaded> {
    let p = pipeline_with(load);
    let Stage::Load(spec) = &p.stages[0] else { panic!("first stage is a load") };
    let fx = FxRates::load(p.fx_rates.as_ref().unwrap(), "USD").unwrap();
    sources::load(&LoadCtx::new(spec, &fx, p.timezone))
}

/// A load stage for `source` that tolerates any share of rejects: the stage the property tests
/// and the fuzz regressions feed arbitrary bytes to (fuzz/src/lib.rs builds the same ones).
pub fn lenient_stage(source: &str, path: &str) -> String {
    let extra = match source {
        "woocommerce" => ", constants: { currency: EUR }",
        "csv" => ", columns: { customer: customer, ordered_at: date, amount: amount }, constants: { currency: USD }",
        _ => "",
    };
    format!("{{ id: src, source: {source}, path: '{path}', max_reject_rate: 1.0{extra} }}")
}

/// Either the stage loads, with every record read kept or rejected, or it fails with an error.
/// A panic is the failure this exists to catch.
pub fn assert_loads_or_fails(stage: &str) {
    if let Ok(l) = try_load(stage) {
        assert_eq!(l.rows_read as usize, l.rejects.height() + l.records_kept().unwrap(), "a record was lost");
    }
}

pub fn load_err(load: &str) -> String {
    let p = pipeline_with(load);
    let Stage::Load(spec) = &p.stages[0] else { panic!("first stage is a load") };
    let fx = FxRates::load(p.fx_rates.as_ref().unwrap(), "USD").unwrap();
    match sources::load(&LoadCtx::new(spec, &fx, p.timezone)) {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

pub fn sum(df: &polars::prelude::DataFrame, col: &str) -> f64 {
    clv::frame::floats(df, col).unwrap().into_iter().flatten().sum()
}

pub fn strings(df: &polars::prelude::DataFrame, col: &str) -> Vec<Option<String>> {
    clv::frame::strings(df, col).unwrap()
}

/// Distinct values of `col` per distinct `key` (e.g. status per order), counted by value.
pub fn per_key_counts(
    df: &polars::prelude::DataFrame,
    key: &str,
    col: &str,
) -> std::collections::BTreeMap<String, usize> {
    let keys = strings(df, key);
    let vals = strings(df, col);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = std::collections::BTreeMap::new();
    for (k, v) in keys.into_iter().zip(vals) {
        let (k, v) = (k.unwrap_or_default(), v.unwrap_or_default());
        if seen.insert((k, v.clone())) {
            *out.entry(v).or_default() += 1;
        }
    }
    out
}

pub fn assert_close(actual: f64, expected: f64, tol: f64, what: &str) {
    assert!((actual - expected).abs() <= tol, "{what}: {actual} vs expected {expected} (tolerance {tol})");
}

/// Writes a file into a fresh temporary directory and returns (dir, path).
pub fn temp_file(name: &str, contents: &[u8]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, contents).unwrap();
    let p = path.display().to_string();
    (dir, p)
}

/// An output Parquet file read back with arrow-rs (as BI tools read it, decimals included).
pub struct Table {
    pub batch: arrow::record_batch::RecordBatch,
}

impl Table {
    pub fn read(path: &Path) -> Table {
        let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
        let schema = builder.schema().clone();
        let batches: Vec<_> = builder.build().unwrap().map(|b| b.unwrap()).collect();
        Table { batch: arrow::compute::concat_batches(&schema, &batches).unwrap() }
    }

    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// A DECIMAL(18,2) or numeric column as f64.
    pub fn numbers(&self, name: &str) -> Vec<f64> {
        let c = self.batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Float64).unwrap();
        let c = c.as_any().downcast_ref::<arrow::array::Float64Array>().unwrap();
        c.iter().map(|v| v.unwrap_or(0.0)).collect()
    }

    pub fn texts(&self, name: &str) -> Vec<String> {
        let c = self.batch.column_by_name(name).unwrap_or_else(|| panic!("no column {name}"));
        let c = c.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        c.iter().map(|v| v.unwrap_or_default().to_string()).collect()
    }
}

/// Every published file's bytes, without lock files, staging, and manifest.json (whose stage
/// timings are the one part of a run that is meant to differ).
pub fn snapshot(out: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut files = std::collections::BTreeMap::new();
    let mut stack = vec![out.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            if rel.starts_with(".locks") || rel.starts_with(".staging") || rel == "manifest.json" {
                continue;
            }
            if p.is_dir() {
                stack.push(p);
            } else {
                files.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    files
}
