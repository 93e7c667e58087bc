//! Unify: the loaded sources become one order-line table in the base currency. Rows that are valid
//! but must not count are dropped with a reason (after `as_of`, an older copy of an order from an
//! overlapping export, a cross-channel copy, a test order, no customer); every drop is counted.
//! Each customer belongs to the market of their first order. Two steps: [`prepare`] each source
//! as soon as it is loaded (every drop rule reads one source), then [`unify`] the prepared ones.

use crate::config::{Pipeline, SourceKind, UnifySpec};
use crate::countries;
use crate::error::{Context, Error, Result};
use crate::frame::{self, null_str};
use crate::fx::epoch_days;
use crate::identity::Hasher;
use crate::schema::{self, OTHER_MARKET, aux};
use crate::sources::Loaded;
use chrono::NaiveDate;
use polars::prelude::*;
use std::collections::{BTreeMap, HashMap};

/// Where every row read from a source went.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Accounting {
    pub rows_read: u64,
    pub kept: u64,
    pub dropped: BTreeMap<String, u64>,
    pub rejected: BTreeMap<String, u64>,
    /// Kept rows whose country names no ISO country (they go to `other`).
    pub unknown_country: u64,
    pub notes: Vec<String>,
    /// Net revenue in the base currency: read, kept (published), dropped by reason.
    pub revenue_read: f64,
    pub revenue_kept: f64,
    pub revenue_dropped: BTreeMap<String, f64>,
}

impl Accounting {
    pub fn balanced(&self) -> bool {
        self.rows_read == self.kept + self.dropped.values().sum::<u64>() + self.rejected.values().sum::<u64>()
    }

    /// revenue read = kept + dropped, to a cent (sums of many lines carry float rounding).
    pub fn revenue_balanced(&self) -> bool {
        let out = self.revenue_kept + self.revenue_dropped.values().sum::<f64>();
        (self.revenue_read - out).abs() <= 0.01 + 1e-9 * self.revenue_read.abs()
    }
}

pub struct Unified {
    /// The canonical order lines (schema::ORDER_LINE_COLUMNS) and each line's
    /// `aux::ORDER_KEY` and `aux::CUSTOMER`, sorted; the pipeline keeps only `schema::ANALYSED_COLUMNS` once it has
    /// staged the orders partitions.
    pub orders: DataFrame,
    pub accounting: BTreeMap<String, Accounting>,
}

/// What unify applies to every source, fixed before the first one is loaded.
pub struct Rules {
    duplicate_channels: Vec<String>,
    /// Country (alpha-2) -> market.
    market_of: HashMap<String, String>,
    as_of: NaiveDate,
}

impl Rules {
    /// `inputs`: the unify stage's sources (id, kind), in its order.
    pub fn new(spec: &UnifySpec, inputs: &[(&str, SourceKind)], pipeline: &Pipeline, as_of: NaiveDate) -> Self {
        let duplicate_channels = spec.duplicate_channels.clone().unwrap_or_else(|| {
            let others = inputs.iter().filter(|i| i.1 != SourceKind::Shopify).map(|i| i.0.to_string());
            let amazon = inputs.iter().filter(|i| i.1 == SourceKind::Amazon).map(|_| "amazon".to_string());
            others.chain(amazon).collect()
        });
        let market_of =
            pipeline.markets.iter().flat_map(|(m, cs)| cs.iter().map(move |c| (c.clone(), m.clone()))).collect();
        Rules { duplicate_channels, market_of, as_of }
    }

    pub fn as_of(&self) -> NaiveDate {
        self.as_of
    }

    /// What [`prepare`] reads of the rules but the as-of date (`crate::reuse` keys on it).
    pub fn for_prepare(&self) -> String {
        format!("{:?}", self.duplicate_channels)
    }
}

/// One source's kept lines, in the published columns but customer id and market, and where each
/// of its rows went. Lines carry their customer as a slot among the source's distinct keys: a
/// key on every line was the widest column waiting for the other sources.
pub struct Prepared {
    pub id: String,
    pub accounting: Accounting,
    lines: DataFrame,
    /// The distinct customer keys, by slot (from 1): text in one column, not a string each.
    keys: StringChunked,
    /// Lines carry `aux::ORDER_KEY` below this: a slot among the source's distinct order ids.
    order_count: u32,
    /// The latest order date among all the source's lines, kept or dropped (days since the
    /// epoch): the as-of date changes nothing here while it is on or after this.
    latest_day: Option<i64>,
    /// Which of the loaded lines are kept.
    kept: BooleanChunked,
}

const DROP: &str = "_drop";
/// The first drop reason a line meets on its own (see [`own_drops`]).
const OWN_DROP: &str = "_own_drop";
/// A record (file, line) as one integer: accounting counts records, not lines.
const RECORD: &str = "_record";
/// The line's customer: a slot among its source's distinct customer keys, from 1.
const CUSTOMER: &str = "_customer";

