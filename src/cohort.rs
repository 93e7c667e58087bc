//! The `cohorts` stage: customers by acquisition month (their first non-cancelled order), per
//! market and optionally per source; for each month since acquisition, the share still buying
//! (retention) and the cumulative net revenue per customer (the LTV curve). Months without a
//! purchase are present with 0, so heatmaps have no holes.
//!
//! One pass per market over the orders table, which unify sorts by (market, customer): each
//! customer's lines are consecutive, so first months and distinct active customers are found per
//! customer without a window or a distinct count over the whole table (those took ~0.7 s per
//! million lines); markets are consecutive too, so they are passed side by side.

use crate::config::{CohortBy, CohortsSpec};
use crate::error::Result;
use crate::frame;
use crate::schema;
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;

/// One row per (market, source, cohort, months since); `source` is `all` for whole-market cohorts.
pub struct Cohorts {
    pub market: Vec<String>,
    pub source: Vec<String>,
    pub cohort: Vec<i32>,
    pub months_since: Vec<i64>,
    pub customers: Vec<i64>,
    pub active_customers: Vec<i64>,
    pub retention: Vec<f64>,
    pub revenue: Vec<f64>,
    pub cumulative_revenue_per_customer: Vec<f64>,
}

/// (grouping: 0 whole market, 1 by source; market; source or "all"; cohort month).
type CohortKey<'a> = (u8, &'a str, &'a str, i64);

/// Per cohort: months since -> (active customers, revenue).
type Grid<'a> = PlHashMap<CohortKey<'a>, Months>;

/// By months since the cohort month: (active customers, revenue); (0, 0.0) for a month nobody
/// bought in. A vector: each line adds to one, and a tree's lookup per line was a third of the pass.
type Months = Vec<(i64, f64)>;

/// A customer's live lines: (source, month index, net in the base currency).
type Lines<'a> = Vec<(&'a str, i64, f64)>;

/// Adds one customer's lines to the grid: for the whole market and, if asked, per source, the
/// customer's cohort is their first month there; they count once per month they bought in.
fn add_customer<'a>(grid: &mut Grid<'a>, market: &'a str, lines: &mut Lines<'a>, by_source: bool) {
    lines.sort_by_key(|l| l.1);
    let Some(&(_, first, _)) = lines.first() else { return };
    add_months(grid, (0, market, "all", first), lines.iter().map(|l| (l.1, l.2)));
    if by_source {
        let mut sources: Vec<&str> = Vec::new();
        for l in lines.iter() {
            if !sources.contains(&l.0) {
                sources.push(l.0);
            }
        }
        for source in sources {
            let mine = lines.iter().filter(|l| l.0 == source);
            let first = mine.clone().next().map_or(first, |l| l.1);
            add_months(grid, (1, market, source, first), mine.map(|l| (l.1, l.2)));
        }
    }
}

/// One customer's (month, net) in month order, into the cohort `key`.
fn add_months<'a>(grid: &mut Grid<'a>, key: CohortKey<'a>, lines: impl Iterator<Item = (i64, f64)>) {
    let months = grid.entry(key).or_default();
    let mut previous = None;
    for (m, net) in lines {
        let k = m - key.3;
        let at = k as usize;
        if months.len() <= at {
            months.resize(at + 1, (0, 0.0));
        }
        let cell = &mut months[at];
        if previous != Some(k) {
            cell.0 += 1;
            previous = Some(k);
        }
        cell.1 += net;
    }
}

pub fn cohorts(spec: &CohortsSpec, orders: &DataFrame, as_of: NaiveDate) -> Result<Cohorts> {
    let last_month = as_of.year() as i64 * 12 + as_of.month0() as i64;
    let by_source = spec.by.contains(&CohortBy::Source);
    // Markets are consecutive too, and their cohorts disjoint: each market is a pass of its own,
    // side by side. Every sum adds in the same order as one pass would.
    let mut grid = Vec::new();
    for part in frame::by_runs(orders, schema::MARKET, |market| market_grid(market, by_source))? {
        grid.extend(part?);
    }
    let mut out = Cohorts {
        market: vec![],
        source: vec![],
        cohort: vec![],
        months_since: vec![],
        customers: vec![],
        active_customers: vec![],
        retention: vec![],
        revenue: vec![],
        cumulative_revenue_per_customer: vec![],
    };
    grid.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for ((_, market, source, cohort), months) in grid {
        let size = months.first().map_or(0, |m| m.0);
        let mut cumulative = 0.0;
        for k in 0..=(last_month - cohort).max(0) {
            let (active, revenue) = months.get(k as usize).copied().unwrap_or((0, 0.0));
            cumulative += revenue;
            out.market.push(market.clone());
            out.source.push(source.clone());
            out.cohort.push(crate::fx::month_first_day(cohort));
            out.months_since.push(k);
            out.customers.push(size);
            out.active_customers.push(active);
            out.retention.push(if size > 0 { active as f64 / size as f64 } else { 0.0 });
            out.revenue.push(revenue);
            out.cumulative_revenue_per_customer.push(if size > 0 { cumulative / size as f64 } else { 0.0 });
        }
    }
    Ok(out)
}

