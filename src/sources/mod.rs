//! Loaders: one module per platform, each turning its export files into the same working table of
//! order lines (canonical columns plus the `schema::aux` columns `unify` needs) and a table of
//! rejects with file, line, reason and raw text. Each [`read`]s a file, describes its lines as
//! [`LineExprs`] and [`finish`]es: Amazon, Shopify and WooCommerce's WebToffee layout compute typed
//! columns in one Rust pass first ([`fields`]); the generic `csv` source and WooCommerce's
//! Advanced Order Export map columns to expressions.

pub mod amazon;
pub mod cache;
pub mod csv;
pub mod delimited;
pub mod fields;
pub mod parse;
pub mod shopify;
pub mod text;
pub mod woocommerce;

use crate::config::{LoadSpec, SourceKind, TestOrders, TextFormat};
use crate::error::{Context, Error, Result};
use crate::frame::{self, null_f64, null_str};
use crate::fx::FxRates;
use crate::schema::{self, aux, rejects};
use chrono_tz::Tz;
use delimited::Records;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// What a loader gets: its stage, the rates (to reject unconvertible rows where they are read),
/// the pipeline's zone (order dates are reckoned there) and its test-order patterns (e-mails and
/// tags are matched where they are read, and only the verdict is kept).
pub struct LoadCtx<'a> {
    pub spec: &'a LoadSpec,
    pub fx: &'a FxRates,
    pub zone: Tz,
    pub tests: TestOrders,
    /// Where parsed files are kept between runs; `None` parses every file.
    pub cache: Option<&'a cache::Cache>,
}

impl<'a> LoadCtx<'a> {
    pub fn new(spec: &'a LoadSpec, fx: &'a FxRates, zone: Tz) -> Self {
        LoadCtx { spec, fx, zone, tests: TestOrders::default(), cache: None }
    }
}

/// An input file as the manifest records it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct InputFile {
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub rows: u64,
}

/// A load stage's result.
pub struct Loaded {
    /// The working lines (`line_schema`) and their net revenue in the base currency.
    pub lines: DataFrame,
    pub rejects: DataFrame,
    pub files: Vec<InputFile>,
    /// Data records read (header and blank lines excluded).
    pub rows_read: u64,
    /// Things the report must say about this source (e.g. Amazon without buyers).
    pub notes: Vec<String>,
    /// Net revenue of every parsed line in the base currency, taken before anything joins or
    /// drops: the "in" of the reconciliation.
    pub revenue_read: f64,
    /// Files parsed by this run (the others came from the parse cache).
    pub parsed: usize,
}

/// The files a load stage reads: its export files and (Amazon) its buyer reports.
pub fn files_of(spec: &LoadSpec) -> Result<(Vec<PathBuf>, Vec<PathBuf>)> {
    let paths = expand(&spec.paths)?;
    let buyers = match spec.kind {
        SourceKind::Amazon if !spec.buyers.is_empty() => expand(&spec.buyers)?,
        _ => Vec::new(),
    };
    Ok((paths, buyers))
}

/// Loads a source's files, Amazon's buyers attached.
pub fn load(ctx: &LoadCtx) -> Result<Loaded> {
    load_files(ctx, true)
}

/// [`load`] without Amazon's buyers: an earlier run's decisions about them are reused
/// (`crate::reuse`), and the buyer reports are not read.
pub fn load_without_buyers(ctx: &LoadCtx) -> Result<Loaded> {
    load_files(ctx, false)
}

