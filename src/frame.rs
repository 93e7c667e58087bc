//! The thin wrapper around Polars' construction, UDF and conversion API. Polars changes these
//! between minor versions; keeping them here means an upgrade touches this file and the stages'
//! lazy expressions, nothing else. Also the zero-copy hand-off to arrow-rs (Arrow C Data Interface).

use crate::error::{Context, Result};
use polars::prelude::*;

pub fn u32_column(name: &str, values: Vec<u32>) -> Column {
    UInt32Chunked::from_vec(name.into(), values).into_column()
}

pub fn frame(columns: Vec<Column>) -> Result<DataFrame> {
    DataFrame::new_infer_height(columns).ctx(|| "assembling a table")
}

/// Applies `f` to every non-null string of `e`, collecting into the column type `C` (null where
/// `f` says None): the one way this crate runs plain Rust parsing inside a Polars plan.
fn map_str<T, C>(e: Expr, dtype: DataType, f: impl Fn(&str) -> Option<T> + Send + Sync + 'static) -> Expr
where
    T: Clone,
    C: FromIterator<Option<T>> + NamedFrom + IntoColumn,
{
    e.map(
        move |c: Column| {
            let out: C = map_values(c.str()?, &f).into_iter().collect();
            Ok(out.named(c.name().clone()).into_column())
        },
        move |_, field| Ok(Field::new(field.name().clone(), dtype.clone())),
    )
}

/// `f` of every value, computed once per distinct value while values repeat (statuses, countries,
/// e-mails, customer keys: most columns a loader parses); a column whose first values are mostly
/// distinct (timestamps, order ids) is mapped straight, without the hash table.
fn map_values<T: Clone>(values: &StringChunked, f: &impl Fn(&str) -> Option<T>) -> Vec<Option<T>> {
    const PROBE: usize = 4096;
    let mut memo: PlHashMap<&str, Option<T>> = PlHashMap::new();
    let mut memoize = true;
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        if memoize && i == PROBE && memo.len() > PROBE / 2 {
            memoize = false;
            memo = PlHashMap::new();
        }
        out.push(match v {
            None => None,
            Some(v) if memoize => memo.entry(v).or_insert_with(|| f(v)).clone(),
            Some(v) => f(v),
        });
    }
    out
}

pub fn str_to_f64(e: Expr, f: impl Fn(&str) -> Option<f64> + Send + Sync + 'static) -> Expr {
    map_str::<f64, Float64Chunked>(e, DataType::Float64, f)
}

/// A timestamp in microseconds since the epoch (UTC).
pub fn str_to_datetime(e: Expr, f: impl Fn(&str) -> Option<i64> + Send + Sync + 'static) -> Expr {
    map_str::<i64, Int64Chunked>(e, DataType::Int64, f).cast(datetime_type())
}

pub fn str_to_str(e: Expr, f: impl Fn(&str) -> Option<String> + Send + Sync + 'static) -> Expr {
    map_str::<String, StringChunked>(e, DataType::String, f)
}

/// Timestamps are kept as naive microseconds meaning UTC; the Parquet writer labels them UTC.
pub fn datetime_type() -> DataType {
    DataType::Datetime(TimeUnit::Microseconds, None)
}

pub fn null_str() -> Expr {
    lit(NULL).cast(DataType::String)
}

pub fn null_f64() -> Expr {
    lit(NULL).cast(DataType::Float64)
}

pub fn collect(lf: LazyFrame, what: &str) -> Result<DataFrame> {
    let started = std::time::Instant::now();
    let df = lf.collect().ctx(|| format!("computing {what}"))?;
    tracing::debug!(ms = started.elapsed().as_millis() as u64, rows = df.height(), "computed {what}");
    Ok(df)
}

/// [`collect`] for a row-wise plan over one export file's fields in memory: the optimizer's
/// passes (pushing projections, predicates and slices down, clustering columns) have nothing to
/// gain there and cost per plan, that is per export file (~6% of loading daily WooCommerce
/// exports). Types are still coerced and checked, and repeated subexpressions computed once.
pub fn collect_rowwise(lf: LazyFrame, what: &str) -> Result<DataFrame> {
    collect(lf.with_optimizations(OptFlags::schema_only() | OptFlags::COMM_SUBEXPR_ELIM), what)
}

/// `plan` over `df` in row spans side by side, the results stacked in order. For row-wise plans
/// (no group, window or sort) that Polars runs on one thread: an expression over a UDF is one
/// call over the whole column.
pub fn collect_in_parts(df: DataFrame, plan: impl Fn(LazyFrame) -> LazyFrame + Sync, what: &str) -> Result<DataFrame> {
    let spans = spans(df.height(), threads());
    if spans.len() < 2 {
        return collect(plan(df.lazy()), what);
    }
    let started = std::time::Instant::now();
    let parts = on_threads(&spans, |&(offset, len)| {
        plan(df.slice(offset as i64, len).lazy()).collect().ctx(|| format!("computing {what}"))
    });
    std::mem::drop(df);
    let mut parts = parts.into_iter();
    let mut all = parts.next().expect("two spans or more")?;
    for part in parts {
        all.vstack_mut_owned(part?).ctx(|| format!("stacking {what}"))?;
    }
    tracing::debug!(ms = started.elapsed().as_millis() as u64, rows = all.height(), "computed {what}");
    Ok(all)
}

/// A string column by name (an error naming it when absent or not text).
pub fn str_column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a StringChunked> {
    df.column(name).ctx(|| format!("column {name}"))?.str().ctx(|| format!("column {name} as text"))
}

/// A text column read by row: Polars' `get` finds the row's chunk on every call.
pub struct Texts<'a>(&'a polars_arrow::array::Utf8ViewArray);

/// The text columns `names` of `df`, each in one chunk, for [`Texts`].
pub fn text_columns(df: &DataFrame, names: &[&str]) -> Result<Vec<StringChunked>> {
    names.iter().map(|n| Ok(str_column(df, n)?.rechunk().into_owned())).collect()
}

impl<'a> Texts<'a> {
    /// `column` must be in one chunk (see [`text_columns`]).
    pub fn of(column: &'a StringChunked) -> Self {
        Texts(column.downcast_as_array())
    }

    #[inline]
    pub fn get(&self, row: u32) -> Option<&'a str> {
        self.0.get(row as usize)
    }
}

/// The type of the orders table's few-valued text columns (source, country, market, currency,
/// status): two bytes a line instead of a 16-byte string view, five times over. One set of
/// categories for all of them, so that tables of different sources concatenate.
pub fn category_type() -> DataType {
    DataType::from_categories(Categories::new("clv".into(), "clv".into(), CategoricalPhysical::U16))
}

/// A [`category_type`] column whose row `i` holds `values[index[i]]`: each value is looked up
/// among the categories once, where a cast from text hashed every row's string.
pub fn categories_of(name: &str, values: &[&str], index: impl Iterator<Item = usize>) -> Result<Column> {
    let (dtype, codes) = category_codes(values)?;
    let rows = UInt16Chunked::from_iter_values(name.into(), index.map(|i| codes[i]));
    Ok(Categorical16Chunked::from_cats_and_dtype(rows, dtype).into_series().into_column())
}

/// Of each category column stored as codes: its name and its categories by code.
pub type StoredCategories = Vec<(String, Vec<String>)>;

