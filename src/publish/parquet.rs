//! Parquet for BI tools, written with arrow-rs so the physical contract is explicit: timestamps
//! `TIMESTAMP(MICROS, UTC)`, dates `DATE`, money `DECIMAL(18,2)`, counts `INT64`, plain strings,
//! Snappy, statistics on, a bloom filter on `customer_id`, and run metadata as key-value pairs.
//! Category columns, and text in runs where the caller says so, are dictionary-encoded from their
//! codes ([`coded`]); everything else goes through arrow-rs's column writers.

use super::coded;
use crate::direct::DirectFile;
use crate::error::{Context, Result};
use crate::frame;
use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowColumnWriter, ArrowRowGroupWriterFactory, ArrowWriterOptions, compute_leaves};
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;
use polars::prelude::DataFrame;
use std::path::Path;
use std::sync::Arc;

/// Version of the output tables' schemas; bumped on any change (changes are additive only).
pub const SCHEMA_VERSION: &str = "1";

pub struct Meta<'a> {
    pub run_id: &'a str,
    pub as_of: &'a str,
    pub pipeline: &'a str,
    pub zstd: bool,
}

/// Rows handed to the writer at a time. The writer encodes as it goes, so a table is converted
/// slice by slice: converted whole, a market's orders (text re-laid as offsets, money widened to
/// 16-byte decimals) were a gigabyte beside the table itself at 10M lines.
const SLICE_ROWS: usize = 1 << 16;

/// Writes `df` to `path`; `money` columns become DECIMAL(18,2). Text columns named in `runs`
/// hold each value in one run of rows (a table sorted by them) and are dictionary-encoded by runs.
pub fn write(df: &DataFrame, path: &Path, money: &[&str], runs: &[&str], meta: &Meta) -> Result<u64> {
    let slice = |offset: usize| bi_types(frame::to_record_batch(&df.slice(offset as i64, SLICE_ROWS))?, money);
    let first = slice(0)?;
    let (file, factory) =
        writer(first.schema(), path, meta)?.into_serialized_writer().ctx(|| format!("starting {}", path.display()))?;
    let mut groups = RowGroups::new(file, factory, first.schema(), runs);
    groups.write(&first).ctx(|| format!("writing {}", path.display()))?;
    for offset in (SLICE_ROWS..df.height()).step_by(SLICE_ROWS) {
        groups.write(&slice(offset)?).ctx(|| format!("writing {}", path.display()))?;
    }
    finish(groups.close().ctx(|| format!("finishing {}", path.display()))?, path)?;
    Ok(df.height() as u64)
}

/// A file's row groups, written column by column as arrow-rs's `ArrowWriter` would (the same
/// row group size), except that category columns and columns in runs are dictionary-encoded
/// from their codes ([`coded`]).
struct RowGroups<W: std::io::Write + Send> {
    file: SerializedFileWriter<W>,
    factory: ArrowRowGroupWriterFactory,
    schema: arrow::datatypes::SchemaRef,
    /// Which columns are coded: categories and text in runs.
    coded: Vec<Option<Coding>>,
    max_rows: usize,
    /// The row group being filled, one writer per column, and its rows so far.
    group: Option<Vec<ColumnWriter>>,
    rows: usize,
}

enum ColumnWriter {
    Arrow(Box<ArrowColumnWriter>),
    Categories(coded::Coded),
    Runs(coded::Coded),
}

#[derive(Clone, Copy)]
enum Coding {
    Categories,
    Runs,
}