/// A cohort row's key with its text owned: (grouping, market, source, cohort month).
type OwnedKey = (u8, String, String, i64);

/// One market's cohorts, from one pass over its lines (consecutive per customer): `orders` holds
/// one market's lines ([`frame::by_runs`]).
fn market_grid(orders: &DataFrame, by_source: bool) -> Result<Vec<(OwnedKey, Months)>> {
    let market = frame::texts(orders, schema::MARKET)?.next().flatten().unwrap_or_default();
    let sources = frame::texts(orders, schema::SOURCE)?;
    let customers = frame::u32_values(orders, schema::aux::CUSTOMER)?.into_no_null_iter();
    let counted = frame::map_texts(orders, schema::STATUS, |s| s.is_some_and(|s| s != schema::status::CANCELLED))?;
    let net = frame::f64_column(orders, schema::NET_BASE)?;
    let days = frame::i64_column(orders, schema::ORDER_DATE)?;

    let mut grid = Grid::default();
    let mut who = None;
    let mut lines: Lines = Vec::new();
    let mut month_of = (i64::MIN, 0);
    let rows = customers.zip(sources.zip(counted).zip(net.iter().zip(days.iter())));
    for (customer, ((source, counted), (net, day))) in rows {
        if who != Some(customer) {
            if who.is_some() {
                add_customer(&mut grid, market, &mut lines, by_source);
            }
            lines.clear();
            who = Some(customer);
        }
        let (true, Some(day)) = (counted, day) else { continue };
        if month_of.0 != day {
            month_of = (day, crate::fx::month_index(day));
        }
        lines.push((source.unwrap_or_default(), month_of.1, net.unwrap_or(0.0)));
    }
    if who.is_some() {
        add_customer(&mut grid, market, &mut lines, by_source);
    }
    Ok(grid.into_iter().map(|((g, m, s, c), months)| ((g, m.to_string(), s.to_string(), c), months)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Period;

    /// Two customers in one market, sorted as unify sorts them; every figure worked out by hand.
    #[test]
    fn cohorts_by_hand() {
        use schema::status::*;
        // Epoch days: 0 = 1970-01-01 (month 0), 31 = February, 59 = March.
        type Line = (&'static str, &'static str, &'static str, f64, i32);
        let lines: [Line; 7] = [
            // customer, source, status, net_base, day
            ("a", "shop", COMPLETED, 10.0, 0),
            ("a", "shop", COMPLETED, 5.0, 3),     // same month: active once, revenue 15
            ("a", "amazon", COMPLETED, 7.0, 31),  // amazon cohort is February for "a"
            ("a", "shop", CANCELLED, 100.0, 59),  // cancelled: not active, no revenue
            ("b", "amazon", CANCELLED, 9.0, 0),   // cancelled first order: not the acquisition
            ("b", "amazon", COMPLETED, 20.0, 31), // b acquired in February
            ("b", "amazon", REFUNDED, -20.0, 59), // a refund line still counts (revenue -20)
        ];
        let orders = crate::unify::with_customers(
            df!(
                schema::MARKET => vec!["us"; lines.len()],
                schema::CUSTOMER_ID => lines.iter().map(|l| l.0).collect::<Vec<_>>(),
                schema::SOURCE => lines.iter().map(|l| l.1).collect::<Vec<_>>(),
                schema::STATUS => lines.iter().map(|l| l.2).collect::<Vec<_>>(),
                schema::NET_BASE => lines.iter().map(|l| l.3).collect::<Vec<_>>(),
                schema::ORDER_DATE => lines.iter().map(|l| l.4).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let orders = orders.lazy().with_column(col(schema::ORDER_DATE).cast(DataType::Date)).collect().unwrap();
        let spec = CohortsSpec {
            id: "c".into(),
            input: "orders".into(),
            by: vec![CohortBy::Market, CohortBy::Source],
            period: Period::Month,
        };
        let c = cohorts(&spec, &orders, NaiveDate::from_ymd_opt(1970, 3, 15).unwrap()).unwrap();
        let rows: Vec<(&str, i32, i64, i64, i64, f64, f64)> = (0..c.market.len())
            .map(|i| {
                assert_eq!(c.market[i], "us");
                let retention = c.active_customers[i] as f64 / c.customers[i] as f64;
                assert!((c.retention[i] - retention).abs() < 1e-12);
                (
                    c.source[i].as_str(),
                    c.cohort[i],
                    c.months_since[i],
                    c.customers[i],
                    c.active_customers[i],
                    c.revenue[i],
                    c.cumulative_revenue_per_customer[i],
                )
            })
            .collect();
        let want = [
            // whole market: a in January (3 months to March), b in February (2 months)
            ("all", 0, 0, 1, 1, 15.0, 15.0),
            ("all", 0, 1, 1, 1, 7.0, 22.0),
            ("all", 0, 2, 1, 0, 0.0, 22.0),
            ("all", 31, 0, 1, 1, 20.0, 20.0),
            ("all", 31, 1, 1, 1, -20.0, 0.0),
            // amazon: a and b both in February
            ("amazon", 31, 0, 2, 2, 27.0, 13.5),
            ("amazon", 31, 1, 2, 1, -20.0, 3.5),
            // shop: a in January
            ("shop", 0, 0, 1, 1, 15.0, 15.0),
            ("shop", 0, 1, 1, 0, 0.0, 15.0),
            ("shop", 0, 2, 1, 0, 0.0, 15.0),
        ];
        assert_eq!(rows, want);
    }

    /// Markets are counted side by side: the same customer id in two markets is two customers, and
    /// each market's rows are those of a table holding that market alone.
    #[test]
    fn each_market_counts_as_if_alone() {
        type Line = (&'static str, &'static str, f64, i32);
        let table = |lines: &[Line]| {
            let n = lines.len();
            crate::unify::with_customers(
                df!(
                    schema::MARKET => lines.iter().map(|l| l.0).collect::<Vec<_>>(),
                    schema::CUSTOMER_ID => lines.iter().map(|l| l.1).collect::<Vec<_>>(),
                    schema::SOURCE => vec!["shop"; n],
                    schema::STATUS => vec![schema::status::COMPLETED; n],
                    schema::NET_BASE => lines.iter().map(|l| l.2).collect::<Vec<_>>(),
                    schema::ORDER_DATE => lines.iter().map(|l| l.3).collect::<Vec<_>>(),
                )
                .unwrap(),
            )
            .lazy()
            .with_column(col(schema::ORDER_DATE).cast(DataType::Date))
            .collect()
            .unwrap()
        };
        let spec = CohortsSpec { id: "c".into(), input: "o".into(), by: vec![CohortBy::Market], period: Period::Month };
        let rows = |lines: &[Line]| {
            let c = cohorts(&spec, &table(lines), NaiveDate::from_ymd_opt(1970, 3, 15).unwrap()).unwrap();
            (0..c.market.len())
                .map(|i| (c.market[i].clone(), c.cohort[i], c.months_since[i], c.customers[i], c.revenue[i]))
                .collect::<Vec<_>>()
        };
        let eu: [Line; 3] = [("eu", "a", 1.0, 0), ("eu", "a", 2.0, 31), ("eu", "b", 4.0, 31)];
        let us: [Line; 2] = [("us", "a", 8.0, 0), ("us", "c", 16.0, 59)];
        let both = rows(&[eu.as_slice(), us.as_slice()].concat());
        assert_eq!(both, [rows(&eu), rows(&us)].concat());
        let january = both.iter().filter(|r| r.1 == 0 && r.2 == 0).map(|r| (r.0.as_str(), r.3)).collect::<Vec<_>>();
        assert_eq!(january, [("eu", 1), ("us", 1)], "customer a once per market");
    }
}
