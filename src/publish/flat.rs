//! Flat copies of the partitioned tables, `OUT/bi/<table>.parquet` with the partition column
//! inside, for tools without folder import (Power BI). Built from every partition: this run's
//! staged ones and, for markets this run does not publish, the ones already on disk. The `bi`
//! lock is held from reading to commit, so runs on different markets into one root serialise
//! here and the flat files always match the partitions.

use super::Publisher;
use super::parquet::{Meta, write_batches};
use crate::error::{Context, Result};
use arrow::array::{ArrayRef, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// (table, partition column) of the hive tables that get a flat copy.
pub const TABLES: [(&str, &str); 6] = [
    ("orders", "market"),
    ("customers", "market"),
    ("markets", "market"),
    ("cohorts", "market"),
    ("cac", "market"),
    ("rejects", "source"),
];

/// Partition values of `table` under `root` (`<table>/<key>=<value>/part-0.parquet`).
fn partitions(root: &Path, table: &str, key: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(table)) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(&format!("{key}=")).map(str::to_string)))
        .filter(|v| root.join(table).join(format!("{key}={v}")).join("part-0.parquet").is_file())
        .collect()
}

/// The file's batches; an empty file gives one empty batch, so its schema still counts.
fn read(path: &Path) -> Result<Vec<RecordBatch>> {
    let file = std::fs::File::open(path).ctx(|| format!("opening {}", path.display()))?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(file).ctx(|| format!("reading {}", path.display()))?;
    let schema = reader.schema().clone();
    let mut batches: Vec<RecordBatch> = reader
        .build()
        .ctx(|| format!("reading {}", path.display()))?
        .map(|b| b.ctx(|| format!("reading {}", path.display())))
        .collect::<Result<_>>()?;
    if batches.is_empty() {
        batches.push(RecordBatch::new_empty(schema));
    }
    Ok(batches)
}

/// Stages `bi/<table>.parquet` for every table with partitions; returns (path, rows). The tables
/// are independent files, built side by side on plain threads (arrow-rs only, no Polars).
pub fn stage(publisher: &Publisher, out: &Path, meta: &Meta) -> Result<Vec<(String, u64)>> {
    let staging = publisher.staging().to_path_buf();
    let mut jobs = Vec::new();
    for (table, key) in TABLES {
        let mut values = partitions(&staging, table, key);
        let staged = values.clone();
        values.extend(partitions(out, table, key).into_iter().filter(|v| !staged.contains(v)));
        values.sort();
        let sources: Vec<(String, PathBuf)> = values
            .into_iter()
            .map(|v| {
                let rel = PathBuf::from(table).join(format!("{key}={v}")).join("part-0.parquet");
                let path = if staged.contains(&v) { staging.join(&rel) } else { out.join(&rel) };
                (v, path)
            })
            .collect();
        if !sources.is_empty() {
            jobs.push((table, key, sources));
        }
    }
    std::fs::create_dir_all(staging.join("bi")).ctx(|| "creating the staged bi directory")?;
    let built =
        crate::frame::on_threads(&jobs, |(table, key, sources)| flat_table(table, key, sources, &staging, meta));
    let mut written = Vec::new();
    for result in built {
        if let Some((rel, rows)) = result? {
            publisher.stage(PathBuf::from(&rel), &rel)?;
            written.push((rel, rows));
        }
    }
    Ok(written)
}

/// Writes `bi/<table>.parquet` into `staging` from the partition files; `None` when there is
/// nothing to write (no rows, or partitions of differing schema versions).
fn flat_table(
    table: &str,
    key: &str,
    sources: &[(String, PathBuf)],
    staging: &Path,
    meta: &Meta,
) -> Result<Option<(String, u64)>> {
    let mut batches = Vec::new();
    let mut schema = None;
    for (v, path) in sources {
        for batch in read(path)? {
            let column: ArrayRef = Arc::new(StringArray::from(vec![v.as_str(); batch.num_rows()]));
            let mut fields = vec![Arc::new(Field::new(key, DataType::Utf8, false))];
            fields.extend(batch.schema().fields().iter().cloned());
            let with_key = Arc::new(Schema::new(fields));
            if schema.as_ref().is_some_and(|s: &Arc<Schema>| s.fields() != with_key.fields()) {
                // Partitions written by another schema version: leave the flat file as it was.
                tracing::warn!(table, partition = %v, "partitions differ in schema; bi/{table}.parquet not rebuilt");
                return Ok(None);
            }
            let mut columns = vec![column];
            columns.extend(batch.columns().iter().cloned());
            batches.push(RecordBatch::try_new(with_key.clone(), columns).ctx(|| format!("adding {key} to {table}"))?);
            schema = Some(with_key);
        }
    }
    let Some(schema) = schema.filter(|_| !batches.is_empty()) else { return Ok(None) };
    let batches: Vec<RecordBatch> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let rel = format!("bi/{table}.parquet");
    let rows = write_batches(&batches, schema, &staging.join(&rel), meta)?;
    Ok(Some((rel, rows)))
}