impl<W: std::io::Write + Send> RowGroups<W> {
    fn new(
        file: SerializedFileWriter<W>,
        factory: ArrowRowGroupWriterFactory,
        schema: arrow::datatypes::SchemaRef,
        runs: &[&str],
    ) -> Self {
        let max_rows = file.properties().max_row_group_row_count().unwrap_or(usize::MAX).max(1);
        let coded = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(key, value) if **key == DataType::UInt16 && **value == DataType::Utf8 => {
                    Some(Coding::Categories)
                }
                DataType::Utf8View if runs.contains(&f.name().as_str()) => Some(Coding::Runs),
                _ => None,
            })
            .collect();
        RowGroups { file, factory, schema, coded, max_rows, group: None, rows: 0 }
    }

    fn write(&mut self, batch: &RecordBatch) -> parquet::errors::Result<()> {
        let mut at = 0;
        while at < batch.num_rows() {
            let rows = (self.max_rows - self.rows).min(batch.num_rows() - at);
            let part = batch.slice(at, rows);
            if self.group.is_none() {
                let writers = self.factory.create_column_writers(self.file.flushed_row_groups().len())?;
                let props = self.file.properties().clone();
                let columns = writers.into_iter().zip(&self.coded).enumerate().map(|(i, (writer, coding))| {
                    let coder = || coded::Coded::new(self.file.schema_descr().column(i), &props);
                    Ok(match coding {
                        Some(Coding::Categories) => ColumnWriter::Categories(coder()?),
                        Some(Coding::Runs) => ColumnWriter::Runs(coder()?),
                        None => ColumnWriter::Arrow(Box::new(writer)),
                    })
                });
                self.group = Some(columns.collect::<parquet::errors::Result<_>>()?);
            }
            let group = self.group.as_mut().expect("started above");
            for ((column, field), array) in group.iter_mut().zip(self.schema.fields()).zip(part.columns()) {
                match column {
                    ColumnWriter::Categories(coded) => {
                        coded.push(array.as_any().downcast_ref().expect("categories"))?
                    }
                    ColumnWriter::Runs(coded) => coded.push_runs(array.as_any().downcast_ref().expect("text views"))?,
                    ColumnWriter::Arrow(writer) => {
                        for leaf in compute_leaves(field, array)? {
                            writer.write(&leaf)?;
                        }
                    }
                }
            }
            (at, self.rows) = (at + rows, self.rows + rows);
            if self.rows == self.max_rows {
                self.flush()?;
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> parquet::errors::Result<()> {
        let Some(group) = self.group.take() else { return Ok(()) };
        let props = self.file.properties().clone();
        let mut out = self.file.next_row_group()?;
        for column in group {
            match column {
                ColumnWriter::Arrow(writer) => writer.close()?.append_to_row_group(&mut out)?,
                ColumnWriter::Categories(coded) | ColumnWriter::Runs(coded) => {
                    let (bytes, close) = coded.finish(&props)?;
                    out.append_column(&bytes, close)?;
                }
            }
        }
        out.close()?;
        self.rows = 0;
        Ok(())
    }

    fn close(mut self) -> parquet::errors::Result<W> {
        self.flush()?;
        self.file.into_inner()
    }
}

/// A writer of `schema` to a new file at `path` with the contract's settings.
pub fn writer(schema: arrow::datatypes::SchemaRef, path: &Path, meta: &Meta) -> Result<ArrowWriter<DirectFile>> {
    let has_customer = schema.field_with_name(crate::schema::CUSTOMER_ID).is_ok();
    let compression = if meta.zstd { Compression::ZSTD(Default::default()) } else { Compression::SNAPPY };
    let mut props = WriterProperties::builder()
        .set_compression(compression)
        .set_created_by(format!("clv {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("schema_version".into(), SCHEMA_VERSION.to_string()),
            KeyValue::new("run_id".into(), meta.run_id.to_string()),
            KeyValue::new("as_of".into(), meta.as_of.to_string()),
            KeyValue::new("pipeline".into(), meta.pipeline.to_string()),
        ]));
    if has_customer {
        props = props.set_column_bloom_filter_enabled(crate::schema::CUSTOMER_ID.into(), true);
    }
    // Ids are (nearly) unique per row: a dictionary overflows its page and falls back to plain
    // encoding anyway, after the writer spent a tenth of the publish time interning them.
    for id in [crate::schema::CUSTOMER_ID, crate::schema::ORDER_ID] {
        props = props.set_column_dictionary_enabled(id.into(), false);
    }
    // Instants too (one per order): the orders' `ordered_at` wrote 30% faster and 7% smaller plain.
    for field in schema.fields().iter().filter(|f| matches!(f.data_type(), DataType::Timestamp(..))) {
        props = props.set_column_dictionary_enabled(field.name().as_str().into(), false);
    }
    let file = DirectFile::create(path).ctx(|| format!("creating {}", path.display()))?;
    // Readers take the types from the Parquet schema: the Arrow types handed to the writer
    // (string views, dictionaries, 64-bit decimals) are how Polars holds the data, not the contract.
    let options = ArrowWriterOptions::new().with_properties(props.build()).with_skip_arrow_metadata(true);
    ArrowWriter::try_new_with_options(file, schema, options).ctx(|| format!("starting {}", path.display()))
}

/// Makes a written file durable.
pub fn finish(file: DirectFile, path: &Path) -> Result<()> {
    let file = file.finish().ctx(|| format!("writing {}", path.display()))?;
    file.sync_all().ctx(|| format!("syncing {}", path.display()))
}

/// Casts Polars' arrow types where their Parquet types would differ from the BI contract's.
/// Strings pass as Polars holds them: views and dictionaries are both written as plain STRING.
fn bi_types(batch: RecordBatch, money: &[&str]) -> Result<RecordBatch> {
    let mut fields = Vec::new();
    let mut arrays: Vec<ArrayRef> = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let target = match field.data_type() {
            DataType::Float64 if money.contains(&field.name().as_str()) => DataType::Decimal64(18, 2),
            DataType::Timestamp(unit, _) => DataType::Timestamp(*unit, Some("UTC".into())),
            DataType::UInt32 | DataType::Int32 | DataType::UInt64 => DataType::Int64,
            other => other.clone(),
        };
        let target = match target {
            DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Microsecond, tz),
            t => t,
        };
        let array = if array.data_type() == &target {
            array.clone()
        } else if let DataType::Timestamp(TimeUnit::Microsecond, Some(tz)) = &target {
            // Values are UTC microseconds already: label the zone (a cast would need chrono-tz).
            let ts = array
                .as_any()
                .downcast_ref::<arrow::array::TimestampMicrosecondArray>()
                .expect("Polars datetimes are microseconds here");
            Arc::new(ts.clone().with_timezone(tz.clone()))
        } else if let DataType::Decimal64(precision, scale) = target {
            Arc::new(cents(array).with_precision_and_scale(precision, scale).ctx(|| "decimal type")?)
        } else {
            arrow::compute::cast(array, &target).ctx(|| format!("casting {} to {target}", field.name()))?
        };
        fields.push(Field::new(field.name(), target, true));
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ctx(|| "assembling the output batch")
}

