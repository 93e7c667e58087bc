//! Runs a validated pipeline: stages in order, each with its typed spec, then one publication.
//! Nothing is published unless every stage and every threshold check passed.

use crate::cac;
use crate::clv::{self, ClvResult};
use crate::cohort::{self, Cohorts};
use crate::config::{Pipeline, Stage};
use crate::config::{TimeUnit, days_per_unit};
use crate::error::Context;
use crate::error::{Error, Result};
use crate::fx::FxRates;
use crate::publish::{Publisher, flat, manifest, parquet, tables};
use crate::report::{html, markdown};
use crate::schema::{self, OTHER_MARKET};
use crate::segment::{self, Segments};
use crate::sources::{self, InputFile, LoadCtx, Loaded};
use crate::summarize::{self, Summary};
use crate::unify::{self, Unified};
use crate::{frame, progress, reuse};
use chrono::NaiveDate;
use polars::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub out: Option<PathBuf>,
    pub as_of: Option<NaiveDate>,
    /// Restrict to these markets (and publish only their partitions); empty: all.
    pub markets: Vec<String>,
    /// Keep parsed export files here between runs (see `sources::cache`); `None`: parse all.
    pub cache: Option<PathBuf>,
    /// After a successful run, remove from the cache what no run has used for this long
    /// (`Cache::prune`); `None`: keep everything.
    pub cache_keep: Option<std::time::Duration>,
}

#[derive(Debug)]
pub struct RunSummary {
    pub run_id: String,
    pub out: PathBuf,
    pub as_of: NaiveDate,
    pub markets: Vec<String>,
    pub outputs: Vec<manifest::Output>,
}

