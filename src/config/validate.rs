//! Semantic checks on the raw configuration, collecting every problem (with its YAML path) instead
//! of stopping at the first, and the typed pipeline the stages run from.

use super::Problem;
use super::locate::Seg;
use super::raw::{
    CohortBy, ConstantField, ModelChoice, Paths, Period, RawClv, RawCohorts, RawColumns, RawHeader, RawLoad,
    RawSegment, RawSpend, RawStage, RawSummarize, RawUnify, SourceKind, SpendModel, TimeUnit,
};
use crate::countries;
use chrono::NaiveDate;
use chrono_tz::Tz;
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub file: PathBuf,
    pub base_currency: String,
    pub as_of: AsOf,
    pub timezone: Tz,
    pub time_unit: TimeUnit,
    pub output: PathBuf,
    pub fx_rates: Option<PathBuf>,
    /// market -> alpha-2 countries; countries in no market belong to `other`.
    pub markets: BTreeMap<String, Vec<String>>,
    /// Parquet compression is zstd rather than snappy.
    pub zstd: bool,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsOf {
    Yesterday,
    Today,
    Date(NaiveDate),
}

impl AsOf {
    /// Resolves once, in the pipeline's zone, at the start of a run.
    pub fn resolve(self, tz: Tz) -> NaiveDate {
        let today = chrono::Utc::now().with_timezone(&tz).date_naive();
        match self {
            AsOf::Yesterday => today.pred_opt().unwrap_or(today),
            AsOf::Today => today,
            AsOf::Date(d) => d,
        }
    }
}

#[derive(Debug, Clone)]
pub enum Stage {
    Load(Box<LoadSpec>),
    Unify(UnifySpec),
    Summarize(SummarizeSpec),
    Clv(ClvSpec),
    Segment(SegmentSpec),
    Cohorts(CohortsSpec),
    Spend(SpendSpec),
}