fn load_files(ctx: &LoadCtx, with_buyers: bool) -> Result<Loaded> {
    let (paths, mut buyers) = files_of(ctx.spec)?;
    if !with_buyers {
        buyers.clear();
    }
    let (parsed, reports) = parse_files(ctx, &paths, &buyers);
    let mut outs = Vec::new();
    let mut outcomes = std::collections::BTreeMap::<&str, usize>::new();
    let (mut read, mut parsed_now) = (0, 0);
    let mut count = |outcome: cache::Outcome| {
        *outcomes.entry(outcome.name()).or_default() += 1;
        read += outcome.read() as usize;
        parsed_now += !matches!(outcome, cache::Outcome::Hit { .. }) as usize;
    };
    for parsed in parsed {
        let (out, outcome) = parsed?;
        count(outcome);
        outs.push(out);
    }
    let mut buyer_reports = Vec::new();
    for report in reports {
        let (report, outcome) = report?;
        count(outcome);
        buyer_reports.push(report);
    }
    tracing::info!(stage = %ctx.spec.id, files = paths.len() + buyers.len(), read, "files: {outcomes:?}");
    let mut loaded = Loaded {
        lines: stack(outs.iter_mut().map(|o| std::mem::take(&mut o.lines)).collect(), line_schema())?,
        rejects: stack(outs.iter_mut().map(|o| std::mem::take(&mut o.rejects)).collect(), reject_schema())?,
        files: outs.iter().map(|o| o.input.clone()).collect(),
        rows_read: outs.iter().map(|o| o.input.rows).sum(),
        notes: Vec::new(),
        revenue_read: 0.0,
        parsed: parsed_now,
    };
    std::mem::drop(outs);
    let lines =
        std::mem::take(&mut loaded.lines).lazy().with_column(crate::fx::net_base(ctx.fx).alias(schema::NET_BASE));
    loaded.lines = frame::collect(lines, "net revenue in the base currency")?;
    loaded.revenue_read =
        loaded.lines.column(schema::NET_BASE).ctx(|| "net_base")?.f64().ctx(|| "net_base")?.sum().unwrap_or(0.0);
    if ctx.spec.kind == SourceKind::Amazon && with_buyers {
        amazon::attach_buyers(ctx, &mut loaded, buyer_reports)?;
    }
    Ok(loaded)
}

impl Loaded {
    /// Records that became at least one kept line (a record is one physical entry of an export:
    /// a WooCommerce order row spreads into several lines), counted by (file, line).
    pub fn records_kept(&self) -> Result<usize> {
        let kept = frame::collect(
            self.lines.clone().lazy().select([concat_str(
                [col(aux::FILE).cast(DataType::String), col(aux::LINE).cast(DataType::String)],
                "\u{1f}",
                false,
            )
            .n_unique()
            .alias("n")]),
            "records kept",
        )?;
        Ok(frame::floats(&kept, "n")?.first().copied().flatten().unwrap_or(0.0) as usize)
    }
}

/// Parses (or takes from the cache) every file, a few at a time on plain threads, in file order;
/// Amazon buyer reports (`buyers`, the largest single files) are read first, alongside. One
/// file's plan is many short Polars steps: alone, it leaves Polars' pool spinning idle between
/// them (the load stages ran twice as long on two threads as on one, nearly all of it in
/// `sched_yield`); files side by side keep the pool fed. Polars is called from these threads,
/// never from inside rayon tasks.
fn parse_files(
    ctx: &LoadCtx,
    paths: &[PathBuf],
    buyers: &[PathBuf],
) -> (Vec<Parsed<FileOut>>, Vec<Parsed<amazon::Report>>) {
    enum Done {
        File(Parsed<FileOut>),
        Report(Parsed<amazon::Report>),
    }
    // With each file's size: the largest are parsed first, so that the last file a thread takes
    // is a small one (exports grow month by month: in path order the largest came last, and one
    // core idled while the other parsed it).
    let size = |p: &PathBuf| std::fs::metadata(p).map_or(0, |m| m.len() as usize);
    let jobs: Vec<(&PathBuf, bool, usize)> =
        buyers.iter().map(|p| (p, true, size(p))).chain(paths.iter().map(|p| (p, false, size(p)))).collect();
    let one = |&(path, report, _): &(&PathBuf, bool, usize)| {
        if report {
            return Done::Report(parsed(ctx, path, |file| amazon::read_report(ctx, file)));
        }
        Done::File(parsed(ctx, path, |file| match ctx.spec.kind {
            SourceKind::Amazon => amazon::file(ctx, file),
            SourceKind::Shopify => shopify::file(ctx, file),
            SourceKind::Woocommerce => woocommerce::file(ctx, file),
            SourceKind::Csv => csv::file(ctx, file),
        }))
    };
    let (mut files, mut reports) = (Vec::new(), Vec::new());
    for done in frame::on_threads_largest_first(&jobs, |job| job.2, one) {
        match done {
            Done::File(f) => files.push(f),
            Done::Report(r) => reports.push(r),
        }
    }
    (files, reports)
}