pub fn run(p: &Pipeline, opts: &RunOptions) -> Result<RunSummary> {
    // A market named twice (`--market uk --market uk`) is one market: twice, the run would wait
    // for its own lock on it.
    let mut markets: Vec<String> = Vec::new();
    for m in &opts.markets {
        if !markets.contains(m) {
            markets.push(m.clone());
        }
    }
    let opts = &RunOptions { markets, ..opts.clone() };
    let as_of = opts.as_of.unwrap_or_else(|| p.as_of.resolve(p.timezone));
    let out = opts.out.clone().unwrap_or_else(|| p.output.clone());
    for m in &opts.markets {
        if !p.markets.contains_key(m) && m != OTHER_MARKET {
            let known: Vec<&str> = p.markets.keys().map(String::as_str).chain([OTHER_MARKET]).collect();
            return Err(Error::input(&p.file, format!("--market {m}: no such market (known: {})", known.join(", "))));
        }
    }
    // Lock the markets this run may publish before reading anything: a second run waits for
    // nothing and exits 75. Without --market every configured market (and `other`) is locked.
    let lock_markets: Vec<String> = if opts.markets.is_empty() {
        p.markets.keys().cloned().chain([OTHER_MARKET.to_string()]).collect()
    } else {
        opts.markets.clone()
    };
    let _locks = crate::publish::lock::acquire(&out, &lock_markets, &p.name)?;
    for what in crate::publish::recover(&out, &lock_markets)? {
        tracing::warn!(out = %out.display(), "{what}");
    }
    let fx = match &p.fx_rates {
        Some(path) => FxRates::load(path, &p.base_currency)?,
        None => FxRates::base_only(&p.base_currency),
    };
    let cache = opts.cache.as_ref().map(sources::cache::Cache::new);
    let mut timings = BTreeMap::new();
    let mut loaded: BTreeMap<String, (crate::config::SourceKind, Loaded, f64)> = BTreeMap::new();
    // Unify prepares each of its sources as soon as it is loaded (see `unify::prepare`).
    let unify_spec = p.stages.iter().find_map(|s| match s {
        Stage::Unify(u) => Some(u),
        _ => None,
    });
    let unify_spec = unify_spec.expect("validated: one unify stage");
    let kinds: BTreeMap<&str, crate::config::SourceKind> = p
        .stages
        .iter()
        .filter_map(|s| match s {
            Stage::Load(l) => Some((l.id.as_str(), l.kind)),
            _ => None,
        })
        .collect();
    let unify_inputs: Vec<(&str, crate::config::SourceKind)> =
        unify_spec.inputs.iter().map(|id| (id.as_str(), kinds[id.as_str()])).collect();
    let rules = unify::Rules::new(unify_spec, &unify_inputs, p, as_of);
    let mut prepared: BTreeMap<String, unify::Prepared> = BTreeMap::new();
    let mut unified: Option<Unified> = None;
    let mut staged: Option<Staged> = None;
    let mut publish_ms = 0;
    let mut analyses = Analyses::default();
    // A source's preparation for unify runs on its own thread beside the next source's load: a
    // preparation keeps about one core busy, and the load beside it takes the other (one core
    // idled through every preparation).
    std::thread::scope(|scope| -> Result<()> {
        let mut preparing: Option<std::thread::ScopedJoinHandle<Result<LoadDone>>> = None;
        // A source's decisions are written once the load after it is done: written beside that
        // load, their buffers took a 10M run over its memory target, and the purge cost more
        // than the writing (bench/RESULTS.md, twenty-fifth round).
        let mut stores: Vec<reuse::ToStore> = Vec::new();
        let write_stores = |stores: &mut Vec<reuse::ToStore>| {
            let Some(cache) = cache.as_ref() else { return stores.clear() };
            for store in stores.drain(..) {
                match frame::threads() {
                    1 => store.write(cache),
                    _ => drop(scope.spawn(move || store.write(cache))),
                }
            }
        };
        for stage in &p.stages {
            if !matches!(stage, Stage::Load(_)) {
                finish_load(preparing.take(), &mut loaded, &mut prepared, &mut timings, &mut stores)?;
                write_stores(&mut stores);
            }
            let started = Instant::now();
            let bar = progress::stage(stage.id());
            match stage {
                Stage::Load(spec) => {
                    let tests = unify_spec.test_orders.clone();
                    let ctx = LoadCtx { cache: cache.as_ref(), tests, ..LoadCtx::new(spec, &fx, p.timezone) };
                    let for_unify = unify_spec.inputs.contains(&spec.id);
                    // A source unchanged since an earlier run takes that run's decisions.
                    let (found, slot) = match cache.as_ref().filter(|_| for_unify) {
                        Some(c) => match reuse::lookup(c, &ctx, &rules) {
                            Some(reuse::Lookup::Found(found)) => (Some(*found), None),
                            Some(reuse::Lookup::Missing(slot)) => (None, Some(slot)),
                            None => (None, None),
                        },
                        None => (None, None),
                    };
                    if found.is_some() {
                        tracing::info!(stage = %spec.id, "unchanged since an earlier run: its decisions from the cache");
                    }
                    let l = if found.is_some() { sources::load_without_buyers(&ctx) } else { sources::load(&ctx) };
                    // The earlier source's error, if any, comes first.
                    finish_load(preparing.take(), &mut loaded, &mut prepared, &mut timings, &mut stores)?;
                    write_stores(&mut stores);
                    let mut l = l?;
                    tracing::info!(stage = %spec.id, records = l.rows_read, lines = l.lines.height(), rejected = l.rejects.height(), "loaded");
                    let rules = &rules;
                    preparing = Some(scope.spawn(move || {
                        let (prepared, slot) = match (for_unify, found) {
                            (false, _) => (None, slot),
                            (true, Some(found)) => {
                                let (prepared, again) = reuse::apply(&ctx, rules, found, &mut l)?;
                                (Some(prepared), again)
                            }
                            (true, None) => (Some(unify::prepare(rules, &spec.id, spec.kind, &mut l)?), slot),
                        };
                        let to_store = match slot.zip(prepared.as_ref()) {
                            Some((s, p)) => reuse::store(&ctx, s, &l, p, rules)?,
                            None => None,
                        };
                        bar.finish_and_clear();
                        Ok(LoadDone { spec, loaded: l, prepared, started, to_store })
                    }));
                    if frame::threads() < 2 {
                        // `--threads 1` asks for one busy core: nothing beside the preparation.
                        finish_load(preparing.take(), &mut loaded, &mut prepared, &mut timings, &mut stores)?;
                        write_stores(&mut stores);
                    }
                    continue;
                }
                Stage::Unify(spec) => {
                    let inputs = spec.inputs.iter().map(|id| prepared.remove(id).expect("validated: loaded above"));
                    let mut u = unify::unify(&rules, inputs.collect())?;
                    tracing::info!(stage = %spec.id, rows = u.orders.height(), "unified");
                    // The orders partitions are staged now: the analyses and reports read a few of
                    // the table's columns, and the rest (60% of its bytes) is freed.
                    check_reject_rates(&loaded)?;
                    let started = Instant::now();
                    let s = Staged::new(p, &out, as_of, &opts.markets, &loaded, &u.orders)?;
                    u.orders = u.orders.select(schema::ANALYSED_COLUMNS).ctx(|| "the analysed columns")?;
                    publish_ms += started.elapsed().as_millis();
                    staged = Some(s);
                    unified = Some(u);
                }
                Stage::Summarize(spec) => {
                    let orders = &unified.as_ref().expect("validated: input is the unify stage").orders;
                    let end = spec.calibration_end.unwrap_or(as_of);
                    let s = summarize::summarize(orders, end, days_per_unit(p.time_unit))?;
                    tracing::info!(stage = %spec.id, markets = s.markets.len(), calibration_end = %end, "summarized");
                    analyses.summary = Some(s);
                }
                Stage::Clv(spec) => {
                    let s = analyses.summary.as_mut().expect("validated: input is the summarize stage");
                    let r = clv::run(spec, s, &opts.markets);
                    tracing::info!(stage = %spec.id, markets = r.markets.len(), "fitted");
                    // The summary keeps the fitted markets only, aligned with the results: the
                    // other markets of a `--market` run were needed for the all-markets fit alone.
                    s.markets.retain(|m| r.markets.iter().any(|f| f.market == m.name));
                    analyses.clv = Some(r);
                }
                Stage::Segment(spec) => {
                    let s = analyses.summary.as_ref().expect("validated: a summarize stage precedes clv");
                    let r = analyses.clv.as_ref().expect("validated: input is the clv stage");
                    // Plain Rust, no Polars: markets side by side on rayon's pool.
                    use rayon::prelude::*;
                    let segments = s
                        .markets
                        .par_iter()
                        .zip(&r.markets)
                        .map(|(m, r)| segment::segment(spec, m, r, s.calibration_end));
                    analyses.segments = Some(segments.collect());
                }
                Stage::Cohorts(spec) => {
                    let orders = &unified.as_ref().expect("validated: input is the unify stage").orders;
                    analyses.cohorts = Some(cohort::cohorts(spec, &rows_of_markets(orders, &opts.markets)?, as_of)?);
                }
                Stage::Spend(spec) => {
                    analyses.spend = Some(cac::load(&spec.path, &fx)?);
                }
            }
            bar.finish_and_clear();
            timings.insert(stage.id().to_string(), started.elapsed().as_millis());
        }
        finish_load(preparing.take(), &mut loaded, &mut prepared, &mut timings, &mut stores)?;
        write_stores(&mut stores);
        Ok(())
    })?;
    let unified = unified.expect("validation requires a unify stage");
    let staged = staged.expect("staged with the unify stage");
    let started = Instant::now();
    let (run_id, markets) = (staged.run_id.clone(), staged.markets.clone());
    let outputs = publish(p, &out, as_of, staged, opts.markets.is_empty(), &unified, &analyses, &loaded, &timings)?;
    timings.insert("publish".into(), publish_ms + started.elapsed().as_millis());
    tracing::info!(run_id = %run_id, out = %out.display(), ms = timings["publish"], "published");
    if let (Some(cache), Some(keep)) = (&cache, opts.cache_keep) {
        let (files, bytes) = cache.prune(keep);
        if files > 0 {
            tracing::info!(
                files,
                bytes,
                days = keep.as_secs() / 86_400,
                "removed from the parse cache what no run used"
            );
        }
    }
    Ok(RunSummary { run_id, out, as_of, markets, outputs })
}

