//! Text columns written as Parquet dictionary chunks straight from codes. arrow-rs's writer takes
//! a category column row by row: it hashes every row's text into a dictionary of its own and
//! compares it with the page's bounds, a quarter of an orders partition's encoding for four
//! columns of a handful of values each; an orders partition's customer ids, one run of lines per
//! customer, went through the bloom filter, the bounds and Snappy row by row (bench/RESULTS.md,
//! thirty-third round). Here a row costs its code and each distinct value is looked up once per
//! slice (categories) or run (ids). The chunk is what arrow-rs writes for a dictionary-encoded
//! column: a PLAIN dictionary page, RLE_DICTIONARY data pages (v1) of the properties' row count,
//! each encoded as it fills, statistics, column and offset indexes, and a bloom filter when the
//! column has one configured. Unlike arrow-rs's, the dictionary has no page limit past which
//! pages turn PLAIN: only text whose values repeat is coded (categories, ids in runs, the flat
//! tables' partition key), and an orders row group's few MiB of customer ids are what make its
//! pages small. Integer columns stay with arrow-rs: coding them cost more than it saved (RESULTS,
//! thirty-third round).

use arrow::array::{Array, DictionaryArray, StringArray, StringViewArray};
use arrow::datatypes::UInt16Type;
use bytes::Bytes;
use parquet::basic::{BoundaryOrder, Compression, Encoding, EncodingMask, PageType, Type};
use parquet::bloom_filter::Sbbf;
use parquet::column::page::{CompressedPage, Page, PageWriter};
use parquet::column::writer::ColumnCloseResult;
use parquet::compression::{Codec, CodecOptionsBuilder, create_codec};
use parquet::data_type::ByteArray;
use parquet::encodings::levels::LevelEncoder;
use parquet::encodings::rle::RleEncoder;
use parquet::errors::Result;
use parquet::file::metadata::{ColumnChunkMetaData, ColumnIndexBuilder, OffsetIndexBuilder, PageEncodingStats};
use parquet::file::properties::WriterProperties;
use parquet::file::statistics::{Statistics, ValueStatistics};
use parquet::file::writer::{SerializedPageWriter, TrackedWrite};
use parquet::schema::types::ColumnDescPtr;

/// One row group's rows of a text column, as codes into the values seen so far.
pub struct Coded {
    descr: ColumnDescPtr,
    compression: Compression,
    codec: Option<Box<dyn Codec>>,
    page_rows: usize,
    /// The row group's dictionary, in order of first appearance, and each value's code once
    /// needed: values in runs that ascend are each new, and need no look-up.
    values: Vec<Vec<u8>>,
    codes: Option<foldhash::HashMap<Vec<u8>, u32>>,
    /// The code of the last row in runs that was not null (a run may go on in the next slice).
    previous: Option<u32>,
    /// The rows of the page being filled (`None` for a null), and the pages before it.
    page: Vec<Option<u32>>,
    pages: Vec<DataPage>,
    /// For each value, the last page that held it: a page's bounds compare each value once.
    seen: Vec<u32>,
}

/// An encoded data page, and what the indexes say about it.
struct DataPage {
    buf: Bytes,
    size: usize,
    rows: usize,
    nulls: i64,
    /// The codes of its least and greatest text; `None` when every row is null.
    bounds: Option<(u32, u32)>,
}

impl Coded {
    /// A coder for one row group of `descr`'s column, with the properties' compression and page
    /// size.
    pub fn new(descr: ColumnDescPtr, props: &WriterProperties) -> Result<Self> {
        let compression = props.compression(descr.path());
        Ok(Coded {
            codec: create_codec(compression, &CodecOptionsBuilder::default().build())?,
            compression,
            descr,
            page_rows: props.data_page_row_count_limit().max(1),
            values: Vec::new(),
            codes: None,
            previous: None,
            page: Vec::new(),
            pages: Vec::new(),
            seen: Vec::new(),
        })
    }

    fn code(&mut self, text: &[u8]) -> u32 {
        let values = &self.values;
        let codes = self.codes.get_or_insert_with(|| values.iter().cloned().zip(0..).collect());
        if let Some(&code) = codes.get(text) {
            return code;
        }
        codes.insert(text.to_vec(), values.len() as u32);
        self.add(text)
    }

    fn add(&mut self, text: &[u8]) -> u32 {
        self.values.push(text.to_vec());
        self.seen.push(u32::MAX);
        self.values.len() as u32 - 1
    }

    fn push_row(&mut self, code: Option<u32>) -> Result<()> {
        self.page.push(code);
        if self.page.len() == self.page_rows {
            self.end_page()?;
        }
        Ok(())
    }

