//! The orders partitions, one file per calendar month of `order_date`
//! (`orders/market=<m>/part-<YYYY-MM>.parquet`). A nightly run changes few months: the new days,
//! and the months of orders that a newer export restated. So each month's rows are hashed as they
//! would be written, and a month whose hash equals the one in the published file's footer is
//! copied from it (column chunks as they are, a footer with this run's metadata) instead of being
//! encoded again: encoding the orders was the largest single cost of a nightly rerun.

use super::flat::Chunks;
use super::parquet::{self, CONTENT_HASH, Meta};
use super::{Publisher, manifest};
use crate::error::{Context, Result};
use crate::{frame, schema};
use chrono::Datelike;
use polars::prelude::*;
use std::path::{Path, PathBuf};

/// Stages `orders/market=<market>/` from `part` (the market's rows in published order, the
/// partition column already dropped): one file per month, copied from `out` where the month is
/// unchanged. Returns the files written, in month order.
pub fn stage(
    publisher: &Publisher,
    out: &Path,
    market: &str,
    part: &DataFrame,
    meta: &Meta,
) -> Result<Vec<manifest::Output>> {
    let entry = PathBuf::from(format!("orders/market={market}"));
    publisher.stage_dir(&entry)?;
    let months = Months::of(part)?;
    let hashes = months.hashes(part, meta)?;
    let schema = parquet::schema_of(part, &schema::MONEY_COLUMNS)?;
    let mut outputs = Vec::with_capacity(months.labels.len());
    let mut reused = 0;
    for (m, label) in months.labels.iter().enumerate() {
        let rel = entry.join(format!("part-{label}.parquet"));
        let path = publisher.stage(&entry, &rel)?;
        let meta = Meta { content_hash: Some(&hashes[m]), ..*meta };
        let previous = out.join(&rel);
        let copied = match published_hash(&previous).is_some_and(|h| h == hashes[m]) {
            true => copy(&previous, &path, schema.clone(), &meta)
                .inspect_err(|e| tracing::warn!(file = %previous.display(), "not reused: {e}"))
                .ok()
                .filter(|&rows| rows == months.counts[m] as u64),
            false => None,
        };
        let rows = match copied {
            Some(rows) => {
                reused += 1;
                rows
            }
            None => {
                let rows = frame::take_rows(part.clone(), months.rows_of(m))?;
                parquet::write(&rows, &path, &schema::MONEY_COLUMNS, &meta)?
            }
        };
        outputs.push(manifest::Output { path: rel.display().to_string(), rows });
    }
    tracing::debug!(market, months = months.labels.len(), reused, "staged the orders partition");
    Ok(outputs)
}

/// The hash a published file was written with, if it can be read.
fn published_hash(path: &Path) -> Option<String> {
    use ::parquet::file::reader::FileReader;
    let reader = ::parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    let pairs = reader.metadata().file_metadata().key_value_metadata()?;
    pairs.iter().find(|kv| kv.key == CONTENT_HASH)?.value.clone()
}

/// Writes `to` from the row groups of `from` under `schema` and this run's metadata; returns the
/// rows copied.
fn copy(from: &Path, to: &Path, schema: arrow::datatypes::SchemaRef, meta: &Meta) -> Result<u64> {
    use ::parquet::file::reader::FileReader;
    let chunks = Chunks::open(from)?;
    let fail = |what: &str| format!("{what} {}", to.display());
    let (mut writer, _) = parquet::writer(schema, to, meta)?.into_serialized_writer().ctx(|| fail("starting"))?;
    let mut rows = 0;
    for g in 0..chunks.reader.num_row_groups() {
        let mut group = writer.next_row_group().ctx(|| fail("starting a row group of"))?;
        chunks.append_row_group(g, &mut group)?;
        rows += group.close().ctx(|| fail("writing"))?.num_rows() as u64;
    }
    parquet::finish(writer.into_inner().ctx(|| fail("finishing"))?, to)?;
    Ok(rows)
}

/// The calendar months of a partition's rows.
struct Months {
    /// `YYYY-MM` in order; `undated` last for rows without a date.
    labels: Vec<String>,
    /// Each row's index into `labels`.
    of_row: Vec<u16>,
    /// Rows per month.
    counts: Vec<usize>,
}