impl Stage {
    pub fn id(&self) -> &str {
        match self {
            Stage::Load(s) => &s.id,
            Stage::Unify(s) => &s.id,
            Stage::Summarize(s) => &s.id,
            Stage::Clv(s) => &s.id,
            Stage::Segment(s) => &s.id,
            Stage::Cohorts(s) => &s.id,
            Stage::Spend(s) => &s.id,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Stage::Load(_) => "load",
            Stage::Unify(_) => "unify",
            Stage::Summarize(_) => "summarize",
            Stage::Clv(_) => "clv",
            Stage::Segment(_) => "segment",
            Stage::Cohorts(_) => "cohorts",
            Stage::Spend(_) => "spend",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SummarizeSpec {
    pub id: String,
    pub input: String,
    /// `None`: the run's as_of.
    pub calibration_end: Option<NaiveDate>,
}

#[derive(Debug, Clone)]
pub struct ClvSpec {
    pub id: String,
    pub input: String,
    pub model: ModelChoice,
    pub spend_model: SpendModel,
    /// Holdout length in days.
    pub holdout_days: Option<f64>,
    /// Horizon in days (a month is 365.25 / 12 days).
    pub horizon_days: f64,
    pub annual_discount_rate: f64,
    pub margin: f64,
    pub min_customers: u64,
}

#[derive(Debug, Clone)]
pub struct SegmentSpec {
    pub id: String,
    pub input: String,
    /// Shares of customers by predicted CLV: the top `vip`, the next `mid`; the rest are low.
    pub vip: f64,
    pub mid: f64,
    pub at_risk_below: f64,
    pub lost_below: f64,
    /// Days.
    pub new_within_days: f64,
}

#[derive(Debug, Clone)]
pub struct SpendSpec {
    pub id: String,
    pub path: PathBuf,
}

#[derive(Debug, Clone)]
pub struct CohortsSpec {
    pub id: String,
    pub input: String,
    /// Always contains `Market`; `Source` adds per-source cohorts.
    pub by: Vec<CohortBy>,
    pub period: Period,
}

/// Days in one `time_unit`.
pub fn days_per_unit(unit: TimeUnit) -> f64 {
    match unit {
        TimeUnit::Day => 1.0,
        TimeUnit::Week => 7.0,
    }
}

/// `13 weeks`, `12 months`, `90 days`, `1 year` -> days.
pub fn parse_duration(s: &str) -> Option<f64> {
    let mut parts = s.split_whitespace();
    let n: f64 = parts.next()?.parse().ok()?;
    let unit = parts.next()?;
    if parts.next().is_some() || !(n > 0.0 && n.is_finite()) {
        return None;
    }
    let days = match unit.trim_end_matches('s') {
        "day" => 1.0,
        "week" => 7.0,
        "month" => 365.25 / 12.0,
        "year" => 365.25,
        _ => return None,
    };
    Some(n * days)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delimiter {
    Byte(u8),
    /// Runs of spaces and tabs; leading blanks ignored.
    Whitespace,
}

/// How the bytes of a delimited file are split into records and fields.
#[derive(Debug, Clone, Copy)]
pub struct TextFormat {
    pub delimiter: Delimiter,
    pub has_header: bool,
    /// Whether `"` quotes fields. Off for Amazon: product names contain raw `"`.
    pub quoting: bool,
    pub encoding: &'static encoding_rs::Encoding,
    pub decimal_comma: bool,
}

#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub id: String,
    pub kind: SourceKind,
    pub paths: Vec<String>,
    pub buyers: Vec<String>,
    pub format: TextFormat,
    pub date_format: Option<String>,
    /// Zone of timestamps that carry no offset.
    pub timezone: Tz,
    pub columns: RawColumns,
    pub constants: BTreeMap<ConstantField, String>,
    pub max_reject_rate: f64,
}

#[derive(Debug, Clone)]
pub struct UnifySpec {
    pub id: String,
    pub inputs: Vec<String>,
    pub test_orders: TestOrders,
    /// `None`: the ids and source kinds of the other inputs.
    pub duplicate_channels: Option<Vec<String>>,
}

/// Patterns that mark test orders: `*` matches any run of characters.
#[derive(Debug, Clone)]
pub struct TestOrders {
    pub emails: Vec<String>,
    pub tags: Vec<String>,
}

impl Default for TestOrders {
    fn default() -> Self {
        TestOrders {
            emails: ["test@*", "*+test@*", "*@example.com", "*@example.org", "*@example.net"]
                .map(String::from)
                .to_vec(),
            tags: vec!["test".into()],
        }
    }
}

pub const DEFAULT_MAX_REJECT_RATE: f64 = 0.01;

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn at(&mut self, path: &[Seg], message: impl Into<String>) {
        self.problems.push(Problem { path: path.to_vec(), message: message.into() });
    }
}

fn key(path: &[Seg], k: &str) -> Vec<Seg> {
    let mut p = path.to_vec();
    p.push(Seg::Key(k.into()));
    p
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

pub fn validate(file: &Path, h: RawHeader, stages: Vec<RawStage>) -> Result<Pipeline, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };
    let root: Vec<Seg> = Vec::new();

    if h.name.trim().is_empty() {
        c.at(&key(&root, "name"), "must not be empty");
    }
    if !(h.base_currency.len() == 3 && h.base_currency.bytes().all(|b| b.is_ascii_uppercase())) {
        c.at(&key(&root, "base_currency"), format!("'{}' is not an ISO 4217 code like USD", h.base_currency));
    }
    let as_of = match h.as_of.as_deref() {
        None | Some("yesterday") => AsOf::Yesterday,
        Some("today") => AsOf::Today,
        Some(s) => match NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            Ok(d) => AsOf::Date(d),
            Err(_) => {
                c.at(&key(&root, "as_of"), format!("'{s}' is not `yesterday`, `today` or a date YYYY-MM-DD"));
                AsOf::Yesterday
            }
        },
    };
    let timezone = parse_tz(&mut c, &key(&root, "timezone"), h.timezone.as_deref());
    let fx_rates = h.fx_rates.as_ref().map(PathBuf::from);
    if let Some(p) = &fx_rates
        && !p.is_file()
    {
        c.at(&key(&root, "fx_rates"), format!("file '{}' does not exist", p.display()));
    }