/// A load stage's result once its source is prepared for unify.
struct LoadDone<'p> {
    spec: &'p crate::config::LoadSpec,
    loaded: Loaded,
    prepared: Option<unify::Prepared>,
    started: Instant,
    /// The source's decisions to store for later runs.
    to_store: Option<reuse::ToStore>,
}

type LoadedSources = BTreeMap<String, (crate::config::SourceKind, Loaded, f64)>;

/// Waits for the source being prepared, if any, and files its results.
fn finish_load(
    preparing: Option<std::thread::ScopedJoinHandle<Result<LoadDone>>>,
    loaded: &mut LoadedSources,
    prepared: &mut BTreeMap<String, unify::Prepared>,
    timings: &mut BTreeMap<String, u128>,
    stores: &mut Vec<reuse::ToStore>,
) -> Result<()> {
    let Some(handle) = preparing else { return Ok(()) };
    let mut done = handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?;
    stores.extend(done.to_store.take());
    file_load(done, loaded, prepared, timings);
    Ok(())
}

/// Files a source's load and preparation; its stage time runs from the start of its load to the
/// end of its preparation.
fn file_load(
    done: LoadDone,
    loaded: &mut LoadedSources,
    prepared: &mut BTreeMap<String, unify::Prepared>,
    timings: &mut BTreeMap<String, u128>,
) {
    let id = &done.spec.id;
    if let Some(p) = done.prepared {
        prepared.insert(id.clone(), p);
    }
    loaded.insert(id.clone(), (done.spec.kind, done.loaded, done.spec.max_reject_rate));
    timings.insert(id.clone(), done.started.elapsed().as_millis());
}

