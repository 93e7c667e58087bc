//! The `cohorts` stage: customers by acquisition month (their first non-cancelled order), per
//! market and optionally per source; for each month since acquisition, the share still buying
//! (retention) and the cumulative net revenue per customer (the LTV curve). Months without a
//! purchase are present with 0, so heatmaps have no holes.

use crate::config::{CohortBy, CohortsSpec};
use crate::error::Result;
use crate::frame;
use crate::schema;
use chrono::{Datelike, NaiveDate};
use polars::prelude::*;
use std::collections::BTreeMap;

/// Months since year 0 of a `Date` column: year * 12 + month - 1.
fn month_index(e: Expr) -> Expr {
    e.clone().dt().year().cast(DataType::Int64) * lit(12i64) + e.dt().month().cast(DataType::Int64) - lit(1i64)
}

/// (market, source, cohort month index).
type CohortKey = (String, String, i64);

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

pub fn cohorts(spec: &CohortsSpec, orders: &DataFrame, as_of: NaiveDate) -> Result<Cohorts> {
    let last_month = as_of.year() as i64 * 12 + as_of.month0() as i64;
    let live = orders
        .clone()
        .lazy()
        .filter(col(schema::STATUS).neq(lit(schema::status::CANCELLED)))
        .with_column(month_index(col(schema::ORDER_DATE)).alias("_m"));
    let mut groupings = vec![(lit("all"), "all")];
    if spec.by.contains(&CohortBy::Source) {
        groupings.push((col(schema::SOURCE), "source"));
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
    for (source, label) in groupings {
        let keyed = live.clone().with_column(source.alias("_source"));
        let first = frame::over(col("_m").min(), &[col(schema::MARKET), col("_source"), col(schema::CUSTOMER_ID)]);
        let cells = frame::collect(
            keyed
                .with_column(first.alias("_cohort"))
                .group_by([
                    col(schema::MARKET),
                    col("_source"),
                    col("_cohort"),
                    (col("_m") - col("_cohort")).alias("_k"),
                ])
                .agg([
                    col(schema::CUSTOMER_ID).n_unique().alias("_active"),
                    col(schema::NET_BASE).sum().alias("_revenue"),
                ])
                .sort(["_source", "_cohort", "_k"], Default::default()),
            &format!("cohorts by {label}"),
        )?;
        // (market, source, cohort) -> months since -> (active, revenue); month 0 holds everyone.
        let mut grid: BTreeMap<CohortKey, BTreeMap<i64, (i64, f64)>> = BTreeMap::new();
        let (m, s) = (frame::strings(&cells, schema::MARKET)?, frame::strings(&cells, "_source")?);
        let (c, k) = (frame::floats(&cells, "_cohort")?, frame::floats(&cells, "_k")?);
        let (a, v) = (frame::floats(&cells, "_active")?, frame::floats(&cells, "_revenue")?);
        for i in 0..cells.height() {
            let key = (m[i].clone().unwrap_or_default(), s[i].clone().unwrap_or_default(), c[i].unwrap_or(0.0) as i64);
            grid.entry(key)
                .or_default()
                .insert(k[i].unwrap_or(0.0) as i64, (a[i].unwrap_or(0.0) as i64, v[i].unwrap_or(0.0)));
        }
        for ((market, source, cohort), months) in grid {
            let size = months.get(&0).map_or(0, |m| m.0);
            let first_day =
                NaiveDate::from_ymd_opt((cohort / 12) as i32, (cohort % 12) as u32 + 1, 1).expect("valid month");
            let mut cumulative = 0.0;
            for k in 0..=(last_month - cohort).max(0) {
                let (active, revenue) = months.get(&k).copied().unwrap_or((0, 0.0));
                cumulative += revenue;
                out.market.push(market.clone());
                out.source.push(source.clone());
                out.cohort.push(crate::fx::epoch_days(first_day));
                out.months_since.push(k);
                out.customers.push(size);
                out.active_customers.push(active);
                out.retention.push(if size > 0 { active as f64 / size as f64 } else { 0.0 });
                out.revenue.push(revenue);
                out.cumulative_revenue_per_customer.push(if size > 0 { cumulative / size as f64 } else { 0.0 });
            }
        }
    }
    Ok(out)
}