    let mut seen_country: BTreeMap<String, String> = BTreeMap::new();
    for (market, countries_) in &h.markets {
        let mpath = key(&key(&root, "markets"), market);
        if !is_name(market) {
            c.at(&mpath, format!("market name '{market}' must be lower-case letters, digits, '_' or '-'"));
        }
        if market == crate::schema::OTHER_MARKET {
            c.at(&mpath, "`other` is reserved for countries no market lists");
        }
        for (i, code) in countries_.iter().enumerate() {
            let cpath = [mpath.clone(), vec![Seg::Index(i)]].concat();
            if !countries::is_alpha2(code) {
                c.at(&cpath, format!("'{code}' is not an ISO 3166-1 alpha-2 country code like US or DE"));
            } else if let Some(prev) = seen_country.insert(code.clone(), market.clone()) {
                c.at(&cpath, format!("country {code} is already in market `{prev}`"));
            }
        }
    }

    let mut ids: HashSet<String> = HashSet::new();
    let mut load_ids: BTreeMap<String, SourceKind> = BTreeMap::new();
    let mut typed = Vec::new();
    for (i, stage) in stages.into_iter().enumerate() {
        let spath = vec![Seg::Key("stages".into()), Seg::Index(i), Seg::Key(stage.kind().into())];
        let id = stage.id().to_string();
        if !is_name(&id) {
            c.at(&key(&spath, "id"), format!("id '{id}' must be lower-case letters, digits, '_' or '-'"));
        }
        if !ids.insert(id.clone()) {
            c.at(&key(&spath, "id"), format!("id '{id}' is used by an earlier stage"));
        }
        // The runner keeps one result per analysis stage: a second one would shadow the first.
        if stage.kind() != "load" && typed.iter().any(|s: &Stage| s.kind() == stage.kind()) {
            c.at(&spath, format!("a pipeline has at most one `{}` stage", stage.kind()));
        }
        match stage {
            RawStage::Load(l) => {
                if typed.iter().any(|s| matches!(s, Stage::Unify(_))) {
                    c.at(
                        &spath,
                        "a load stage after the unify stage: loads come first (the orders table is built from them)",
                    );
                }
                load_ids.insert(l.id.clone(), l.source);
                typed.push(Stage::Load(Box::new(check_load(&mut c, &spath, *l))));
            }
            RawStage::Unify(u) => typed.push(Stage::Unify(check_unify(&mut c, &spath, u, &load_ids))),
            RawStage::Summarize(s) => {
                let spec = check_summarize(&mut c, &spath, s, &typed);
                typed.push(Stage::Summarize(spec))
            }
            RawStage::Clv(s) => {
                let spec = check_clv(&mut c, &spath, s, &typed);
                typed.push(Stage::Clv(spec))
            }
            RawStage::Segment(s) => {
                let spec = check_segment(&mut c, &spath, s, &typed);
                typed.push(Stage::Segment(spec))
            }
            RawStage::Cohorts(s) => {
                let spec = check_cohorts(&mut c, &spath, s, &typed);
                typed.push(Stage::Cohorts(spec))
            }
            RawStage::Spend(s) => typed.push(Stage::Spend(check_spend(&mut c, &spath, s))),
        }
    }
    match typed.iter().filter(|s| matches!(s, Stage::Unify(_))).count() {
        0 => c.at(&key(&root, "stages"), "needs a `unify` stage: it builds the orders table every output starts from"),
        1 => {}
        n => c.at(&key(&root, "stages"), format!("has {n} `unify` stages: one builds the orders table")),
    }

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    Ok(Pipeline {
        name: h.name,
        file: file.to_path_buf(),
        base_currency: h.base_currency,
        as_of,
        timezone,
        time_unit: h.time_unit.unwrap_or(TimeUnit::Day),
        output: PathBuf::from(h.output.unwrap_or_else(|| "out".into())),
        fx_rates,
        markets: h.markets,
        zstd: h.compression == Some(super::raw::Compression::Zstd),
        stages: typed,
    })
}

fn parse_tz(c: &mut Checker, path: &[Seg], tz: Option<&str>) -> Tz {
    match tz {
        None => Tz::UTC,
        Some(s) => s.parse::<Tz>().unwrap_or_else(|_| {
            c.at(path, format!("'{s}' is not an IANA time zone like Europe/Berlin or UTC"));
            Tz::UTC
        }),
    }
}

