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

/// One pass over the orders table, which unify sorts by (market, customer): each customer's lines
/// are consecutive. (Two group-bys and sorts over the whole table took ~1 s per million lines.)
pub fn summarize(orders: &DataFrame, calibration_end: NaiveDate, unit_days: f64) -> Result<Summary> {
    // Markets are consecutive: each is a pass of its own, side by side.
    let mut markets = Vec::new();
    for part in frame::by_runs(orders, schema::MARKET, market_customers)? {
        markets.extend(part?);
    }
    Ok(Summary { markets, calibration_end: epoch_days(calibration_end), unit_days })
}

/// The customers of one market's lines, which are consecutive per customer.
fn market_customers(orders: &DataFrame) -> Result<Vec<Market>> {
    use schema::status::{CANCELLED, REFUNDED};
    let markets = frame::texts(orders, schema::MARKET)?;
    let customers = frame::u32_values(orders, schema::aux::CUSTOMER)?.into_no_null_iter();
    let ids = frame::text_columns(orders, &[schema::CUSTOMER_ID])?.remove(0);
    let ids = frame::Texts::of(&ids);
    // (cancelled or no status, refunded)
    let statuses =
        frame::map_texts(orders, schema::STATUS, |s| (s.is_none_or(|s| s == CANCELLED), s == Some(REFUNDED)))?;
    let order_keys = frame::u32_values(orders, schema::aux::ORDER_KEY)?.into_no_null_iter();
    let net = frame::f64_column(orders, schema::NET_BASE)?;
    let days = frame::i64_column(orders, schema::ORDER_DATE)?;

    let mut out: Vec<Market> = Vec::new();
    let mut current = Building::default();
    let lines = (0u32..).zip(markets.zip(customers)).zip(order_keys).zip(statuses.zip(net.iter()).zip(days.iter()));
    for (((row, (market, customer)), order), (((void, refunded), net), day)) in lines {
        if !current.who.is_some_and(|(m, c, _)| frame::same_text(m, market) && c == customer) {
            current.finish(&mut out);
            current.who = Some((market, customer, ids.get(row)));
        }
        current.revenue += net.unwrap_or(0.0);
        if void {
            continue;
        }
        if current.orders.last() != Some(&order) {
            current.orders.push(order);
        }
        // A purchase line: not cancelled, not refunded, not a return (net >= 0). A free order (net 0,
        // CDNOW has eight) is a purchase; a refunded one is not; a day whose returns outweigh its
        // purchases is not an event.
        let value = net.unwrap_or(0.0);
        let e = current.day(day.unwrap_or(0) as i32);
        e.0 += value;
        e.1 |= !refunded && value >= 0.0;
    }
    current.finish(&mut out);
    Ok(out)
}

/// The customer whose lines are being read.
#[derive(Default)]
struct Building<'a> {
    /// Market, `aux::CUSTOMER` and id.
    who: Option<(Option<&'a str>, u32, Option<&'a str>)>,
    revenue: f64,
    /// Order keys of non-cancelled lines (`aux::ORDER_KEY`: one per source and order id), a
    /// line's key skipped when it repeats the one before; made distinct when the customer ends.
    orders: Vec<u32>,
    /// Per day, ascending: (day, (value, has a purchase line)). A vector, reused from customer to
    /// customer: lines come by time, so a day is nearly always the last one or a new last one
    /// (local dates of sources in different zones can step back).
    days: Vec<(i32, (f64, bool))>,
}