/// What is known and written once the orders table exists: the run's inputs and id, the markets
/// it publishes, the staging directory and the orders partitions staged in it.
struct Staged {
    inputs: Vec<InputFile>,
    run_id: String,
    markets: Vec<String>,
    /// Declared before the publisher: dropped first, it waits for its thread, which writes into
    /// the staging directory that the publisher's drop removes.
    flat_orders: flat::Orders,
    publisher: Publisher,
    /// Each market's orders partition as written.
    orders: BTreeMap<String, manifest::Output>,
}

impl Staged {
    fn new(
        p: &Pipeline,
        out: &std::path::Path,
        as_of: NaiveDate,
        only: &[String],
        loaded: &BTreeMap<String, (crate::config::SourceKind, Loaded, f64)>,
        orders: &DataFrame,
    ) -> Result<Staged> {
        let mut inputs: Vec<InputFile> = loaded.values().flat_map(|(_, l, _)| l.files.clone()).collect();
        for stage in &p.stages {
            if let Stage::Spend(spec) = stage {
                inputs.push(sources::describe(&spec.path)?);
            }
        }
        let run_id = run_id(p, &inputs, as_of)?;
        let markets = markets_to_publish(p, orders, only)?;
        let publisher = Publisher::new(out, &run_id, &markets)?;
        let as_of_s = as_of.to_string();
        let meta = parquet::Meta { run_id: &run_id, as_of: &as_of_s, pipeline: &p.name, zstd: p.zstd };
        let ranges = market_ranges(orders)?;
        let one = |market: &String| -> Result<(String, manifest::Output)> {
            let part = match ranges.get(market) {
                Some(&(first, rows)) => orders.slice(first as i64, rows),
                None => orders.clear(),
            };
            let file = part.drop_many([schema::MARKET, schema::aux::ORDER_KEY, schema::aux::CUSTOMER]);
            let entry = PathBuf::from(format!("orders/market={market}"));
            let rel = entry.join("part-0.parquet");
            // Sorted by customer: each customer's id is one run of lines.
            let runs = [schema::CUSTOMER_ID];
            let rows = parquet::write(&file, &publisher.stage(entry, &rel)?, &schema::MONEY_COLUMNS, &runs, &meta)?;
            Ok((market.clone(), manifest::Output { path: rel.display().to_string(), rows }))
        };
        // The largest partitions first: each is encoded on one thread, and a large one taken last
        // leaves the other core idle.
        let rows = |market: &String| ranges.get(market).map_or(0, |&(_, rows)| rows);
        let orders = frame::on_threads_largest_first(&markets, rows, one).into_iter().collect::<Result<_>>()?;
        let flat_orders = flat::Orders::start(&publisher, out, &meta);
        Ok(Staged { inputs, run_id, markets, flat_orders, publisher, orders })
    }
}