const UNDATED: i32 = i32::MAX;

impl Months {
    fn of(part: &DataFrame) -> Result<Months> {
        let days = part.column(schema::ORDER_DATE).ctx(|| "order dates")?.date().ctx(|| "order dates")?;
        // Months as year * 12 + month - 1; consecutive lines are mostly of one order, one day.
        let mut last: Option<(i32, i32)> = None;
        let numbers: Vec<i32> = days
            .physical()
            .iter()
            .map(|d| match (d, last) {
                (None, _) => UNDATED,
                (Some(d), Some((day, month))) if d == day => month,
                (Some(d), _) => {
                    let date = chrono::DateTime::from_timestamp(d as i64 * 86_400, 0).map(|t| t.date_naive());
                    let month = date.map_or(UNDATED, |t| t.year() * 12 + t.month0() as i32);
                    last = Some((d, month));
                    month
                }
            })
            .collect();
        let mut distinct = numbers.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > u16::MAX as usize {
            return Err(crate::error::Error::Data("more than 65535 months of orders in one market".into()));
        }
        let of_row: Vec<u16> =
            numbers.iter().map(|n| distinct.binary_search(n).expect("every month is listed") as u16).collect();
        let mut counts = vec![0; distinct.len()];
        for &m in &of_row {
            counts[m as usize] += 1;
        }
        let labels = distinct
            .iter()
            .map(|&n| match n {
                UNDATED => "undated".to_string(),
                n => format!("{:04}-{:02}", n.div_euclid(12), n.rem_euclid(12) + 1),
            })
            .collect();
        Ok(Months { labels, of_row, counts })
    }

    /// The rows of month `m`, in table order.
    fn rows_of(&self, m: usize) -> Vec<u32> {
        let m = m as u16;
        let mut rows = Vec::with_capacity(self.counts[m as usize]);
        rows.extend(self.of_row.iter().enumerate().filter(|&(_, &r)| r == m).map(|(i, _)| i as u32));
        rows
    }

    /// Each month's content hash (128-bit XXH3, hex): the program and the writer's settings, each
    /// column's name and type, then its values in table order. The program's source fingerprint
    /// is in it because a file is only reused where a fresh encoding would give the same bytes.
    fn hashes(&self, part: &DataFrame, meta: &Meta) -> Result<Vec<String>> {
        let mut sinks: Vec<Sink> = (0..self.labels.len()).map(|_| Sink::default()).collect();
        let program = format!(
            "clv {} {} schema {} zstd {}",
            env!("CARGO_PKG_VERSION"),
            env!("CLV_SOURCE_FINGERPRINT"),
            parquet::SCHEMA_VERSION,
            meta.zstd
        );
        sinks.iter_mut().for_each(|s| s.text(Some(&program)));
        for c in part.columns() {
            let header = format!("{} {}", c.name(), c.dtype());
            sinks.iter_mut().for_each(|s| s.text(Some(&header)));
            let sink = |row: usize| self.of_row[row] as usize;
            match c.dtype() {
                DataType::String | DataType::Categorical(..) => {
                    let texts = frame::texts(part, c.name())?;
                    texts.enumerate().for_each(|(row, v)| sinks[sink(row)].text(v));
                }
                DataType::Float64 => {
                    let values = c.f64().ctx(|| format!("column {}", c.name()))?;
                    values.iter().enumerate().for_each(|(row, v)| sinks[sink(row)].number(v.map(f64::to_bits)));
                }
                _ => {
                    let values = frame::i64_column(part, c.name())?;
                    values.iter().enumerate().for_each(|(row, v)| sinks[sink(row)].number(v.map(|v| v as u64)));
                }
            }
        }
        Ok(sinks.into_iter().map(Sink::finish).collect())
    }
}

/// One month's hash input, buffered so the hasher gets large blocks.
#[derive(Default)]
struct Sink {
    buffer: Vec<u8>,
    hasher: xxhash_rust::xxh3::Xxh3Default,
}

impl Sink {
    const BLOCK: usize = 1 << 15;

    fn put(&mut self, bytes: &[u8]) {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= Self::BLOCK {
            self.hasher.update(&self.buffer);
            self.buffer.clear();
        }
    }