fn check_paths(c: &mut Checker, path: &[Seg], paths: &Paths) -> Vec<String> {
    let patterns = paths.patterns();
    if patterns.is_empty() {
        c.at(path, "needs at least one file or glob");
    }
    for (i, p) in patterns.iter().enumerate() {
        let at = match paths {
            Paths::One(_) => path.to_vec(),
            Paths::Many(_) => [path.to_vec(), vec![Seg::Index(i)]].concat(),
        };
        match glob::glob(p) {
            Err(e) => c.at(&at, format!("'{p}' is not a valid glob: {e}")),
            Ok(mut it) => {
                if !it.any(|e| e.map(|p| p.is_file()).unwrap_or(false)) {
                    c.at(&at, format!("no file matches '{p}'"));
                }
            }
        }
    }
    patterns
}

fn check_load(c: &mut Checker, path: &[Seg], l: RawLoad) -> LoadSpec {
    use SourceKind::*;
    let kind = l.source;
    let name = match kind {
        Amazon => "amazon",
        Shopify => "shopify",
        Woocommerce => "woocommerce",
        Csv => "csv",
    };
    let only = |c: &mut Checker, present: bool, field: &str, allowed: &[SourceKind], why: &str| {
        if present && !allowed.contains(&kind) {
            c.at(&key(path, field), format!("not used by source `{name}`: {why}"));
        }
    };
    only(c, l.buyers.is_some(), "buyers", &[Amazon], "only Amazon orders need a separate buyers report");
    only(c, l.columns.is_some(), "columns", &[Csv], "the preset knows its columns");
    only(c, l.delimiter.is_some(), "delimiter", &[Csv], "the preset knows its delimiter");
    only(c, l.has_header.is_some(), "has_header", &[Csv], "the preset's files have a header");
    only(c, l.quoting.is_some(), "quoting", &[Csv], "the preset knows its quoting");
    only(c, l.timezone.is_some(), "timezone", &[Woocommerce, Csv], "its timestamps carry their UTC offset");
    only(c, l.date_format.is_some(), "date_format", &[Woocommerce, Csv], "its date format is fixed");
    only(c, l.decimal_comma.is_some(), "decimal_comma", &[Woocommerce, Csv], "its amounts use decimal points");

    let paths = check_paths(c, &key(path, "path"), &l.path);
    let buyers = l.buyers.as_ref().map(|b| check_paths(c, &key(path, "buyers"), b)).unwrap_or_default();

    let delimiter = match l.delimiter.as_deref() {
        None => match kind {
            Amazon => Delimiter::Byte(b'\t'),
            _ => Delimiter::Byte(b','),
        },
        Some("whitespace") => Delimiter::Whitespace,
        Some("tab" | "\\t" | "\t") => Delimiter::Byte(b'\t'),
        Some(s) if s.len() == 1 && s.is_ascii() && !matches!(s, "\"" | "\n" | "\r") => Delimiter::Byte(s.as_bytes()[0]),
        Some(s) => {
            c.at(&key(path, "delimiter"), format!("'{s}' is not one character (or `tab`, `whitespace`)"));
            Delimiter::Byte(b',')
        }
    };
    let encoding = match l.encoding.as_deref() {
        None => encoding_rs::UTF_8,
        Some(e) => encoding_rs::Encoding::for_label(e.as_bytes()).unwrap_or_else(|| {
            c.at(
                &key(path, "encoding"),
                format!("unknown encoding '{e}' (utf-8, windows-1252, shift_jis, iso-8859-1, ...)"),
            );
            encoding_rs::UTF_8
        }),
    };
    let timezone = parse_tz(c, &key(path, "timezone"), l.timezone.as_deref());
    let max_reject_rate = l.max_reject_rate.unwrap_or(DEFAULT_MAX_REJECT_RATE);
    if !(0.0..=1.0).contains(&max_reject_rate) {
        c.at(&key(path, "max_reject_rate"), format!("{max_reject_rate} is not a share between 0 and 1"));
    }
    if let Some(f) = &l.date_format
        && f.trim().is_empty()
    {
        c.at(&key(path, "date_format"), "must not be empty");
    }

    let columns = l.columns.clone().unwrap_or_default();
    if kind == Csv {
        let cpath = key(path, "columns");
        match &l.columns {
            None => c.at(
                &cpath,
                "source `csv` needs a column mapping (customer, ordered_at, amount or quantity + unit_price)",
            ),
            Some(m) => {
                if m.customer.is_none() {
                    c.at(&cpath, "needs `customer`: the column with the e-mail or customer id");
                }
                if m.ordered_at.is_none() {
                    c.at(&cpath, "needs `ordered_at`: the column with the order date");
                }
                if m.amount.is_none() && (m.quantity.is_none() || m.unit_price.is_none()) {
                    c.at(&cpath, "needs `amount` (line total), or `quantity` and `unit_price`");
                }
                if m.currency.is_none() && !l.constants.contains_key(&ConstantField::Currency) {
                    c.at(&cpath, "needs `currency`, or `constants: { currency: XXX }` for files in one currency");
                }
            }
        }
    }
    for (field, value) in &l.constants {
        let at = key(&key(path, "constants"), constant_name(*field));
        match field {
            ConstantField::Currency if !(value.len() == 3 && value.bytes().all(|b| b.is_ascii_uppercase())) => {
                c.at(&at, format!("'{value}' is not an ISO 4217 code like EUR"))
            }
            ConstantField::Country if countries::to_alpha2(value).is_none() => {
                c.at(&at, format!("'{value}' is not a country code or name"))
            }
            _ => {}
        }
    }

    LoadSpec {
        id: l.id,
        kind,
        paths,
        buyers,
        format: TextFormat {
            delimiter,
            has_header: l.has_header.unwrap_or(true),
            quoting: l.quoting.unwrap_or(kind != Amazon),
            encoding,
            decimal_comma: l.decimal_comma.unwrap_or(false),
        },
        date_format: l.date_format,
        timezone,
        columns,
        constants: l.constants,
        max_reject_rate,
    }
}