/// The rows of `orders` (sorted by market) in the markets named in `only`; all of them when empty.
fn rows_of_markets(orders: &DataFrame, only: &[String]) -> Result<DataFrame> {
    if only.is_empty() {
        return Ok(orders.clone());
    }
    let mut rows = orders.clear();
    for (_, &(first, len)) in market_ranges(orders)?.iter().filter(|(m, _)| only.contains(m)) {
        rows.vstack_mut(&orders.slice(first as i64, len)).ctx(|| "the published markets' rows")?;
    }
    Ok(rows)
}

/// What the analysis stages computed, for publication.
#[derive(Default)]
struct Analyses {
    summary: Option<Summary>,
    clv: Option<ClvResult>,
    /// Aligned with `clv.markets`.
    segments: Option<Vec<Segments>>,
    cohorts: Option<Cohorts>,
    spend: Option<Vec<cac::Spend>>,
}

impl Analyses {
    /// CAC and LTV:CAC rows, when both spend and cohorts exist.
    fn cac(&self) -> Option<Vec<cac::Cac>> {
        let (spend, cohorts) = (self.spend.as_ref()?, self.cohorts.as_ref()?);
        let margin = self.clv.as_ref().map_or(1.0, |c| c.margin);
        // Mean predicted CLV per (market, acquisition month), for the predicted LTV. Months as
        // indices per market: a market name and a date per customer cost ~0.2 s at 10M lines.
        let mut future: BTreeMap<(String, i32), f64> = BTreeMap::new();
        if let (Some(summary), Some(result)) = (&self.summary, &self.clv) {
            for (m, r) in summary.markets.iter().zip(&result.markets) {
                let mut by_month: BTreeMap<i64, (f64, f64)> = BTreeMap::new();
                for (c, v) in m.customers.iter().zip(&r.scores.predicted_clv) {
                    if let (Some(first), Some(v)) = (c.first_day(), v) {
                        let e = by_month.entry(crate::fx::month_index(first as i64)).or_default();
                        *e = (e.0 + v, e.1 + 1.0);
                    }
                }
                let months = by_month
                    .into_iter()
                    .map(|(month, (sum, n))| ((m.name.clone(), crate::fx::month_first_day(month)), sum / n));
                future.extend(months);
            }
        }
        Some(cac::cac(spend, cohorts, margin, &future))
    }
}

fn time_unit_name(u: TimeUnit) -> &'static str {
    match u {
        TimeUnit::Day => "day",
        TimeUnit::Week => "week",
    }
}

/// Derived from what determines the output (inputs, configuration, as_of), never from the clock,
/// so a rerun on the same inputs writes the same bytes.
fn run_id(p: &Pipeline, inputs: &[InputFile], as_of: NaiveDate) -> Result<String> {
    let mut h = Sha256::new();
    let config = std::fs::read(&p.file).unwrap_or_default();
    h.update(env!("CARGO_PKG_VERSION").as_bytes());
    h.update(&config);
    h.update(as_of.to_string().as_bytes());
    for i in inputs {
        h.update(i.path.as_bytes());
        h.update(i.sha256.as_bytes());
    }
    Ok(sources::hex(&h.finalize()[..8]))
}

fn check_reject_rates(loaded: &BTreeMap<String, (crate::config::SourceKind, Loaded, f64)>) -> Result<()> {
    let mut failures = Vec::new();
    for (id, (_, l, max)) in loaded {
        let rejected = l.rejects.height() as f64;
        if l.rows_read > 0 && rejected / l.rows_read as f64 > *max {
            let examples: Vec<String> = (0..l.rejects.height().min(3))
                .map(|i| {
                    let f = frame::strings(&l.rejects, schema::rejects::FILE).unwrap_or_default();
                    let n = frame::floats(&l.rejects, schema::rejects::LINE).unwrap_or_default();
                    let r = frame::strings(&l.rejects, schema::rejects::REASON).unwrap_or_default();
                    format!(
                        "  {}:{}: {}",
                        f[i].clone().unwrap_or_default(),
                        n[i].unwrap_or(0.0) as u64,
                        r[i].clone().unwrap_or_default()
                    )
                })
                .collect();
            failures.push(format!(
                "source `{id}`: {} of {} rows rejected ({:.1}%), above max_reject_rate {:.1}%; first rejects:\n{}",
                l.rejects.height(),
                l.rows_read,
                100.0 * rejected / l.rows_read as f64,
                100.0 * max,
                examples.join("\n")
            ));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Data(format!("nothing was published:\n{}", failures.join("\n"))))
    }
}

