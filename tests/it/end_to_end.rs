//! `clv run` on the committed sample data, as `make report MARKET=us` runs it.

use crate::support::{Table, snapshot};
use std::process::Command;

/// `clv run pipelines/nightly.yaml` for one market as of 2026-01-01 into `out`; must succeed.
fn run_nightly(out: &std::path::Path, market: &str) {
    crate::support::run_nightly(out, &["--market", market]);
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
    assert_eq!(manifest["inputs"].as_array().unwrap().len(), 7, "5 export files, the buyers report, the spend file");

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
    assert!(report.contains("## CLV models") && report.contains("## Segments"), "{report}");

    // Segments partition the market's customers; tier shares follow the configuration (20% vip,
    // 30% mid) and predicted CLV.
    let (tiers, clv) = (customers.texts("tier"), customers.numbers("predicted_clv"));
    let n = tiers.len() as f64;
    let count = |t: &str| tiers.iter().filter(|x| *x == t).count();
    assert_eq!(count("vip") + count("mid") + count("low"), tiers.len());
    assert_eq!(count("vip"), (0.2 * n).round() as usize);
    assert_eq!(count("mid"), (0.5 * n).round() as usize - (0.2 * n).round() as usize);
    let lowest = |t: &str| tiers.iter().zip(&clv).filter(|(x, _)| *x == t).map(|(_, v)| *v).fold(f64::MAX, f64::min);
    let highest = |t: &str| tiers.iter().zip(&clv).filter(|(x, _)| *x == t).map(|(_, v)| *v).fold(f64::MIN, f64::max);
    assert!(lowest("vip") >= highest("mid") && lowest("mid") >= highest("low"));
    let lifecycle = customers.texts("lifecycle");
    assert!(lifecycle.iter().all(|l| ["new", "active", "at_risk", "lost", "one_time"].contains(&l.as_str())));
    for score in ["r_score", "f_score", "m_score"] {
        assert!(customers.numbers(score).iter().all(|s| (1.0..=5.0).contains(s)), "{score}");
    }

    // Action lists are subsets of the market's customers, each row with its reason.
    let id_of: std::collections::HashMap<String, usize> =
        customers.texts("customer_id").into_iter().enumerate().map(|(i, id)| (id, i)).collect();
    let (freq, p_alive) = (customers.numbers("frequency"), customers.numbers("p_alive"));
    for list in ["winback", "retain_vip", "reengage_one_time"] {
        let t = Table::read(&out.join(format!("actions/market=us/{list}.parquet")));
        let csv = std::fs::read_to_string(out.join(format!("actions/market=us/{list}.csv"))).unwrap();
        assert_eq!(csv.lines().count(), t.rows() + 1, "{list}: the CSV holds the same rows");
        for (id, reason) in t.texts("customer_id").iter().zip(t.texts("reason")) {
            let i = *id_of.get(id).unwrap_or_else(|| panic!("{list}: {id} is not a customer of the market"));
            assert!(!reason.is_empty());
            match list {
                "winback" => assert!(tiers[i] != "low" && lifecycle[i] == "at_risk"),
                "retain_vip" => assert!(tiers[i] == "vip"),
                _ => assert!(freq[i] == 0.0 && p_alive[i] >= 0.5),
            }
        }
    }

    // Cohort sums reconcile with the orders table: revenue over all cohort months, for the whole
    // market and per source, and the customers acquired.
    let cohorts = Table::read(&out.join("cohorts/market=us/part-0.parquet"));
    let (c_source, c_revenue, c_months, c_size) = (
        cohorts.texts("source"),
        cohorts.numbers("revenue"),
        cohorts.numbers("months_since"),
        cohorts.numbers("customers"),
    );
    let (o_source, o_net, o_status) = (df.texts("source"), df.numbers("net_base"), df.texts("status"));
    for source in ["all", "amazon", "shopify", "shop"] {
        let from_cohorts: f64 = c_source.iter().zip(&c_revenue).filter(|(s, _)| *s == source).map(|(_, v)| v).sum();
        let from_orders: f64 = o_source
            .iter()
            .zip(&o_net)
            .zip(&o_status)
            .filter(|((s, _), st)| (source == "all" || *s == source) && *st != "cancelled")
            .map(|((_, v), _)| v)
            .sum();
        assert!(
            (from_cohorts - from_orders).abs() < 0.01 * df.rows() as f64,
            "{source}: {from_cohorts} vs {from_orders}"
        );
    }
    let acquired: f64 =
        (0..cohorts.rows()).filter(|&i| c_source[i] == "all" && c_months[i] == 0.0).map(|i| c_size[i]).sum();
    let ids = df.texts("customer_id");
    let buyers: std::collections::BTreeSet<&String> =
        ids.iter().zip(&o_status).filter(|(_, st)| *st != "cancelled").map(|(c, _)| c).collect();
    assert_eq!(acquired as usize, buyers.len());
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

#[test]
fn the_memory_target_changes_no_output_and_a_bad_one_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let mut snapshots = Vec::new();
    // 1 MiB: the watcher hands freed memory back every time it may; the default: never here.
    for (name, target) in [("tiny", Some("1MiB")), ("default", None)] {
        let out = dir.path().join(name);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_clv"));
        cmd.args(["run", "pipelines/nightly.yaml", "--as-of", "2026-01-01", "--no-cache", "--out"]).arg(&out);
        cmd.env_remove("CLV_MEMORY_TARGET").env_remove("MIMALLOC_PURGE_DELAY");
        if let Some(t) = target {
            cmd.env("CLV_MEMORY_TARGET", t);
        }
        let o = cmd.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        snapshots.push(snapshot(&out));
    }
    assert!(snapshots[0].len() > 40, "{} files", snapshots[0].len());
    assert!(snapshots[0] == snapshots[1], "outputs differ with the memory target");
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", "pipelines/nightly.yaml", "--memory-target", "3 parsecs"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--memory-target") && stderr.contains("expected a size"), "{stderr}");
}