    /// A null is a 0 byte; a text is a 1 byte, its length and its bytes.
    fn text(&mut self, v: Option<&str>) {
        match v {
            None => self.put(&[0]),
            Some(t) => {
                self.put(&[1]);
                self.put(&(t.len() as u64).to_le_bytes());
                self.put(t.as_bytes());
            }
        }
    }

    fn number(&mut self, v: Option<u64>) {
        match v {
            None => self.put(&[0]),
            Some(x) => {
                self.put(&[1]);
                self.put(&x.to_le_bytes());
            }
        }
    }

    fn finish(mut self) -> String {
        self.hasher.update(&self.buffer);
        format!("{:032x}", self.hasher.digest128())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta<'static> {
        Meta { run_id: "r", as_of: "2024-02-01", pipeline: "t", zstd: false, content_hash: None }
    }

    /// Days since 1970-01-01 of a date.
    fn day(y: i32, m: u32, d: u32) -> i32 {
        (chrono::NaiveDate::from_ymd_opt(y, m, d).unwrap() - chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap())
            .num_days() as i32
    }

    fn part(dates: &[Option<i32>], ids: &[&str], net: &[f64]) -> DataFrame {
        let dates = Int32Chunked::from_iter_options(schema::ORDER_DATE.into(), dates.iter().copied())
            .into_series()
            .cast(&DataType::Date)
            .unwrap();
        let ids = Series::new(schema::ORDER_ID.into(), ids);
        frame::frame(vec![ids.into(), dates.into(), Series::new(schema::NET.into(), net).into()]).unwrap()
    }

    #[test]
    fn rows_go_to_their_calendar_month_in_table_order() {
        let dates =
            [Some(day(2024, 1, 31)), Some(day(2023, 12, 1)), None, Some(day(2024, 1, 1)), Some(day(1969, 12, 31))];
        let months = Months::of(&part(&dates, &["a", "b", "c", "d", "e"], &[1.0; 5])).unwrap();
        assert_eq!(months.labels, ["1969-12", "2023-12", "2024-01", "undated"]);
        assert_eq!(months.of_row, [2, 1, 3, 2, 0]);
        assert_eq!(months.counts, [1, 1, 2, 1]);
        assert_eq!(months.rows_of(2), [0, 3]);
    }

    #[test]
    fn a_month_hash_changes_with_its_own_rows_only() {
        let dates = [Some(day(2024, 1, 5)), Some(day(2024, 2, 5)), Some(day(2024, 1, 6)), Some(day(2024, 2, 6))];
        let hashes = |ids: [&str; 4], net: [f64; 4]| {
            let p = part(&dates, &ids, &net);
            Months::of(&p).unwrap().hashes(&p, &meta()).unwrap()
        };
        let base = hashes(["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(base, hashes(["a", "b", "c", "d"], [1.0, 2.0, 3.0, 4.0]), "deterministic");
        assert_ne!(base[0], base[1]);
        // A value, an id, the order of two rows in January: January changes, February does not.
        for (ids, net) in [
            (["a", "b", "c", "d"], [1.0, 2.0, 3.5, 4.0]),
            (["a", "b", "x", "d"], [1.0, 2.0, 3.0, 4.0]),
            (["c", "b", "a", "d"], [3.0, 2.0, 1.0, 4.0]),
        ] {
            let changed = hashes(ids, net);
            assert_ne!(changed[0], base[0], "{ids:?} {net:?}");
            assert_eq!(changed[1], base[1], "{ids:?} {net:?}");
        }
        // The writer's settings are part of the hash.
        let p = part(&dates, &["a", "b", "c", "d"], &[1.0, 2.0, 3.0, 4.0]);
        let zstd = Months::of(&p).unwrap().hashes(&p, &Meta { zstd: true, ..meta() }).unwrap();
        assert_ne!(zstd[1], base[1]);
    }

    #[test]
    fn a_text_boundary_is_part_of_the_hash() {
        let dates = [Some(day(2024, 1, 5)), Some(day(2024, 1, 6))];
        let hash = |ids: [&str; 2]| {
            let p = part(&dates, &ids, &[1.0, 1.0]);
            Months::of(&p).unwrap().hashes(&p, &meta()).unwrap()
        };
        assert_ne!(hash(["ab", "c"]), hash(["a", "bc"]));
    }
}
