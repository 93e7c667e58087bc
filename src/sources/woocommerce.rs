//! WooCommerce exports. Shops use plugins, so two common layouts are presets, told apart by header:
//! WebToffee (one row per order, items in `line_item_N` cells `name:..|quantity:2|total:31.80|..`,
//! refunds in `refund_items`) and Advanced Order Export (one row per item, order fields repeated).
//! `order_date` is site-local without offset: the stage's `timezone` says which zone.

use super::fields::{self, Amount, Typed, merchandise_refund, shares, sum_and_count};
use super::{
    Export, FileOut, LineExprs, LoadCtx, Want, amount, email_key, finish, parse, read, required, status_of, unparseable,
};
use crate::config::ConstantField;
use crate::error::Context;
use crate::error::{Error, Result};
use crate::frame::{self, null_str};
use crate::schema::aux;
use polars::prelude::*;
use std::path::Path;

/// Site-local timestamp shapes WooCommerce and its plugins write (month first in US style).
pub const FORMATS: &[&str] = &[
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%Y-%m-%d",
    "%m/%d/%Y",
    "%Y/%m/%d",
];

enum Layout {
    WebToffee { items: Vec<String> },
    AdvancedOrderExport,
}

fn detect(path: &Path, header: &[String]) -> Result<Layout> {
    let has = |n: &str| header.iter().any(|h| h.eq_ignore_ascii_case(n));
    let items: Vec<String> = header.iter().filter(|h| h.starts_with("line_item_")).cloned().collect();
    if has("order_id") && !items.is_empty() {
        return Ok(Layout::WebToffee { items });
    }
    if has("Order Number") && has("Order Date") {
        return Ok(Layout::AdvancedOrderExport);
    }
    Err(Error::input(
        path,
        format!(
            "matches no WooCommerce layout: expected WebToffee (order_id, order_date, status, line_item_1, ...) or \
             Advanced Order Export (\"Order Number\", \"Order Date\", Quantity, \"Item Cost\", ...); found: {}. \
             For another layout use `source: csv` with a `columns:` mapping",
            header.join(", ")
        ),
    ))
}

fn constant(ctx: &LoadCtx, field: ConstantField) -> Expr {
    ctx.spec.constants.get(&field).map(|v| lit(v.clone())).unwrap_or_else(null_str)
}

pub fn file(ctx: &LoadCtx, file: Export) -> Result<FileOut> {
    let mut layout = None;
    let path = file.path;
    let raw = read(file, &ctx.spec.format, |header| {
        let l = detect(path, header)?;
        let wants = match &l {
            Layout::WebToffee { items } => webtoffee_wants(items),
            Layout::AdvancedOrderExport => advanced_wants(),
        };
        if let Layout::AdvancedOrderExport = l
            && !header.iter().any(|h| h == "Item Cost" || h == "Order Line (w/o tax)")
        {
            return Err(Error::input(path, "needs \"Item Cost\" or \"Order Line (w/o tax)\" for line amounts"));
        }
        layout = Some(l);
        Ok(wants)
    })?;
    let ts = parse::Timestamps::new(ctx.spec.date_format.as_deref(), FORMATS, ctx.spec.timezone);
    match layout.expect("set by read") {
        Layout::WebToffee { items } => webtoffee(ctx, raw, items, ts),
        Layout::AdvancedOrderExport => advanced(ctx, raw, ts),
    }
}

fn webtoffee_wants(items: &[String]) -> Vec<Want> {
    let mut w = vec![
        Want::required("order_id", &["order_id"]),
        Want::required("order_date", &["order_date"]),
        Want::required("status", &["status"]),
        Want::optional("order_total", &["order_total"]),
        Want::optional("currency", &["order_currency"]),
        Want::optional("customer_id", &["customer_id", "customer_user"]),
        Want::optional("email", &["billing_email", "customer_email"]),
        Want::optional("bill_country", &["billing_country"]),
        Want::optional("ship_country", &["shipping_country"]),
        Want::optional("shipping_total", &["shipping_total"]),
        Want::optional("refund_items", &["refund_items"]),
    ];
    w.extend(items.iter().map(|i| Want::optional(i, &[i])));
    w
}

/// The value of the first `key:value` segment of an item cell
/// (`name:..|quantity:2|total:31.80|..`); `key` ends with the colon.
fn item_field<'a>(cell: &'a str, key: &str) -> Option<&'a str> {
    let [value] = item_fields(cell, [key]);
    value
}

