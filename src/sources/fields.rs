//! A loader's own pass over its rows, in plain Rust: each field parsed once where it is read
//! (Polars ran a UDF over a whole column per field, and windows for order-level values), the
//! reject reason of a row in the same words as the expression checks (`unparseable <label>
//! '<raw>'`, `missing <label>`), and the typed columns handed to [`super::finish`].

use super::{LineExprs, parse};
use crate::frame;
use polars::prelude::*;

/// An amount field: its text and value (`None` for both when blank).
pub struct Amount<'a> {
    pub raw: Option<&'a str>,
    pub value: Option<f64>,
}

impl<'a> Amount<'a> {
    pub fn at(column: &frame::Texts<'a>, row: u32, decimal_comma: bool) -> Self {
        let raw = column.get(row);
        Amount { raw, value: raw.and_then(|s| parse::amount(s, decimal_comma)) }
    }

    pub fn or_zero(&self) -> f64 {
        self.value.unwrap_or(0.0)
    }

    /// "unparseable <label> '<raw>'" when there is text that is not an amount.
    pub fn unparseable(&self, label: &str) -> Option<String> {
        unparseable(self.raw, self.value.is_some(), label)
    }

    /// Also "missing <label>" when blank.
    pub fn required(&self, label: &str) -> Option<String> {
        required(self.raw, self.value.is_some(), label)
    }
}

/// "unparseable <label> '<raw>'" when there is text (`raw`) that did not parse.
pub fn unparseable(raw: Option<&str>, parsed: bool, label: &str) -> Option<String> {
    raw.filter(|_| !parsed).map(|raw| format!("unparseable {label} '{raw}'"))
}

/// "missing <label>" when there is no text, else as [`unparseable`].
pub fn required(raw: Option<&str>, parsed: bool, label: &str) -> Option<String> {
    match raw {
        None => Some(format!("missing {label}")),
        Some(_) => unparseable(raw, parsed, label),
    }
}

/// A sum as Polars' group sums make it (Kahan-compensated, nulls skipped) and the count of the
/// values in it.
pub fn sum_and_count(values: impl Iterator<Item = Option<f64>>) -> (f64, usize) {
    let (mut sum, mut err, mut n) = (0.0f64, 0.0f64, 0);
    for v in values.flatten() {
        let y = v - err;
        let next = sum + y;
        let e = (next - sum) - y;
        sum = next;
        if e.is_finite() {
            err = e;
        }
        n += 1;
    }
    (sum, n)
}

/// `w_i / sum(w)` over an order's lines (`1/n` of the non-null weights when they sum to zero).
pub fn shares(weights: &[Option<f64>]) -> impl Iterator<Item = Option<f64>> + '_ {
    let (total, n) = sum_and_count(weights.iter().copied());
    weights.iter().map(move |w| if total.abs() > 1e-12 { w.map(|w| w / total) } else { Some(1.0 / n as f64) })
}

/// The merchandise part (ex tax and shipping) of an order-level refund: the refund scaled by the
/// order's merchandise share of its total, capped at the merchandise value.
pub fn merchandise_refund(refund: Option<f64>, total: f64, merchandise: f64) -> f64 {
    match refund {
        Some(r) if r > 0.0 && total > 0.0 => (r * merchandise / total).min(merchandise),
        Some(r) if r > 0.0 => merchandise,
        _ => 0.0,
    }
}

/// The typed values of a file's lines, one entry per row, filled by the loader's pass.
pub struct Typed {
    pub ordered_at: Vec<Option<i64>>,
    pub status: Vec<Option<&'static str>>,
    pub quantity: Vec<Option<f64>>,
    pub gross: Vec<Option<f64>>,
    pub discount: Vec<Option<f64>>,
    pub tax: Vec<Option<f64>>,
    pub shipping: Vec<Option<f64>>,
    pub refunded: Vec<Option<f64>>,
    pub net: Vec<Option<f64>>,
    /// The row's first reason to be rejected, if any.
    pub reason: Vec<Option<String>>,
}

impl Typed {
    pub fn new(rows: usize) -> Self {
        Typed {
            ordered_at: vec![None; rows],
            status: vec![None; rows],
            quantity: vec![None; rows],
            gross: vec![None; rows],
            discount: vec![None; rows],
            tax: vec![None; rows],
            shipping: vec![None; rows],
            refunded: vec![None; rows],
            net: vec![None; rows],
            reason: vec![None; rows],
        }
    }

