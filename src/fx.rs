//! Exchange rates: `date,currency,rate` where 1 unit of `currency` = `rate` units of the base.
//! A line takes the rate of its order date or the latest earlier one; a currency with no such
//! rate is a rejected row, never a guess.

use crate::error::{Error, Result};
use chrono::NaiveDate;
use std::path::Path;

#[derive(Debug, Clone)]
pub struct FxRates {
    base: String,
    /// currency -> (days since 1970-01-01, rate), sorted by day.
    /// Looked up for every order line: a fast hash, not the standard library's SipHash.
    rates: foldhash::HashMap<String, Vec<(i32, f64)>>,
    /// currency [`code`] -> (its first day, the rate of every day from then to its last rate):
    /// one index per order line instead of a binary search. Currencies whose rates span more than
    /// [`DAILY_SPAN`] days are searched.
    daily: foldhash::HashMap<u32, (i32, Vec<f64>)>,
    /// [`FxRates::digest`], computed once: it is part of every parse cache key, one per file.
    digest: String,
}

/// A three-letter currency code as one integer, which compares and hashes in one step (comparing
/// and hashing the text per order line was a third of converting the lines, most of it in
/// `memcmp`). Every code the rates and the base can hold has three letters.
fn code(currency: &str) -> Option<u32> {
    match *currency.as_bytes() {
        [a, b, c] => Some(u32::from_le_bytes([a, b, c, 0])),
        _ => None,
    }
}

/// Days of rates laid out day by day at most per currency (~270 years, 800 kB).
const DAILY_SPAN: i32 = 100_000;

pub fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid")).num_days() as i32
}

pub fn from_epoch_days(days: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid") + chrono::Duration::days(days as i64)
}

/// Months since year 0 of a day counted from 1970-01-01: year * 12 + month - 1. Integer
/// arithmetic (Hinnant's `civil_from_days`): through chrono it was a seventh of the cohorts stage.
pub fn month_index(day: i64) -> i64 {
    let z = day + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let (year, month0) = if mp < 10 { (era * 400 + yoe, mp + 2) } else { (era * 400 + yoe + 1, mp - 10) };
    year * 12 + month0
}

/// The epoch day of the first day of a [`month_index`].
pub fn month_first_day(month: i64) -> i32 {
    let (year, month0) = (month.div_euclid(12), month.rem_euclid(12));
    epoch_days(NaiveDate::from_ymd_opt(year as i32, month0 as u32 + 1, 1).expect("a month of a valid date"))
}

impl FxRates {
    /// Rates for the base currency only (no file configured).
    pub fn base_only(base: &str) -> Self {
        let mut fx = FxRates {
            base: base.to_string(),
            rates: foldhash::HashMap::default(),
            daily: foldhash::HashMap::default(),
            digest: String::new(),
        };
        fx.digest = fx.fingerprint();
        fx
    }

    pub fn load(path: &Path, base: &str) -> Result<Self> {
        let mut fx = FxRates::base_only(base);
        let rows = crate::sources::reference_table(path, &["date", "currency", "rate"])?;
        for (line, fields) in rows {
            let [date, currency, rate] = [&fields[0], &fields[1], &fields[2]];
            let bad = |what: &str| Error::input(path, format!("line {line}: {what}"));
            let d = NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d")
                .map_err(|_| bad(&format!("date '{date}' is not YYYY-MM-DD")))?;
            let cur = currency.trim().to_uppercase();
            if !(cur.len() == 3 && cur.bytes().all(|b| b.is_ascii_uppercase())) {
                return Err(bad(&format!("currency '{currency}' is not an ISO 4217 code")));
            }
            let r = crate::sources::parse::amount(rate, false)
                .filter(|r| *r > 0.0)
                .ok_or_else(|| bad(&format!("rate '{rate}' is not a positive number")))?;
            fx.rates.entry(cur).or_default().push((epoch_days(d), r));
        }
        for v in fx.rates.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        for (currency, v) in &fx.rates {
            let (first, last) = (v[0].0, v[v.len() - 1].0);
            if last - first <= DAILY_SPAN {
                let days = (first..=last).map(|day| v[v.partition_point(|(d, _)| *d <= day) - 1].1).collect();
                fx.daily.insert(code(currency).expect("validated: three letters"), (first, days));
            }
        }
        fx.digest = fx.fingerprint();
        Ok(fx)
    }

    /// A fingerprint of every rate, the same for the same rates however they were read.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    fn fingerprint(&self) -> String {
        let mut currencies: Vec<_> = self.rates.iter().collect();
        currencies.sort_by(|a, b| a.0.cmp(b.0));
        let text = format!("{}{currencies:?}", self.base);
        crate::sources::hex(&<sha2::Sha256 as sha2::Digest>::digest(text.as_bytes()))
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Rate on `day` (days since epoch) or the latest earlier day.
    pub fn rate(&self, currency: &str, day: i32) -> Option<f64> {
        let Some(c) = code(currency) else { return (currency == self.base).then_some(1.0) };
        if code(&self.base) == Some(c) {
            return Some(1.0);
        }
        if let Some((first, days)) = self.daily.get(&c) {
            let k = day.checked_sub(*first).filter(|k| *k >= 0)?;
            return Some(days[(k as usize).min(days.len() - 1)]);
        }
        let v = self.rates.get(currency)?;
        let i = v.partition_point(|(d, _)| *d <= day);
        (i > 0).then(|| v[i - 1].1)
    }