/// Each [`category_type`] column of `df` as plain integer codes, numbered from 0 in order of first
/// appearance, with each column's categories by code: for storage. Polars reads a categorical
/// column of a Parquet file by hashing every row's text into the categories (a twentieth of a
/// rerun's CPU); integer codes read as integers, and [`codes_to_categories`] looks each category
/// up once.
pub fn categories_to_codes(mut df: DataFrame) -> Result<(DataFrame, StoredCategories)> {
    let mut categories = Vec::new();
    let names: Vec<String> = df
        .columns()
        .iter()
        .filter(|c| matches!(c.dtype(), DataType::Categorical(..)))
        .map(|c| c.name().to_string())
        .collect();
    for name in names {
        let c = df.column(&name).ctx(|| format!("column {name}"))?.cat16().ctx(|| format!("{name} as categories"))?;
        let (codes, texts) = local_codes(c);
        df.with_column(codes.with_name(name.as_str().into()).into_column()).ctx(|| format!("{name} as codes"))?;
        categories.push((name, texts));
    }
    Ok((df, categories))
}

/// A [`category_type`] column as codes numbered from 0 in order of first appearance (nulls stay
/// null), and its categories by those codes.
fn local_codes(c: &Categorical16Chunked) -> (UInt16Chunked, Vec<String>) {
    let mapping = c.get_mapping();
    // Sized by the categories there are, not by every possible code: the orders partitions
    // convert their tables slice by slice.
    let mut local = vec![u16::MAX; mapping.num_cats_upper_bound().min(1 << 16)];
    let mut texts: Vec<String> = Vec::new();
    for code in c.physical().iter().flatten() {
        let code = code as usize;
        if code >= local.len() {
            local.resize(code + 1, u16::MAX);
        }
        if local[code] == u16::MAX {
            local[code] = texts.len() as u16;
            texts.push(mapping.cat_to_str(code as u32).unwrap_or_default().to_string());
        }
    }
    // A null row's physical code is arbitrary: it may map to any code (the row stays null).
    (c.physical().apply_values(|code| local.get(code as usize).copied().unwrap_or(0)), texts)
}

/// The columns that [`categories_to_codes`] made codes, as [`category_type`] columns again.
pub fn codes_to_categories(mut df: DataFrame, categories: &[(String, Vec<String>)]) -> Result<DataFrame> {
    for (name, texts) in categories {
        let (dtype, global) = category_codes(texts)?;
        let codes = df.column(name).ctx(|| format!("column {name}"))?.u16().ctx(|| format!("{name} as codes"))?;
        if codes.max().is_some_and(|m| m as usize >= global.len()) {
            return Err(crate::error::Error::Polars {
                context: format!("reading {name}"),
                source: polars_err!(ComputeError: "a code beyond the {} categories", global.len()),
            });
        }
        // Null rows hold any code: only valid ones were checked above.
        let codes = codes.apply_values(|code| global.get(code as usize).copied().unwrap_or_default());
        let values = Categorical16Chunked::from_cats_and_dtype(codes, dtype);
        df.with_column(values.into_series().with_name(name.as_str().into()).into_column())
            .ctx(|| format!("adding {name}"))?;
    }
    Ok(df)
}

/// [`category_type`] and the code of each of `values` among its categories. One dtype for the
/// lookup and the column made with it: the categories live only while something holds them.
fn category_codes(values: &[impl AsRef<str>]) -> Result<(DataType, Vec<u16>)> {
    let dtype = category_type();
    let DataType::Categorical(_, mapping) = &dtype else { unreachable!("category_type is categorical") };
    let codes = values
        .iter()
        .map(|v| Ok(mapping.insert_cat(v.as_ref()).ctx(|| format!("{} as a category", v.as_ref()))? as u16))
        .collect::<Result<_>>()?;
    Ok((dtype, codes))
}

/// `e` as a [`category_type`] column. For literals; text columns go through [`text_category`].
pub fn category(e: Expr) -> Expr {
    e.cast(category_type())
}

/// `e`, a text column, as a [`category_type`] column. A cast hashes every row's text into the
/// categories (the loaders' four such columns were 1.2% of a full run); here a row equal to the
/// one before takes its code, other rows find theirs among the column's own values, and each of
/// those is looked up among the categories once.
pub fn text_category(e: Expr) -> Expr {
    e.map(
        |c: Column| {
            let mut local: PlHashMap<&str, u32> = PlHashMap::new();
            let mut values: Vec<&str> = Vec::new();
            let mut previous: Option<(&str, u32)> = None;
            let text = c.str()?;
            let rows: Vec<Option<u32>> = text
                .iter()
                .map(|v| {
                    let v = v?;
                    Some(match previous {
                        Some((p, index)) if p == v => index,
                        _ => {
                            let index = *local.entry(v).or_insert_with(|| {
                                values.push(v);
                                values.len() as u32 - 1
                            });
                            previous = Some((v, index));
                            index
                        }
                    })
                })
                .collect();
            let (dtype, codes) = category_codes(&values).map_err(|e| polars_err!(ComputeError: "{e}"))?;
            let rows: UInt16Chunked = rows.into_iter().map(|r| r.map(|i| codes[i as usize])).collect();
            let rows = rows.with_name(c.name().clone());
            Ok(Categorical16Chunked::from_cats_and_dtype(rows, dtype).into_series().into_column())
        },
        |_, field| Ok(Field::new(field.name().clone(), category_type())),
    )
}

/// Adds `name`: each row's first value of the [`category_type`] columns `a` and `b`, through
/// `f`, as categories; returns how many rows had a value that `f` maps to none. `f` runs once per
/// distinct value: rows go through a table indexed by category code, with no text compared,
/// hashed or copied per row.
pub fn put_first_category_mapped(
    df: &mut DataFrame,
    name: &str,
    [a, b]: [&str; 2],
    f: impl Fn(&str) -> Option<&'static str>,
) -> Result<usize> {
    let categories = |c: &str| df.column(c).ctx(|| format!("column {c}"))?.cat16().ctx(|| format!("{c} as categories"));
    let (a, b) = (categories(a)?, categories(b)?);
    let mapping = a.get_mapping().clone();
    if !Arc::ptr_eq(&mapping, b.get_mapping()) {
        return Err(crate::error::Error::Polars {
            context: format!("computing {name}"),
            source: polars_err!(ComputeError: "the columns do not share their categories"),
        });
    }
    let mut table: Vec<Option<Option<u16>>> = vec![None; 1 << 16];
    let mut to = |code: u16| -> Result<Option<u16>> {
        if let Some(known) = table[code as usize] {
            return Ok(known);
        }
        let out = match mapping.cat_to_str(code as u32).and_then(&f) {
            Some(value) => Some(mapping.insert_cat(value).ctx(|| format!("{name} as categories"))? as u16),
            None => None,
        };
        table[code as usize] = Some(out);
        Ok(out)
    };
    let (mut codes, mut unmapped) = (Vec::with_capacity(a.len()), 0);
    for (x, y) in a.physical().iter().zip(b.physical().iter()) {
        let out = x.or(y).map(&mut to).transpose()?.flatten();
        unmapped += (x.or(y).is_some() && out.is_none()) as usize;
        codes.push(out);
    }
    put_column(df, name, codes.into_iter().collect::<UInt16Chunked>())?;
    let codes = df.column(name).ctx(|| format!("column {name}"))?.u16().ctx(|| format!("{name} codes"))?.clone();
    let values = Categorical16Chunked::from_cats_and_dtype(codes, category_type());
    df.with_column(values.into_series().with_name(name.into()).into_column()).ctx(|| format!("adding {name}"))?;
    Ok(unmapped)
}