impl Building<'_> {
    /// The running (value, has a purchase line) of `day`.
    fn day(&mut self, day: i32) -> &mut (f64, bool) {
        let i = match self.days.last() {
            Some(&(last, _)) if last == day => self.days.len() - 1,
            Some(&(last, _)) if last > day => match self.days.binary_search_by_key(&day, |d| d.0) {
                Ok(i) => i,
                Err(i) => {
                    self.days.insert(i, (day, (0.0, false)));
                    i
                }
            },
            _ => {
                self.days.push((day, (0.0, false)));
                self.days.len() - 1
            }
        };
        &mut self.days[i].1
    }

    fn finish(&mut self, out: &mut Vec<Market>) {
        let Some((market, _, id)) = self.who.take() else { return };
        let market = market.unwrap_or_default();
        if out.last().is_none_or(|last| last.name != market) {
            out.push(Market { name: market.to_string(), customers: Vec::new() });
        }
        self.orders.sort_unstable();
        self.orders.dedup();
        let events = self.days.iter().filter(|(_, (v, p))| *p && *v >= 0.0).map(|(d, (v, _))| (*d, *v)).collect();
        out.last_mut().expect("pushed").customers.push(Customer {
            id: id.unwrap_or_default().to_string(),
            orders: self.orders.len() as u64,
            revenue: std::mem::take(&mut self.revenue),
            events,
        });
        self.orders.clear();
        self.days.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines of two customers in two markets, sorted as unify sorts them; expected figures by hand.
    #[test]
    fn events_orders_and_revenue_by_hand() {
        use schema::status::*;
        type Line = (&'static str, &'static str, &'static str, &'static str, f64, i32);
        let lines: [Line; 8] = [
            // market, customer, order, status, net_base, day
            ("eu", "a", "1", COMPLETED, 10.0, 100),
            ("eu", "a", "2", COMPLETED, 5.0, 100), // same day: one event of 15
            ("eu", "a", "3", CANCELLED, 7.0, 101), // counts for revenue only, no order, no event
            ("eu", "a", "4", REFUNDED, -4.0, 102), // refund: an order, not an event
            ("eu", "a", "5", COMPLETED, 0.0, 103), // free order: an event
            ("us", "b", "6", COMPLETED, 20.0, 100),
            ("us", "b", "7", COMPLETED, -30.0, 104), // a return outweighing the day: no event
            ("us", "b", "7", COMPLETED, 10.0, 104),
        ];
        let col = |f: fn(&Line) -> &'static str| lines.iter().map(f).collect::<Vec<_>>();
        let orders = crate::unify::with_customers(
            df!(
                schema::MARKET => col(|l| l.0),
                schema::CUSTOMER_ID => col(|l| l.1),
                schema::SOURCE => vec!["shop"; lines.len()],
                // One source: the order ids are the keys.
                schema::aux::ORDER_KEY => lines.iter().map(|l| l.2.parse::<u32>().unwrap()).collect::<Vec<_>>(),
                schema::STATUS => col(|l| l.3),
                schema::NET_BASE => lines.iter().map(|l| l.4).collect::<Vec<_>>(),
                schema::ORDER_DATE => lines.iter().map(|l| l.5).collect::<Vec<_>>(),
            )
            .unwrap(),
        );
        let s = summarize(&orders, NaiveDate::from_ymd_opt(1970, 12, 31).unwrap(), 1.0).unwrap();
        assert_eq!(s.markets.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["eu", "us"]);
        let (a, b) = (&s.markets[0].customers[0], &s.markets[1].customers[0]);
        assert_eq!((a.id.as_str(), a.orders, a.revenue), ("a", 4, 18.0));
        assert_eq!(a.events, [(100, 15.0), (103, 0.0)]);
        assert_eq!((b.id.as_str(), b.orders, b.revenue), ("b", 2, 0.0));
        assert_eq!(b.events, [(100, 20.0)]);
    }

    /// Customers of one market are told apart by `aux::CUSTOMER`, each named by its id.
    #[test]
    fn customers_of_one_market_apart() {
        let ids = ["a", "a", "b", "c", "c"];
        let orders = crate::unify::with_customers(
            df!(
                schema::MARKET => vec!["eu"; ids.len()],
                schema::CUSTOMER_ID => ids,
                schema::SOURCE => vec!["shop"; ids.len()],
                schema::aux::ORDER_KEY => [1u32, 2, 3, 4, 5],
                schema::STATUS => vec![schema::status::COMPLETED; ids.len()],
                schema::NET_BASE => [1.0, 2.0, 4.0, 8.0, 16.0],
                schema::ORDER_DATE => [100, 101, 100, 100, 102],
            )
            .unwrap(),
        );
        let s = summarize(&orders, NaiveDate::from_ymd_opt(1970, 12, 31).unwrap(), 1.0).unwrap();
        let got: Vec<(&str, u64, f64)> =
            s.markets[0].customers.iter().map(|c| (c.id.as_str(), c.orders, c.revenue)).collect();
        assert_eq!(got, [("a", 2, 3.0), ("b", 1, 4.0), ("c", 2, 24.0)]);
    }

    /// Local dates can step back between lines sorted by time (sources in different zones): a
    /// day met again after a later one still adds to its own event.
    #[test]
    fn days_out_of_order_add_to_their_own_event() {
        let days = [100, 102, 101, 102, 100, 99];
        let orders = crate::unify::with_customers(
            df!(
                schema::MARKET => vec!["eu"; days.len()],
                schema::CUSTOMER_ID => vec!["a"; days.len()],
                schema::SOURCE => vec!["shop"; days.len()],
                schema::aux::ORDER_KEY => [1u32, 2, 3, 4, 5, 6],
                schema::STATUS => vec![schema::status::COMPLETED; days.len()],
                schema::NET_BASE => [1.0, 2.0, 4.0, 8.0, 16.0, 32.0],
                schema::ORDER_DATE => days.to_vec(),
            )
            .unwrap(),
        );
        let s = summarize(&orders, NaiveDate::from_ymd_opt(1970, 12, 31).unwrap(), 1.0).unwrap();
        let a = &s.markets[0].customers[0];
        assert_eq!(a.events, [(99, 32.0), (100, 17.0), (101, 4.0), (102, 10.0)]);
        assert_eq!((a.orders, a.revenue), (6, 63.0));
    }

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