pub fn constant_name(f: ConstantField) -> &'static str {
    match f {
        ConstantField::Currency => "currency",
        ConstantField::Country => "country",
        ConstantField::Status => "status",
    }
}

/// `input` must name an earlier stage of the kind `want`.
fn check_input(c: &mut Checker, path: &[Seg], input: &str, earlier: &[Stage], want: &str) {
    match earlier.iter().find(|s| s.id() == input) {
        Some(s) if s.kind() == want => {}
        Some(s) => c.at(&key(path, "input"), format!("'{input}' is a `{}` stage; expected a `{want}` stage", s.kind())),
        None => {
            let known: Vec<&str> = earlier.iter().filter(|s| s.kind() == want).map(Stage::id).collect();
            c.at(
                &key(path, "input"),
                format!("'{input}' is not a `{want}` stage defined above (known: {})", known.join(", ")),
            )
        }
    }
}

fn check_summarize(c: &mut Checker, path: &[Seg], s: RawSummarize, earlier: &[Stage]) -> SummarizeSpec {
    check_input(c, path, &s.input, earlier, "unify");
    let calibration_end = s.calibration_end.as_deref().and_then(|d| {
        let parsed = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        if parsed.is_none() {
            c.at(&key(path, "calibration_end"), format!("'{d}' is not a date YYYY-MM-DD"));
        }
        parsed
    });
    SummarizeSpec { id: s.id, input: s.input, calibration_end }
}

fn check_clv(c: &mut Checker, path: &[Seg], s: RawClv, earlier: &[Stage]) -> ClvSpec {
    check_input(c, path, &s.input, earlier, "summarize");
    let mut duration = |field: &str, v: Option<&str>| {
        v.and_then(|text| {
            let d = parse_duration(text);
            if d.is_none() {
                c.at(&key(path, field), format!("'{text}' is not a duration like `13 weeks`, `90 days`, `12 months`"));
            }
            d
        })
    };
    let holdout_days = duration("holdout", s.holdout.as_deref());
    let horizon_days = duration("horizon", s.horizon.as_deref()).unwrap_or(365.25);
    let rate = s.annual_discount_rate.unwrap_or(0.10);
    if !(0.0..1.0).contains(&rate) {
        c.at(&key(path, "annual_discount_rate"), format!("{rate} is not a yearly rate between 0 and 1"));
    }
    let margin = s.margin.unwrap_or(1.0);
    if !(margin > 0.0 && margin <= 1.0) {
        c.at(&key(path, "margin"), format!("{margin} is not a gross margin share in (0, 1]"));
    }
    let min_customers = s.min_customers.unwrap_or(200);
    if min_customers == 0 {
        c.at(&key(path, "min_customers"), "must be at least 1");
    }
    ClvSpec {
        id: s.id,
        input: s.input,
        model: s.model.unwrap_or(ModelChoice::Auto),
        spend_model: s.spend_model.unwrap_or(SpendModel::GammaGamma),
        holdout_days,
        horizon_days,
        annual_discount_rate: rate,
        margin,
        min_customers,
    }
}