/// [`item_field`] for several keys in one pass over the cell (a line's four fields took four).
fn item_fields<'a, const N: usize>(cell: &'a str, keys: [&str; N]) -> [Option<&'a str>; N] {
    let mut values = [None; N];
    for kv in cell.split('|') {
        for (key, value) in keys.iter().zip(&mut values) {
            if value.is_none() {
                *value = kv.strip_prefix(key);
            }
        }
        if values.iter().all(Option::is_some) {
            break;
        }
    }
    values
}

/// The sum of a `refund_items` cell's amounts (`id:..|amount:10.00;id:..|amount:5.00`); `None`
/// if one is not an amount.
fn refund_sum(cell: &str, decimal_comma: bool) -> Option<f64> {
    cell.split(';')
        .filter_map(|r| item_field(r, "amount:"))
        .map(|a| parse::amount(a, decimal_comma))
        .sum::<Option<f64>>()
}

/// The fields both layouts read the same way from columns named alike.
fn order_fields(ctx: &LoadCtx) -> LineExprs {
    LineExprs {
        order_id: col("order_id"),
        customer_key: customer(ctx, col("email"), col("customer_id")),
        email: col("email"),
        ordered_at: col("_ordered_at"),
        ship_country: super::country(coalesce(&[col("ship_country"), constant(ctx, ConstantField::Country)])),
        bill_country: super::country(col("bill_country")),
        currency: coalesce(&[col("currency"), constant(ctx, ConstantField::Currency)]).str().to_uppercase(),
        status: col("_status"),
        ..LineExprs::default()
    }
}

fn customer(ctx: &LoadCtx, email: Expr, id: Expr) -> Expr {
    let platform = when(id.clone().is_not_null().and(id.clone().neq(lit("0"))))
        .then(concat_str([lit(format!("{}:customer:", ctx.spec.id)), id], "", false))
        .otherwise(null_str());
    coalesce(&[email_key(email), platform])
}