fn markets_to_publish(p: &Pipeline, orders: &DataFrame, only: &[String]) -> Result<Vec<String>> {
    if !only.is_empty() {
        return Ok(only.to_vec());
    }
    let mut markets: Vec<String> = p.markets.keys().cloned().collect();
    if frame::texts(orders, schema::MARKET)?.any(|m| m == Some(OTHER_MARKET)) {
        markets.push(OTHER_MARKET.to_string());
    }
    Ok(markets)
}

/// What every market's publication reads.
struct MarketCtx<'a> {
    p: &'a Pipeline,
    publisher: &'a Publisher,
    meta: &'a parquet::Meta<'a>,
    report: &'a markdown::Context<'a>,
    analyses: &'a Analyses,
    cac_rows: &'a Option<Vec<cac::Cac>>,
    /// The analysed columns of the orders table (`schema::ANALYSED_COLUMNS`).
    orders: &'a DataFrame,
    /// Each market's rows of `orders`: (first row, rows); unify sorts the table by market.
    ranges: BTreeMap<String, (usize, usize)>,
    /// Each market's orders partition, staged with the unify stage.
    staged_orders: &'a BTreeMap<String, manifest::Output>,
}

/// (first row, rows) of each market in `orders`, whose markets are consecutive. A market is
/// filed once its run of rows ends (a map lookup a line was 0.5% of a run).
fn market_ranges(orders: &DataFrame) -> Result<BTreeMap<String, (usize, usize)>> {
    let mut ranges: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut file = |market: &str, first: usize, end: usize| match ranges
        .insert(market.to_string(), (first, end - first))
    {
        Some(_) => Err(Error::Data(format!("internal: the orders table is not sorted by market ({market} recurs)"))),
        None => Ok(()),
    };
    let mut current: Option<(&str, usize)> = None;
    for (i, m) in frame::texts(orders, schema::MARKET)?.enumerate() {
        let m = m.unwrap_or_default();
        match current {
            Some((p, _)) if frame::same_text(Some(p), Some(m)) => {}
            _ => {
                if let Some((p, first)) = current {
                    file(p, first, i)?;
                }
                current = Some((m, i));
            }
        }
    }
    if let Some((p, first)) = current {
        file(p, first, orders.height())?;
    }
    Ok(ranges)
}

