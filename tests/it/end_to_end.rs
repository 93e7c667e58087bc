//! `clv run` on the committed sample data, as `make report MARKET=us` runs it.

use crate::support::Table;
use std::process::Command;

/// `clv run pipelines/nightly.yaml` for one market as of 2026-01-01 into `out`; must succeed.
fn run_nightly(out: &std::path::Path, market: &str) {
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", "pipelines/nightly.yaml", "--market", market, "--as-of", "2026-01-01", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn nightly_pipeline_for_one_market() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    run_nightly(&out, "us");

    assert!(out.join("_SUCCESS").exists() && out.join("manifest.json").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".staging") || n.starts_with(".trash"))
        .collect();
    assert!(leftovers.is_empty(), "staging is cleaned up: {leftovers:?}");
    // Only the us partition and report are published.
    let parts: Vec<String> = std::fs::read_dir(out.join("orders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(parts, ["market=us"]);
    let report = std::fs::read_to_string(out.join("reports/us.md")).unwrap();
    assert!(!out.join("reports/eu.md").exists());

    // The BI contract, read back by arrow-rs' own Parquet reader.
    let file = std::fs::File::open(out.join("orders/market=us/part-0.parquet")).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap();
    let schema = reader.schema().clone();
    use arrow::datatypes::{DataType as A, TimeUnit};
    assert_eq!(
        schema.field_with_name("ordered_at").unwrap().data_type(),
        &A::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
    );
    assert_eq!(schema.field_with_name("order_date").unwrap().data_type(), &A::Date32);
    assert_eq!(schema.field_with_name("net_base").unwrap().data_type(), &A::Decimal128(18, 2));
    assert_eq!(schema.field_with_name("customer_id").unwrap().data_type(), &A::Utf8);
    assert_eq!(schema.field_with_name("line_no").unwrap().data_type(), &A::Int64);
    assert!(schema.field_with_name("market").is_err(), "hive layout: no market column inside");
    let kv = reader.metadata().file_metadata().key_value_metadata().unwrap();
    let meta = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    assert_eq!(meta("as_of").as_deref(), Some("2026-01-01"));
    assert_eq!(meta("pipeline").as_deref(), Some("nightly"));

    // The report's revenue is the Parquet's revenue (cancelled lines carry net 0).
    let df = Table::read(&out.join("orders/market=us/part-0.parquet"));
    let revenue: f64 = df.numbers("net_base").iter().sum();
    let shown = clv::report::markdown::money(revenue);
    assert!(report.contains(&format!("| {shown} |")), "revenue {shown} not in report:\n{report}");
    assert!(df.rows() > 100, "the sample has a real US market");

    // Every row read is accounted for, per source.
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    for (source, a) in manifest["accounting"].as_object().unwrap() {
        let sum = |k: &str| a[k].as_object().unwrap().values().map(|v| v.as_u64().unwrap()).sum::<u64>();
        assert_eq!(
            a["rows_read"].as_u64().unwrap(),
            a["kept"].as_u64().unwrap() + sum("dropped") + sum("rejected"),
            "{source}"
        );
    }
    assert!(report.contains("| amazon |") && report.contains("| shopify |") && report.contains("| shop |"), "{report}");
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 6, "5 export files + the buyers report");

    // The clv stage's tables: one customers row per customer of the market, scores in range.
    let customers = Table::read(&out.join("customers/market=us/part-0.parquet"));
    let in_orders: std::collections::BTreeSet<String> = df.texts("customer_id").into_iter().collect();
    let ids: std::collections::BTreeSet<String> = customers.texts("customer_id").into_iter().collect();
    assert_eq!(ids, in_orders, "the customers table covers exactly the market's customers");
    assert!(customers.numbers("p_alive").iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(customers.numbers("predicted_clv").iter().all(|v| v.is_finite() && *v >= 0.0));
    let revenue_by_customer: f64 = customers.numbers("revenue").iter().sum();
    assert!(
        (revenue_by_customer - revenue).abs() < 0.01 * customers.rows() as f64,
        "{revenue_by_customer} vs {revenue}"
    );
    let market = Table::read(&out.join("markets/market=us/part-0.parquet"));
    assert_eq!(market.rows(), 1);
    assert_eq!(market.numbers("customers")[0], customers.rows() as f64);
    assert!(["bg_nbd", "pareto_nbd"].contains(&market.texts("model")[0].as_str()));
    assert!(report.contains("## CLV models"), "{report}");
}

#[test]
fn rerun_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    for out in [&a, &b] {
        run_nightly(out, "eu");
    }
    for rel in ["orders/market=eu/part-0.parquet", "reports/eu.md", "rejects/source=shopify/part-0.parquet"] {
        assert_eq!(std::fs::read(a.join(rel)).unwrap(), std::fs::read(b.join(rel)).unwrap(), "{rel}");
    }
}

#[test]
fn second_run_on_a_locked_market_exits_75_naming_the_holder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    // Hold the lock as a concurrent run would.
    std::fs::create_dir_all(out.join(".locks")).unwrap();
    let path = out.join(".locks/market=us.lock");
    std::fs::write(&path, "pid 4242, pipeline nightly, started 2026-01-01T00:00:00Z").unwrap();
    let held = std::fs::File::options().read(true).write(true).open(&path).unwrap();
    held.try_lock().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", "pipelines/nightly.yaml", "--market", "us", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(75), "{stderr}");
    assert!(stderr.contains("market `us`") && stderr.contains("pid 4242"), "{stderr}");
    assert!(!out.join("orders").exists());
    // Another market proceeds side by side.
    run_nightly(&out, "uk");
    drop(held);
    run_nightly(&out, "us");
}

#[test]
fn results_do_not_depend_on_the_thread_count() {
    let dir = tempfile::tempdir().unwrap();
    let mut outputs = Vec::new();
    for threads in ["1", "2"] {
        let out = dir.path().join(threads);
        let o = Command::new(env!("CARGO_BIN_EXE_clv"))
            .args(["run", "pipelines/nightly.yaml", "--as-of", "2026-01-01", "--threads", threads, "--out"])
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        outputs.push(out);
    }
    for table in ["orders", "customers", "markets"] {
        for market in ["us", "uk", "eu", "other"] {
            let rel = format!("{table}/market={market}/part-0.parquet");
            assert_eq!(
                std::fs::read(outputs[0].join(&rel)).unwrap(),
                std::fs::read(outputs[1].join(&rel)).unwrap(),
                "{rel}"
            );
        }
    }
}