/// `a == b`, without reading the text when both are the same stored string: after unify every
/// line of a customer refers to one copy of the id, and a category's text is stored once. The
/// passes over the sorted table compare each line's customer and market with the previous line's.
#[inline]
pub fn same_text(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => std::ptr::eq(a, b) || same_str(a, b),
        (a, b) => a.is_none() && b.is_none(),
    }
}

/// `a == b`, inline up to 32 bytes (two overlapping loads from each end): the passes that compare
/// each row with the one before (order ids, keys, codes) called libc's `memcmp` for every row,
/// and the call cost more than such a compare.
#[inline]
pub fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    fn ends<const W: usize>(s: &[u8]) -> ([u8; W], [u8; W]) {
        (s[..W].try_into().expect("W bytes"), s[s.len() - W..].try_into().expect("W bytes"))
    }
    match n {
        0 => true,
        1..=3 => a[0] == b[0] && a[n / 2] == b[n / 2] && a[n - 1] == b[n - 1],
        4..=7 => ends::<4>(a) == ends::<4>(b),
        8..=15 => ends::<8>(a) == ends::<8>(b),
        16..=32 => ends::<16>(a) == ends::<16>(b),
        _ => a == b,
    }
}

/// The values of a text column, String or Categorical, row by row.
pub fn texts<'a>(df: &'a DataFrame, name: &str) -> Result<Box<dyn Iterator<Item = Option<&'a str>> + 'a>> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    column_texts(c).ctx(|| format!("column {name} as text"))
}

/// [`texts`] of a column: categories are read through their codes, not cast to one string a row.
fn column_texts(c: &Column) -> PolarsResult<Box<dyn Iterator<Item = Option<&str>> + '_>> {
    Ok(match c.dtype() {
        DataType::Categorical(..) => Box::new(c.cat16()?.iter_str()),
        _ => Box::new(c.str()?.iter()),
    })
}

/// `f` of each row's text, computed once per category of a Categorical column and then looked up
/// by code: comparing each line's status with a word was a `memcmp` call on every line.
pub fn map_texts<'a, T: Copy + 'a>(
    df: &'a DataFrame,
    name: &str,
    f: impl Fn(Option<&str>) -> T + 'a,
) -> Result<Box<dyn Iterator<Item = T> + 'a>> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    if !matches!(c.dtype(), DataType::Categorical(..)) {
        return Ok(Box::new(texts(df, name)?.map(f)));
    }
    let c = c.cat16().ctx(|| format!("column {name} as categories"))?;
    let mapping = c.get_mapping();
    let codes = c.physical().max().map_or(0, |m| m as u32 + 1);
    let table: Vec<T> = (0..codes).map(|code| f(mapping.cat_to_str(code))).collect();
    let null = f(None);
    Ok(Box::new(c.physical().iter().map(move |code| code.map_or(null, |code| table[code as usize]))))
}

/// A float column by name (an error naming it when absent or not Float64).
pub fn f64_column<'a>(df: &'a DataFrame, name: &str) -> Result<&'a Float64Chunked> {
    df.column(name).ctx(|| format!("column {name}"))?.f64().ctx(|| format!("column {name} as numbers"))
}

/// A UInt32 column by name (an error naming it when absent or of another type).
pub fn u32_values<'a>(df: &'a DataFrame, name: &str) -> Result<&'a UInt32Chunked> {
    df.column(name).ctx(|| format!("column {name}"))?.u32().ctx(|| format!("column {name} as unsigned integers"))
}

/// An integer-like column (integers, dates, datetimes) as i64 values.
pub fn i64_column(df: &DataFrame, name: &str) -> Result<Int64Chunked> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    let c = c.cast(&DataType::Int64).ctx(|| format!("column {name} as integers"))?;
    Ok(c.i64().ctx(|| format!("column {name}"))?.clone())
}

/// Adds (or replaces) a column computed outside Polars, cut to the frame's chunks: one contiguous
/// column beside stacked ones makes Polars copy every column of the table into one chunk first.
pub fn put_column<T: PolarsDataType>(df: &mut DataFrame, name: &str, values: ChunkedArray<T>) -> Result<()>
where
    ChunkedArray<T>: IntoColumn,
{
    let layout = df.columns().iter().find_map(|c| c.as_series()).map(|s| s.chunk_lengths().collect::<Vec<_>>());
    let values = match layout {
        Some(lengths) if lengths.len() > 1 => values.match_chunks(lengths.into_iter()),
        _ => values,
    };
    df.with_column(values.with_name(name.into()).into_column()).ctx(|| format!("adding {name}"))?;
    Ok(())
}

/// [`put_column`] for text stored as [`category_type`].
pub fn put_categories(df: &mut DataFrame, name: &str, values: StringChunked) -> Result<()> {
    put_column(df, name, values)?;
    let c = df
        .column(name)
        .ctx(|| format!("column {name}"))?
        .cast(&category_type())
        .ctx(|| format!("{name} as categories"))?;
    df.with_column(c).ctx(|| format!("adding {name}"))?;
    Ok(())
}

/// `df` with each column of `schema` cast to its type where it differs (a table read back from
/// Parquet has its own categories, or plain text).
pub fn conform(df: DataFrame, schema: &[(&str, DataType)]) -> Result<DataFrame> {
    let casts: Vec<Expr> = schema
        .iter()
        .filter(|(n, t)| df.column(n).is_ok_and(|c| c.dtype() != t))
        .map(|(n, t)| col(*n).cast(t.clone()))
        .collect();
    if casts.is_empty() {
        return Ok(df);
    }
    collect(df.lazy().with_columns(casts), "typed columns")
}

/// [`crate::slots::dense_ranks`] of a text column; for categories, ranked once per category code
/// instead of reading each row's text.
pub fn column_ranks(df: &DataFrame, name: &str) -> Result<Vec<u32>> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    if !matches!(c.dtype(), DataType::Categorical(..)) {
        return Ok(crate::slots::dense_ranks(texts(df, name)?));
    }
    let c = c.cat16().ctx(|| format!("column {name} as categories"))?;
    let mut present = vec![false; 1 << 16];
    for code in c.physical().iter().flatten() {
        present[code as usize] = true;
    }
    let mapping = c.get_mapping();
    let mut codes: Vec<u16> = (0..=u16::MAX).filter(|&code| present[code as usize]).collect();
    codes.sort_unstable_by_key(|&code| mapping.cat_to_str(code as u32));
    let mut rank = vec![0u32; 1 << 16];
    for (r, &code) in codes.iter().enumerate() {
        rank[code as usize] = r as u32 + 1;
    }
    Ok(c.physical().iter().map(|code| code.map_or(0, |code| rank[code as usize])).collect())
}

/// `values[slot - 1]` for each slot (0: null), as text in which every row refers to one stored
/// copy of its value: 16 bytes a row instead of 16 plus the value (a customer id on each of 10M
/// lines was half a gigabyte). Polars' gathers copy the values out again: build it last.
pub fn shared_strings(slots: &[u32], values: &[String]) -> StringChunked {
    use polars_arrow::array::{Utf8ViewArray, View};
    use polars_arrow::bitmap::Bitmap;
    let mut buffers: Vec<Vec<u8>> = Vec::new();
    let stored: Vec<View> = values.iter().map(|v| View::new_with_buffers(v.as_bytes(), 0, &mut buffers)).collect();
    let views: Vec<View> =
        slots.iter().map(|&s| s.checked_sub(1).map_or_else(View::default, |i| stored[i as usize])).collect();
    let validity = slots.contains(&0).then(|| slots.iter().map(|&s| s != 0).collect::<Bitmap>());
    // SAFETY: every view was made by `View::new_with_buffers` from a `&str` (valid UTF-8) into
    // `buffers`, which are handed over unchanged, in order; null rows are masked by `validity`.
    let array = unsafe {
        Utf8ViewArray::new_unchecked_unknown_md(
            polars_arrow::datatypes::ArrowDataType::Utf8View,
            views.into(),
            buffers.into_iter().map(Into::into).collect::<Vec<_>>().into(),
            validity,
            None,
        )
    };
    StringChunked::with_chunk(PlSmallStr::EMPTY, array)
}