    /// The columns, named `_<field>`.
    pub fn columns(self) -> Vec<Column> {
        let f64s = |name: &str, v: Vec<Option<f64>>| Float64Chunked::from_iter_options(name.into(), v.into_iter());
        vec![
            Int64Chunked::from_iter_options("_ordered_at".into(), self.ordered_at.into_iter()).into_column(),
            StringChunked::from_iter_options("_status".into(), self.status.into_iter()).into_column(),
            f64s("_quantity", self.quantity).into_column(),
            f64s("_gross", self.gross).into_column(),
            f64s("_discount", self.discount).into_column(),
            f64s("_tax", self.tax).into_column(),
            f64s("_shipping", self.shipping).into_column(),
            f64s("_refunded", self.refunded).into_column(),
            f64s("_net", self.net).into_column(),
            StringChunked::from_iter_options("_reason".into(), self.reason.into_iter()).into_column(),
        ]
    }

    /// The line expressions that read [`Self::columns`]; the loader adds the rest.
    pub fn exprs() -> LineExprs {
        LineExprs {
            ordered_at: col("_ordered_at"),
            status: col("_status"),
            quantity: col("_quantity"),
            gross: col("_gross"),
            discount: col("_discount"),
            tax: col("_tax"),
            shipping: col("_shipping"),
            refunded: col("_refunded"),
            net: col("_net"),
            checks: vec![col("_reason")],
            ..LineExprs::default()
        }
    }
}

/// `f` of each distinct text, computed once: for few-valued columns (statuses, marketplaces).
pub struct Memo<'a, V> {
    seen: PlHashMap<&'a str, V>,
}

impl<V> Default for Memo<'_, V> {
    fn default() -> Self {
        Memo { seen: PlHashMap::new() }
    }
}

impl<'a, V: Copy> Memo<'a, V> {
    pub fn get(&mut self, text: &'a str, f: impl FnOnce(&str) -> V) -> V {
        *self.seen.entry(text).or_insert_with(|| f(text))
    }
}

/// A text column of normalised values (upper-cased codes, countries), each distinct raw text
/// normalised once.
pub struct Normalised<'a> {
    seen: PlHashMap<&'a str, String>,
    column: StringChunkedBuilder,
}

impl<'a> Normalised<'a> {
    pub fn new(rows: usize) -> Self {
        Normalised { seen: PlHashMap::new(), column: StringChunkedBuilder::new(PlSmallStr::EMPTY, rows) }
    }

    /// A value as it is.
    pub fn push(&mut self, value: Option<&str>) {
        self.column.append_option(value);
    }

    /// `f(raw)`, or null without text.
    pub fn push_with(&mut self, raw: Option<&'a str>, f: impl FnOnce(&str) -> String) {
        match raw {
            Some(raw) => self.column.append_value(self.seen.entry(raw).or_insert_with(|| f(raw))),
            None => self.column.append_null(),
        }
    }

    pub fn finish(self, name: &str) -> Column {
        self.column.finish().with_name(name.into()).into_column()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_spread_by_weight_or_evenly_when_the_weights_sum_to_zero() {
        let got: Vec<_> = shares(&[Some(1.0), None, Some(3.0)]).collect();
        assert_eq!(got, [Some(0.25), None, Some(0.75)]);
        let got: Vec<_> = shares(&[Some(2.0), Some(-2.0), None]).collect();
        assert_eq!(got, [Some(0.5), Some(0.5), Some(0.5)]);
    }

    #[test]
    fn a_refund_counts_its_merchandise_part_only_capped_at_the_merchandise() {
        // 110 total = 100 merchandise + 10 shipping: a 55 refund is 50 of merchandise.
        assert_eq!(merchandise_refund(Some(55.0), 110.0, 100.0), 50.0);
        assert_eq!(merchandise_refund(Some(500.0), 110.0, 100.0), 100.0);
        assert_eq!(merchandise_refund(Some(5.0), 0.0, 100.0), 100.0);
        assert_eq!(merchandise_refund(None, 110.0, 100.0), 0.0);
        assert_eq!(merchandise_refund(Some(-3.0), 110.0, 100.0), 0.0);
    }
}