fn webtoffee(ctx: &LoadCtx, raw: super::RawFile, items: Vec<String>, ts: parse::Timestamps) -> Result<FileOut> {
    let dc = ctx.spec.format.decimal_comma;
    const NAMES: [&str; 7] =
        ["order_id", "order_date", "status", "order_total", "shipping_total", "refund_items", "currency"];
    let columns = frame::text_columns(&raw.frame, &NAMES)?;
    let [order_id, order_date, status, order_total, shipping_total, refund_items, currency] =
        std::array::from_fn(|i| frame::Texts::of(&columns[i]));
    let item_columns = frame::text_columns(&raw.frame, &items.iter().map(String::as_str).collect::<Vec<_>>())?;
    let item_cells: Vec<frame::Texts> = item_columns.iter().map(frame::Texts::of).collect();
    let currency_known = ctx.spec.constants.contains_key(&ConstantField::Currency);
    let n = raw.frame.height();

    // One line per item cell, an order's lines together (unify finds an order once per run of its
    // lines). An order whose item cells are all empty keeps one line (with no item), so that it is
    // rejected with its reason instead of vanishing from the accounting.
    let (mut row_of_line, mut item_no, mut cells) = (Vec::new(), Vec::new(), Vec::new());
    for r in 0..n as u32 {
        let has_items = item_cells.iter().any(|c| c.get(r).is_some());
        for k in 0..item_cells.len().max(1) {
            let cell = item_cells.get(k).and_then(|c| c.get(r));
            if cell.is_some() || (k == 0 && !has_items) {
                row_of_line.push(r);
                item_no.push(k as i64 + 1);
                cells.push(cell);
            }
        }
    }
    let lines = row_of_line.len();
    let rows = IdxCa::from_vec("".into(), row_of_line.clone());

    // Per row (order): the order-level values.
    let ordered_at: Vec<Option<i64>> = (0..n as u32).map(|r| order_date.get(r).and_then(|s| ts.parse(s))).collect();
    let statuses: Vec<Option<&'static str>> = (0..n as u32).map(|r| status.get(r).and_then(parse::status)).collect();
    let totals: Vec<Amount> = (0..n as u32).map(|r| Amount::at(&order_total, r, dc)).collect();
    let refunds: Vec<Option<f64>> =
        (0..n as u32).map(|r| refund_items.get(r).and_then(|s| refund_sum(s, dc))).collect();

    let mut out = Typed::new(lines);
    let mut net_before = vec![None; lines];
    for (l, cell) in cells.iter().enumerate() {
        let row = row_of_line[l];
        let r = row as usize;
        let [qty_raw, total_raw, sub_raw, tax_raw] =
            cell.map_or([None; 4], |c| item_fields(c, ["quantity:", "total:", "sub_total:", "tax:"]));
        let qty = qty_raw.and_then(|s| parse::amount(s, dc));
        let (total, sub) = (total_raw.and_then(|s| parse::amount(s, dc)), sub_raw.and_then(|s| parse::amount(s, dc)));
        let tax = tax_raw.and_then(|s| parse::amount(s, dc));
        let nb = total.or(sub);
        let gross = sub.or(total);
        net_before[l] = nb;
        out.ordered_at.set(l, ordered_at[r]);
        out.status[l] = statuses[r];
        out.quantity.set(l, qty);
        out.gross.set(l, gross);
        out.discount.set(l, Some(gross.zip(nb).map_or(0.0, |(g, nb)| g - nb)));
        out.tax.set(l, Some(tax.unwrap_or(0.0)));
        out.reason[l] = fields::required(order_id.get(row), true, "order_id")
            .or_else(|| fields::required(order_date.get(row), ordered_at[r].is_some(), "order_date"))
            .or_else(|| fields::required(status.get(row), statuses[r].is_some(), "status"))
            .or_else(|| cell.is_none().then(|| "order has no line_item cells".to_string()))
            .or_else(|| fields::required(qty_raw, qty.is_some(), "line item quantity"))
            .or_else(|| fields::required(total_raw.or(sub_raw), nb.is_some(), "line item total"))
            .or_else(|| totals[r].unparseable("order_total"))
            .or_else(|| fields::unparseable(refund_items.get(row), refunds[r].is_some(), "refund_items"))
            .or_else(|| (currency.get(row).is_none() && !currency_known).then(|| MISSING_CURRENCY.to_string()));
    }
    // The order's refund (merchandise part) and shipping spread over its lines by their net. A
    // row is one order: a second row with the same order id (a copy, which unify drops as the
    // older one) does not share in it.
    let mut lines_of_row: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (l, &r) in row_of_line.iter().enumerate() {
        lines_of_row[r as usize].push(l);
    }
    for (r, group) in lines_of_row.iter().enumerate() {
        let values: Vec<Option<f64>> = group.iter().map(|&l| net_before[l]).collect();
        let (order_net, _) = sum_and_count(values.iter().copied());
        let refund = merchandise_refund(refunds[r], totals[r].or_zero(), order_net);
        let ship = Amount::at(&shipping_total, r as u32, dc).or_zero();
        for ((&l, w), nb) in group.iter().zip(shares(&values)).zip(&values) {
            let line_refund = w.map(|w| refund * w);
            out.shipping.set(l, w.map(|w| ship * w));
            out.refunded.set(l, line_refund);
            out.net.set(l, nb.zip(line_refund).map(|(nb, lr)| nb - lr));
        }
    }

    // The order's text fields, per row, then on each of its lines.
    let o = order_fields(ctx);
    let per_row = frame::collect_rowwise(
        raw.frame.clone().lazy().select([
            col(aux::LINE),
            col(super::REC),
            col(super::PRE_REASON),
            col("order_id"),
            o.customer_key.alias("_customer_key"),
            o.email.alias("_email"),
            o.ship_country.alias("_ship_country"),
            o.bill_country.alias("_bill_country"),
            o.currency.alias("_currency"),
        ]),
        "WooCommerce order fields",
    )?;
    let mut typed = out.columns();
    typed.push(Column::new("_k".into(), item_no));
    let df = per_row.take(&rows).ctx(|| "WooCommerce lines")?.hstack(&typed).ctx(|| "WooCommerce lines")?;
    let e = LineExprs {
        order_id: col("order_id"),
        line_no: Some(col("_k")),
        customer_key: col("_customer_key"),
        email: col("_email"),
        ship_country: col("_ship_country"),
        bill_country: col("_bill_country"),
        currency: col("_currency"),
        ..Typed::exprs()
    };
    finish(ctx, raw, df.lazy(), e)
}

const MISSING_CURRENCY: &str = "missing currency: the file has none; set `constants: { currency: XXX }`";

fn missing_currency(ctx: &LoadCtx) -> Expr {
    when(coalesce(&[col("currency"), constant(ctx, ConstantField::Currency)]).is_null())
        .then(lit(MISSING_CURRENCY))
        .otherwise(null_str())
}

