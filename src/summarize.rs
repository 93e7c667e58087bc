//! Summarize: order lines -> per (market, customer) purchase events. A purchase event is a
//! customer-day with a purchase (a non-cancelled, non-refunded line with net >= 0) and a day
//! total >= 0; same-day orders merge. Returns and refunds reduce revenue but are not events; free
//! orders are purchases (the published CDNOW fits count its $0 transactions). Everything after
//! this stage is plain Rust over compact per-market arrays (no Polars calls inside the models'
//! parallel tasks).

use crate::error::Result;
use crate::frame;
use crate::fx::epoch_days;
use crate::schema;
use chrono::NaiveDate;
use polars::prelude::*;

#[derive(Debug, Clone)]
pub struct Customer {
    pub id: String,
    /// Distinct non-cancelled orders, up to as_of.
    pub orders: u64,
    /// Net revenue in the base currency, up to as_of.
    pub revenue: f64,
    /// Purchase events (epoch day, value), by day.
    pub events: Vec<(i32, f64)>,
}

#[derive(Debug, Clone)]
pub struct Market {
    pub name: String,
    pub customers: Vec<Customer>,
}

#[derive(Debug, Clone)]
pub struct Summary {
    pub markets: Vec<Market>,
    /// Epoch day of the calibration end (inclusive).
    pub calibration_end: i32,
    /// Days in one time unit (1 or 7).
    pub unit_days: f64,
}

/// A customer's recency-frequency-monetary summary at a cutoff, in time units.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rfm {
    /// Repeat purchase events after the first.
    pub frequency: f64,
    /// First to last event.
    pub recency: f64,
    /// First event to the cutoff.
    pub tenure: f64,
    /// Mean value of the repeat events (0 without any).
    pub monetary: f64,
}

impl Customer {
    pub fn first_day(&self) -> Option<i32> {
        self.events.first().map(|e| e.0)
    }

    pub fn last_day(&self) -> Option<i32> {
        self.events.last().map(|e| e.0)
    }

    /// RFM from the events up to `cutoff` (inclusive); `None` before the first purchase.
    pub fn rfm_at(&self, cutoff: i32, unit_days: f64) -> Option<Rfm> {
        let seen: Vec<&(i32, f64)> = self.events.iter().take_while(|e| e.0 <= cutoff).collect();
        let first = seen.first()?.0;
        let last = seen.last()?.0;
        let repeats = &seen[1..];
        let monetary =
            if repeats.is_empty() { 0.0 } else { repeats.iter().map(|e| e.1).sum::<f64>() / repeats.len() as f64 };
        Some(Rfm {
            frequency: repeats.len() as f64,
            recency: (last - first) as f64 / unit_days,
            tenure: (cutoff - first) as f64 / unit_days,
            monetary,
        })
    }

    /// (events, value) in (from, to].
    pub fn between(&self, from: i32, to: i32) -> (f64, f64) {
        self.events.iter().filter(|e| e.0 > from && e.0 <= to).fold((0.0, 0.0), |(n, v), e| (n + 1.0, v + e.1))
    }
}