    /// Appends a slice of a category column: each of its dictionary's values is looked up once.
    pub fn push(&mut self, array: &DictionaryArray<UInt16Type>) -> Result<()> {
        let texts = array.values().as_any().downcast_ref::<StringArray>().expect("category values are text");
        let mut local: Vec<Option<u32>> = vec![None; texts.len()];
        for key in array.keys().iter() {
            let code = key.map(|k| match local[k as usize] {
                Some(code) => code,
                None => *local[k as usize].insert(self.code(texts.value(k as usize).as_bytes())),
            });
            self.push_row(code)?;
        }
        Ok(())
    }

    /// Appends `rows` rows of one value.
    pub fn push_repeated(&mut self, text: &[u8], rows: usize) -> Result<()> {
        let code = self.code(text);
        for _ in 0..rows {
            self.push_row(Some(code))?;
        }
        Ok(())
    }

    /// Appends a slice of a text column whose equal values come in runs (an orders partition's
    /// customer ids): a row equal to the row before (the same view, or the same text) takes its
    /// code; a run whose text is greater than every one before is a new value; any other run's
    /// text is looked up.
    pub fn push_runs(&mut self, array: &StringViewArray) -> Result<()> {
        let views = array.views();
        let mut last: Option<usize> = None;
        for i in 0..array.len() {
            if array.is_null(i) {
                self.push_row(None)?;
                continue;
            }
            let text = array.value(i).as_bytes();
            let code = match self.previous {
                Some(code) if last.is_some_and(|j| views[j] == views[i]) || self.values[code as usize] == text => code,
                _ if self.codes.is_none() && self.values.last().is_none_or(|v| v.as_slice() < text) => self.add(text),
                _ => self.code(text),
            };
            (last, self.previous) = (Some(i), Some(code));
            self.push_row(Some(code))?;
        }
        Ok(())
    }

    /// Encodes the rows of the page being filled. Each page states its indices' bit width: the
    /// dictionary may still grow.
    fn end_page(&mut self) -> Result<()> {
        let rows = std::mem::replace(&mut self.page, Vec::with_capacity(self.page_rows));
        let page = self.pages.len() as u32;
        let bit_width = bit_width(self.values.len().saturating_sub(1) as u64);
        let mut indices = RleEncoder::new_from_buf(bit_width, vec![bit_width]);
        let mut bounds: Option<(u32, u32)> = None;
        let values = &self.values;
        let text = |code: u32| values[code as usize].as_slice();
        for &code in rows.iter().flatten() {
            indices.put(code as u64);
            if std::mem::replace(&mut self.seen[code as usize], page) != page {
                bounds = Some(widen(bounds, code, code, &text));
            }
        }
        let nulls = rows.iter().filter(|r| r.is_none()).count() as i64;
        let mut body = match self.descr.max_def_level() {
            0 => Vec::new(),
            max => {
                let mut levels = LevelEncoder::v1_streaming(max);
                match nulls {
                    0 => levels.put_n_with_observer(1, rows.len(), |_, _| {}),
                    _ => {
                        let defined: Vec<i16> = rows.iter().map(|r| r.is_some() as i16).collect();
                        levels.put_with_observer(&defined, |_, _| {});
                    }
                }
                levels.consume()
            }
        };
        body.extend_from_slice(&indices.consume());
        let (buf, size) = self.compress(body)?;
        self.pages.push(DataPage { buf, size, rows: rows.len(), nulls, bounds });
        Ok(())
    }

    fn compress(&mut self, raw: Vec<u8>) -> Result<(Bytes, usize)> {
        let size = raw.len();
        Ok(match self.codec.as_mut() {
            Some(codec) => {
                let mut out = Vec::new();
                codec.compress(&raw, &mut out)?;
                (Bytes::from(out), size)
            }
            None => (Bytes::from(raw), size),
        })
    }

