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

/// A numeric column filled row by row, in any order: values and validity apart, handed to Polars
/// without a copy. As `Vec<Option<f64>>` a row took 16 bytes and became a column in another pass.
pub struct Filled<T> {
    values: Vec<T>,
    valid: polars_arrow::bitmap::MutableBitmap,
}

impl<T: Copy + Default> Filled<T> {
    fn new(rows: usize) -> Self {
        Filled { values: vec![T::default(); rows], valid: polars_arrow::bitmap::MutableBitmap::from_len_zeroed(rows) }
    }

    #[inline]
    pub fn set(&mut self, row: usize, value: Option<T>) {
        self.values[row] = value.unwrap_or_default();
        self.valid.set(row, value.is_some());
    }

    fn column<P: PolarsNumericType<Native = T>>(self, name: &str) -> Column {
        ChunkedArray::<P>::from_vec_validity(name.into(), self.values, Some(self.valid.into())).into_column()
    }
}

/// The typed values of a file's lines, one entry per row, filled by the loader's pass.
pub struct Typed {
    pub ordered_at: Filled<i64>,
    pub status: Vec<Option<&'static str>>,
    pub quantity: Filled<f64>,
    pub gross: Filled<f64>,
    pub discount: Filled<f64>,
    pub tax: Filled<f64>,
    pub shipping: Filled<f64>,
    pub refunded: Filled<f64>,
    pub net: Filled<f64>,
    /// The row's first reason to be rejected, if any.
    pub reason: Vec<Option<String>>,
}

impl Typed {
    pub fn new(rows: usize) -> Self {
        Typed {
            ordered_at: Filled::new(rows),
            status: vec![None; rows],
            quantity: Filled::new(rows),
            gross: Filled::new(rows),
            discount: Filled::new(rows),
            tax: Filled::new(rows),
            shipping: Filled::new(rows),
            refunded: Filled::new(rows),
            net: Filled::new(rows),
            reason: vec![None; rows],
        }
    }

    /// The columns, named `_<field>`.
    pub fn columns(self) -> Vec<Column> {
        vec![
            self.ordered_at.column::<Int64Type>("_ordered_at"),
            StringChunked::from_iter_options("_status".into(), self.status.into_iter()).into_column(),
            self.quantity.column::<Float64Type>("_quantity"),
            self.gross.column::<Float64Type>("_gross"),
            self.discount.column::<Float64Type>("_discount"),
            self.tax.column::<Float64Type>("_tax"),
            self.shipping.column::<Float64Type>("_shipping"),
            self.refunded.column::<Float64Type>("_refunded"),
            self.net.column::<Float64Type>("_net"),
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

/// `f` of a text, computed again only when the text differs from the one before: for columns
/// whose rows repeat in runs (an Amazon order's lines share their timestamps).
pub struct Last<'a, V> {
    last: Option<(&'a str, V)>,
}

impl<V> Default for Last<'_, V> {
    fn default() -> Self {
        Last { last: None }
    }
}

impl<'a, V: Copy> Last<'a, V> {
    pub fn get(&mut self, text: &'a str, f: impl FnOnce(&str) -> V) -> V {
        match self.last {
            Some((t, v)) if crate::frame::same_str(t, text) => v,
            _ => self.last.insert((text, f(text))).1,
        }
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

    /// Rows set in any order, unset rows and `None` are null; a value set twice keeps the last.
    #[test]
    fn a_filled_column_is_its_rows_as_set() {
        let mut f = Filled::<f64>::new(4);
        f.set(2, Some(2.5));
        f.set(0, Some(-1.0));
        f.set(3, Some(7.0));
        f.set(3, None);
        let c = f.column::<Float64Type>("x");
        let got: Vec<Option<f64>> = c.f64().unwrap().iter().collect();
        assert_eq!(got, [Some(-1.0), None, Some(2.5), None]);
        assert_eq!(c.name().as_str(), "x");
    }

    /// The function runs once per run of equal texts, and every row gets its own text's value.
    #[test]
    fn last_computes_once_per_run_of_equal_texts() {
        let texts = ["a", "a", "b", "a", "a", "a", "c"];
        let (mut last, mut calls) = (Last::default(), 0);
        let got: Vec<usize> = texts
            .iter()
            .map(|t| {
                last.get(t, |t| {
                    calls += 1;
                    t.len() + t.as_bytes()[0] as usize
                })
            })
            .collect();
        assert_eq!(got, texts.map(|t| t.len() + t.as_bytes()[0] as usize));
        assert_eq!(calls, 4);
    }

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