/// The parse of the file at `path`, from the cache if there is one.
fn parsed<'p, T: cache::Cached>(
    ctx: &LoadCtx,
    path: &'p Path,
    parse: impl FnOnce(Export<'p>) -> Result<T>,
) -> Parsed<T> {
    match ctx.cache {
        Some(cache) => cache.get(ctx, path, parse),
        None => parse(Export::open(path)?).map(|out| (out, cache::Outcome::Parsed)),
    }
}

type Parsed<T> = Result<(T, cache::Outcome)>;

/// One file's share of a load.
pub struct FileOut {
    pub lines: DataFrame,
    pub rejects: DataFrame,
    pub input: InputFile,
}

impl cache::Cached for FileOut {
    const KIND: &'static str = "order lines";
    const TABLES: &'static [&'static str] = &["lines.parquet", "rejects.parquet"];
    type Info = InputFile;
    fn info(&self) -> InputFile {
        self.input.clone()
    }
    fn tables(&self) -> Vec<&DataFrame> {
        vec![&self.lines, &self.rejects]
    }
    fn from_tables(input: InputFile, tables: Vec<DataFrame>) -> std::result::Result<Self, String> {
        let [lines, rejects]: [DataFrame; 2] = tables.try_into().map_err(|_| "two tables expected".to_string())?;
        let lines = frame::conform(lines, &line_schema()).map_err(|e| format!("lines.parquet: {e}"))?;
        Ok(FileOut { lines, rejects, input })
    }
}

