//! Flat copies of the partitioned tables, `OUT/bi/<table>.parquet` with the partition column
//! inside, for tools without folder import (Power BI). Built from every partition: this run's
//! staged ones and, for markets this run does not publish, the ones already on disk. The `bi`
//! lock is held from reading to commit, so runs on different markets into one root serialise
//! here and the flat files always match the partitions. Column chunks are copied byte for byte
//! from the partition files (arrow-rs `append_column`); only the partition column is encoded.
//! The orders table is built beside the analyses ([`Orders`]), the rest at publication.

use super::Publisher;
use super::coded::Coded;
use super::lock::Locks;
use super::parquet::{self, Meta};
use crate::error::{Context, Result};
use ::parquet::arrow::parquet_to_arrow_schema;
use ::parquet::column::writer::ColumnCloseResult;
use ::parquet::file::properties::ReaderProperties;
use ::parquet::file::reader::FileReader;
use ::parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Partition values of `table` under `root` (`<table>/<key>=<value>/part-0.parquet`).
fn partitions(root: &Path, table: &str, key: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join(table)) else { return Vec::new() };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.strip_prefix(&format!("{key}=")).map(str::to_string)))
        .filter(|v| root.join(table).join(format!("{key}={v}")).join("part-0.parquet").is_file())
        .collect()
}

/// A partition file opened for copying: its footer with page indexes and bloom filters, and the
/// file again to read column chunks from.
struct Partition {
    value: String,
    reader: SerializedFileReader<File>,
    file: File,
    /// The flat table's schema as this partition gives it: the key column, then the partition's.
    schema: SchemaRef,
}

fn open(key: &str, value: &str, path: &Path) -> Result<Partition> {
    let open = || File::open(path).ctx(|| format!("opening {}", path.display()));
    // arrow-rs reads a chunk's page encoding stats as a bit mask by default, and writes no mask
    // back: copied chunks would lose them (readers use them to see that every page of a chunk is
    // dictionary-encoded).
    let options = ReadOptionsBuilder::new()
        .with_page_index()
        .with_encoding_stats_as_mask(false)
        .with_reader_properties(ReaderProperties::builder().set_read_bloom_filter(true).build())
        .build();
    let reader =
        SerializedFileReader::new_with_options(open()?, options).ctx(|| format!("reading {}", path.display()))?;
    let footer = reader.metadata().file_metadata();
    let columns = parquet_to_arrow_schema(footer.schema_descr(), footer.key_value_metadata())
        .ctx(|| format!("reading the schema of {}", path.display()))?;
    let mut fields = vec![Arc::new(Field::new(key, DataType::Utf8, false))];
    fields.extend(columns.fields().iter().cloned());
    Ok(Partition { value: value.to_string(), reader, file: open()?, schema: Arc::new(Schema::new(fields)) })
}

/// Stages `bi/<table>.parquet` for each of `tables` with partitions; returns (path, rows). The
/// tables are independent files, built side by side on plain threads (arrow-rs only, no Polars).
pub fn stage(publisher: &Publisher, out: &Path, meta: &Meta, tables: &[(&str, &str)]) -> Result<Vec<(String, u64)>> {
    let written = build(publisher.staging(), out, meta, tables)?;
    register(publisher, &written)?;
    Ok(written)
}

/// The flat orders table, built on a thread of its own while the analyses run: the orders
/// partitions are staged with the unify stage and nothing changes them after. Built at the end
/// with the other tables, it was the run's last 0.7 s at 10M order lines, on one core. The thread
/// holds the `bi` lock from reading the partitions on and hands it over with the result.
pub struct Orders {
    built: Option<Built>,
}

type Outcome = Result<(Locks, Vec<(String, u64)>)>;

enum Built {
    Later(std::thread::JoinHandle<Outcome>),
    Now(Outcome),
}

/// (table, partition column) of the hive tables that get a flat copy: the one [`Orders`] builds,
/// and the rest.
const ORDERS: [(&str, &str); 1] = [("orders", "market")];
pub const LATER: [(&str, &str); 5] =
    [("customers", "market"), ("markets", "market"), ("cohorts", "market"), ("cac", "market"), ("rejects", "source")];

impl Orders {
    /// Starts building `bi/orders.parquet` from the staged orders partitions (and, for markets
    /// this run does not publish, the ones in `out`). With `--threads 1` it is built before this
    /// returns: that run asks for one busy core.
    pub fn start(publisher: &Publisher, out: &Path, meta: &Meta) -> Orders {
        let (staging, out) = (publisher.staging().to_path_buf(), out.to_path_buf());
        let (run_id, as_of, pipeline, zstd) =
            (meta.run_id.to_string(), meta.as_of.to_string(), meta.pipeline.to_string(), meta.zstd);
        let work = move || {
            let lock = super::lock::wait(&out, "bi")?;
            let meta = Meta { run_id: &run_id, as_of: &as_of, pipeline: &pipeline, zstd };
            Ok((lock, build(&staging, &out, &meta, &ORDERS)?))
        };
        let built = match crate::frame::threads() {
            ..2 => Built::Now(work()),
            _ => Built::Later(std::thread::spawn(work)),
        };
        Orders { built: Some(built) }
    }