#[test]
fn zstd_compression_option() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("zstd.yaml");
    let text = std::fs::read_to_string("pipelines/nightly.yaml").unwrap().replacen(
        "name: nightly\n",
        "name: nightly\ncompression: zstd\n",
        1,
    );
    std::fs::write(&yaml, text).unwrap();
    let out = dir.path().join("out");
    let o = Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", yaml.to_str().unwrap(), "--market", "uk", "--as-of", "2026-01-01", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for file in ["orders/market=uk/part-0.parquet", "bi/orders.parquet"] {
        let f = std::fs::File::open(out.join(file)).unwrap();
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f).unwrap();
        let codec = reader.metadata().row_group(0).column(0).compression();
        assert!(matches!(codec, parquet::basic::Compression::ZSTD(_)), "{file}: {codec:?}");
    }
}

#[test]
fn clv_id_key_changes_every_customer_id_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let (plain, keyed) = (dir.path().join("plain"), dir.path().join("keyed"));
    for (out, key) in [(&plain, None), (&keyed, Some("s3cret"))] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_clv"));
        c.args(["run", "pipelines/nightly.yaml", "--market", "uk", "--as-of", "2026-01-01", "--out"]).arg(out);
        match key {
            Some(k) => c.env("CLV_ID_KEY", k),
            None => c.env_remove("CLV_ID_KEY"),
        };
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let read = |root: &std::path::Path| Table::read(&root.join("orders/market=uk/part-0.parquet"));
    let (a, b) = (read(&plain), read(&keyed));
    let (ids_a, ids_b) = (a.texts("customer_id"), b.texts("customer_id"));
    let set_a: std::collections::BTreeSet<_> = ids_a.iter().collect();
    let set_b: std::collections::BTreeSet<_> = ids_b.iter().collect();
    assert_eq!(set_a.len(), set_b.len(), "the same customers");
    assert!(set_a.is_disjoint(&set_b), "every id differs under the key");
    let total = |t: &Table| t.numbers("net_base").iter().sum::<f64>();
    assert!((total(&a) - total(&b)).abs() < 1e-6);
}

/// `bi/orders.parquet` is the partitions' rows under their market, column for column, and keeps
/// what the partitions carry for BI engines: statistics, page indexes and the customer bloom
/// filter (its column chunks are copied, not re-encoded).
#[test]
fn flat_orders_are_the_partitions_with_their_indexes() {
    use parquet::file::properties::ReaderProperties;
    use parquet::file::reader::FileReader;
    use parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    crate::support::run_nightly(&out, &[]);

    let flat = Table::read(&out.join("bi/orders.parquet"));
    let mut markets: Vec<String> = std::fs::read_dir(out.join("orders"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().trim_start_matches("market=").to_string())
        .collect();
    markets.sort();
    assert!(markets.len() >= 3, "{markets:?}");
    let mut at = 0;
    for m in &markets {
        let part = Table::read(&out.join(format!("orders/market={m}/part-0.parquet")));
        let rows = flat.batch.slice(at, part.rows());
        let key = rows.column_by_name("market").unwrap().as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
        assert!(key.iter().all(|v| v == Some(m.as_str())), "rows of {m} carry their market");
        let columns = rows.project(&(1..rows.num_columns()).collect::<Vec<_>>()).unwrap();
        assert_eq!(columns, part.batch, "the {m} rows are the partition's");
        at += part.rows();
    }
    assert_eq!(at, flat.rows(), "nothing but the partitions' rows");

    let options = ReadOptionsBuilder::new()
        .with_page_index()
        .with_encoding_stats_as_mask(false)
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let file = std::fs::File::open(out.join("bi/orders.parquet")).unwrap();
    let reader = SerializedFileReader::new_with_options(file, options).unwrap();
    let ids = flat.texts("customer_id");
    let customer =
        reader.metadata().file_metadata().schema_descr().columns().iter().position(|c| c.name() == "customer_id");
    let customer = customer.unwrap();
    let mut row = 0;
    for g in 0..reader.num_row_groups() {
        let group = reader.get_row_group(g).unwrap();
        let index = reader.metadata().page_index_for_row_group(g);
        for j in 0..group.metadata().num_columns() {
            let chunk = group.metadata().column(j);
            assert!(index.offset_index(j).is_some(), "row group {g} column {j} has an offset index");
            assert!(chunk.statistics().is_some(), "row group {g} column {j} has statistics");
            assert!(chunk.page_encoding_stats().is_some_and(|s| !s.is_empty()), "row group {g} column {j} encodings");
        }
        let bloom = group.get_column_bloom_filter(customer).expect("a customer bloom filter");
        assert!(bloom.check(&ids[row].as_str()), "the bloom filter knows the group's first customer");
        row += group.metadata().num_rows() as usize;
    }
}