/// Everything unify decides about a source on its own: drops with their reasons (every rule
/// reads one source: an order's copies come from the same platform's exports), the accounting,
/// FX, countries, cancelled lines at 0 and cents. Runs as soon as the source is loaded, so that
/// only the kept lines' published columns wait for the other sources: the loaded tables of all
/// sources side by side were the run's peak memory. Takes `loaded.lines`.
pub fn prepare(rules: &Rules, id: &str, kind: SourceKind, loaded: &mut Loaded) -> Result<Prepared> {
    let mut acc = Accounting {
        rows_read: loaded.rows_read,
        notes: loaded.notes.clone(),
        revenue_read: loaded.revenue_read,
        ..Default::default()
    };
    for reason in frame::strings(&loaded.rejects, schema::rejects::REASON)?.into_iter().flatten() {
        *acc.rejected.entry(reason_category(&reason)).or_default() += 1;
    }
    let own = own_drops(kind, &rules.duplicate_channels);
    let own = frame::text_category(own).alias(OWN_DROP);
    let plan = |lf: LazyFrame| lf.with_column(own.clone()).drop(cols([aux::TEST_ORDER, aux::CHANNEL]));
    let mut all = frame::collect_in_parts(std::mem::take(&mut loaded.lines), plan, &format!("lines of {id}"))?;
    // The lines' customers are numbered beside the older copies (both are plain passes on one
    // core), over all lines, and restricted to the kept ones below.
    let customer_keys = frame::str_column(&all, aux::CUSTOMER_KEY)?.clone();
    let (copies, (customers, keys)) =
        frame::side_by_side(|| older_copies(&all), || crate::slots::slots(customer_keys.iter()));
    let Copies { older, records, orders, order_count } = copies?;
    let drops = drop_reasons(&all, &older, rules.as_of)?;
    let days = all.column(schema::ORDER_DATE).and_then(|c| c.date()).ctx(|| "order dates")?;
    let latest_day = days.physical().max().map(i64::from);
    for used in [aux::FILE, aux::LINE, aux::UPDATED_AT, OWN_DROP] {
        all.drop_in_place(used).ctx(|| format!("dropping {used}"))?;
    }
    frame::put_column(&mut all, DROP, drops)?;
    frame::put_column(&mut all, RECORD, records)?;
    frame::put_column(&mut all, aux::ORDER_KEY, orders)?;
    count_records(&all, &mut acc)?;
    let kept_rows = all.column(DROP).ctx(|| "drops")?.is_null();
    let (customers, keys) = crate::slots::restricted(&customers, &keys, kept_rows.iter().map(|k| k == Some(true)));
    let keys: StringChunked = keys.into_iter().map(Some).collect();
    std::mem::drop(customer_keys);

    let needed = kept_columns().into_iter().chain([aux::SHIP_COUNTRY, aux::BILL_COUNTRY, aux::ORDER_KEY]);
    let needed = all.select(needed).ctx(|| "kept columns")?;
    std::mem::drop(all);
    let kept = frame::filter_rows(needed, &kept_rows)?;
    let mut kept = frame::collect_in_parts(kept, kept_plan(id), &format!("kept lines of {id}"))?;
    // The shipping country, else the billing one, as ISO alpha-2; a named country that is none
    // is counted (those lines go to the `other` market).
    let raw = [aux::SHIP_COUNTRY, aux::BILL_COUNTRY];
    acc.unknown_country =
        frame::put_first_category_mapped(&mut kept, schema::COUNTRY, raw, countries::to_alpha2)? as u64;
    frame::put_column(&mut kept, CUSTOMER, UInt32Chunked::from_vec(CUSTOMER.into(), customers))?;
    let lines = prepared_lines(kept)?;
    Ok(Prepared { id: id.to_string(), accounting: acc, lines, keys, order_count, latest_day, kept: kept_rows })
}

/// What [`prepare`] decided of a source, kept to prepare the same lines again without deciding
/// (`crate::reuse`): which lines are kept, and of each kept line its order and customer slots
/// and its country; the order count and the accounting (the customer keys go beside it).
pub struct Decided {
    /// Over the source's loaded lines, in their order.
    pub kept: BooleanChunked,
    /// `aux::ORDER_KEY`, the customer slot and `schema::COUNTRY` of each kept line.
    pub columns: DataFrame,
    pub order_count: u32,
    pub accounting: Accounting,
    pub latest_day: Option<i64>,
}

impl Prepared {
    /// The decisions that [`apply`] turns into these lines again, with [`Prepared::keys`].
    pub fn decided(&self) -> Result<Decided> {
        Ok(Decided {
            kept: self.kept.clone(),
            columns: self.lines.select([aux::ORDER_KEY, CUSTOMER, schema::COUNTRY]).ctx(|| "decided columns")?,
            order_count: self.order_count,
            accounting: self.accounting.clone(),
            latest_day: self.latest_day,
        })
    }

    /// The source's distinct customer keys, by customer slot.
    pub fn keys(&self) -> &StringChunked {
        &self.keys
    }
}

/// [`prepare`] with its decisions taken from an earlier run (`crate::reuse`): the same lines,
/// without the passes that decide (older copies, drop reasons, numbering, countries, Amazon's
/// buyers). `loaded` must hold the lines those decisions were made on, buyers not attached.
pub fn apply(id: &str, loaded: &mut Loaded, decided: Decided, keys: StringChunked) -> Result<Prepared> {
    let Decided { kept: kept_rows, columns, order_count, accounting, latest_day } = decided;
    let lines = std::mem::take(&mut loaded.lines);
    if lines.height() != kept_rows.len() || kept_rows.sum().unwrap_or(0) as usize != columns.height() {
        return Err(Error::Data(format!("{id}: the earlier decisions do not fit the loaded lines")));
    }
    let needed = lines.select(kept_columns()).ctx(|| "kept columns")?;
    std::mem::drop(lines);
    let kept = frame::filter_rows(needed, &kept_rows)?;
    let mut kept = frame::collect_in_parts(kept, kept_plan(id), &format!("kept lines of {id}"))?;
    kept.hstack_mut(columns.columns()).ctx(|| "decided columns")?;
    let lines = prepared_lines(kept)?;
    Ok(Prepared { id: id.to_string(), accounting, lines, keys, order_count, latest_day, kept: kept_rows })
}