    /// Waits for the table; returns the `bi` lock (held through the commit) and (path, rows).
    pub fn finish(mut self, publisher: &Publisher) -> Outcome {
        let (lock, written) = self.built.take().expect("finished once").wait()?;
        register(publisher, &written)?;
        Ok((lock, written))
    }
}

impl Built {
    fn wait(self) -> Outcome {
        match self {
            Built::Later(thread) => thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            Built::Now(result) => result,
        }
    }
}

/// A run that fails before publishing still waits for the thread: it writes into the staging
/// directory, which the publisher removes when dropped.
impl Drop for Orders {
    fn drop(&mut self) {
        if let Some(Built::Later(thread)) = self.built.take() {
            let _ = thread.join();
        }
    }
}

/// Builds the flat files of `tables` in `staging`; returns (path, rows).
fn build(staging: &Path, out: &Path, meta: &Meta, tables: &[(&str, &str)]) -> Result<Vec<(String, u64)>> {
    let mut jobs = Vec::new();
    for &(table, key) in tables {
        let mut values = partitions(staging, table, key);
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
    let built = crate::frame::on_threads(&jobs, |(table, key, sources)| flat_table(table, key, sources, staging, meta));
    built.into_iter().filter_map(|r| r.transpose()).collect()
}

/// Files the built flat tables with the publisher, for the commit.
fn register(publisher: &Publisher, written: &[(String, u64)]) -> Result<()> {
    for (rel, _) in written {
        publisher.stage(PathBuf::from(rel), rel)?;
    }
    Ok(())
}

/// Writes `bi/<table>.parquet` into `staging` from the partition files; `None` when there is
/// nothing to write (no partitions, or partitions of differing schema versions). The partitions'
/// column chunks are copied as they are (pages, statistics, page indexes, bloom filters): only the
/// key column is encoded. Decoding and re-encoding every table was half of the publish time.
fn flat_table(
    table: &str,
    key: &str,
    sources: &[(String, PathBuf)],
    staging: &Path,
    meta: &Meta,
) -> Result<Option<(String, u64)>> {
    let parts: Vec<Partition> = sources.iter().map(|(v, path)| open(key, v, path)).collect::<Result<_>>()?;
    let Some(schema) = parts.first().map(|p| p.schema.clone()) else { return Ok(None) };
    if let Some(odd) = parts.iter().find(|p| p.schema.fields() != schema.fields()) {
        // Partitions written by another schema version: leave the flat file as it was.
        tracing::warn!(table, partition = %odd.value, "partitions differ in schema; bi/{table}.parquet not rebuilt");
        return Ok(None);
    }
    let rel = format!("bi/{table}.parquet");
    let path = staging.join(&rel);
    let fail = |what: &str| format!("{what} {}", path.display());
    let (mut writer, _) =
        parquet::writer(schema.clone(), &path, meta)?.into_serialized_writer().ctx(|| fail("starting"))?;
    let mut rows = 0;
    for part in &parts {
        for g in 0..part.reader.num_row_groups() {
            let group = part.reader.get_row_group(g).ctx(|| fail("reading a partition for"))?;
            let n = group.metadata().num_rows();
            if n == 0 {
                continue;
            }
            // The key is one value throughout: a dictionary chunk of one entry.
            let key_column = Coded::new(writer.schema_descr().column(0), writer.properties())
                .and_then(|mut c| c.push_repeated(part.value.as_bytes(), n as usize).map(|()| c))
                .and_then(|c| c.finish(writer.properties()))
                .ctx(|| fail("encoding"))?;
            let mut out = writer.next_row_group().ctx(|| fail("starting a row group of"))?;
            out.append_column(&key_column.0, key_column.1).ctx(|| fail("writing"))?;
            let index = part.reader.metadata().page_index_for_row_group(g);
            for (j, chunk) in group.metadata().columns().iter().enumerate() {
                let copied = ColumnCloseResult {
                    bytes_written: chunk.compressed_size() as u64,
                    rows_written: n as u64,
                    metadata: chunk.clone(),
                    bloom_filter: group.get_column_bloom_filter(j).cloned(),
                    column_index: index.column_index(j).cloned(),
                    offset_index: index.offset_index(j).cloned(),
                };
                out.append_column(&part.file, copied).ctx(|| fail("copying a column chunk into"))?;
            }
            out.close().ctx(|| fail("writing"))?;
            rows += n as u64;
        }
    }
    parquet::finish(writer.into_inner().ctx(|| fail("finishing"))?, &path)?;
    Ok(Some((rel, rows)))
}