/// The rows of `df` at `idx`, in that order, a column at a time. Text stays in its old buffers
/// (only the 16-byte views move): the one text column gathered this way, the order id, is read
/// once more, by the orders partitions' writer, and copying it into row order (`gc()`) cost more
/// than the writer's scattered reads. The analyses read no text of the gathered table (customer
/// ids are laid out in row order afterwards, see [`shared_strings`]).
pub fn take_rows(df: DataFrame, idx: Vec<u32>) -> Result<DataFrame> {
    let ids = IdxCa::from_vec("idx".into(), idx);
    let idx = ids.cont_slice().expect("one chunk, no nulls");
    column_by_column(df, |c| {
        if let Some(values) = c.as_series().and_then(|s| s.f64().ok())
            && values.null_count() > 0
            && values.chunks().len() == 1
        {
            return Ok(take_nullable(values, idx).into_column());
        }
        c.take(&ids).ctx(|| format!("reordering {}", c.name()))
    })
}

/// `values` (one chunk) at `idx`: the values and the validity gathered apart. Polars' gather
/// builds a nullable column value by value through `Option`s, twice as slow (the money columns
/// with nulls were 40% of unify's gather at 10M lines).
fn take_nullable(values: &Float64Chunked, idx: &[u32]) -> Float64Chunked {
    let array = values.downcast_as_array();
    let (all, valid) = (array.values().as_slice(), array.validity());
    let gathered: Vec<f64> = idx.iter().map(|&i| all[i as usize]).collect();
    let validity =
        valid.map(|v| polars_arrow::bitmap::Bitmap::from_trusted_len_iter(idx.iter().map(|&i| v.get_bit(i as usize))));
    let out = polars_arrow::array::PrimitiveArray::new(array.dtype().clone(), gathered.into(), validity);
    Float64Chunked::with_chunk(values.name().clone(), out)
}

/// The rows of `df` where `keep` is true.
pub fn filter_rows(df: DataFrame, keep: &BooleanChunked) -> Result<DataFrame> {
    column_by_column(df, |c| c.filter(keep).ctx(|| format!("selecting rows of {}", c.name())))
}

/// `df` with each column in one contiguous chunk.
pub fn rechunk(df: DataFrame) -> Result<DataFrame> {
    column_by_column(df, |c| Ok(c.rechunk()))
}

/// `f` over each column of `df`, on [`on_threads`], each input column freed as soon as its output
/// exists: a whole-frame filter or gather holds the old and the new table at once, which was the
/// peak memory of the run. Only frees memory if `df` is the columns' sole owner.
fn column_by_column(df: DataFrame, f: impl Fn(Column) -> Result<Column> + Sync) -> Result<DataFrame> {
    let columns: Vec<std::sync::Mutex<Option<Column>>> =
        df.into_columns().into_iter().map(|c| std::sync::Mutex::new(Some(c))).collect();
    let done = on_threads(&columns, |slot| {
        let column = slot.lock().expect("one worker per column").take().expect("each column taken once");
        f(column)
    });
    frame(done.into_iter().collect::<Result<_>>()?)
}

/// Values of a string column, for reports and tests.
pub fn strings(df: &DataFrame, name: &str) -> Result<Vec<Option<String>>> {
    Ok(as_text(df, name)?.iter().map(|v| v.map(str::to_string)).collect())
}

/// A column as text (numbers as Polars writes them), without a `String` per value.
pub fn as_text(df: &DataFrame, name: &str) -> Result<StringChunked> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    let c = c.cast(&DataType::String).ctx(|| format!("column {name} as text"))?;
    Ok(c.str().ctx(|| format!("column {name}"))?.clone())
}

/// Values of a numeric column as f64, for reports and tests.
pub fn floats(df: &DataFrame, name: &str) -> Result<Vec<Option<f64>>> {
    let c = df.column(name).ctx(|| format!("column {name}"))?;
    let c = c.cast(&DataType::Float64).ctx(|| format!("column {name} as number"))?;
    Ok(c.f64().ctx(|| format!("column {name}"))?.iter().collect())
}

/// Hands a Polars frame to arrow-rs without copying: each column crosses the Arrow C Data
/// Interface as Polars holds it (strings as views, categories as dictionaries).
pub fn to_record_batch(df: &DataFrame) -> Result<arrow::record_batch::RecordBatch> {
    use arrow::array::{ArrayRef, make_array};
    use std::sync::Arc;
    let mut df = df.clone();
    df.rechunk_mut();
    let mut fields = Vec::with_capacity(df.width());
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(df.width());
    for col in df.columns() {
        if let Ok(c) = col.cat16() {
            let array = arrow_dictionary(c);
            fields.push(arrow::datatypes::Field::new(col.name().as_str(), array.data_type().clone(), true));
            arrays.push(array);
            continue;
        }
        let series = col.as_materialized_series();
        let array = series.to_arrow(0, CompatLevel::newest());
        let field = polars_arrow::datatypes::Field::new(col.name().clone(), array.dtype().clone(), true);
        let c_schema = polars_arrow::ffi::export_field_to_c(&field);
        let c_array = polars_arrow::ffi::export_array_to_c(array);
        // SAFETY: both crates implement the same #[repr(C)] structs of the Arrow C Data Interface
        // spec; ownership of the buffers moves to arrow-rs, whose release callback frees them.
        let data = unsafe {
            let c_schema: arrow::ffi::FFI_ArrowSchema = std::mem::transmute(c_schema);
            let c_array: arrow::ffi::FFI_ArrowArray = std::mem::transmute(c_array);
            arrow::ffi::from_ffi(c_array, &c_schema)
        }
        .ctx(|| format!("handing column {} to arrow", col.name()))?;
        let array = make_array(data);
        fields.push(arrow::datatypes::Field::new(col.name().as_str(), array.data_type().clone(), true));
        arrays.push(array);
    }
    let schema = Arc::new(arrow::datatypes::Schema::new(fields));
    arrow::record_batch::RecordBatch::try_new(schema, arrays).ctx(|| "assembling an arrow batch")
}

/// A [`category_type`] column as an arrow-rs dictionary of its own categories. Polars' export
/// numbers each row's category through a hash map (~0.7% of a 3M full run's CPU, the orders
/// partitions' slices); here each distinct category is looked up once.
fn arrow_dictionary(c: &Categorical16Chunked) -> arrow::array::ArrayRef {
    use arrow::array::{DictionaryArray, StringArray, UInt16Array};
    let (codes, texts) = local_codes(c);
    let keys: UInt16Array = codes.iter().collect();
    let values = StringArray::from_iter_values(texts);
    std::sync::Arc::new(DictionaryArray::new(keys, std::sync::Arc::new(values)))
}