/// Writes one market's partitions and reports; returns what it wrote and its line in the index.
fn publish_market(c: &MarketCtx, market: &String) -> Result<(Vec<manifest::Output>, html::MarketLine)> {
    let (p, publisher, meta, analyses) = (c.p, c.publisher, c.meta, c.analyses);
    let as_of_s = c.report.as_of;
    let mut outputs = Vec::new();
    let part = match c.ranges.get(market) {
        Some(&(first, rows)) => c.orders.slice(first as i64, rows),
        None => c.orders.clear(),
    };
    // `<table>/market=<market>/<name>` staged as Parquet.
    let put = |table: &str, name: &str, df: &DataFrame, money: &[&str]| -> Result<manifest::Output> {
        let entry = PathBuf::from(format!("{table}/market={market}"));
        let rel = entry.join(name);
        let rows = parquet::write(df, &publisher.stage(entry, &rel)?, money, &[], meta)?;
        Ok(manifest::Output { path: rel.display().to_string(), rows })
    };
    outputs.push(c.staged_orders[market].clone());

    let (by_source, total) = markdown::figures(&part)?;
    let mut report = markdown::render(market, &by_source, &total, c.report);
    if let (Some(summary), Some(result)) = (&analyses.summary, &analyses.clv)
        && let Some(i) = result.markets.iter().position(|r| &r.market == market)
    {
        let (m, r) = (&summary.markets[i], &result.markets[i]);
        let seg = analyses.segments.as_ref().map(|s| &s[i]);
        let unit = time_unit_name(p.time_unit);
        report.push_str(&markdown::model_section(r, unit, &p.base_currency));
        if let Some(seg) = seg {
            report.push_str(&markdown::segment_section(seg, &p.base_currency));
        }
        for (table, df, money) in [
            ("customers", tables::customers(m, r, seg)?, &tables::CUSTOMER_MONEY[..]),
            ("markets", tables::market(r, unit)?, &tables::MARKET_MONEY[..]),
        ] {
            outputs.push(put(table, "part-0.parquet", &df, money)?);
        }
        if let Some(seg) = seg {
            for list in segment::ACTION_LISTS {
                let df = tables::actions(m, r, seg, list)?;
                let written = put("actions", &format!("{list}.parquet"), &df, &tables::ACTION_MONEY)?;
                let rows = written.rows;
                outputs.push(written);
                let entry = PathBuf::from(format!("actions/market={market}"));
                let rel = entry.join(format!("{list}.csv"));
                let path = publisher.stage(entry.clone(), &rel)?;
                std::fs::write(&path, tables::csv(&df)?).ctx(|| format!("writing {}", path.display()))?;
                outputs.push(manifest::Output { path: rel.display().to_string(), rows });
            }
        }
    }
    match c.cac_rows {
        Some(rows) => {
            let mine: Vec<&cac::Cac> = rows.iter().filter(|r| &r.market == market).collect();
            report.push_str(&markdown::cac_section(&mine, &p.base_currency));
            outputs.push(put("cac", "part-0.parquet", &tables::cac(&mine)?, &tables::CAC_MONEY)?);
        }
        None => report.push_str(markdown::NO_SPEND),
    }
    if let Some(c) = &analyses.cohorts {
        outputs.push(put("cohorts", "part-0.parquet", &tables::cohorts(c, market)?, &tables::COHORT_MONEY)?);
    }
    let rel = PathBuf::from(format!("reports/{market}.md"));
    publisher.write_text(&rel, &report)?;
    outputs.push(manifest::Output { path: rel.display().to_string(), rows: 0 });

    let position = analyses.clv.as_ref().and_then(|c| c.markets.iter().position(|r| &r.market == market));
    let clv_view = match (&analyses.summary, &analyses.clv, position) {
        (Some(s), Some(c), Some(i)) => Some((&s.markets[i], &c.markets[i])),
        _ => None,
    };
    let mine_cac: Option<Vec<&cac::Cac>> =
        c.cac_rows.as_ref().map(|rows| rows.iter().filter(|r| &r.market == market).collect());
    let ltv_cac = mine_cac.as_ref().and_then(|rows| {
        let all: Vec<&&cac::Cac> = rows.iter().filter(|r| r.channel == "all" && r.predicted_ltv.is_some()).collect();
        let spend: f64 = all.iter().map(|r| r.spend).sum();
        (spend > 0.0)
            .then(|| all.iter().map(|r| r.predicted_ltv.unwrap_or(0.0) * r.new_customers as f64).sum::<f64>() / spend)
    });
    let html = html::market_page(&html::Page {
        market,
        pipeline: &p.name,
        as_of: as_of_s,
        currency: &p.base_currency,
        run_id: c.report.run_id,
        unit_days: days_per_unit(p.time_unit),
        by_source: &by_source,
        total: &total,
        accounting: c.report.accounting,
        clv: clv_view,
        segments: position.and_then(|i| analyses.segments.as_ref().map(|s| &s[i])),
        cohorts: analyses.cohorts.as_ref(),
        cac: mine_cac,
    });
    let rel = PathBuf::from(format!("reports/{market}.html"));
    publisher.write_text(&rel, &html)?;
    outputs.push(manifest::Output { path: rel.display().to_string(), rows: 0 });
    let line = html::MarketLine {
        market: market.clone(),
        customers: total.customers,
        revenue: total.revenue,
        predicted_clv: clv_view.map_or(0.0, |(_, r)| r.scores.predicted_clv.iter().flatten().sum()),
        ltv_cac,
    };
    Ok((outputs, line))
}