/// The loaded columns a source's kept lines take as they are (the rest are derived).
fn kept_columns() -> Vec<&'static str> {
    let derived = [schema::SOURCE, schema::COUNTRY, schema::CUSTOMER_ID, schema::MARKET];
    schema::ORDER_LINE_COLUMNS.into_iter().filter(|c| !derived.contains(c)).collect()
}

/// The kept lines' own changes: cancelled lines at 0, money in cents, the source.
fn kept_plan(id: &str) -> impl Fn(LazyFrame) -> LazyFrame + Sync + '_ {
    move |lf: LazyFrame| {
        let lf = lf.with_column(
            when(col(schema::STATUS).eq(lit(schema::status::CANCELLED)))
                .then(lit(0.0))
                .otherwise(col(schema::NET))
                .alias(schema::NET),
        );
        // Money is published in cents; rounding here keeps reports and BI sums of the table equal.
        let cents = schema::MONEY_COLUMNS.map(|c| col(c).round(2, RoundMode::HalfAwayFromZero));
        lf.with_columns(cents).with_column(frame::category(lit(id)).alias(schema::SOURCE))
    }
}

/// A prepared source's lines in one column order, in the chunks they were loaded in (one or more
/// per export file): [`combine`] lays all sources' lines out in one chunk per column, and a copy
/// here as well cost a warm rerun at 10M 0.2-0.5 s of its loads (bench/RESULTS.md, twenty-sixth
/// round).
fn prepared_lines(kept: DataFrame) -> Result<DataFrame> {
    let order = kept_columns().into_iter().chain([aux::ORDER_KEY, schema::SOURCE, schema::COUNTRY, CUSTOMER]);
    kept.select(order).ctx(|| "prepared columns")
}

/// Kept and dropped records and revenue of one source, by reason. Accounting is in records
/// (file, line): a WebToffee record is one order of several lines.
fn count_records(all: &DataFrame, acc: &mut Accounting) -> Result<()> {
    let few = frame::rechunk(all.select([DROP, RECORD, schema::NET_BASE]).ctx(|| "record columns")?)?;
    let records = frame::collect(
        few.lazy()
            .group_by([col(DROP)])
            .agg([col(RECORD).n_unique().alias("n"), col(schema::NET_BASE).sum().alias("revenue")]),
        "record counts",
    )?;
    let (reasons, counts) = (frame::strings(&records, DROP)?, frame::floats(&records, "n")?);
    let revenue = frame::floats(&records, "revenue")?;
    for ((r, n), v) in reasons.iter().zip(&counts).zip(&revenue) {
        let (n, v) = (n.unwrap_or(0.0) as u64, v.unwrap_or(0.0));
        match r {
            Some(r) => {
                *acc.dropped.entry(r.clone()).or_default() += n;
                *acc.revenue_dropped.entry(r.clone()).or_default() += v;
            }
            None => {
                acc.kept = n;
                acc.revenue_kept = v;
            }
        }
    }
    Ok(())
}

/// The prepared sources become the published order lines: each customer in the market of their
/// first line, ids hashed once per customer, sorted; then the books must balance.
pub fn unify(rules: &Rules, mut prepared: Vec<Prepared>) -> Result<Unified> {
    // The customers are numbered and hashed beside the stacking of the sources' lines: the one
    // reads the keys and a column of slots, the other copies every column once.
    let keys: Vec<StringChunked> = prepared.iter_mut().map(|p| std::mem::take(&mut p.keys)).collect();
    let local = |p: &Prepared| Ok(p.lines.column(CUSTOMER).ctx(|| "customers")?.u32().ctx(|| "customers")?.clone());
    let local: Vec<UInt32Chunked> = prepared.iter().map(local).collect::<Result<_>>()?;
    let (customers, combined) = frame::side_by_side(|| customers_of(&keys, &local), || combine(prepared));
    let (df, accounting) = combined?;
    let columns = schema::ORDER_LINE_COLUMNS.into_iter().chain([aux::ORDER_KEY, aux::CUSTOMER]);
    let orders = sorted(df, &customers, &rules.market_of)?.select(columns).ctx(|| "order lines")?;
    reconcile(&orders, &accounting)?;
    Ok(Unified { orders, accounting })
}

/// Each line's customer (sources in order) as a slot among all sources' distinct keys, with the
/// ids: `keys` and `local` are each source's keys and its lines' slots among them.
fn customers_of(keys: &[StringChunked], local: &[UInt32Chunked]) -> Customers {
    let (global, distinct) = crate::slots::slots(keys.iter().flat_map(|k| k.iter()));
    let mut global = global.as_slice();
    let mut slots: Vec<u32> = Vec::with_capacity(local.iter().map(|l| l.len()).sum());
    for (keys, local) in keys.iter().zip(local) {
        let (source, rest) = global.split_at(keys.len());
        global = rest;
        slots.extend(local.into_no_null_iter().map(|s| s.checked_sub(1).map_or(0, |s| source[s as usize])));
    }
    Customers::of(slots, &distinct, &Hasher::from_env())
}