    /// Why a line cannot be converted, or `None` when it can.
    pub fn problem(&self, currency: Option<&str>, day: Option<i32>, net: Option<f64>) -> Option<String> {
        let (Some(c), Some(d)) = (currency, day) else {
            return match (currency, net) {
                (None, Some(n)) if n != 0.0 => Some("missing currency".into()),
                _ => None,
            };
        };
        if self.rate(c, d).is_some() {
            return None;
        }
        Some(match self.rates.get(c) {
            None => format!("no FX rate for currency {c} (add it to fx_rates)"),
            Some(_) => format!("no FX rate for {c} on or before {}", from_epoch_days(d)),
        })
    }
}

/// `net` in the base currency at the order date's rate, as an expression over the working line
/// columns; cancelled lines count 0. Rows whose rate is missing were rejected when loaded.
pub fn net_base(fx: &FxRates) -> polars::prelude::Expr {
    use crate::schema::{self, status};
    use polars::prelude::*;
    let fx = fx.clone();
    let net = when(col(schema::STATUS).eq(lit(status::CANCELLED))).then(lit(0.0)).otherwise(col(schema::NET));
    crate::frame::text_day_number_to_f64(col(schema::CURRENCY), col(schema::ORDER_DATE), net, move |c, d, n| {
        let n = n?;
        if n == 0.0 {
            return Some(0.0);
        }
        Some(n * fx.rate(c?, d?)?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Datelike;

    proptest::proptest! {
        /// The integer month index is chrono's year * 12 + month0, from year -2000 to 4000.
        #[test]
        fn month_index_is_chronos(day in -1_450_000i64..745_000) {
            let d = from_epoch_days(day as i32);
            proptest::prop_assert_eq!(month_index(day), d.year() as i64 * 12 + d.month0() as i64);
        }
    }

    #[test]
    fn month_index_at_month_and_year_edges() {
        for (y, m, d) in [
            (1970, 1, 1),
            (1969, 12, 31),
            (2000, 2, 29),
            (2000, 3, 1),
            (1900, 2, 28),
            (1900, 3, 1),
            (2024, 12, 31),
            (2025, 1, 1),
            (1, 1, 1),
        ] {
            let date = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            let month = month_index(epoch_days(date) as i64);
            assert_eq!(month, y as i64 * 12 + m as i64 - 1, "{date}");
            assert_eq!(month_first_day(month), epoch_days(NaiveDate::from_ymd_opt(y, m, 1).unwrap()), "{date}");
        }
    }

    #[test]
    fn latest_earlier_rate_and_base() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fx.csv");
        std::fs::write(&p, "date,currency,rate\n2024-01-01,EUR,1.10\n2024-01-03,EUR,1.20\n").unwrap();
        let fx = FxRates::load(&p, "USD").unwrap();
        let day = |s: &str| epoch_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        assert_eq!(fx.rate("EUR", day("2024-01-02")), Some(1.10));
        assert_eq!(fx.rate("EUR", day("2024-01-03")), Some(1.20));
        assert_eq!(fx.rate("EUR", day("2023-12-31")), None);
        assert_eq!(fx.rate("USD", 0), Some(1.0));
        // Codes are exact text: no case folding, no prefixes, no other lengths ("€" is 3 bytes).
        for other in ["usd", "eur", "EURO", "EU", "", "US", "€"] {
            assert_eq!(fx.rate(other, day("2024-01-03")), None, "{other:?}");
        }
        assert_eq!(fx.rate("EUR", day("2030-06-01")), Some(1.20), "the latest rate carries on");
        assert_eq!(fx.rate("EUR", i32::MIN), None);
        assert!(fx.problem(Some("GBP"), Some(day("2024-01-02")), Some(1.0)).unwrap().contains("GBP"));
        assert_eq!(fx.problem(None, Some(0), None), None, "blank currency on a cancelled line is fine");
    }

    /// Day by day or searched (rates centuries apart), every day gets the latest rate on or
    /// before it, the last listed when a day has two.
    #[test]
    fn daily_and_searched_rates_agree() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fx.csv");
        let rows = "date,currency,rate\n2024-01-05,EUR,1.3\n2024-01-01,EUR,1.1\n2024-01-03,EUR,1.2\n\
                    2024-01-03,EUR,1.25\n2024-01-01,JPY,0.007\n1024-01-01,JPY,0.001\n";
        std::fs::write(&p, rows).unwrap();
        let fx = FxRates::load(&p, "USD").unwrap();
        assert!(fx.daily.contains_key(&code("EUR").unwrap()) && !fx.daily.contains_key(&code("JPY").unwrap()));
        let day = |s: &str| epoch_days(NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap());
        let want = [None, Some(1.1), Some(1.1), Some(1.25), Some(1.25), Some(1.3), Some(1.3)];
        for (i, want) in want.into_iter().enumerate() {
            assert_eq!(fx.rate("EUR", day("2023-12-31") + i as i32), want, "day {i}");
        }
        assert_eq!(fx.rate("JPY", day("2000-01-01")), Some(0.001));
        assert_eq!(fx.rate("JPY", day("2025-01-01")), Some(0.007));
        assert_eq!(fx.rate("JPY", day("1000-01-01")), None);
    }

    #[test]
    fn bad_row_names_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("fx.csv");
        std::fs::write(&p, "date,currency,rate\n2024-01-01,EUR,1.10\n2024-13-01,EUR,1\n").unwrap();
        let msg = FxRates::load(&p, "USD").unwrap_err().to_string();
        assert!(msg.contains("line 3") && msg.contains("2024-13-01"), "{msg}");
    }
}