pub fn summarize(orders: &DataFrame, calibration_end: NaiveDate, unit_days: f64) -> Result<Summary> {
    let live = orders.clone().lazy().filter(col(schema::STATUS).neq(lit(schema::status::CANCELLED)));
    let per_customer = frame::collect(
        orders
            .clone()
            .lazy()
            .group_by([col(schema::MARKET), col(schema::CUSTOMER_ID)])
            .agg([
                col(schema::NET_BASE).sum().alias("revenue"),
                concat_str([col(schema::SOURCE), col(schema::ORDER_ID)], "\u{1}", false)
                    .filter(col(schema::STATUS).neq(lit(schema::status::CANCELLED)))
                    .n_unique()
                    .alias("orders"),
            ])
            .sort([schema::MARKET, schema::CUSTOMER_ID], Default::default()),
        "customer totals",
    )?;
    // A purchase line: not cancelled, not refunded, not a return (net >= 0). A free order (net 0,
    // CDNOW has eight) is a purchase; a refunded one is not; a day whose returns outweigh its
    // purchases is not an event.
    let purchase = col(schema::STATUS)
        .neq(lit(schema::status::REFUNDED))
        .and(col(schema::NET_BASE).fill_null(lit(0.0)).gt_eq(lit(0.0)));
    let events = frame::collect(
        live.group_by([col(schema::MARKET), col(schema::CUSTOMER_ID), col(schema::ORDER_DATE)])
            .agg([col(schema::NET_BASE).fill_null(lit(0.0)).sum().alias("value"), purchase.sum().alias("purchases")])
            .filter(col("value").gt_eq(lit(0.0)).and(col("purchases").gt(lit(0))))
            .sort([schema::MARKET, schema::CUSTOMER_ID, schema::ORDER_DATE], Default::default()),
        "purchase events",
    )?;

    let (markets, ids) =
        (frame::strings(&per_customer, schema::MARKET)?, frame::strings(&per_customer, schema::CUSTOMER_ID)?);
    let (revenue, n_orders) = (frame::floats(&per_customer, "revenue")?, frame::floats(&per_customer, "orders")?);
    let (e_market, e_id) = (frame::strings(&events, schema::MARKET)?, frame::strings(&events, schema::CUSTOMER_ID)?);
    let e_day = frame::floats(&events, schema::ORDER_DATE)?;
    let e_value = frame::floats(&events, "value")?;

    let mut out: Vec<Market> = Vec::new();
    let mut j = 0;
    for i in 0..ids.len() {
        let (m, id) = (markets[i].clone().unwrap_or_default(), ids[i].clone().unwrap_or_default());
        if out.last().is_none_or(|last| last.name != m) {
            out.push(Market { name: m.clone(), customers: Vec::new() });
        }
        let mut evs = Vec::new();
        // Both tables are sorted by (market, customer): walk the events alongside.
        while j < e_id.len() && (e_market[j].as_deref(), e_id[j].as_deref()) < (Some(m.as_str()), Some(id.as_str())) {
            j += 1;
        }
        while j < e_id.len() && e_market[j].as_deref() == Some(m.as_str()) && e_id[j].as_deref() == Some(id.as_str()) {
            evs.push((e_day[j].unwrap_or(0.0) as i32, e_value[j].unwrap_or(0.0)));
            j += 1;
        }
        out.last_mut().expect("pushed").customers.push(Customer {
            id,
            orders: n_orders[i].unwrap_or(0.0) as u64,
            revenue: revenue[i].unwrap_or(0.0),
            events: evs,
        });
    }
    Ok(Summary { markets: out, calibration_end: epoch_days(calibration_end), unit_days })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdnow_customer_one() {
        // CDNOW customer 1: purchases 1997-01-01, 01-18, 08-02 (and 12-12, after calibration).
        let d = |s: &str| epoch_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        let c = Customer {
            id: "1".into(),
            orders: 4,
            revenue: 100.5,
            events: vec![
                (d("1997-01-01"), 29.33),
                (d("1997-01-18"), 29.73),
                (d("1997-08-02"), 14.96),
                (d("1997-12-12"), 26.48),
            ],
        };
        let r = c.rfm_at(d("1997-09-30"), 7.0).unwrap();
        assert_eq!(r.frequency, 2.0);
        assert!((r.recency - 30.43).abs() < 0.005 && (r.tenure - 38.86).abs() < 0.005, "{r:?}");
        assert!((r.monetary - 22.345).abs() < 1e-9);
        assert_eq!(c.between(d("1997-09-30"), d("1998-06-30")), (1.0, 26.48));
        assert!(c.rfm_at(d("1996-12-31"), 7.0).is_none());
    }
}