/// Expands globs into a sorted list of files; a file matched twice is read once.
pub fn expand(patterns: &[String]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for p in patterns {
        let matches = glob::glob(p).map_err(|e| Error::input(p, format!("invalid glob: {e}")))?;
        let before = files.len();
        for m in matches {
            let path = m.map_err(|e| Error::input(p, format!("cannot list: {e}")))?;
            if path.is_file() {
                files.push(path);
            }
        }
        if files.len() == before {
            return Err(Error::input(p, "no file matches this path"));
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

/// A column a source reads: the name it goes by in the loader, the header names it has had
/// across export versions (first match wins, case-insensitive), and whether a file without it is
/// unusable.
pub struct Want {
    pub name: String,
    pub headers: Vec<String>,
    pub required: bool,
}

impl Want {
    pub fn required(name: &str, headers: &[&str]) -> Self {
        Want { name: name.to_string(), headers: headers.iter().map(|s| s.to_string()).collect(), required: true }
    }
    pub fn optional(name: &str, headers: &[&str]) -> Self {
        Want { name: name.to_string(), headers: headers.iter().map(|s| s.to_string()).collect(), required: false }
    }
}

/// One export file, split into records, with the wanted columns as strings.
pub struct RawFile {
    pub shown: String,
    pub format: TextFormat,
    pub header: Vec<String>,
    pub text: String,
    pub records: Records,
    /// Wanted columns (by their `Want::name`), `line`, `rec` and `pre_reason`.
    pub frame: DataFrame,
    pub input: InputFile,
}

pub const REC: &str = "rec";
pub const PRE_REASON: &str = "pre_reason";
pub const REASON: &str = "reason";

/// An export file's bytes, read once: hashed once (for the manifest and the cache key), then
/// parsed if the cache has no entry for them.
pub struct Export<'a> {
    pub path: &'a Path,
    pub bytes: Vec<u8>,
    pub sha256: String,
}

impl<'a> Export<'a> {
    pub fn open(path: &'a Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
        let sha256 = hex(&Sha256::digest(&bytes));
        Ok(Export { path, bytes, sha256 })
    }
}

/// Splits `file`, resolving the columns `choose` wants (given the header) against its header. A
/// missing required column stops the run with the file, the column and the columns found.
pub fn read(file: Export, format: &TextFormat, choose: impl FnOnce(&[String]) -> Result<Vec<Want>>) -> Result<RawFile> {
    let Export { path, bytes, sha256 } = file;
    let size = bytes.len() as u64;
    let text = text::decode(path, bytes, format.encoding)?;
    let (header, start, line) = delimited::header(&text, format);
    if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
        return Err(Error::input(path, "is empty: expected a header line"));
    }
    let wants = choose(&header)?;
    let mut positions = Vec::new();
    let mut missing = Vec::new();
    for w in &wants {
        let found = w.headers.iter().find_map(|h| header.iter().position(|n| n.eq_ignore_ascii_case(h)));
        match found {
            Some(i) => positions.push(Some(i)),
            None if w.required => missing.push(w.headers.join("' or '")),
            None => positions.push(None),
        }
    }
    if !missing.is_empty() {
        return Err(Error::input(
            path,
            format!(
                "missing required column(s) '{}'; the file has {} column(s): {}",
                missing.join("', '"),
                header.len(),
                header.join(", ")
            ),
        ));
    }
    let present: Vec<usize> = positions.iter().flatten().copied().collect();
    let mut records = delimited::records(&text, format, header.len(), (start, line), &present);
    let n = records.len();
    let mut builders = std::mem::take(&mut records.columns).into_iter();
    let mut columns = Vec::with_capacity(wants.len() + 3);
    for (w, p) in wants.iter().zip(&positions) {
        columns.push(match p {
            Some(_) => builders.next().expect("one per present column").with_name(w.name.as_str().into()).into_column(),
            None => Column::full_null(w.name.as_str().into(), n, &DataType::String),
        });
    }
    columns.push(frame::u32_column(aux::LINE, records.lines.clone()));
    columns.push(frame::u32_column(REC, (0..n as u32).collect()));
    let mut pre = vec![None; n];
    for &(i, found) in &records.ragged {
        pre[i] = Some(format!("expected {} fields, found {found}", header.len()));
    }
    for &i in &records.unterminated {
        pre[i] = Some("unterminated quoted field".to_string());
    }
    let pre: StringChunked = pre.into_iter().collect();
    columns.push(pre.with_name(PRE_REASON.into()).into_column());
    let frame = frame::frame(columns)?;
    let shown = path.display().to_string();
    Ok(RawFile {
        input: InputFile { path: shown.clone(), bytes: size, sha256, rows: n as u64 },
        shown,
        format: *format,
        header,
        text,
        records,
        frame,
    })
}

/// A small reference table (FX rates, marketing spend): a UTF-8 comma CSV whose `columns` are found
/// by name. Returns each record's line and its fields in `columns` order; a missing column is an
/// error naming the file, what was expected and what was found.
pub fn reference_table(path: &Path, columns: &[&str]) -> Result<Vec<(u32, Vec<String>)>> {
    let bytes = std::fs::read(path).map_err(|e| Error::input(path, format!("cannot read: {e}")))?;
    let text = text::decode(path, bytes, encoding_rs::UTF_8)?;
    let format = TextFormat {
        delimiter: crate::config::Delimiter::Byte(b','),
        has_header: true,
        quoting: true,
        encoding: encoding_rs::UTF_8,
        decimal_comma: false,
    };
    let (names, start, line) = delimited::header(&text, &format);
    let idx: Vec<usize> = columns
        .iter()
        .map(|w| {
            names.iter().position(|n| n.eq_ignore_ascii_case(w)).ok_or_else(|| {
                Error::input(
                    path,
                    format!("missing column '{w}': expected {}; found {}", columns.join(","), names.join(",")),
                )
            })
        })
        .collect::<Result<_>>()?;
    let records = delimited::records(&text, &format, names.len(), (start, line), &idx);
    let cols: Vec<Vec<String>> =
        records.columns.into_iter().map(|c| c.iter().map(|v| v.unwrap_or_default().to_string()).collect()).collect();
    Ok(records.lines.iter().enumerate().map(|(i, line)| (*line, cols.iter().map(|c| c[i].clone()).collect())).collect())
}

/// A file as the manifest records it (path, size, SHA-256); `rows` is left 0.
pub fn describe(path: &Path) -> Result<InputFile> {
    let file = Export::open(path)?;
    Ok(InputFile { path: path.display().to_string(), bytes: file.bytes.len() as u64, sha256: file.sha256, rows: 0 })
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 * bytes.len());
    for b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// The canonical values of one line, as expressions over a loader's columns. Defaults are nulls;
/// `checks` give the reasons a row is rejected (null when fine), first non-null wins.
pub struct LineExprs {
    pub order_id: Expr,
    /// Position of the line in its order; default: record order within the file.
    pub line_no: Option<Expr>,
    pub customer_key: Expr,
    /// The e-mail as the platform gave it, and the comma-separated tags, lower-cased: for the
    /// test-order patterns only ([`parse::TestPatterns`]).
    pub email: Expr,
    pub ordered_at: Expr,
    pub updated_at: Expr,
    pub ship_country: Expr,
    pub bill_country: Expr,
    pub currency: Expr,
    pub quantity: Expr,
    pub gross: Expr,
    pub discount: Expr,
    pub tax: Expr,
    pub shipping: Expr,
    pub refunded: Expr,
    pub net: Expr,
    pub status: Expr,
    pub channel: Expr,
    pub tags: Expr,
    pub checks: Vec<Expr>,
}

impl Default for LineExprs {
    fn default() -> Self {
        LineExprs {
            order_id: null_str(),
            line_no: None,
            customer_key: null_str(),
            email: null_str(),
            ordered_at: lit(NULL).cast(frame::datetime_type()),
            updated_at: lit(NULL).cast(frame::datetime_type()),
            ship_country: null_str(),
            bill_country: null_str(),
            currency: null_str(),
            quantity: null_f64(),
            gross: null_f64(),
            discount: lit(0.0),
            tax: lit(0.0),
            shipping: lit(0.0),
            refunded: lit(0.0),
            net: null_f64(),
            status: lit(schema::status::COMPLETED),
            channel: null_str(),
            tags: null_str(),
            checks: Vec::new(),
        }
    }
}

/// The working line schema every loader produces, in order. Few-valued text is categories (see
/// `frame::category_type`): a loaded line is about 70 bytes narrower.
pub fn line_schema() -> Vec<(&'static str, DataType)> {
    use schema::*;
    let dt = frame::datetime_type();
    vec![
        (aux::FILE, frame::category_type()),
        (aux::LINE, DataType::UInt32),
        (ORDER_ID, DataType::String),
        (LINE_NO, DataType::Int64),
        (aux::CUSTOMER_KEY, DataType::String),
        (aux::TEST_ORDER, DataType::Boolean),
        (ORDERED_AT, dt.clone()),
        (ORDER_DATE, DataType::Date),
        (aux::UPDATED_AT, dt),
        (aux::SHIP_COUNTRY, frame::category_type()),
        (aux::BILL_COUNTRY, frame::category_type()),
        (CURRENCY, frame::category_type()),
        (QUANTITY, DataType::Float64),
        (GROSS, DataType::Float64),
        (DISCOUNT, DataType::Float64),
        (TAX, DataType::Float64),
        (SHIPPING, DataType::Float64),
        (REFUNDED, DataType::Float64),
        (NET, DataType::Float64),
        (STATUS, frame::category_type()),
        (aux::CHANNEL, DataType::String),
    ]
}

pub fn reject_schema() -> Vec<(&'static str, DataType)> {
    vec![
        (rejects::FILE, DataType::String),
        (rejects::LINE, DataType::Int64),
        (rejects::REASON, DataType::String),
        (rejects::RAW, DataType::String),
    ]
}

fn empty(schema: &[(&'static str, DataType)]) -> Result<DataFrame> {
    frame::frame(schema.iter().map(|(n, t)| Column::new_empty((*n).into(), t)).collect())
}

/// Rows below which consecutive files' frames are merged into one chunk when stacked: daily
/// exports made thousands of chunks of a few hundred rows, and every later pass paid per chunk.
/// A file this large stays as it was read (no copy).
const CHUNK_ROWS: usize = 1 << 16;

/// The files' frames one under the other, small ones merged into chunks of [`CHUNK_ROWS`].
fn stack(frames: Vec<DataFrame>, schema: Vec<(&'static str, DataType)>) -> Result<DataFrame> {
    let (mut parts, mut small, mut small_rows) = (Vec::new(), Vec::new(), 0);
    for f in frames {
        if f.height() >= CHUNK_ROWS {
            parts.extend(one_chunk(std::mem::take(&mut small))?);
            parts.push(f);
            continue;
        }
        small_rows += f.height();
        small.push(f);
        if small_rows >= CHUNK_ROWS {
            parts.extend(one_chunk(std::mem::take(&mut small))?);
            small_rows = 0;
        }
    }
    parts.extend(one_chunk(small)?);
    on_top(parts)?.map_or_else(|| empty(&schema), Ok)
}

/// Frames one under the other; `None` for none.
fn on_top(frames: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    let mut frames = frames.into_iter();
    let Some(mut all) = frames.next() else { return Ok(None) };
    for f in frames {
        all.vstack_mut_owned(f).ctx(|| "stacking files")?;
    }
    Ok(Some(all))
}

/// Frames one under the other, in one chunk.
fn one_chunk(frames: Vec<DataFrame>) -> Result<Option<DataFrame>> {
    Ok(on_top(frames)?.map(|mut all| std::mem::take(all.rechunk_mut())))
}

/// Reason when `raw` is present but `parsed` is null: "unparseable <label> '<raw>'".
pub fn unparseable(raw: Expr, parsed: Expr, label: &str) -> Expr {
    let bad = raw.clone().is_not_null().and(parsed.is_null());
    frame::text_where(raw, bad, format!("unparseable {label} '"), "'")
}

/// Reason when `raw` is absent: "missing <label>".
pub fn missing(raw: Expr, label: &str) -> Expr {
    when(raw.is_null()).then(lit(format!("missing {label}"))).otherwise(null_str())
}

/// Both checks for a required field.
pub fn required(raw: Expr, parsed: Expr, label: &str) -> Expr {
    coalesce(&[missing(raw.clone(), label), unparseable(raw, parsed, label)])
}

pub fn amount(e: Expr, decimal_comma: bool) -> Expr {
    frame::str_to_f64(e, move |s| parse::amount(s, decimal_comma))
}

pub fn timestamp(e: Expr, ts: parse::Timestamps) -> Expr {
    frame::str_to_datetime(e, move |s| ts.parse(s))
}

pub fn status_of(e: Expr) -> Expr {
    frame::str_to_str(e, |s| parse::status(s).map(str::to_string))
}

pub fn email_key(e: Expr) -> Expr {
    frame::str_to_str(e, parse::email_key)
}

/// [`parse::country`] in a plan.
pub fn country(e: Expr) -> Expr {
    e.str().strip_chars(lit(NULL)).str().to_uppercase()
}

/// Header words that mark a column holding personal data (matched case-insensitively, anywhere in
/// the name). Deliberately broad: masking a product name costs nothing, leaking an address does.
const PERSONAL: &[&str] = &[
    "mail",
    "name",
    "phone",
    "tel",
    "address",
    "street",
    "zip",
    "postcode",
    "postal",
    "city",
    "note",
    "ip_address",
    "ip address",
    "user_agent",
    "user-agent",
    "company",
    "recipient",
    "customer",
    "buyer",
];

/// A rejected record for the `rejects` table: the record as written, with every field whose
/// column holds personal data, and every value that looks like an e-mail, replaced by `***`.
pub fn redact(record: &str, header: &[String], format: &TextFormat) -> String {
    let personal = |i: usize| {
        header.get(i).is_some_and(|h| {
            let h = h.to_lowercase();
            PERSONAL.iter().any(|p| h.contains(p))
        })
    };
    let fields: Vec<String> = delimited::fields(record, format)
        .into_iter()
        .enumerate()
        .map(|(i, f)| if !f.is_empty() && (personal(i) || f.contains('@')) { "***".to_string() } else { f })
        .collect();
    let sep = match format.delimiter {
        crate::config::Delimiter::Byte(b) => (b as char).to_string(),
        crate::config::Delimiter::Whitespace => " ".to_string(),
    };
    let quote = |f: String| {
        if format.quoting && (f.contains(&sep) || f.contains(['"', '\n', '\r'])) {
            format!("\"{}\"", f.replace('"', "\"\""))
        } else {
            f
        }
    };
    fields.into_iter().map(quote).collect::<Vec<_>>().join(&sep)
}

/// Each line's position within its order, in file order: 1, 2, ... per order id (nulls count as
/// one order). A hash pass: Polars' ranked window ran one closure per order.
fn running_count(order_ids: &StringChunked) -> Vec<i64> {
    let mut seen: PlHashMap<Option<&str>, i64> = PlHashMap::with_capacity(order_ids.len());
    order_ids
        .iter()
        .map(|id| {
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            *n
        })
        .collect()
}

/// A record that yields several lines (WebToffee items) is rejected whole if any line is: every
/// line of the record takes the record's first reason. Nothing to do when no line has one.
fn whole_records(df: &mut DataFrame) -> Result<()> {
    let spread: StringChunked = {
        let reasons = frame::str_column(df, REASON)?;
        if reasons.null_count() == reasons.len() {
            return Ok(());
        }
        let recs = df.column(REC).ctx(|| "rec")?.u32().ctx(|| "rec")?;
        let mut first: PlHashMap<u32, &str> = PlHashMap::new();
        for (rec, reason) in recs.iter().zip(reasons.iter()) {
            if let (Some(rec), Some(reason)) = (rec, reason) {
                first.entry(rec).or_insert(reason);
            }
        }
        recs.iter().map(|rec| rec.and_then(|r| first.get(&r).copied())).collect()
    };
    df.with_column(spread.with_name(REASON.into()).into_column()).ctx(|| "reasons per record")?;
    Ok(())
}

/// Builds the working lines and rejects of one file from its loader's expressions.
pub fn finish(ctx: &LoadCtx, raw: RawFile, lf: LazyFrame, e: LineExprs) -> Result<FileOut> {
    use schema::*;
    let zone = ctx.zone;
    let fx = ctx.fx.clone();
    let tests = parse::TestPatterns::new(&ctx.tests);
    let mut reasons = vec![col(PRE_REASON)];
    reasons.extend(e.checks);
    let selected = lf.select([
        frame::category(lit(raw.shown.clone())).alias(aux::FILE),
        col(aux::LINE),
        col(REC),
        col(PRE_REASON),
        e.line_no.clone().unwrap_or_else(|| lit(NULL)).alias("_line_no"),
        e.order_id.cast(DataType::String).alias(ORDER_ID),
        e.customer_key.cast(DataType::String).alias(aux::CUSTOMER_KEY),
        e.email.cast(DataType::String).alias("_email"),
        e.ordered_at.cast(frame::datetime_type()).alias(ORDERED_AT),
        e.updated_at.cast(frame::datetime_type()).alias(aux::UPDATED_AT),
        frame::text_category(e.ship_country.cast(DataType::String)).alias(aux::SHIP_COUNTRY),
        frame::text_category(e.bill_country.cast(DataType::String)).alias(aux::BILL_COUNTRY),
        frame::text_category(e.currency.cast(DataType::String)).alias(CURRENCY),
        e.quantity.cast(DataType::Float64).alias(QUANTITY),
        e.gross.cast(DataType::Float64).alias(GROSS),
        e.discount.cast(DataType::Float64).alias(DISCOUNT),
        e.tax.cast(DataType::Float64).alias(TAX),
        e.shipping.cast(DataType::Float64).alias(SHIPPING),
        e.refunded.cast(DataType::Float64).alias(REFUNDED),
        e.net.cast(DataType::Float64).alias(NET),
        frame::text_category(e.status.cast(DataType::String)).alias(STATUS),
        e.channel.cast(DataType::String).alias(aux::CHANNEL),
        e.tags.cast(DataType::String).alias("_tags"),
        coalesce(&reasons).alias(REASON),
    ]);
    let has_line_no = e.line_no.is_some();
    let mut with_date = selected.with_columns([
        frame::local_date(col(ORDERED_AT), zone).alias(ORDER_DATE),
        frame::two_texts_to_bool(col("_email"), col("_tags"), move |email, tags| tests.is_test(email, tags))
            .alias(aux::TEST_ORDER),
    ]);
    if has_line_no {
        with_date = with_date.with_column(col("_line_no").cast(DataType::Int64).alias(LINE_NO));
    }
    let fx_reason =
        frame::text_day_number_to_str(col(CURRENCY), col(ORDER_DATE), col(NET), move |c, d, n| fx.problem(c, d, n));
    let mut df = frame::collect_rowwise(
        with_date.with_column(coalesce(&[col(REASON), fx_reason]).alias(REASON)),
        &format!("lines of {}", raw.shown),
    )?;
    if !has_line_no {
        let numbers = running_count(frame::str_column(&df, ORDER_ID)?);
        df.with_column(Column::new(LINE_NO.into(), numbers)).ctx(|| "line numbers")?;
    }
    whole_records(&mut df)?;

    let bad = df.column(REASON).ctx(|| "reasons")?.is_not_null();
    let names: Vec<&str> = line_schema().iter().map(|(n, _)| *n).collect();
    if !bad.any() {
        // Most files reject nothing: no filters and no plan for their rejects (per file, those
        // were a fifth of loading a daily export).
        let lines = df.select(names).ctx(|| "line columns")?;
        return Ok(FileOut { lines, rejects: empty(&reject_schema())?, input: raw.input });
    }
    let rejected = df
        .filter(&bad)
        .ctx(|| "selecting rejects")?
        .unique_stable(Some(&[REC.into()]), UniqueKeepStrategy::First, None)
        .ctx(|| "one reject per record")?;
    let recs: Vec<u32> = rejected.column(REC).ctx(|| "rec")?.u32().ctx(|| "rec")?.into_no_null_iter().collect();
    let raws: Vec<String> =
        recs.iter().map(|&r| redact(raw.records.raw(&raw.text, r as usize), &raw.header, &raw.format)).collect();
    let rejects = rejected
        .lazy()
        .select([
            col(aux::FILE).cast(DataType::String).alias(rejects::FILE),
            col(aux::LINE).cast(DataType::Int64).alias(rejects::LINE),
            col(REASON).alias(rejects::REASON),
        ])
        .collect()
        .ctx(|| "rejects")?
        .hstack(&[Column::new(rejects::RAW.into(), raws)])
        .ctx(|| "rejects")?;

    let lines = df.filter(&!bad).ctx(|| "selecting lines")?.select(names).ctx(|| "line columns")?;
    Ok(FileOut { lines, rejects, input: raw.input })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Daily files' small frames are merged into chunks of about CHUNK_ROWS; a large file's
    /// frame is stacked as it was; the rows keep their order.
    #[test]
    fn stacking_merges_small_files_into_chunks_and_keeps_large_ones() {
        let frame = |from: u32, rows: usize| df!("n" => (from..from + rows as u32).collect::<Vec<_>>()).unwrap();
        let schema = vec![("n", DataType::UInt32)];
        let small = 1000;
        let mut frames: Vec<DataFrame> = (0..300).map(|i| frame(i * small as u32, small)).collect();
        let big_from = 300 * small as u32;
        let mut big = frame(big_from, CHUNK_ROWS);
        big.vstack_mut_owned(frame(big_from + CHUNK_ROWS as u32, 10)).unwrap();
        frames.push(big);
        frames.push(frame(big_from + CHUNK_ROWS as u32 + 10, 5));
        let all = stack(frames, schema.clone()).unwrap();
        let n: Vec<u32> = all.column("n").unwrap().u32().unwrap().into_no_null_iter().collect();
        assert_eq!(n, (0..big_from + CHUNK_ROWS as u32 + 15).collect::<Vec<_>>());
        // 300,000 small rows in 5 chunks of 66,000 (the last one short), the big frame's 2, the tail's 1.
        let chunks = all.column("n").unwrap().as_materialized_series().n_chunks();
        assert_eq!(chunks, 300 * small / (CHUNK_ROWS.div_ceil(small) * small) + 1 + 2 + 1);
        assert_eq!(stack(vec![], schema).unwrap().height(), 0);
    }

    #[test]
    fn lines_are_numbered_within_their_order_in_file_order() {
        let ids: StringChunked =
            [Some("A"), Some("B"), Some("A"), None, Some("A"), None, Some("B")].into_iter().collect();
        assert_eq!(running_count(&ids), [1, 1, 2, 1, 3, 2, 2]);
    }

    #[test]
    fn a_record_is_rejected_whole() {
        let mut df = df!(
            REC => [0u32, 0, 0, 1, 2, 2],
            REASON => [None, Some("bad sku"), Some("bad price"), None, None, None]
        )
        .unwrap();
        whole_records(&mut df).unwrap();
        let got = frame::strings(&df, REASON).unwrap();
        let want = [Some("bad sku"), Some("bad sku"), Some("bad sku"), None, None, None];
        assert_eq!(got, want.map(|r| r.map(str::to_string)));
    }
}