/// The sources' lines in one table, a chunk per column (the gather in [`sorted`] over a chunk per
/// source cost more than this copy), and each source's accounting. Order slots become unique
/// across sources: each source's after the ones before it.
fn combine(prepared: Vec<Prepared>) -> Result<(DataFrame, BTreeMap<String, Accounting>)> {
    let mut accounting = BTreeMap::new();
    let mut frames = Vec::new();
    let mut first_order = 0u32;
    for p in prepared {
        accounting.insert(p.id, p.accounting);
        let key = (col(aux::ORDER_KEY) + lit(first_order)).alias(aux::ORDER_KEY);
        frames.push(p.lines.lazy().drop(cols([CUSTOMER])).with_column(key));
        first_order += p.order_count;
    }
    let df = frame::collect(concat(frames, UnionArgs::default()).ctx(|| "combining sources")?, "all lines")?;
    Ok((frame::rechunk(df)?, accounting))
}

/// Each line's drop reason, the first that applies: ordered after `as_of`, an older copy of an
/// order, then the line's own reason ([`own_drops`]). One pass: as a `when/then` chain every branch
/// became a full text column (a gigabyte at 10M lines, the run's peak memory).
fn drop_reasons(df: &DataFrame, older: &BooleanChunked, as_of: NaiveDate) -> Result<StringChunked> {
    let after = format!("ordered after as_of ({as_of})");
    let last_day = epoch_days(as_of) as i64;
    let days = frame::i64_column(df, schema::ORDER_DATE)?;
    let own = frame::texts(df, OWN_DROP)?;
    Ok(days
        .iter()
        .zip(older.iter())
        .zip(own)
        .map(|((day, older), own)| match (day, older) {
            (Some(d), _) if d > last_day => Some(after.as_str()),
            (_, Some(true)) => Some("duplicate: the same order is in a newer export file"),
            _ => own,
        })
        .collect())
}

/// The drop reasons a line of a `kind` source meets on its own, first one wins: a Shopify order
/// from a channel whose own export is loaded, a test order, no customer. (Ordered after `as_of`
/// and older copies come first; they are decided on the combined table.)
fn own_drops(kind: SourceKind, duplicate_channels: &[String]) -> Expr {
    let is_test = when(col(aux::TEST_ORDER)).then(lit("test order")).otherwise(null_str());
    let no_customer = when(col(aux::CUSTOMER_KEY).is_null())
        .then(lit("no customer (no e-mail or customer id)"))
        .otherwise(null_str());
    let mut reasons = Vec::new();
    if kind == SourceKind::Shopify {
        let duplicate_channels = duplicate_channels.to_vec();
        reasons.push(frame::str_to_str(col(aux::CHANNEL), move |c| {
            duplicate_channels.iter().any(|d| d == c).then(|| {
                format!("cross-channel duplicate: Shopify order from {c}, loaded from that platform's own export")
            })
        }));
    }
    reasons.extend([is_test, no_customer]);
    coalesce(&reasons)
}

/// What [`older_copies`] finds of each line of a source.
struct Copies {
    /// The line is of an order that a newer export file also holds.
    older: BooleanChunked,
    /// The line's record as one integer (file rank, line).
    records: UInt64Chunked,
    /// The line's order as a slot among the source's distinct order ids (`aux::ORDER_KEY`), from
    /// 0 to `order_count`: later passes count orders in a bit set instead of hashing their text.
    orders: UInt32Chunked,
    order_count: u32,
}

/// Lines of an order that a newer export file of the same source also holds, each line's record
/// and its order's slot. The newest copy of an order across overlapping exports is the file with
/// the highest last-updated date (null lowest), then the file that sorts last: the file of the
/// greatest (updated, file) over the order's lines.
fn older_copies(df: &DataFrame) -> Result<Copies> {
    let files = frame::column_ranks(df, aux::FILE)?;
    // Slot 0: the lines without an order id, as one order.
    let (row_slots, distinct) = crate::slots::slots(frame::str_column(df, schema::ORDER_ID)?.iter());
    let mut newest: Vec<(Option<i64>, u32)> = vec![(None, 0); distinct.len() + 1];
    let updated = frame::i64_column(df, aux::UPDATED_AT)?;
    for ((&slot, &f), u) in row_slots.iter().zip(&files).zip(updated.iter()) {
        let best = &mut newest[slot as usize];
        if (u, f) > *best {
            *best = (u, f);
        }
    }
    let older = row_slots.iter().zip(&files).map(|(&slot, &f)| newest[slot as usize].1 != f).collect();
    let lines = frame::i64_column(df, aux::LINE)?;
    let records = files.iter().zip(lines.iter()).map(|(&f, l)| (f as u64) << 32 | l.unwrap_or(0) as u64).collect();
    Ok(Copies {
        older,
        records: UInt64Chunked::from_vec(RECORD.into(), records),
        order_count: newest.len() as u32,
        orders: UInt32Chunked::from_vec(aux::ORDER_KEY.into(), row_slots),
    })
}

/// The kept lines' customers: each line's slot among the distinct customer keys (from 1; 0 for
/// none), each slot's rank among the published ids (from 1; 0 for none) and the ids in rank
/// order, each hashed once per customer, not once per line. One set of slots serves the ids,
/// first markets and the sort.
struct Customers {
    slots: Vec<u32>,
    ranks: Vec<u32>,
    /// In rank order, the order of the sorted table: its id column reads them front to back
    /// (stored in slot order, each new customer's id was a cache miss for every pass over it).
    ids: Vec<String>,
}

