//! Exports pulled daily instead of monthly: the same orders in many small files publish the same
//! tables. Each file is parsed, cached and stacked on its own, so an order's lines numbered per
//! file, Shopify's continuation rows or a small file's chunk must not change what a run finds.

use crate::support::{Table, run_cached};
use std::path::{Path, PathBuf};

/// The sample data and the nightly pipeline copied to `dir`, every order export cut into
/// `pieces` files at order boundaries, named so that they sort as the file they came from
/// (later pulls of an order win ties by file order).
fn sample_in_pieces(dir: &Path, pieces: usize) -> PathBuf {
    for sub in ["amazon", "shopify", "shop"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(Path::new("sample_data").join(sub)).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if pieces == 1 || name.starts_with("shipments") {
                std::fs::copy(&p, dir.join(sub).join(&name)).unwrap();
                continue;
            }
            let (stem, ext) = name.rsplit_once('.').unwrap();
            let delimiter = if ext == "txt" { b'\t' } else { b',' };
            for (k, part) in cut(&std::fs::read(&p).unwrap(), delimiter, pieces).iter().enumerate() {
                std::fs::write(dir.join(sub).join(format!("{stem}_{k:02}.{ext}")), part).unwrap();
            }
        }
    }
    for file in ["fx_rates.csv", "marketing_spend.csv"] {
        std::fs::copy(Path::new("sample_data").join(file), dir.join(file)).unwrap();
    }
    let text = std::fs::read_to_string("pipelines/nightly.yaml").unwrap();
    let path = dir.join("p.yaml");
    std::fs::write(&path, text.replace("sample_data/", &format!("{}/", dir.display()))).unwrap();
    path
}

/// `bytes` (a header line, then records; quoted fields may hold line breaks) as `pieces` files
/// of about equal records, each with the header, never parting records with the same first
/// field (an order's lines).
fn cut(bytes: &[u8], delimiter: u8, pieces: usize) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => {
                records.push(&bytes[start..=i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < bytes.len() {
        records.push(&bytes[start..]);
    }
    let (header, body) = records.split_first().unwrap();
    let key = |r: &[u8]| r.split(|&b| b == delimiter).next().unwrap().to_vec();
    let size = body.len().div_ceil(pieces).max(1);
    let mut parts: Vec<Vec<u8>> = vec![header.to_vec()];
    let mut in_part = 0;
    for (i, r) in body.iter().enumerate() {
        if in_part >= size && key(r) != key(body[i - 1]) {
            parts.push(header.to_vec());
            in_part = 0;
        }
        parts.last_mut().unwrap().extend_from_slice(r);
        in_part += 1;
    }
    parts
}

/// Every published Parquet table under `out`, by path, without the file's key-value metadata
/// (the run's id follows from the input files' names). Rejects name the file each came from:
/// that column, which differs by design, is left out.
fn tables(out: &Path) -> std::collections::BTreeMap<String, arrow::record_batch::RecordBatch> {
    let mut found = std::collections::BTreeMap::new();
    let mut dirs = vec![out.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(out).unwrap().display().to_string();
            if p.is_dir() && !rel.starts_with('.') {
                dirs.push(p);
            } else if rel.ends_with(".parquet") {
                let mut batch = Table::read(&p).batch;
                if let Ok(file) = batch.schema().index_of("file") {
                    batch.remove_column(file);
                }
                let plain = batch.schema().as_ref().clone().with_metadata(std::collections::HashMap::new());
                let batch = arrow::record_batch::RecordBatch::try_new(plain.into(), batch.columns().to_vec()).unwrap();
                found.insert(rel, batch);
            }
        }
    }
    found
}

#[test]
fn the_same_orders_in_many_small_files_publish_the_same_tables() {
    let dir = tempfile::tempdir().unwrap();
    let whole = sample_in_pieces(&dir.path().join("whole"), 1);
    let daily = sample_in_pieces(&dir.path().join("daily"), 7);
    let pieces = std::fs::read_dir(dir.path().join("daily/shopify")).unwrap().count();
    assert!(pieces >= 12, "{pieces} Shopify files");
    let out = |name: &str| dir.path().join(name);
    run_cached(&whole, &out("whole"), None);
    run_cached(&daily, &out("daily"), None);
    let cache = dir.path().join("cache");
    run_cached(&daily, &out("daily_cached"), Some(&cache));
    run_cached(&daily, &out("daily_from_cache"), Some(&cache));
    let expected = tables(&out("whole"));
    assert!(expected.len() > 20 && expected.contains_key("bi/orders.parquet"));
    for name in ["daily", "daily_cached", "daily_from_cache"] {
        let got = tables(&out(name));
        assert_eq!(got.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "{name}");
        for (table, batch) in &expected {
            assert!(got[table] == *batch, "{name}: {table} differs");
        }
    }
}
