//! A serde mirror of the pipeline YAML: closed vocabularies are enums, every struct refuses unknown
//! fields, stages are externally tagged (`- load: {...}`) so that errors keep their YAML path and line.

use serde::Deserialize;
use std::collections::BTreeMap;

/// Top-level keys except `stages`, which `config::load` reads one stage at a time so that a mistake
/// in one stage does not hide the mistakes in the others.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHeader {
    pub name: String,
    pub base_currency: String,
    #[serde(default)]
    pub as_of: Option<String>,
    /// Zone in which `yesterday` and order dates are reckoned (IANA name); default UTC.
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub time_unit: Option<TimeUnit>,
    #[serde(default)]
    pub output: Option<String>,
    #[serde(default)]
    pub fx_rates: Option<String>,
    #[serde(default)]
    pub markets: BTreeMap<String, Vec<String>>,
    /// Parquet compression: snappy (default, read by every tool) or zstd (smaller).
    #[serde(default)]
    pub compression: Option<Compression>,
    pub stages: Vec<serde::de::IgnoredAny>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    Snappy,
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeUnit {
    Day,
    Week,
}

/// A stage: a map with exactly one key naming its kind (`- load: {...}`). Deserialized by hand
/// because yaml_serde reads externally tagged enums only from YAML tags (`!load`).
#[derive(Debug)]
pub enum RawStage {
    Load(Box<RawLoad>),
    Unify(RawUnify),
    Summarize(RawSummarize),
    Clv(RawClv),
    Segment(RawSegment),
    Cohorts(RawCohorts),
    Spend(RawSpend),
}

const STAGE_KINDS: &[&str] = &["load", "unify", "summarize", "clv", "segment", "cohorts", "spend"];

impl RawStage {
    /// The stage's key in the YAML (`load`, `unify`, ...).
    pub fn kind(&self) -> &'static str {
        match self {
            RawStage::Load(_) => "load",
            RawStage::Unify(_) => "unify",
            RawStage::Summarize(_) => "summarize",
            RawStage::Clv(_) => "clv",
            RawStage::Segment(_) => "segment",
            RawStage::Cohorts(_) => "cohorts",
            RawStage::Spend(_) => "spend",
        }
    }

    pub fn id(&self) -> &str {
        match self {
            RawStage::Load(l) => &l.id,
            RawStage::Unify(s) => &s.id,
            RawStage::Summarize(s) => &s.id,
            RawStage::Clv(s) => &s.id,
            RawStage::Segment(s) => &s.id,
            RawStage::Cohorts(s) => &s.id,
            RawStage::Spend(s) => &s.id,
        }
    }
}

impl<'de> Deserialize<'de> for RawStage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::{Error, MapAccess, Visitor};
        struct StageVisitor;
        impl<'de> Visitor<'de> for StageVisitor {
            type Value = RawStage;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "a stage: a map with one key: `load`, `unify`, `summarize`, `clv`, `segment`, `cohorts` or `spend`",
                )
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawStage, A::Error> {
                let Some(kind) = map.next_key::<String>()? else {
                    return Err(A::Error::custom("empty stage: expected `load: {...}` or `unify: {...}`"));
                };
                let stage = match kind.as_str() {
                    "load" => RawStage::Load(Box::new(map.next_value()?)),
                    "unify" => RawStage::Unify(map.next_value()?),
                    "summarize" => RawStage::Summarize(map.next_value()?),
                    "clv" => RawStage::Clv(map.next_value()?),
                    "segment" => RawStage::Segment(map.next_value()?),
                    "cohorts" => RawStage::Cohorts(map.next_value()?),
                    "spend" => RawStage::Spend(map.next_value()?),
                    other => return Err(A::Error::unknown_variant(other, STAGE_KINDS)),
                };
                if let Some(more) = map.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "a stage has one kind, found `{kind}` and `{more}` (indent options under `{kind}:`)"
                    )));
                }
                Ok(stage)
            }
        }
        d.deserialize_map(StageVisitor)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Amazon,
    Shopify,
    Woocommerce,
    Csv,
}