impl Customers {
    /// `slots`: each line's key, as a slot among `keys` (from 1; 0 for none).
    fn of(slots: Vec<u32>, keys: &[&str], hasher: &Hasher) -> Customers {
        use rayon::prelude::*;
        let digests: Vec<u128> = keys.par_iter().map(|k| hasher.customer_digest(k)).collect();
        let mut order: Vec<(u128, u32)> = digests.iter().zip(0..).map(|(&d, i)| (d, i)).collect();
        order.par_sort_unstable();
        let mut ranks = vec![0u32; digests.len() + 1];
        for (r, &(_, i)) in order.iter().enumerate() {
            ranks[i as usize + 1] = r as u32 + 1;
        }
        let ids = order.par_iter().map(|(d, _)| crate::sources::hex(&d.to_be_bytes())).collect();
        Customers { slots, ranks, ids }
    }
}

/// The markets a run can publish, in published order, and each listed country's among them.
struct Markets<'a> {
    names: Vec<&'a str>,
    of_country: foldhash::HashMap<&'a str, u16>,
    other: u16,
}

impl<'a> Markets<'a> {
    fn new(market_of: &'a HashMap<String, String>) -> Self {
        let mut names: Vec<&str> = market_of.values().map(String::as_str).chain([OTHER_MARKET]).collect();
        names.sort_unstable();
        names.dedup();
        let index = |m: &str| names.binary_search(&m).expect("listed above") as u16;
        let of_country = market_of.iter().map(|(c, m)| (c.as_str(), index(m))).collect();
        let other = index(OTHER_MARKET);
        Markets { names, of_country, other }
    }

    /// A country's market: the one listing it, else `other`.
    fn of(&self, country: Option<&str>) -> u16 {
        country.and_then(|c| self.of_country.get(c).copied()).unwrap_or(self.other)
    }
}

/// A line's sort key: customer rank, time (null first), source rank, row.
type Key = (u32, i64, u32, u32);

/// The published order: market, customer, time, source, order, line. Each customer is in the
/// market of their first line (earliest `ordered_at`, nulls first, then `order_id`, then the line
/// read first): the market listing that line's country, else `other`. Lines are sorted by customer
/// first and each customer's market read off their first lines; a stable pass by market then gives
/// the published order, as markets are per customer. (Finding first lines in table order was a
/// cache miss per line.) Text keys are replaced by their rank among the distinct values first, so
/// that the sort compares integers (`df` has the rows `customers` describes, in the same order).
/// Adds the markets, the customer ids and `aux::CUSTOMER`.
fn sorted(df: DataFrame, customers: &Customers, market_of: &HashMap<String, String>) -> Result<DataFrame> {
    let source = frame::column_ranks(&df, schema::SOURCE)?;
    let at = frame::i64_column(&df, schema::ORDERED_AT)?;
    let at = at.rechunk();
    let at = at.downcast_as_array();
    let (times, valid) = (at.values().as_slice(), at.validity());
    let (slots, ranks) = (&customers.slots, &customers.ranks);
    // 24 bytes a line, built on both cores (plain slices: no Polars inside).
    use rayon::prelude::*;
    let mut keys: Vec<Key> = (0..df.height())
        .into_par_iter()
        .map(|i| {
            let t = if valid.is_none_or(|v| v.get_bit(i)) { times[i] } else { i64::MIN };
            (ranks[slots[i] as usize], t, source[i], i as u32)
        })
        .collect();
    std::mem::drop(source);
    // Integers first, on both cores; then each run of equal (customer, time, source), the lines
    // of one order as a rule, by order id and line, the runs on both cores too. Comparing order
    // ids inside the main sort compared the strings of every such pair it met.
    keys.par_sort_unstable();
    let (order, line) = (frame::str_column(&df, schema::ORDER_ID)?.rechunk(), frame::i64_column(&df, schema::LINE_NO)?);
    let (line, order_keys) = (line.rechunk(), frame::u32_values(&df, aux::ORDER_KEY)?.rechunk());
    let (order, line, order_keys) =
        (order.downcast_as_array(), line.downcast_as_array(), order_keys.downcast_as_array());
    // A run has one source, whose lines share an order id exactly when they share an order key:
    // ids are read only to order two orders of the same instant (reading them for every pair of
    // lines of one order was as slow as the main sort).
    let ids = |i: usize, j: usize| match order_keys.value(i) == order_keys.value(j) {
        true => std::cmp::Ordering::Equal,
        false => order.get(i).cmp(&order.get(j)),
    };
    let by_order = |a: &Key, b: &Key| {
        let (i, j) = (a.3 as usize, b.3 as usize);
        ids(i, j).then_with(|| (line.get(i), a.3).cmp(&(line.get(j), b.3)))
    };
    keys.par_chunk_by_mut(|a, b| (a.0, a.1, a.2) == (b.0, b.1, b.2))
        .filter(|run| run.len() > 1)
        .for_each(|run| run.sort_unstable_by(by_order));
    // Each customer's first line: of the lines of their earliest time, the least (order id, row).
    let markets = Markets::new(market_of);
    let line_market: Vec<u16> = frame::map_texts(&df, schema::COUNTRY, |c| markets.of(c))?.collect();
    let first_markets: Vec<(u32, u16)> = keys
        .par_chunk_by(|a, b| a.0 == b.0)
        .map(|lines| {
            let earliest = lines.iter().take_while(|k| k.1 == lines[0].1).map(|k| k.3 as usize);
            let first = earliest.reduce(|b, i| if ids(i, b).then(i.cmp(&b)).is_lt() { i } else { b });
            (lines[0].0, line_market[first.expect("a run has a line")])
        })
        .collect();
    std::mem::drop(line_market);
    let mut market_of_rank = vec![0u16; customers.ids.len() + 1];
    for (rank, market) in first_markets {
        market_of_rank[rank as usize] = market;
    }
    // Stable by market: each market's lines keep the customer order.
    let mut start = vec![0usize; markets.names.len() + 1];
    for k in &keys {
        start[market_of_rank[k.0 as usize] as usize + 1] += 1;
    }
    for m in 1..start.len() {
        start[m] += start[m - 1];
    }
    let (mut idx, mut line_ranks) = (vec![0u32; keys.len()], vec![0u32; keys.len()]);
    for k in &keys {
        let at = &mut start[market_of_rank[k.0 as usize] as usize];
        (idx[*at], line_ranks[*at]) = (k.3, k.0);
        *at += 1;
    }
    std::mem::drop(keys);
    let mut df = frame::take_rows(df, idx)?;
    let market_of_line = line_ranks.iter().map(|&r| market_of_rank[r as usize] as usize);
    df.with_column(frame::categories_of(schema::MARKET, &markets.names, market_of_line)?).ctx(|| "markets")?;
    // After the gather, which copies text into row order: each customer's id is stored once and
    // every line refers to it (32 bytes per line otherwise).
    let ids = frame::shared_strings(&line_ranks, &customers.ids);
    frame::put_column(&mut df, schema::CUSTOMER_ID, ids)?;
    frame::put_column(&mut df, aux::CUSTOMER, UInt32Chunked::from_vec(aux::CUSTOMER.into(), line_ranks))?;
    Ok(df)
}

