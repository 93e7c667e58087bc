//! Parquet for BI tools, written with arrow-rs so the physical contract is explicit: timestamps
//! `TIMESTAMP(MICROS, UTC)`, dates `DATE`, money `DECIMAL(18,2)`, counts `INT64`, plain strings,
//! Snappy, statistics on, a bloom filter on `customer_id`, and run metadata as key-value pairs.

use crate::direct::DirectFile;
use crate::error::{Context, Result};
use crate::frame;
use arrow::array::{Array, ArrayRef};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::Compression;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
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

/// Writes `df` to `path`; `money` columns become DECIMAL(18,2).
pub fn write(df: &DataFrame, path: &Path, money: &[&str], meta: &Meta) -> Result<u64> {
    let slice = |offset: usize| bi_types(frame::to_record_batch(&df.slice(offset as i64, SLICE_ROWS))?, money);
    let first = slice(0)?;
    let mut writer = writer(first.schema(), path, meta)?;
    writer.write(&first).ctx(|| format!("writing {}", path.display()))?;
    for offset in (SLICE_ROWS..df.height()).step_by(SLICE_ROWS) {
        writer.write(&slice(offset)?).ctx(|| format!("writing {}", path.display()))?;
    }
    finish(writer.into_inner().ctx(|| format!("finishing {}", path.display()))?, path)?;
    Ok(df.height() as u64)
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