fn advanced_wants() -> Vec<Want> {
    vec![
        Want::required("order_id", &["Order Number", "Order ID"]),
        Want::required("status", &["Order Status"]),
        Want::required("order_date", &["Order Date"]),
        Want::optional("email", &["Email (Billing)", "Customer Email"]),
        Want::optional("customer_id", &["Customer User ID", "Customer ID"]),
        Want::optional("ship_country", &["Country Code (Shipping)"]),
        Want::optional("bill_country", &["Country Code (Billing)"]),
        Want::required("qty", &["Quantity"]),
        Want::optional("item_cost", &["Item Cost"]),
        Want::optional("line_net", &["Order Line (w/o tax)"]),
        Want::optional("line_tax", &["Order Line Tax"]),
        Want::optional("line_refunded", &["Order Line Total Refunded"]),
        Want::optional("currency", &["Currency", "Order Currency"]),
    ]
}

fn advanced(ctx: &LoadCtx, raw: super::RawFile, ts: parse::Timestamps) -> Result<FileOut> {
    let dc = ctx.spec.format.decimal_comma;
    let num = |c: &str| amount(col(c), dc);
    let lf = raw.frame.clone().lazy().with_columns([
        num("qty").alias("_qty"),
        num("item_cost").alias("_cost"),
        num("line_net").alias("_line_net"),
        num("line_tax").alias("_tax"),
        num("line_refunded").alias("_refunded"),
        super::timestamp(col("order_date"), ts).alias("_ordered_at"),
        status_of(col("status")).alias("_status"),
    ]);
    let lf = lf.with_columns([
        coalesce(&[col("_cost") * col("_qty"), col("_line_net")]).alias("_gross"),
        coalesce(&[col("_line_net"), col("_cost") * col("_qty")]).alias("_net_before"),
    ]);
    let discount = col("_gross") - col("_net_before");
    let e = LineExprs {
        quantity: col("_qty"),
        gross: col("_gross"),
        discount: when(discount.clone().gt(lit(0.0))).then(discount).otherwise(lit(0.0)),
        tax: col("_tax").fill_null(lit(0.0)),
        refunded: col("_refunded").abs().fill_null(lit(0.0)),
        net: col("_net_before") - col("_refunded").abs().fill_null(lit(0.0)),
        checks: vec![
            required(col("order_id"), col("order_id"), "Order Number"),
            required(col("order_date"), col("_ordered_at"), "Order Date"),
            required(col("status"), col("_status"), "Order Status"),
            required(col("qty"), col("_qty"), "Quantity"),
            unparseable(col("item_cost"), col("_cost"), "Item Cost"),
            unparseable(col("line_net"), col("_line_net"), "Order Line (w/o tax)"),
            unparseable(col("line_refunded"), col("_refunded"), "Order Line Total Refunded"),
            when(col("_net_before").is_null()).then(lit("missing line amount")).otherwise(null_str()),
            missing_currency(ctx),
        ],
        ..order_fields(ctx)
    };
    finish(ctx, raw, lf, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the regex `(?:^|\|)key:([^|]*)` extracted: the first segment starting with `key:`,
    /// empty values kept, `total` not found inside `sub_total`.
    #[test]
    fn item_fields_are_the_first_segment_with_the_key() {
        let cells = [
            "name:Mug|quantity:2|total:31.80|sub_total:35.00",
            "sub_total:5|total:4|total:9",
            "name:x|quantity:",
            "name:no fields",
        ];
        let q: Vec<_> = cells.iter().map(|c| item_field(c, "quantity:")).collect();
        let t: Vec<_> = cells.iter().map(|c| item_field(c, "total:")).collect();
        assert_eq!(q, [Some("2"), None, Some(""), None]);
        assert_eq!(t, [Some("31.80"), Some("4"), None, None]);
    }

    proptest::proptest! {
        /// Several keys in one pass find what each key finds alone, in cells made of segments
        /// that start with, repeat or contain the keys, empty segments included.
        #[test]
        fn item_fields_in_one_pass_equal_one_key_at_a_time(
            segments in proptest::collection::vec(
                proptest::sample::select(vec!["quantity:2", "quantity:", "total:4", "total:9", "sub_total:5", "tax:1",
                    "tax", "name:total:3", "xtotal:1", "", "sku:a:b", ":"]),
                0..8,
            )
        ) {
            let cell = segments.join("|");
            let keys = ["quantity:", "total:", "sub_total:", "tax:"];
            let alone = keys.map(|k| cell.split('|').find_map(|kv| kv.strip_prefix(k)));
            proptest::prop_assert_eq!(item_fields(&cell, keys), alone);
        }
    }

    #[test]
    fn refunds_sum_their_amounts_and_fail_on_one_that_is_not() {
        assert_eq!(refund_sum("id:1|amount:10.00;id:2|amount:5.50", false), Some(15.5));
        assert_eq!(refund_sum("id:1|reason:none", false), Some(0.0));
        assert_eq!(refund_sum("id:1|amount:ten", false), None);
    }
}