/// Rows read = kept + dropped + rejected and revenue read = kept + dropped, per source; and the
/// published lines (rounded to cents) add up to the revenue kept. A violation is a bug or a
/// corrupted input, never something to publish.
fn reconcile(orders: &DataFrame, accounting: &BTreeMap<String, Accounting>) -> Result<()> {
    let published = frame::collect(
        orders
            .clone()
            .lazy()
            .group_by([col(schema::SOURCE)])
            .agg([col(schema::NET_BASE).sum().alias("v"), len().alias("n")]),
        "published revenue",
    )?;
    let (sources, values, lines) =
        (frame::strings(&published, schema::SOURCE)?, frame::floats(&published, "v")?, frame::floats(&published, "n")?);
    let mut failures = Vec::new();
    for (source, a) in accounting {
        let dropped: u64 = a.dropped.values().sum();
        let rejected: u64 = a.rejected.values().sum();
        if !a.balanced() {
            failures.push(format!(
                "source `{source}`: {} rows read but {} kept + {dropped} dropped + {rejected} rejected",
                a.rows_read, a.kept
            ));
        }
        if !a.revenue_balanced() {
            failures.push(format!(
                "source `{source}`: revenue read {:.2} but kept {:.2} + dropped {:.2}",
                a.revenue_read,
                a.revenue_kept,
                a.revenue_dropped.values().sum::<f64>()
            ));
        }
        let i = sources.iter().position(|s| s.as_deref() == Some(source.as_str()));
        let (out, n) = i.map_or((0.0, 0.0), |i| (values[i].unwrap_or(0.0), lines[i].unwrap_or(0.0)));
        if (out - a.revenue_kept).abs() > 0.005 * n + 0.01 {
            failures
                .push(format!("source `{source}`: published revenue {out:.2} but revenue kept {:.2}", a.revenue_kept));
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Data(format!("reconciliation failed, nothing was published:\n{}", failures.join("\n"))))
    }
}

/// "unparseable purchase-date 'x'" -> "unparseable purchase-date": counts group by kind of problem.
pub fn reason_category(reason: &str) -> String {
    reason.split(" '").next().unwrap_or(reason).to_string()
}