/// Days since the epoch of a UTC-micros timestamp seen in `zone`, as a `Date` column.
pub fn local_date(e: Expr, zone: chrono_tz::Tz) -> Expr {
    e.cast(DataType::Int64)
        .map(
            move |c: Column| {
                let mut days = LocalDays::new(zone);
                let out: Int32Chunked = c.i64()?.iter().map(|v| v.and_then(|micros| days.of(micros))).collect();
                Ok(out.with_name(c.name().clone()).into_column())
            },
            |_, f| Ok(Field::new(f.name().clone(), DataType::Int32)),
        )
        .cast(DataType::Date)
}

/// The local date of instants in one zone, as days since the epoch. The zone's offset is looked
/// up once per UTC hour: where it is the same at the hour's first and last microsecond, the hour
/// holds no transition (no zone changes its offset twice within an hour) and its instants share
/// it. Loaders' rows come roughly in time order, so most rows reuse the last hour's offset; a
/// lookup for each row (chrono-tz searches its transitions) was ~0.6% of a 3M full run's CPU.
struct LocalDays {
    zone: chrono_tz::Tz,
    hour: Option<i64>,
    /// Seconds east of UTC throughout `hour`; `None` for an hour with a transition in it.
    offset: Option<i64>,
}

impl LocalDays {
    const HOUR: i64 = 3_600_000_000;

    fn new(zone: chrono_tz::Tz) -> Self {
        LocalDays { zone, hour: None, offset: None }
    }

    /// As `epoch_days` of the instant's date in the zone; `None` beyond chrono's range.
    fn of(&mut self, micros: i64) -> Option<i32> {
        let hour = micros.div_euclid(Self::HOUR);
        if self.hour != Some(hour) {
            self.hour = Some(hour);
            let start = hour.checked_mul(Self::HOUR);
            let end = start.and_then(|s| s.checked_add(Self::HOUR - 1));
            self.offset = match (start.and_then(|s| self.offset_at(s)), end.and_then(|e| self.offset_at(e))) {
                (Some(a), Some(b)) if a == b => Some(a),
                _ => None,
            };
        }
        match self.offset {
            Some(offset) => i32::try_from((micros.div_euclid(1_000_000) + offset).div_euclid(86_400)).ok(),
            None => chrono::DateTime::from_timestamp_micros(micros)
                .map(|t| crate::fx::epoch_days(t.with_timezone(&self.zone).date_naive())),
        }
    }

    fn offset_at(&self, micros: i64) -> Option<i64> {
        use chrono::Offset;
        let t = chrono::DateTime::from_timestamp_micros(micros)?;
        Some(t.with_timezone(&self.zone).offset().fix().local_minus_utc() as i64)
    }
}

/// `{prefix}{text}{suffix}` where `flag` is true, null elsewhere. A plan's `when/then` would build
/// the text on every row before choosing, and rows that need it (rejects) are rare.
pub fn text_where(text: Expr, flag: Expr, prefix: String, suffix: &'static str) -> Expr {
    text.cast(DataType::String).map_many(
        move |cols: &mut [Column]| {
            let name = cols[0].name().clone();
            let flags = cols[1].bool()?;
            if !flags.any() {
                return Ok(Column::full_null(name, flags.len(), &DataType::String));
            }
            let texts = cols[0].str()?;
            let out: StringChunked = texts
                .iter()
                .zip(flags.iter())
                .map(|(t, f)| (f == Some(true)).then(|| format!("{prefix}{}{suffix}", t.unwrap_or_default())))
                .collect();
            Ok(out.with_name(name).into_column())
        },
        &[flag],
        |_, fields| Ok(Field::new(fields[0].name().clone(), DataType::String)),
    )
}

/// Calls `f(text, day, number)` row by row over three columns (String, Date, Float64).
fn map_text_day_number<T, C>(
    text: Expr,
    day: Expr,
    number: Expr,
    out: DataType,
    f: impl Fn(Option<&str>, Option<i32>, Option<f64>) -> Option<T> + Send + Sync + 'static,
) -> Expr
where
    C: FromIterator<Option<T>> + IntoColumn + NamedFrom,
{
    let out2 = out.clone();
    text.map_many(
        move |cols: &mut [Column]| {
            let d = cols[1].cast(&DataType::Int32)?;
            let d = d.i32()?;
            let n = cols[2].cast(&DataType::Float64)?;
            let n = n.f64()?;
            let out: C = column_texts(&cols[0])?.zip(d.iter()).zip(n.iter()).map(|((t, d), n)| f(t, d, n)).collect();
            Ok(out.named(cols[0].name().clone()).into_column())
        },
        &[day, number],
        move |_, fields| Ok(Field::new(fields[0].name().clone(), out2.clone())),
    )
}

/// Gives a collected chunked array a name (generic code cannot call the inherent `with_name`).
pub trait NamedFrom {
    fn named(self, name: PlSmallStr) -> Self;
}
impl<T: PolarsDataType> NamedFrom for ChunkedArray<T> {
    fn named(self, name: PlSmallStr) -> Self {
        self.with_name(name)
    }
}

/// Calls `f(a, b)` row by row over two text columns: no per-row key is built to pass both to a
/// one-column map (a `concat_str` of e-mail and tags was a full text column per source).
pub fn two_texts_to_bool(
    a: Expr,
    b: Expr,
    f: impl Fn(Option<&str>, Option<&str>) -> bool + Send + Sync + 'static,
) -> Expr {
    a.cast(DataType::String).map_many(
        move |cols: &mut [Column]| {
            let b = cols[1].cast(&DataType::String)?;
            // Rows come in runs (an order's lines): `f` once per run of equal pairs.
            type Pair<'a> = (Option<&'a str>, Option<&'a str>);
            let mut last: Option<(Pair, bool)> = None;
            let out: BooleanChunked = (cols[0].str()?.iter().zip(b.str()?.iter()))
                .map(|pair| match last {
                    Some((seen, value)) if seen == pair => value,
                    _ => last.insert((pair, f(pair.0, pair.1))).1,
                })
                .collect();
            Ok(out.with_name(cols[0].name().clone()).into_column())
        },
        &[b],
        |_, fields| Ok(Field::new(fields[0].name().clone(), DataType::Boolean)),
    )
}

pub fn text_day_number_to_str(
    text: Expr,
    day: Expr,
    number: Expr,
    f: impl Fn(Option<&str>, Option<i32>, Option<f64>) -> Option<String> + Send + Sync + 'static,
) -> Expr {
    map_text_day_number::<String, StringChunked>(text, day, number, DataType::String, f)
}

pub fn text_day_number_to_f64(
    text: Expr,
    day: Expr,
    number: Expr,
    f: impl Fn(Option<&str>, Option<i32>, Option<f64>) -> Option<f64> + Send + Sync + 'static,
) -> Expr {
    map_text_day_number::<f64, Float64Chunked>(text, day, number, DataType::Float64, f)
}

/// The size of Polars' thread pool: `POLARS_MAX_THREADS` (which `--threads` sets), else the
/// machine's cores, as Polars decides it (its pool is not public API). Decided once, as Polars
/// does: asking the system reads the cgroup's files, and loads ask once per export file.
pub fn threads() -> usize {
    static THREADS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *THREADS.get_or_init(|| {
        std::env::var("POLARS_MAX_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1)
    })
}

/// `0..n` as at most `parts` consecutive (offset, length) spans of near-equal length.
pub fn spans(n: usize, parts: usize) -> Vec<(usize, usize)> {
    let size = n.div_ceil(parts.max(1)).max(1);
    (0..n).step_by(size).map(|offset| (offset, size.min(n - offset))).collect()
}

/// `f` over each run of equal values of column `name` (a table sorted by it), side by side on
/// [`on_threads`], the longest runs first; results in table order.
pub fn by_runs<R: Send>(df: &DataFrame, name: &str, f: impl Fn(&DataFrame) -> R + Sync) -> Result<Vec<R>> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut current = None;
    for (i, value) in texts(df, name)?.enumerate() {
        if !current.is_some_and(|c| same_text(c, value)) {
            runs.push((i, 0));
            current = Some(value);
        }
        runs.last_mut().expect("pushed above").1 += 1;
    }
    Ok(on_threads_largest_first(&runs, |run| run.1, |&(offset, len)| f(&df.slice(offset as i64, len))))
}

