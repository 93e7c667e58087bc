//! How a cache entry's table is laid out in Parquet. Polars' writer tries a dictionary for every
//! text, integer and time column, hashing each value (a cardinality estimate, then the cast): at
//! 10M order lines writing the cache took a fifth of a full run's CPU, and those hashes were about
//! half of its encoding. Here each column's encoding follows from its type alone: text as a
//! dictionary of its runs (an order's lines repeat its id and customer key, and comparing a value
//! with the one before is all it costs), integers and times as deltas (line numbers and
//! timestamps climb within a file), the rest plain; LZ4, no statistics (entries are read whole).
//! The footer holds no Arrow schema: the reader takes every type back from Parquet's own (the
//! round-trip test holds them to it). This file is the one user of Polars' Parquet internals.

use crate::error::{Error, Result};
use polars::prelude::*;
use polars_arrow::array::{Array, DictionaryArray, PrimitiveArray, Utf8ViewArray, View};
use polars_arrow::datatypes::{ArrowDataType, IntegerType};
use polars_parquet::write::{
    CompressionOptions, Encoding, FileWriter, StatisticsOptions, Version, WriteOptions, row_group_iter,
};

/// Rows per row group (Polars' default).
const ROW_GROUP: usize = 1 << 18;

/// `df` as the bytes of a Parquet file.
pub fn encode(df: &DataFrame) -> Result<Vec<u8>> {
    let fail = |source: PolarsError| Error::Polars { context: "caching a parsed file".into(), source };
    let mut df = df.clone();
    if df.should_rechunk() {
        df.align_chunks_par();
    }
    let options = WriteOptions {
        statistics: StatisticsOptions::empty(),
        version: Version::V1,
        compression: CompressionOptions::Lz4Raw,
        data_page_size: None,
    };
    let mut schema = df.schema().to_arrow(CompatLevel::newest());
    let encodings: Vec<Vec<Encoding>> = schema.iter_values().map(|f| vec![encoding(f.dtype())]).collect();
    // Text goes in as dictionaries: Parquet's type is the same (a UTF-8 byte array).
    for (_, field) in schema.iter_mut() {
        if field.dtype == ArrowDataType::Utf8View {
            field.dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(ArrowDataType::Utf8View), false);
        }
    }
    let mut bytes = Vec::new();
    let mut writer = FileWriter::try_new(&mut bytes, schema.clone(), options).map_err(fail)?;
    let fields = writer.parquet_schema().fields().to_vec();
    let schema = std::sync::Arc::new(schema);
    for batch in df.iter_chunks(CompatLevel::newest(), false) {
        for offset in (0..batch.len()).step_by(ROW_GROUP) {
            let rows = ROW_GROUP.min(batch.len() - offset);
            let arrays: Vec<Box<dyn Array>> =
                batch.arrays().iter().map(|a| as_written(a.sliced(offset, rows))).collect();
            let group = polars_arrow::record_batch::RecordBatchT::new(rows, schema.clone(), arrays);
            let group = row_group_iter(group, encodings.clone().into(), fields.clone(), options);
            writer.write(rows as u64, group).map_err(fail)?;
        }
    }
    writer.end(Some(Vec::new())).map_err(fail)?;
    Ok(bytes)
}

fn encoding(dtype: &ArrowDataType) -> Encoding {
    use ArrowDataType as T;
    match dtype {
        T::Utf8View => Encoding::RleDictionary,
        T::Int32 | T::Int64 | T::UInt32 | T::UInt64 | T::Date32 | T::Timestamp(..) => Encoding::DeltaBinaryPacked,
        _ => Encoding::Plain,
    }
}

/// Text as a dictionary of its runs of equal values (values may repeat in a dictionary: a key
/// per run needs no hashing); other arrays as they are.
fn as_written(array: Box<dyn Array>) -> Box<dyn Array> {
    let Some(text) = array.as_any().downcast_ref::<Utf8ViewArray>() else { return array };
    let mut keys: Vec<u32> = Vec::with_capacity(text.len());
    let mut starts: Vec<u32> = Vec::new();
    let mut previous = None;
    for (row, value) in text.iter().enumerate() {
        if value.is_some() && !crate::frame::same_text(value, previous) {
            starts.push(row as u32);
        }
        previous = value;
        // A null row's key is never written.
        keys.push(starts.len().saturating_sub(1) as u32);
    }
    let views: Vec<View> = starts.iter().map(|&row| text.views()[row as usize]).collect();
    // SAFETY: the views are the array's own, over the same buffers.
    let values = unsafe {
        Utf8ViewArray::new_unchecked_unknown_md(
            text.dtype().clone(),
            views.into(),
            text.data_buffers().clone(),
            None,
            Some(text.total_buffer_len()),
        )
    };
    let keys = PrimitiveArray::<u32>::from_vec(keys).with_validity(text.validity().cloned());
    let dtype = ArrowDataType::Dictionary(IntegerType::UInt32, Box::new(text.dtype().clone()), false);
    Box::new(DictionaryArray::try_new(dtype, keys, values.boxed()).expect("keys index the runs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(df: &DataFrame) -> DataFrame {
        ParquetReader::new(std::io::Cursor::new(encode(df).unwrap())).finish().unwrap()
    }

    /// Every type a cache entry holds comes back with its type and values: text with runs, nulls
    /// (leading, inside runs, all of a column) and long values; numbers, times, flags.
    #[test]
    fn tables_come_back_as_they_went_in() {
        let long = "a value longer than twelve bytes";
        let df = df!(
            "text" => [None, Some("A-1"), Some("A-1"), None, Some("A-1"), Some(long), Some(long), Some("B"), Some("A-1")],
            "none" => [None::<&str>; 9],
            "line" => [2u32, 3, 4, 6, 7, 9, 10, 11, 12],
            "line_no" => [Some(1i64), Some(2), None, Some(1), Some(-5), Some(i64::MAX), Some(i64::MIN), Some(0), Some(3)],
            "code" => [Some(0u16), Some(3), Some(3), None, Some(65535), Some(1), Some(1), Some(2), Some(0)],
            "amount" => [Some(1.5f64), None, Some(-0.0), Some(f64::NAN), Some(1e300), Some(2.25), Some(0.1), Some(3.0), Some(4.0)],
            "flag" => [Some(true), Some(false), None, Some(true), Some(true), Some(false), Some(false), Some(true), Some(true)],
        )
        .unwrap()
        .lazy()
        .with_columns([
            col("line_no").cast(DataType::Datetime(TimeUnit::Microseconds, None)).alias("at"),
            col("line").cast(DataType::Date).alias("day"),
        ])
        .collect()
        .unwrap();
        let back = round_trip(&df);
        assert_eq!(back.schema(), df.schema());
        assert!(back.equals_missing(&df), "{back}\n{df}");
        // Stacked tables (a chunk per part) and an empty one.
        let mut stacked = df.clone();
        stacked.vstack_mut(&df.slice(2, 5)).unwrap();
        assert!(round_trip(&stacked).equals_missing(&stacked));
        let empty = df.clear();
        let back = round_trip(&empty);
        assert_eq!((back.height(), back.schema()), (0, empty.schema()));
    }

    /// More rows than a row group, with text runs crossing the boundary.
    #[test]
    fn tables_longer_than_a_row_group_come_back_whole() {
        let n = ROW_GROUP + ROW_GROUP / 2;
        let ids: Vec<String> = (0..n).map(|i| format!("order-{:09}", i / 3)).collect();
        let df = df!("order_id" => ids, "line" => (0..n as u32).collect::<Vec<_>>()).unwrap();
        assert!(round_trip(&df).equals_missing(&df));
    }
}