    /// The column chunk's bytes (offsets from 0) and what the row group records about it.
    pub fn finish(mut self, props: &WriterProperties) -> Result<(Bytes, ColumnCloseResult)> {
        if !self.page.is_empty() {
            self.end_page()?;
        }
        let mut sink = TrackedWrite::new(Vec::new());
        let mut writer = SerializedPageWriter::new(&mut sink);
        let mut dictionary = Vec::with_capacity(self.values.iter().map(|v| v.len() + 4).sum());
        for v in &self.values {
            dictionary.extend_from_slice(&(v.len() as u32).to_le_bytes());
            dictionary.extend_from_slice(v);
        }
        let (buf, size) = self.compress(dictionary)?;
        let num_values = self.values.len() as u32;
        let page = Page::DictionaryPage { buf, num_values, encoding: Encoding::PLAIN, is_sorted: false };
        let dictionary = writer.write_page(CompressedPage::new(page, size))?;

        let text = |code: u32| self.values[code as usize].as_slice();
        let mut column_index = ColumnIndexBuilder::new(Type::BYTE_ARRAY);
        let mut offset_index = OffsetIndexBuilder::new();
        let (mut ascending, mut descending) = (true, true);
        // The codes of the least and greatest text of the page before, and of the chunk.
        let mut previous: Option<(u32, u32)> = None;
        let mut bounds: Option<(u32, u32)> = None;
        let (mut rows, mut nulls, mut first_data) = (0u64, 0u64, None);
        let (mut compressed, mut uncompressed) = (dictionary.compressed_size, dictionary.uncompressed_size);
        for page in &self.pages {
            let data = Page::DataPage {
                buf: page.buf.clone(),
                num_values: page.rows as u32,
                encoding: Encoding::RLE_DICTIONARY,
                def_level_encoding: Encoding::RLE,
                rep_level_encoding: Encoding::RLE,
                statistics: None,
            };
            let spec = writer.write_page(CompressedPage::new(data, page.size))?;
            offset_index.append_row_count(page.rows as i64);
            offset_index.append_offset_and_size(spec.offset as i64, spec.compressed_size as i32);
            (compressed, uncompressed) = (compressed + spec.compressed_size, uncompressed + spec.uncompressed_size);
            first_data.get_or_insert(spec.offset);
            (rows, nulls) = (rows + page.rows as u64, nulls + page.nulls as u64);
            let Some((low, high)) = page.bounds else {
                column_index.append(true, Vec::new(), Vec::new(), page.nulls, None);
                continue;
            };
            column_index.append(false, text(low).to_vec(), text(high).to_vec(), page.nulls, None);
            if let Some((l, h)) = previous {
                ascending &= text(l) <= text(low) && text(h) <= text(high);
                descending &= text(l) >= text(low) && text(h) >= text(high);
            }
            previous = Some((low, high));
            bounds = Some(widen(bounds, low, high, &text));
        }
        writer.close()?;
        column_index.set_boundary_order(match (ascending, descending) {
            (true, _) => BoundaryOrder::ASCENDING,
            (false, true) => BoundaryOrder::DESCENDING,
            (false, false) => BoundaryOrder::UNORDERED,
        });

        let bound = |code: u32| ByteArray::from(text(code).to_vec());
        let statistics =
            ValueStatistics::new(bounds.map(|b| bound(b.0)), bounds.map(|b| bound(b.1)), None, Some(nulls), false)
                .with_backwards_compatible_min_max(self.descr.sort_order().is_signed());
        let encodings = [Encoding::PLAIN, Encoding::RLE, Encoding::RLE_DICTIONARY];
        let stats = |page_type, encoding, count| PageEncodingStats { page_type, encoding, count };
        let metadata = ColumnChunkMetaData::builder(self.descr.clone())
            .set_compression(self.compression)
            .set_encodings_mask(EncodingMask::new_from_encodings(encodings.iter()))
            .set_page_encoding_stats(vec![
                stats(PageType::DICTIONARY_PAGE, Encoding::PLAIN, 1),
                stats(PageType::DATA_PAGE, Encoding::RLE_DICTIONARY, self.pages.len() as i32),
            ])
            .set_total_compressed_size(compressed as i64)
            .set_total_uncompressed_size(uncompressed as i64)
            .set_num_values(rows as i64)
            .set_data_page_offset(first_data.unwrap_or(dictionary.offset) as i64)
            .set_dictionary_page_offset(Some(dictionary.offset as i64))
            .set_statistics(Statistics::ByteArray(statistics))
            .build()?;
        let bloom_filter = match props.bloom_filter_properties(self.descr.path()) {
            Some(bloom) => {
                let mut filter = Sbbf::new_with_ndv_fpp(bloom.ndv(), bloom.fpp())?;
                for v in &self.values {
                    filter.insert(v.as_slice());
                }
                filter.fold_to_target_fpp(bloom.fpp());
                Some(filter)
            }
            None => None,
        };
        let bytes_written = sink.bytes_written() as u64;
        let bytes = Bytes::from(sink.into_inner()?);
        let column_index = match column_index.valid() {
            true => Some(column_index.build()?),
            false => None,
        };
        let close = ColumnCloseResult {
            bytes_written,
            rows_written: rows,
            metadata,
            bloom_filter,
            column_index,
            offset_index: Some(offset_index.build()),
        };
        Ok((bytes, close))
    }
}

/// `bounds` (the codes of the least and greatest text so far) widened to take in `low` and `high`.
fn widen<'a>(bounds: Option<(u32, u32)>, low: u32, high: u32, text: &impl Fn(u32) -> &'a [u8]) -> (u32, u32) {
    match bounds {
        None => (low, high),
        Some((l, h)) => (if text(low) < text(l) { low } else { l }, if text(high) > text(h) { high } else { h }),
    }
}

/// Bits that hold every value up to `max` (0 for a dictionary of one value).
fn bit_width(max: u64) -> u8 {
    64 - max.leading_zeros() as u8
}