fn check_segment(c: &mut Checker, path: &[Seg], s: RawSegment, earlier: &[Stage]) -> SegmentSpec {
    check_input(c, path, &s.input, earlier, "clv");
    let (vip, mid) = s.tiers.map_or((0.20, 0.30), |t| (t.vip, t.mid));
    if !(vip >= 0.0 && mid >= 0.0 && vip + mid <= 1.0) {
        c.at(&key(path, "tiers"), format!("vip {vip} and mid {mid} must be shares that add up to at most 1"));
    }
    let at_risk_below = s.at_risk_below.unwrap_or(0.5);
    let lost_below = s.lost_below.unwrap_or(0.2);
    if !(0.0..=1.0).contains(&at_risk_below) || !(0.0..=1.0).contains(&lost_below) || lost_below > at_risk_below {
        c.at(&key(path, "lost_below"), "P(alive) thresholds must satisfy 0 <= lost_below <= at_risk_below <= 1");
    }
    let new_within_days = match s.new_within.as_deref() {
        None => 30.0,
        Some(text) => parse_duration(text).unwrap_or_else(|| {
            c.at(&key(path, "new_within"), format!("'{text}' is not a duration like `30 days`"));
            30.0
        }),
    };
    SegmentSpec { id: s.id, input: s.input, vip, mid, at_risk_below, lost_below, new_within_days }
}

fn check_cohorts(c: &mut Checker, path: &[Seg], s: RawCohorts, earlier: &[Stage]) -> CohortsSpec {
    check_input(c, path, &s.input, earlier, "unify");
    let mut by = s.by.unwrap_or_else(|| vec![CohortBy::Market]);
    if !by.contains(&CohortBy::Market) {
        c.at(&key(path, "by"), "cohorts are always per market: include `market`");
    }
    by.sort();
    by.dedup();
    CohortsSpec { id: s.id, input: s.input, by, period: s.period.unwrap_or(Period::Month) }
}

fn check_spend(c: &mut Checker, path: &[Seg], s: RawSpend) -> SpendSpec {
    let file = PathBuf::from(&s.path);
    if !file.is_file() {
        c.at(&key(path, "path"), format!("file '{}' does not exist", s.path));
    }
    SpendSpec { id: s.id, path: file }
}

fn check_unify(c: &mut Checker, path: &[Seg], u: RawUnify, loads: &BTreeMap<String, SourceKind>) -> UnifySpec {
    if u.inputs.is_empty() {
        c.at(&key(path, "inputs"), "needs at least one load stage id");
    }
    let mut seen = BTreeSet::new();
    for (i, input) in u.inputs.iter().enumerate() {
        let at = [key(path, "inputs"), vec![Seg::Index(i)]].concat();
        if !loads.contains_key(input) {
            let known: Vec<&str> = loads.keys().map(String::as_str).collect();
            c.at(&at, format!("'{input}' is not a load stage defined above (known: {})", known.join(", ")));
        } else if !seen.insert(input) {
            c.at(&at, format!("'{input}' is listed twice"));
        }
    }
    let test_orders = match u.test_orders {
        None => TestOrders::default(),
        Some(t) => TestOrders {
            emails: t.emails.iter().map(|e| e.to_lowercase()).collect(),
            tags: t.tags.iter().map(|e| e.to_lowercase()).collect(),
        },
    };
    UnifySpec {
        id: u.id,
        inputs: u.inputs,
        test_orders,
        duplicate_channels: u.duplicate_channels.map(|v| v.iter().map(|s| s.to_lowercase()).collect()),
    }
}