/// Money as whole cents, rounded half away from zero; a value beyond DECIMAL(18,2) (or not a
/// number) is null, as arrow's checked decimal cast makes it.
fn cents(array: &ArrayRef) -> arrow::array::Decimal64Array {
    let a = array.as_any().downcast_ref::<arrow::array::Float64Array>().expect("checked Float64");
    let values: Vec<i64> = a.values().iter().map(|&x| round_half_away(x * 100.0)).collect();
    // Beyond 2^53 doubles are whole numbers, so below 1e18 the rounded value is too.
    let fits = |x: f64| (x * 100.0).abs() < 1e18;
    let nulls = match a.values().iter().all(|&x| fits(x)) {
        true => a.nulls().cloned(),
        false => arrow::buffer::NullBuffer::union(a.nulls(), Some(&a.values().iter().map(|&x| fits(x)).collect())),
    };
    arrow::array::Decimal64Array::new(values.into(), nulls)
}

/// `y.round() as i64` without a call into libm (`round` is not inlined on the baseline x86-64
/// target: 0.5% of a run); exact for finite `y` of magnitude below 2^63 (larger ones wrap: money
/// beyond DECIMAL(18,2) is null anyway).
fn round_half_away(y: f64) -> i64 {
    let whole = y as i64;
    let fraction = y - whole as f64;
    whole.wrapping_add((fraction >= 0.5) as i64).wrapping_sub((fraction <= -0.5) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `rows` as one text column (a category column, or text views in `runs`) written in slices
    /// of 700 rows, pages of 400 and row groups of 2,600, by [`RowGroups`] and by arrow-rs's
    /// own writer; asserts that ours reads back as `rows` with the statistics and page bounds of
    /// its rows and of arrow-rs's file, and returns its metadata and bytes.
    fn coded_like_arrow_rs(
        rows: &[Option<&str>],
        runs: bool,
    ) -> (Arc<parquet::file::metadata::ParquetMetaData>, bytes::Bytes) {
        use arrow::array::{DictionaryArray, StringArray, StringViewArray, UInt16Array};
        use parquet::arrow::arrow_reader::{ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
        use parquet::file::metadata::PageIndexPolicy;
        use parquet::file::page_index::column_index::ColumnIndexMetaData;
        let dtype = match runs {
            true => DataType::Utf8View,
            false => DataType::Dictionary(Box::new(DataType::UInt16), Box::new(DataType::Utf8)),
        };
        let schema = Arc::new(Schema::new(vec![Field::new("customer_id", dtype, true)]));
        // A category slice numbers its own values, in reverse order of first appearance.
        let slice = |rows: &[Option<&str>]| {
            let array: ArrayRef = match runs {
                true => Arc::new(rows.iter().copied().collect::<StringViewArray>()),
                false => {
                    let mut local: Vec<&str> = Vec::new();
                    for r in rows.iter().flatten() {
                        if !local.contains(r) {
                            local.insert(0, r);
                        }
                    }
                    let position = |r: &str| local.iter().position(|l| *l == r).unwrap() as u16;
                    let keys: UInt16Array = rows.iter().map(|r| r.map(position)).collect();
                    Arc::new(DictionaryArray::new(keys, Arc::new(StringArray::from(local.clone()))))
                }
            };
            RecordBatch::try_new(schema.clone(), vec![array]).unwrap()
        };
        let options = || {
            let props = WriterProperties::builder()
                .set_data_page_row_count_limit(400)
                .set_write_batch_size(400)
                .set_max_row_group_row_count(Some(2600))
                .set_column_bloom_filter_enabled("customer_id".into(), true)
                .build();
            ArrowWriterOptions::new().with_properties(props).with_skip_arrow_metadata(true)
        };
        let writer = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options()).unwrap();
        let (file, factory) = writer.into_serialized_writer().unwrap();
        let mut groups = RowGroups::new(file, factory, schema.clone(), if runs { &["customer_id"] } else { &[] });
        let mut reference = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), options()).unwrap();
        for part in rows.chunks(700) {
            groups.write(&slice(part)).unwrap();
            reference.write(&slice(part)).unwrap();
        }
        let ours = bytes::Bytes::from(groups.close().unwrap());
        let reference = bytes::Bytes::from(reference.into_inner().unwrap());

        let read = |file: &bytes::Bytes| {
            let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
            let reader = ParquetRecordBatchReaderBuilder::try_new_with_options(file.clone(), options).unwrap();
            let metadata = reader.metadata().clone();
            let mut values: Vec<Option<String>> = Vec::new();
            for batch in reader.build().unwrap() {
                let column = arrow::compute::cast(batch.unwrap().column(0), &DataType::Utf8).unwrap();
                let column = column.as_any().downcast_ref::<StringArray>().unwrap().clone();
                values.extend(column.iter().map(|v| v.map(str::to_string)));
            }
            (metadata, values)
        };
        let expected: Vec<Option<String>> = rows.iter().map(|r| r.map(str::to_string)).collect();
        let (metadata, values) = read(&ours);
        assert_eq!(values, expected);
        let (reference_metadata, reference_values) = read(&reference);
        assert_eq!(reference_values, expected);
        assert_eq!(metadata.num_row_groups(), rows.len().div_ceil(2600));

        // The bounds of some rows, as the statistics hold them.
        let bounds = |rows: &[Option<&str>]| {
            let present = rows.iter().flatten();
            let nulls = rows.iter().filter(|r| r.is_none()).count() as u64;
            (present.clone().min().map(|s| s.as_bytes().to_vec()), present.max().map(|s| s.as_bytes().to_vec()), nulls)
        };
        let mut first = 0usize;
        for g in 0..metadata.num_row_groups() {
            let group = metadata.row_group(g);
            let n = group.num_rows() as usize;
            let stats = group.column(0).statistics().unwrap();
            let bytes = |b: Option<&[u8]>| b.map(<[u8]>::to_vec);
            let got = (bytes(stats.min_bytes_opt()), bytes(stats.max_bytes_opt()), stats.null_count_opt().unwrap());
            assert_eq!(got, bounds(&rows[first..first + n]), "row group {g}");
            let theirs = reference_metadata.row_group(g).column(0).statistics().unwrap();
            assert_eq!(stats.min_bytes_opt(), theirs.min_bytes_opt());
            assert_eq!(stats.max_bytes_opt(), theirs.max_bytes_opt());
            assert_eq!(stats.null_count_opt(), theirs.null_count_opt());

            let page_index = metadata.page_index_for_row_group(g);
            let pages = page_index.offset_index(0).unwrap();
            let Some(ColumnIndexMetaData::BYTE_ARRAY(index)) = page_index.column_index(0) else {
                panic!("a byte array column index")
            };
            let starts: Vec<usize> = pages.page_locations().iter().map(|p| p.first_row_index as usize).collect();
            assert!(starts.len() > 3, "several pages");
            for (p, &start) in starts.iter().enumerate() {
                let end = starts.get(p + 1).copied().unwrap_or(n);
                let (min, max, nulls) = bounds(&rows[first + start..first + end]);
                assert_eq!(index.null_count(p), Some(nulls as i64), "page {p} of row group {g}");
                assert_eq!(index.is_null_page(p), nulls as usize == end - start);
                if !index.is_null_page(p) {
                    assert_eq!((bytes(index.min_value(p)), bytes(index.max_value(p))), (min, max));
                }
            }
            first += n;
        }
        (metadata, ours)
    }

    /// A category column with nulls and a null page, over slices whose dictionaries differ.
    #[test]
    fn category_columns_from_codes_read_back_with_their_statistics() {
        let texts = ["vip", "at risk", "new", "one-time", "lost"];
        let rows: Vec<Option<&str>> = (0..5000usize)
            .map(|i| match i {
                1000..2000 => None,
                _ if i % 7 == 3 => None,
                _ => Some(texts[(i / 300 + i % 3) % texts.len()]),
            })
            .collect();
        coded_like_arrow_rs(&rows, false);
    }

    /// Ids in runs of one to nine rows and nulls between them: ascending for the first row group
    /// (no look-ups), then in no order, with one id whose run comes back. One dictionary entry per
    /// distinct id, and the bloom filter knows every id.
    #[test]
    fn text_in_runs_is_a_dictionary_of_its_runs() {
        use parquet::file::reader::{FileReader, SerializedFileReader};
        let mut ids: Vec<String> =
            (0..900u128).map(|i| format!("{:032x}", i.wrapping_mul(0x9e3779b97f4a7c15))).collect();
        ids[..600].sort();
        let mut rows: Vec<Option<&str>> = Vec::new();
        for (i, id) in ids.iter().enumerate() {
            rows.extend(std::iter::repeat_n(Some(id.as_str()), 1 + i % 9));
            if i % 50 == 0 {
                rows.push(None);
            }
            if i == 700 {
                rows.push(Some(ids[650].as_str()));
            }
        }
        let (metadata, file) = coded_like_arrow_rs(&rows, true);
        let options = parquet::file::serialized_reader::ReadOptionsBuilder::new()
            .with_reader_properties(
                parquet::file::properties::ReaderProperties::builder().set_read_bloom_filter(true).build(),
            )
            .build();
        let reader = SerializedFileReader::new_with_options(file, options).unwrap();
        let mut first = 0;
        for g in 0..metadata.num_row_groups() {
            let n = metadata.row_group(g).num_rows() as usize;
            let column = metadata.row_group(g).column(0);
            assert!(column.dictionary_page_offset().is_some(), "dictionary-encoded");
            let group = reader.get_row_group(g).unwrap();
            let bloom = group.get_column_bloom_filter(0).expect("a bloom filter");
            let distinct: std::collections::BTreeSet<&str> = rows[first..first + n].iter().flatten().copied().collect();
            assert!(distinct.iter().all(|id| bloom.check(id)), "row group {g}");
            let dictionary = group.get_column_page_reader(0).unwrap().get_next_page().unwrap().unwrap();
            assert_eq!(dictionary.num_values() as usize, distinct.len(), "one entry per distinct id");
            first += n;
        }
    }

    #[test]
    fn money_becomes_whole_cents_half_away_from_zero_and_null_beyond_the_type() {
        let values =
            [Some(12.34), Some(0.125), Some(-0.125), Some(-3.0), None, Some(f64::NAN), Some(1e17), Some(9.9e15)];
        let array: ArrayRef = Arc::new(arrow::array::Float64Array::from(values.to_vec()));
        let got: Vec<Option<i64>> = cents(&array).iter().collect();
        assert_eq!(got, [Some(1234), Some(13), Some(-13), Some(-300), None, None, None, Some(990_000_000_000_000_000)]);
    }

    proptest::proptest! {
        #[test]
        fn rounding_matches_the_standard_library(y in -1e18f64..1e18, cents in -1_000_000_000i64..1_000_000_000) {
            proptest::prop_assert_eq!(round_half_away(y), y.round() as i64);
            let half = cents as f64 + 0.5;
            proptest::prop_assert_eq!(round_half_away(half), half.round() as i64);
            let money = cents as f64 / 100.0 * 100.0;
            proptest::prop_assert_eq!(round_half_away(money), money.round() as i64);
        }
    }
}