/// One glob or a list of globs.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Paths {
    One(String),
    Many(Vec<String>),
}

impl Paths {
    pub fn patterns(&self) -> Vec<String> {
        match self {
            Paths::One(p) => vec![p.clone()],
            Paths::Many(ps) => ps.clone(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoad {
    pub id: String,
    pub source: SourceKind,
    pub path: Paths,
    /// Amazon only: Fulfilled Shipments reports that link orders to buyers.
    #[serde(default)]
    pub buyers: Option<Paths>,
    #[serde(default)]
    pub delimiter: Option<String>,
    #[serde(default)]
    pub has_header: Option<bool>,
    #[serde(default)]
    pub quoting: Option<bool>,
    #[serde(default)]
    pub encoding: Option<String>,
    #[serde(default)]
    pub decimal_comma: Option<bool>,
    #[serde(default)]
    pub date_format: Option<String>,
    #[serde(default)]
    pub timezone: Option<String>,
    #[serde(default)]
    pub columns: Option<RawColumns>,
    #[serde(default)]
    pub constants: BTreeMap<ConstantField, String>,
    #[serde(default)]
    pub max_reject_rate: Option<f64>,
}

/// Generic-source mapping: canonical field -> column name in the file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColumns {
    pub order_id: Option<String>,
    pub customer: Option<String>,
    pub ordered_at: Option<String>,
    pub quantity: Option<String>,
    pub unit_price: Option<String>,
    pub amount: Option<String>,
    pub discount: Option<String>,
    pub tax: Option<String>,
    pub shipping: Option<String>,
    pub refunded: Option<String>,
    pub currency: Option<String>,
    pub country: Option<String>,
    pub status: Option<String>,
}

/// Fields a source may lack and the pipeline may supply as one value for every row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConstantField {
    Currency,
    Country,
    Status,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawUnify {
    pub id: String,
    pub inputs: Vec<String>,
    #[serde(default)]
    pub test_orders: Option<RawTestOrders>,
    /// Shopify `Source` values whose orders are copies of another platform's export.
    #[serde(default)]
    pub duplicate_channels: Option<Vec<String>>,
}

/// Per (market, customer) purchase summary: frequency, recency, tenure, monetary value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSummarize {
    pub id: String,
    pub input: String,
    /// YYYY-MM-DD; default: as_of.
    #[serde(default)]
    pub calibration_end: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    BgNbd,
    ParetoNbd,
    Auto,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SpendModel {
    GammaGamma,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawClv {
    pub id: String,
    pub input: String,
    #[serde(default)]
    pub model: Option<ModelChoice>,
    #[serde(default)]
    pub spend_model: Option<SpendModel>,
    /// `13 weeks`: fit before calibration_end minus this, score the holdout.
    #[serde(default)]
    pub holdout: Option<String>,
    #[serde(default)]
    pub horizon: Option<String>,
    #[serde(default)]
    pub annual_discount_rate: Option<f64>,
    #[serde(default)]
    pub margin: Option<f64>,
    #[serde(default)]
    pub min_customers: Option<u64>,
}

/// Value tiers, RFM scores, lifecycle stages and action lists per market.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSegment {
    pub id: String,
    pub input: String,
    #[serde(default)]
    pub tiers: Option<RawTiers>,
    #[serde(default)]
    pub at_risk_below: Option<f64>,
    #[serde(default)]
    pub lost_below: Option<f64>,
    #[serde(default)]
    pub new_within: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTiers {
    pub vip: f64,
    pub mid: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CohortBy {
    Market,
    Source,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Period {
    Month,
}

/// Acquisition cohorts: retention and cumulative revenue per customer by months since first order.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCohorts {
    pub id: String,
    pub input: String,
    #[serde(default)]
    pub by: Option<Vec<CohortBy>>,
    #[serde(default)]
    pub period: Option<Period>,
}

/// Marketing spend: `month,market,channel,spend,currency` (month as YYYY-MM).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpend {
    pub id: String,
    pub path: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTestOrders {
    #[serde(default)]
    pub emails: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
}
