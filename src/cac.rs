//! Customer acquisition cost and LTV:CAC. Spend comes per month, market and channel
//! (`month,market,channel,spend,currency`). A channel named like a load stage (say `shopify`) is
//! matched to the customers that source acquired; any other channel (ad networks: exports carry no
//! attribution) is divided by all customers the market acquired that month (`blended`); the `all`
//! row divides the month's total spend by the month's new customers.

use crate::cohort::Cohorts;
use crate::error::{Error, Result};
use crate::fx::{FxRates, epoch_days};
use crate::sources::parse;
use chrono::NaiveDate;
use std::collections::BTreeMap;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct Spend {
    /// Epoch day of the month's first day.
    pub month: i32,
    pub market: String,
    pub channel: String,
    /// In the base currency.
    pub amount: f64,
}

pub fn load(path: &Path, fx: &FxRates) -> Result<Vec<Spend>> {
    let rows = crate::sources::reference_table(path, &["month", "market", "channel", "spend", "currency"])?;
    let mut out = Vec::new();
    for (line, fields) in rows {
        let get = |k: usize| fields[k].clone();
        let bad = |what: String| Error::input(path, format!("line {line}: {what}"));
        let month = NaiveDate::parse_from_str(&format!("{}-01", get(0).trim()), "%Y-%m-%d")
            .map_err(|_| bad(format!("month '{}' is not YYYY-MM", get(0))))?;
        let amount =
            parse::amount(&get(3), false).ok_or_else(|| bad(format!("spend '{}' is not an amount", get(3))))?;
        let currency = get(4).trim().to_uppercase();
        let rate = fx
            .rate(&currency, epoch_days(month))
            .ok_or_else(|| bad(format!("no FX rate for {currency} on or before {month}")))?;
        out.push(Spend {
            month: epoch_days(month),
            market: get(1).trim().to_string(),
            channel: get(2).trim().to_string(),
            amount: amount * rate,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone)]
pub struct Cac {
    pub market: String,
    pub month: i32,
    /// A channel, or `all`.
    pub channel: String,
    /// `source` (matched to a load stage), `blended`, or `all`.
    pub attribution: &'static str,
    pub spend: f64,
    pub new_customers: i64,
    pub cac: Option<f64>,
    pub historical_ltv: Option<f64>,
    pub predicted_ltv: Option<f64>,
    pub ltv_cac_historical: Option<f64>,
    pub ltv_cac_predicted: Option<f64>,
    pub months_to_payback: Option<i64>,
}

/// A cohort's curve: customers, and margin x cumulative revenue per customer by months since.
struct Curve {
    customers: i64,
    value: Vec<f64>,
}

/// `future`: per (market, cohort month day) the mean predicted CLV of its customers, when a `clv`
/// stage ran; predicted LTV = historical LTV + that.
pub fn cac(spend: &[Spend], cohorts: &Cohorts, margin: f64, future: &BTreeMap<(String, i32), f64>) -> Vec<Cac> {
    let mut curves: BTreeMap<(String, String, i32), Curve> = BTreeMap::new();
    for i in 0..cohorts.market.len() {
        let key = (cohorts.market[i].clone(), cohorts.source[i].clone(), cohorts.cohort[i]);
        let curve = curves.entry(key).or_insert(Curve { customers: cohorts.customers[i], value: vec![] });
        curve.value.push(margin * cohorts.cumulative_revenue_per_customer[i]);
    }
    let mut by_month: BTreeMap<(String, i32), Vec<&Spend>> = BTreeMap::new();
    for s in spend {
        by_month.entry((s.market.clone(), s.month)).or_default().push(s);
    }
    let mut out = Vec::new();
    for ((market, month), rows) in by_month {
        let mut lines: Vec<(String, &'static str, f64)> = rows
            .iter()
            .map(|s| {
                let matched = curves.contains_key(&(market.clone(), s.channel.clone(), month));
                (s.channel.clone(), if matched { "source" } else { "blended" }, s.amount)
            })
            .collect();
        lines.push(("all".into(), "all", rows.iter().map(|s| s.amount).sum()));
        for (channel, attribution, amount) in lines {
            let source = if attribution == "source" { channel.clone() } else { "all".into() };
            let curve = curves.get(&(market.clone(), source, month));
            let new_customers = curve.map_or(0, |c| c.customers);
            let cac = (new_customers > 0).then(|| amount / new_customers as f64);
            let historical = curve.and_then(|c| c.value.last().copied());
            let predicted = historical.map(|h| h + future.get(&(market.clone(), month)).copied().unwrap_or(0.0));
            let ratio = |ltv: Option<f64>| match (ltv, cac) {
                (Some(l), Some(c)) if c > 0.0 => Some(l / c),
                _ => None,
            };
            let payback = match (curve, cac) {
                (Some(c), Some(cac)) => c.value.iter().position(|v| *v >= cac).map(|k| k as i64),
                _ => None,
            };
            out.push(Cac {
                market: market.clone(),
                month,
                channel,
                attribution,
                spend: amount,
                new_customers,
                cac,
                historical_ltv: historical,
                predicted_ltv: predicted,
                ltv_cac_historical: ratio(historical),
                ltv_cac_predicted: ratio(predicted),
                months_to_payback: payback,
            });
        }
    }
    out
}