/// `df` with `aux::CUSTOMER` as unify makes it, the rank of each line's customer id: for tests
/// that build the analysed table by hand.
#[cfg(test)]
pub(crate) fn with_customers(mut df: DataFrame) -> DataFrame {
    let ranks = frame::column_ranks(&df, schema::CUSTOMER_ID).unwrap();
    frame::put_column(&mut df, aux::CUSTOMER, UInt32Chunked::from_vec(aux::CUSTOMER.into(), ranks)).unwrap();
    df
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row's market after [`sorted`] (`df` has a `row` column numbering its rows).
    fn markets_by_row(df: DataFrame, customers: &Customers, market_of: &[(&str, &str)]) -> Vec<String> {
        let market_of: HashMap<String, String> = market_of.iter().map(|&(c, m)| (c.into(), m.into())).collect();
        let out = sorted(df, customers, &market_of).unwrap();
        let rows = frame::i64_column(&out, "row").unwrap();
        let markets: Vec<String> =
            frame::texts(&out, schema::MARKET).unwrap().map(|m| m.unwrap().to_string()).collect();
        let mut by_row = vec![String::new(); markets.len()];
        for (row, market) in rows.into_no_null_iter().zip(markets) {
            by_row[row as usize] = market;
        }
        by_row
    }

    /// The first line decides, wherever it is in the table; of two equally early lines of one
    /// order, the one read first.
    #[test]
    fn a_customers_market_is_that_of_their_first_line() {
        let df = df!(
            schema::SOURCE => ["shop"; 4],
            schema::ORDERED_AT => [10i64, 5, 5, 5],
            schema::ORDER_ID => ["B", "A", "A", "A"],
            aux::ORDER_KEY => [2u32, 1, 1, 1],
            schema::LINE_NO => [1i64, 1, 2, 2],
            schema::COUNTRY => ["DE", "US", "GB", "FR"],
            "row" => [0i64, 1, 2, 3],
        )
        .unwrap();
        let customers =
            Customers { slots: vec![1, 2, 1, 2], ranks: vec![0, 1, 2], ids: vec!["c1".into(), "c2".into()] };
        let got = markets_by_row(df, &customers, &[("US", "us"), ("GB", "uk"), ("DE", "eu"), ("FR", "eu")]);
        assert_eq!(got, ["uk", "us", "uk", "us"]);
    }

    fn accounting(read: f64, kept: f64, dropped: f64) -> BTreeMap<String, Accounting> {
        let a = Accounting {
            rows_read: 3,
            kept: 2,
            dropped: [("test order".to_string(), 1)].into(),
            revenue_read: read,
            revenue_kept: kept,
            revenue_dropped: [("test order".to_string(), dropped)].into(),
            ..Default::default()
        };
        [("shop".to_string(), a)].into()
    }

    fn orders(values: &[f64]) -> DataFrame {
        df!(schema::SOURCE => vec!["shop"; values.len()], schema::NET_BASE => values.to_vec()).unwrap()
    }

    /// Each key's id is its hash; ranks order the ids as text.
    #[test]
    fn customers_by_key() {
        let keys = ["email:b@x", "shop:7", "email:a@x"];
        let hasher = Hasher::from_env();
        let c = Customers::of(vec![1, 2, 1, 0, 3], &keys, &hasher);
        assert_eq!(c.ranks[0], 0, "no customer");
        for (slot, key) in (1..).zip(keys) {
            assert_eq!(c.ids[c.ranks[slot] as usize - 1], hasher.customer_id(key));
        }
        assert!(c.ids.windows(2).all(|w| w[0] < w[1]), "{:?}", c.ids);
    }

    /// A customer's market is that of the country of their first line (time, then order id);
    /// an unlisted or missing country is `other`.
    #[test]
    fn market_of_the_first_line() {
        let df = df!(
            schema::SOURCE => ["shop", "shopify", "shop", "shop", "shop"],
            schema::ORDERED_AT => [Some(5i64), Some(1), Some(1), Some(3), None],
            schema::ORDER_ID => ["E", "B", "A", "C", "D"],
            aux::ORDER_KEY => [5u32, 2, 1, 3, 4],
            schema::LINE_NO => [1i64; 5],
            schema::COUNTRY => [Some("US"), Some("DE"), Some("FR"), Some("US"), None],
            "row" => [0i64, 1, 2, 3, 4],
        )
        .unwrap();
        let customers = Customers::of(vec![1, 1, 1, 2, 3], &["a", "b", "c"], &Hasher::from_env());
        let got = markets_by_row(df, &customers, &[("US", "us"), ("FR", "eu"), ("DE", "de")]);
        assert_eq!(got, ["eu", "eu", "eu", "us", OTHER_MARKET]);
    }

    /// After `as_of` wins over an older copy, which wins over the line's own reason.
    #[test]
    fn drop_reasons_first_that_applies() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2025, 1, d).unwrap();
        let days: Vec<Option<NaiveDate>> = vec![Some(day(2)), Some(day(2)), Some(day(1)), Some(day(1)), None];
        let df = df!(
            schema::ORDER_DATE => days,
            OWN_DROP => [Some("test order"), Some("test order"), Some("test order"), None, None],
        )
        .unwrap();
        let older: BooleanChunked = [Some(true), Some(false), Some(true), Some(false), None].into_iter().collect();
        let got: Vec<Option<String>> =
            drop_reasons(&df, &older, day(1)).unwrap().iter().map(|r| r.map(str::to_string)).collect();
        let after = Some("ordered after as_of (2025-01-01)".to_string());
        let older_copy = Some("duplicate: the same order is in a newer export file".to_string());
        assert_eq!(got, [after.clone(), after, older_copy, None, None]);
    }

    /// Market, customer, time, source; then order id and line within ties.
    #[test]
    fn published_order() {
        let df = df!(
            schema::SOURCE => ["shop", "shop", "shop", "shop", "shop"],
            schema::ORDERED_AT => [1i64, 1, 1, 0, 5],
            schema::ORDER_ID => ["B", "A", "A", "C", "D"],
            aux::ORDER_KEY => [0u32, 1, 1, 2, 3],
            schema::LINE_NO => [1i64, 2, 1, 1, 1],
            schema::COUNTRY => ["US", "US", "US", "US", "DE"],
        )
        .unwrap();
        let hasher = Hasher::from_env();
        let market_of: HashMap<String, String> = [("US", "us"), ("DE", "eu")].map(|(c, m)| (c.into(), m.into())).into();
        let out = sorted(df, &Customers::of(vec![1, 1, 1, 1, 2], &["k", "j"], &hasher), &market_of).unwrap();
        let got: Vec<(String, i64, String, String)> = frame::strings(&out, schema::ORDER_ID)
            .unwrap()
            .into_iter()
            .zip(frame::i64_column(&out, schema::LINE_NO).unwrap().iter())
            .zip(frame::strings(&out, schema::CUSTOMER_ID).unwrap())
            .zip(frame::texts(&out, schema::MARKET).unwrap())
            .map(|(((o, l), c), m)| (o.unwrap(), l.unwrap(), c.unwrap(), m.unwrap().to_string()))
            .collect();
        let (k, j) = (hasher.customer_id("k"), hasher.customer_id("j"));
        let want = [("D", 1, &j, "eu"), ("C", 1, &k, "us"), ("A", 1, &k, "us"), ("A", 2, &k, "us"), ("B", 1, &k, "us")];
        assert_eq!(got, want.map(|(o, l, c, m)| (o.to_string(), l, c.clone(), m.to_string())));
    }

    /// Over many customers, countries, sources, null times and orders of one instant (order ids
    /// shared across sources), the order is a plain sort by (market, customer id, time with nulls
    /// first, source, order id, line, row), each customer in the market of the country of their
    /// least (time, order id, row) line.
    #[test]
    fn published_order_is_that_of_a_plain_sort() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (state >> 33) % n
        };
        let rows = 3000;
        let (countries, sources) = ([Some("GB"), Some("US"), Some("DE"), Some("JP"), None], ["shopify", "amazon"]);
        // (country, customer slot, time, source, order id, line)
        type Line<'a> = (Option<&'a str>, u32, Option<i64>, &'a str, String, i64);
        let mut lines: Vec<Line> = Vec::new();
        for _ in 0..rows {
            let source = sources[next(2) as usize];
            let time = (next(10) > 0).then(|| next(6) as i64);
            let slot = next(40) as u32; // 0: no customer
            let order = next(30).to_string();
            lines.push((countries[next(5) as usize], slot, time, source, order, next(3) as i64));
        }
        // Order keys: one per (source, order id).
        let mut key_of: HashMap<(String, String), u32> = HashMap::new();
        let keys: Vec<u32> = lines
            .iter()
            .map(|l| {
                let n = key_of.len() as u32;
                *key_of.entry((l.3.to_string(), l.4.clone())).or_insert(n)
            })
            .collect();
        let df = df!(
            schema::COUNTRY => lines.iter().map(|l| l.0).collect::<Vec<_>>(),
            schema::SOURCE => lines.iter().map(|l| l.3).collect::<Vec<_>>(),
            schema::ORDERED_AT => lines.iter().map(|l| l.2).collect::<Vec<_>>(),
            schema::ORDER_ID => lines.iter().map(|l| l.4.as_str()).collect::<Vec<_>>(),
            aux::ORDER_KEY => keys,
            schema::LINE_NO => lines.iter().map(|l| l.5).collect::<Vec<_>>(),
            "row" => (0..rows as i64).collect::<Vec<_>>(),
        )
        .unwrap();
        let names: Vec<String> = (1..40).map(|c| format!("customer {c}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let hasher = Hasher::from_env();
        let market_of: HashMap<String, String> =
            [("GB", "uk"), ("US", "us"), ("DE", "eu")].map(|(c, m)| (c.into(), m.into())).into();
        let out = sorted(df, &Customers::of(lines.iter().map(|l| l.1).collect(), &names, &hasher), &market_of).unwrap();
        let got: Vec<i64> = frame::i64_column(&out, "row").unwrap().into_no_null_iter().collect();
        let id = |slot: u32| (slot > 0).then(|| hasher.customer_id(names[slot as usize - 1]));
        let first = |slot: u32| (0..rows).filter(|&i| lines[i].1 == slot).min_by_key(|&i| (lines[i].2, &lines[i].4, i));
        let market = |slot: u32| {
            let country = first(slot).and_then(|i| lines[i].0).unwrap_or("none");
            market_of.get(country).map_or(OTHER_MARKET, String::as_str)
        };
        let mut want: Vec<usize> = (0..rows).collect();
        want.sort_by_key(|&i| {
            let l = &lines[i];
            (market(l.1), id(l.1), l.2, l.3, l.4.clone(), l.5, i)
        });
        assert_eq!(got, want.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let markets: Vec<&str> = frame::texts(&out, schema::MARKET).unwrap().map(Option::unwrap).collect();
        assert_eq!(markets, want.iter().map(|&i| market(lines[i].1)).collect::<Vec<_>>());
    }

    #[test]
    fn reconciliation_passes_when_everything_adds_up() {
        assert!(reconcile(&orders(&[10.0, 20.0]), &accounting(35.0, 30.0, 5.0)).is_ok());
    }

    #[test]
    fn reconciliation_catches_lost_duplicated_or_unpublished_revenue() {
        // A join that duplicated a line: read 35 but kept 40 + dropped 5.
        let e = reconcile(&orders(&[10.0, 20.0, 10.0]), &accounting(35.0, 40.0, 5.0)).unwrap_err();
        assert!(
            matches!(e, Error::Data(_)) && e.to_string().contains("revenue read 35.00 but kept 40.00 + dropped 5.00"),
            "{e}"
        );
        // Kept revenue that did not reach the published table.
        let e = reconcile(&orders(&[10.0]), &accounting(35.0, 30.0, 5.0)).unwrap_err();
        assert!(e.to_string().contains("published revenue 10.00 but revenue kept 30.00"), "{e}");
        assert_eq!(e.exit_code(), 1);
    }
}