/// `a` and `b` on two plain threads (one after the other with `--threads 1`), for two independent
/// pieces of work that each leave a core idle. Plain threads, not rayon tasks: either may call
/// Polars or rayon.
pub fn side_by_side<A: Send, B: Send>(a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    if threads() < 2 {
        return (a(), b());
    }
    std::thread::scope(|s| {
        let b = s.spawn(b);
        (a(), b.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
    })
}

/// [`on_threads`] taking the largest items first (by `size`), for uneven work: the last item a
/// thread takes is then a small one, not the largest. Results in `items`' order.
pub fn on_threads_largest_first<T: Sync, R: Send>(
    items: &[T],
    size: impl Fn(&T) -> usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let mut largest_first: Vec<usize> = (0..items.len()).collect();
    largest_first.sort_by_key(|&i| std::cmp::Reverse(size(&items[i])));
    let done = on_threads(&largest_first, |&i| (i, f(&items[i])));
    let mut in_order: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    for (i, r) in done {
        in_order[i] = Some(r);
    }
    in_order.into_iter().map(|r| r.expect("every item done")).collect()
}

/// String columns one after another, as one chunk (the 16-byte views are copied, the text is
/// not: the buffers are shared).
pub fn concat_strings(parts: Vec<StringChunked>) -> StringChunked {
    let mut it = parts.into_iter();
    let mut all = it.next().unwrap_or_else(|| StringChunked::full_null(PlSmallStr::EMPTY, 0));
    for part in it {
        all.append_owned(part).expect("string columns append");
    }
    all.rechunk().into_owned()
}

/// `f` over `items` on up to [`threads`] plain threads (not rayon: Polars may be called inside),
/// taking items in order as threads free up; results in `items`' order.
pub fn on_threads<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let workers = threads().min(items.len());
    if workers <= 1 {
        return items.iter().map(f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done = std::sync::Mutex::new(Vec::with_capacity(items.len()));
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let result = f(item);
                    done.lock().expect("no worker panics holding the lock").push((i, result));
                }
            });
        }
    });
    let mut done = done.into_inner().expect("workers finished");
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Equal exactly when the strings are: lengths 0 to 40 (every inline width and past it),
        /// pairs that differ in one byte anywhere, in length only, or not at all.
        #[test]
        fn same_str_is_string_equality(a in "[ab]{0,40}", at in 0usize..40, change in 0u8..3) {
            let mut b = a.clone().into_bytes();
            match change {
                0 if !b.is_empty() => { let i = at % b.len(); b[i] = if b[i] == b'a' { b'b' } else { b'a' }; }
                1 => b.push(b'a'),
                _ => {}
            }
            let b = String::from_utf8(b).unwrap();
            proptest::prop_assert_eq!(same_str(&a, &b), a == b);
            proptest::prop_assert_eq!(same_str(&b, &a), a == b);
        }
    }

    #[test]
    fn same_text_compares_text_not_addresses() {
        let (a, b) = (String::from("c0ffee"), String::from("c0ffee"));
        assert!(same_text(Some(&a), Some(&a)) && same_text(Some(&a), Some(&b)) && same_text(None, None));
        assert!(!same_text(Some(&a), Some(&a[..3])) && !same_text(Some(&a), Some("tea")) && !same_text(None, Some("")));
    }

    /// Categories stored as codes read back as the same text, nulls included, in columns of the
    /// same type; other columns are untouched.
    #[test]
    fn categories_survive_codes_and_back() {
        let values = [Some("de"), None, Some("us"), Some("de"), Some("zz-codes-test")];
        let df = df!("c" => values, "n" => [1i64, 2, 3, 4, 5]).unwrap();
        let df = df.lazy().with_column(category(col("c"))).collect().unwrap();
        let (stored, categories) = categories_to_codes(df.clone()).unwrap();
        assert_eq!(stored.column("c").unwrap().dtype(), &DataType::UInt16);
        let codes: Vec<Option<u16>> = stored.column("c").unwrap().u16().unwrap().iter().collect();
        assert_eq!(codes, [Some(0), None, Some(1), Some(0), Some(2)]);
        assert_eq!(categories, [("c".to_string(), vec!["de".to_string(), "us".into(), "zz-codes-test".into()])]);
        let back = codes_to_categories(stored, &categories).unwrap();
        assert!(back.equals_missing(&df), "{back} vs {df}");
        assert_eq!(back.column("c").unwrap().dtype(), df.column("c").unwrap().dtype());
        let all_null = df!("c" => [None::<u16>, None]).unwrap();
        let back = codes_to_categories(all_null, &[("c".to_string(), vec![])]).unwrap();
        assert_eq!(back.column("c").unwrap().null_count(), 2);
        let bad = [("n".to_string(), vec!["x".to_string()])];
        let ints = df!("n" => [0u16, 1]).unwrap();
        assert!(codes_to_categories(ints, &bad).is_err(), "a code without a category");
    }

    proptest::proptest! {
        // Cheap cases, and a DST change is crossed near local midnight in only a few of them.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4096))]

        /// Each instant's local date as chrono gives it row by row, in zones with DST (Berlin, New
        /// York), a half-hour DST shift (Lord Howe), a 45-minute offset (Kathmandu) and a skipped
        /// day (Apia, 2011-12-30), for runs of instants minutes to hours apart, mostly forward in
        /// time as a loader's rows are, across DST changes.
        #[test]
        fn local_days_match_chrono_row_by_row(
            anywhere in -2_000_000_000i64..2_500_000_000,
            year in 1990i32..2040,
            season in 0usize..6,
            day in 0u32..8,
            seconds in 0i64..172_800,
            near_a_change in proptest::bool::ANY,
            steps in proptest::collection::vec(-1_800i64..7_200, 1..60),
            zone in 0usize..6,
        ) {
            // Half of the runs start within two days after a date in a week where one of the
            // zones changes its clocks.
            let (month, first) = [(3, 7), (3, 24), (4, 1), (9, 20), (10, 1), (10, 24)][season];
            let near = chrono::NaiveDate::from_ymd_opt(year, month, first + day).unwrap().and_hms_opt(0, 0, 0).unwrap();
            let start = if near_a_change { near.and_utc().timestamp() + seconds } else { anywhere };
            let zones = [
                chrono_tz::Europe::Berlin,
                chrono_tz::America::New_York,
                chrono_tz::Australia::Lord_Howe,
                chrono_tz::Asia::Kathmandu,
                chrono_tz::Pacific::Apia,
                chrono_tz::UTC,
            ];
            let zone = zones[zone];
            let mut days = LocalDays::new(zone);
            let mut secs = start;
            for step in steps {
                secs += step;
                let micros = secs * 1_000_000 + step.rem_euclid(1_000_000);
                let want = chrono::DateTime::from_timestamp_micros(micros)
                    .map(|t| crate::fx::epoch_days(t.with_timezone(&zone).date_naive()));
                proptest::prop_assert_eq!(days.of(micros), want, "{} at {}", zone, micros);
            }
        }
    }

    /// Across a DST change the date follows the offset on either side, and instants beyond
    /// chrono's range are null.
    #[test]
    fn local_days_around_a_transition_and_out_of_range() {
        let zone = chrono_tz::Europe::Berlin;
        let mut days = LocalDays::new(zone);
        // 2025-03-30 01:00 UTC: Berlin goes from +1 to +2 (02:00 -> 03:00 local).
        let change = chrono::NaiveDate::from_ymd_opt(2025, 3, 30).unwrap().and_hms_opt(1, 0, 0).unwrap().and_utc();
        let before = chrono::NaiveDate::from_ymd_opt(2025, 3, 29).unwrap().and_hms_opt(22, 59, 59).unwrap().and_utc();
        let day = |d: chrono::NaiveDate| crate::fx::epoch_days(d);
        assert_eq!(
            days.of(before.timestamp_micros()),
            Some(day(chrono::NaiveDate::from_ymd_opt(2025, 3, 29).unwrap()))
        );
        assert_eq!(
            days.of(change.timestamp_micros()),
            Some(day(chrono::NaiveDate::from_ymd_opt(2025, 3, 30).unwrap()))
        );
        assert_eq!(days.of(i64::MAX), None);
        assert_eq!(days.of(i64::MIN), None);
    }

    /// A category column handed to arrow-rs is a dictionary whose every row reads as its text,
    /// nulls included, also for a slice (as the publication writer converts a table).
    #[test]
    fn categories_reach_arrow_as_their_text() {
        use arrow::array::{Array, AsArray};
        use arrow::datatypes::UInt16Type;
        let values = [Some("fr"), Some("arrow-export-test"), None, Some("fr"), Some("us"), None, Some("us")];
        let df = df!("c" => values).unwrap().lazy().with_column(category(col("c"))).collect().unwrap();
        for (offset, len) in [(0, values.len()), (3, 4), (5, 0)] {
            let batch = to_record_batch(&df.slice(offset as i64, len)).unwrap();
            let dict = batch.column(0).as_dictionary::<UInt16Type>();
            let texts = dict.values().as_string::<i32>();
            let got: Vec<Option<&str>> =
                (0..dict.len()).map(|i| dict.is_valid(i).then(|| texts.value(dict.keys().value(i) as usize))).collect();
            assert_eq!(got, values[offset..offset + len], "rows {offset}..{}", offset + len);
        }
    }

    /// Through the category table or row by row, each row gets `f` of its own text.
    #[test]
    fn map_texts_of_categories_and_of_text_agree_row_by_row() {
        let values = [Some("b"), None, Some("a"), Some("b"), Some("c")];
        let text = df!("s" => values).unwrap();
        let categories = text.clone().lazy().with_column(category(col("s"))).collect().unwrap();
        assert!(matches!(categories.column("s").unwrap().dtype(), DataType::Categorical(..)));
        let f = |s: Option<&str>| s.map_or(0, |s| s.as_bytes()[0]);
        let want: Vec<u8> = values.iter().map(|&v| f(v)).collect();
        for df in [&text, &categories] {
            assert_eq!(map_texts(df, "s", f).unwrap().collect::<Vec<_>>(), want);
        }
    }

    #[test]
    fn a_plan_in_parts_equals_the_plan_whole() {
        let mut df = df!("s" => ["a", "bb", "ccc"], "n" => [1i64, 2, 3]).unwrap();
        df.vstack_mut_owned(df!("s" => [None, Some("dddd")], "n" => [4i64, 5]).unwrap()).unwrap();
        let plan = |lf: LazyFrame| {
            lf.with_column(str_to_str(col("s"), |s| Some(s.to_uppercase())).alias("up")).filter(col("n").neq(lit(2)))
        };
        let whole = plan(df.clone().lazy()).collect().unwrap();
        let parts = collect_in_parts(df.clone(), plan, "test").unwrap();
        assert!(parts.equals_missing(&whole), "{parts} vs {whole}");
        assert_eq!(strings(&parts, "up").unwrap(), [Some("A".into()), Some("CCC".into()), None, Some("DDDD".into())]);
        let none = collect_in_parts(df.head(Some(0)), plan, "test").unwrap();
        assert_eq!((none.height(), none.width()), (0, 3));
    }

    #[test]
    fn the_first_of_two_category_columns_is_mapped_once_per_value() {
        let a = [Some("de"), None, None, Some("??"), Some("de"), Some("fr")];
        let b = [Some("it"), Some("it"), None, Some("es"), None, None];
        let mut top = df!("a" => &a[..3], "b" => &b[..3]).unwrap();
        top.vstack_mut(&df!("a" => &a[3..], "b" => &b[3..]).unwrap()).unwrap();
        for c in ["a", "b"] {
            let categories = top.column(c).unwrap().cast(&category_type()).unwrap();
            top.with_column(categories).unwrap();
        }
        let calls = std::cell::Cell::new(0);
        let upper = |s: &str| {
            calls.set(calls.get() + 1);
            match s {
                "de" => Some("DE"),
                "it" => Some("IT"),
                "fr" => Some("FR"),
                _ => None,
            }
        };
        let unmapped = put_first_category_mapped(&mut top, "c", ["a", "b"], upper).unwrap();
        assert_eq!(unmapped, 1, "'??' is a value that maps to none; a row with neither value is not counted");
        assert_eq!(calls.get(), 4, "once per distinct value met: de, it, ??, fr");
        assert_eq!(top.column("c").unwrap().dtype(), &category_type());
        assert_eq!(
            strings(&top, "c").unwrap(),
            [Some("DE"), Some("IT"), None, None, Some("DE"), Some("FR")].map(|v| v.map(String::from))
        );
    }

    #[test]
    fn runs_are_passed_whole_and_returned_in_table_order() {
        let df = df!("m" => ["b", "b", "a", "a", "a", "c"], "n" => [1, 2, 3, 4, 5, 6]).unwrap();
        let runs = by_runs(&df, "m", |run| (strings(run, "m").unwrap(), run.column("n").unwrap().i32().unwrap().sum()));
        let want = [
            (vec![Some("b".to_string()); 2], Some(3)),
            (vec![Some("a".into()); 3], Some(12)),
            (vec![Some("c".into())], Some(6)),
        ];
        assert_eq!(runs.unwrap(), want);
    }

    /// Taken largest first or not, every item is done once and results come back in the items'
    /// order (the export files stack in path order); `side_by_side` returns each side's result in
    /// its place.
    #[test]
    fn largest_first_results_keep_the_items_order() {
        let sizes = [3usize, 90, 7, 55, 1, 20];
        let started = std::sync::Mutex::new(Vec::new());
        let done = on_threads_largest_first(
            &sizes,
            |&s| s,
            |&s| {
                started.lock().unwrap().push(s);
                s * 2
            },
        );
        assert_eq!(done, sizes.map(|s| s * 2));
        let mut started = started.into_inner().unwrap();
        started.sort_unstable();
        assert_eq!(started, [1, 3, 7, 20, 55, 90]);
        assert_eq!(side_by_side(|| "a", || 2), ("a", 2));
    }

    #[test]
    fn spans_cover_the_range_in_order() {
        assert_eq!(spans(10, 3), [(0, 4), (4, 4), (8, 2)]);
        assert_eq!(spans(5, 1), [(0, 5)]);
        assert_eq!(spans(1, 4), [(0, 1)]);
        assert!(spans(0, 2).is_empty());
        let joined =
            concat_strings(vec![["a", "b"].into_iter().map(Some).collect(), [None, Some("c")].into_iter().collect()]);
        assert_eq!(joined.iter().collect::<Vec<_>>(), [Some("a"), Some("b"), None, Some("c")]);
        assert_eq!(joined.chunks().len(), 1);
    }

    /// Text made categories row by row reads back as the text, as a cast makes it: runs, values
    /// met again after others, nulls, a column of nulls.
    #[test]
    fn text_categories_are_the_text() {
        let text = [Some("DE"), Some("DE"), None, Some("FR"), Some("DE"), None, Some("FR"), Some("GB"), Some("DE")];
        let df = df!("t" => text, "none" => [None::<&str>; 9]).unwrap();
        let lf = df.lazy();
        let made = collect(lf.clone().select([text_category(col("t")), text_category(col("none"))]), "t").unwrap();
        let cast = collect(lf.select([category(col("t")), category(col("none"))]), "t").unwrap();
        assert_eq!(made.schema(), cast.schema());
        assert_eq!(strings(&made, "t").unwrap(), text.map(|v| v.map(str::to_string)).to_vec());
        assert_eq!(strings(&made, "t").unwrap(), strings(&cast, "t").unwrap());
        assert_eq!(strings(&made, "none").unwrap(), vec![None; 9]);
    }

    /// Memoized or not, every value maps as `f` maps it: a repetitive column (memo kept) and a
    /// mostly distinct one (memo dropped after the probe), both with nulls, past the probe length.
    #[test]
    fn map_values_is_f_of_each_value() {
        let f = |s: &str| (!s.ends_with('7')).then(|| format!("<{s}>"));
        for distinct in [3usize, 1_000_000] {
            let values: StringChunked =
                (0..10_000).map(|i| (i % 11 != 0).then(|| format!("v{}", (i * 7919) % distinct))).collect();
            let want: Vec<Option<String>> = values.iter().map(|v| v.and_then(f)).collect();
            assert_eq!(map_values(&values, &f), want, "{distinct} distinct values");
        }
    }

    /// Category columns rank as their text does.
    #[test]
    fn column_ranks_of_text_and_categories() {
        let values: StringChunked =
            [Some("b"), Some("b"), None, Some("a"), Some("c"), Some("b"), Some("a"), Some("a")].into_iter().collect();
        let categories = values.clone().into_series().cast(&category_type()).unwrap();
        let as_text = DataFrame::new(values.len(), vec![values.clone().into_series().into_column()]).unwrap();
        let as_categories = DataFrame::new(values.len(), vec![categories.into_column()]).unwrap();
        for df in [as_text, as_categories] {
            assert_eq!(column_ranks(&df, values.name()).unwrap(), [2, 2, 0, 1, 3, 2, 1, 1]);
        }
    }

    /// A computed column takes the frame's chunks, so Polars has nothing to copy.
    #[test]
    fn put_column_matches_the_frames_chunks() {
        let mut a = df!("x" => [1i64, 2, 3]).unwrap();
        a.vstack_mut(&df!("x" => [4i64, 5]).unwrap()).unwrap();
        let y: BooleanChunked = [true, false, true, false, true].into_iter().collect();
        put_column(&mut a, "y", y).unwrap();
        assert!(!a.should_rechunk());
        assert_eq!(a.column("y").unwrap().as_series().unwrap().chunk_lengths().collect::<Vec<_>>(), [3, 2]);
        let got: Vec<Option<bool>> = a.column("y").unwrap().bool().unwrap().iter().collect();
        assert_eq!(got, [Some(true), Some(false), Some(true), Some(false), Some(true)]);
    }

    /// Category columns of separately built frames stack, and read back as the same text.
    #[test]
    fn categories_stack_and_read_as_text() {
        let part = |values: &[Option<&str>]| {
            let df = df!("c" => values.to_vec()).unwrap();
            df.lazy().with_column(category(col("c"))).collect().unwrap()
        };
        let mut a = part(&[Some("us"), None, Some("eu")]);
        a.vstack_mut(&part(&[Some("eu"), Some("other")])).unwrap();
        assert!(matches!(a.column("c").unwrap().dtype(), DataType::Categorical(..)));
        let got: Vec<Option<&str>> = texts(&a, "c").unwrap().collect();
        assert_eq!(got, [Some("us"), None, Some("eu"), Some("eu"), Some("other")]);
        let plain = df!("c" => ["x"]).unwrap();
        assert_eq!(texts(&plain, "c").unwrap().collect::<Vec<_>>(), [Some("x")]);
    }

    /// Each slot's value (0: null), every row pointing at one stored copy of it.
    #[test]
    fn shared_strings_store_each_value_once() {
        let values = ["a-long-customer-identifier-0001".to_string(), "short".to_string()];
        let slots: Vec<u32> = [1, 2, 0, 1].into_iter().cycle().take(4000).collect();
        let column = shared_strings(&slots, &values);
        let got: Vec<Option<&str>> = column.iter().take(4).collect();
        assert_eq!(got, [Some(values[0].as_str()), Some("short"), None, Some(values[0].as_str())]);
        assert_eq!(column.null_count(), 1000);
        let stored: usize = column.downcast_iter().map(|a| a.total_buffer_len()).sum();
        assert_eq!(stored, values[0].len(), "only the long value is stored, once (short ones are inline)");
    }

    /// The gather of a nullable money column (values and validity apart) gives Polars' gather.
    #[test]
    fn a_nullable_float_column_is_gathered_as_polars_gathers_it() {
        let values: Vec<Option<f64>> = (0..1000).map(|i| (i % 7 != 3).then_some(i as f64 * 0.25)).collect();
        let a = df!("m" => values, "n" => (0..1000i64).collect::<Vec<_>>()).unwrap();
        let idx: Vec<u32> = (0..2000u32).map(|i| (i * 617) % 1000).collect();
        let want = a.take(&IdxCa::from_vec("i".into(), idx.clone())).unwrap();
        let got = take_rows(a, idx).unwrap();
        assert!(got.equals_missing(&want));
        assert_eq!(got.column("m").unwrap().null_count(), want.column("m").unwrap().null_count());
        assert!(got.column("m").unwrap().null_count() > 0);
    }

    /// Filter, gather and rechunk column by column give what the whole-frame operations give,
    /// text included (long values, nulls), over a frame of two stacked chunks.
    #[test]
    fn column_by_column_rows_match_the_whole_frame_operations() {
        let long = "a value longer than twelve bytes";
        let mut a = df!("n" => [Some(1i64), None, Some(3)], "s" => [Some("x"), Some(long), None]).unwrap();
        a.vstack_mut(&df!("n" => [Some(4i64), Some(5)], "s" => [Some("y"), Some("z")]).unwrap()).unwrap();
        let keep: BooleanChunked = [true, true, false, false, true].into_iter().collect();
        assert!(filter_rows(a.clone(), &keep).unwrap().equals_missing(&a.filter(&keep).unwrap()));
        let idx = vec![4u32, 1, 0, 3, 2];
        let want = a.take(&IdxCa::from_vec("i".into(), idx.clone())).unwrap();
        assert!(take_rows(a.clone(), idx).unwrap().equals_missing(&want));
        let one = rechunk(a.clone()).unwrap();
        assert!(one.equals_missing(&a) && !one.should_rechunk());
        assert!(one.columns().iter().all(|c| c.as_materialized_series().n_chunks() == 1));
    }
}