/// Everything but the orders partitions (staged with the unify stage), then one commit.
/// `all_markets`: the run was not restricted with --market.
#[allow(clippy::too_many_arguments)]
fn publish(
    p: &Pipeline,
    out: &std::path::Path,
    as_of: NaiveDate,
    staged: Staged,
    all_markets: bool,
    unified: &Unified,
    analyses: &Analyses,
    loaded: &BTreeMap<String, (crate::config::SourceKind, Loaded, f64)>,
    timings: &BTreeMap<String, u128>,
) -> Result<Vec<manifest::Output>> {
    // `flat_orders` last: dropped first on an error (see `Staged`).
    let Staged { inputs, run_id, markets, publisher, orders: staged_orders, flat_orders } = staged;
    let (run_id, markets) = (run_id.as_str(), markets.as_slice());
    let as_of_s = as_of.to_string();
    let meta = parquet::Meta { run_id, as_of: &as_of_s, pipeline: &p.name, zstd: p.zstd };
    let report_ctx = markdown::Context {
        pipeline: &p.name,
        as_of: &as_of_s,
        base_currency: &p.base_currency,
        run_id,
        accounting: &unified.accounting,
    };
    let cac_rows = analyses.cac();
    let ctx = MarketCtx {
        p,
        publisher: &publisher,
        meta: &meta,
        report: &report_ctx,
        analyses,
        cac_rows: &cac_rows,
        orders: &unified.orders,
        ranges: market_ranges(&unified.orders)?,
        staged_orders: &staged_orders,
    };
    // Markets are independent: published side by side (each write is single-threaded).
    let mut outputs = Vec::new();
    let mut index = Vec::new();
    let started = Instant::now();
    for done in frame::on_threads(markets, |m| publish_market(&ctx, m)) {
        let (written, line) = done?;
        outputs.extend(written);
        index.push(line);
    }
    // The comparison of markets only when every market was run (a --market run keeps the last one).
    if all_markets {
        publisher.write_text("reports/index.html", &html::index_page(&index, &p.name, &as_of_s, &p.base_currency))?;
        outputs.push(manifest::Output { path: "reports/index.html".into(), rows: 0 });
    }
    for (id, (_, l, _)) in loaded {
        let entry = PathBuf::from(format!("rejects/source={id}"));
        let rel = entry.join("part-0.parquet");
        let path = publisher.stage(entry, &rel)?;
        let rows = parquet::write(&l.rejects, &path, &[], &[], &meta)?;
        outputs.push(manifest::Output { path: rel.display().to_string(), rows });
    }
    tracing::debug!(ms = started.elapsed().as_millis(), "published the market partitions and reports");
    // Flat copies for Power BI, from every partition (the bi lock is held through the commit).
    let started = Instant::now();
    let (_bi, mut flat_outputs) = flat_orders.finish(&publisher)?;
    flat_outputs.extend(flat::stage(&publisher, out, &meta, &flat::LATER)?);
    for (path, rows) in flat_outputs {
        outputs.push(manifest::Output { path, rows });
    }
    tracing::debug!(ms = started.elapsed().as_millis(), "staged the flat bi tables");
    let m = manifest::Manifest {
        pipeline: p.name.clone(),
        run_id: run_id.to_string(),
        as_of: as_of_s.clone(),
        base_currency: p.base_currency.clone(),
        schema_version: parquet::SCHEMA_VERSION.to_string(),
        markets: markets.to_vec(),
        inputs: inputs.to_vec(),
        outputs: outputs.iter().map(|o| manifest::Output { path: o.path.clone(), rows: o.rows }).collect(),
        accounting: unified.accounting.clone(),
        timings_ms: timings.clone(),
    };
    let json = serde_json::to_string_pretty(&m).expect("manifest serializes");
    publisher.write_text("manifest.json", &(json + "\n"))?;
    // Last: readers that wait for `_SUCCESS` see a complete run.
    publisher.write_text("_SUCCESS", "")?;
    publisher.commit()?;
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_ranges_are_each_markets_run_of_rows() {
        let orders = df!(schema::MARKET => ["eu", "eu", "uk", "us", "us", "us"]).unwrap();
        let want = BTreeMap::from([("eu".to_string(), (0, 2)), ("uk".to_string(), (2, 1)), ("us".to_string(), (3, 3))]);
        assert_eq!(market_ranges(&orders).unwrap(), want);
        assert!(market_ranges(&orders.head(Some(0))).unwrap().is_empty());
        let unsorted = df!(schema::MARKET => ["eu", "uk", "eu"]).unwrap();
        assert!(market_ranges(&unsorted).is_err());
    }
}
