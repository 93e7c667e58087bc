//! WooCommerce exports. Shops use plugins, so two common layouts are presets, told apart by header:
//! WebToffee (one row per order, items in `line_item_N` cells `name:..|quantity:2|total:31.80|..`,
//! refunds in `refund_items`) and Advanced Order Export (one row per item, order fields repeated).
//! `order_date` is site-local without offset: the stage's `timezone` says which zone.

use super::{
    Export, FileOut, LineExprs, LoadCtx, Want, amount, email_key, finish, merchandise_refund, parse, read, required,
    share, status_of, unparseable,
};
use crate::config::ConstantField;
use crate::error::{Error, Result};
use crate::frame::{self, null_str};
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

/// The value of the first `key:value` of an item cell (`name:..|quantity:2|total:31.80|..`). A
/// split, not a regex: four regex extracts per item were an eighth of the WooCommerce load.
fn field(cell: Expr, key: &str) -> Expr {
    let key = format!("{key}:");
    frame::substr(cell, move |c| c.split('|').find_map(|kv| kv.strip_prefix(key.as_str())))
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
    // One frame per line_item_k column, stacked: one row per item.
    // An order whose item cells are all empty keeps one row (with a null item), so that it is
    // rejected with its reason instead of vanishing from the accounting.
    let n_items = items.iter().map(|i| col(i.as_str()).is_not_null().cast(DataType::Int32)).reduce(|a, b| a + b);
    let base = raw.frame.clone().lazy().with_column(n_items.unwrap_or_else(|| lit(0)).alias("_n_items"));
    let parts: Vec<LazyFrame> = items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            let keep = col("_item").is_not_null().or(lit(k == 0).and(col("_n_items").eq(lit(0))));
            base.clone().with_columns([col(item.as_str()).alias("_item"), lit((k + 1) as i64).alias("_k")]).filter(keep)
        })
        .collect();
    let lf = if parts.is_empty() {
        base.with_columns([frame::null_str().alias("_item"), lit(1i64).alias("_k")])
    } else {
        concat(parts, UnionArgs::default())
            .map_err(|e| Error::Polars { context: "stacking items".into(), source: e })?
    };
    let by = ["order_id"];
    let refund_sum = frame::str_to_f64(col("refund_items"), move |s| {
        s.split(';')
            .filter_map(|r| r.split('|').find_map(|kv| kv.strip_prefix("amount:")))
            .map(|a| parse::amount(a, dc))
            .sum::<Option<f64>>()
    });
    let lf = lf.with_columns([
        amount(field(col("_item"), "quantity"), dc).alias("_qty"),
        amount(field(col("_item"), "total"), dc).alias("_total"),
        amount(field(col("_item"), "sub_total"), dc).alias("_sub"),
        amount(field(col("_item"), "tax"), dc).alias("_tax"),
        amount(col("order_total"), dc).alias("_order_total"),
        amount(col("shipping_total"), dc).alias("_ship"),
        refund_sum.alias("_refund"),
        super::timestamp(col("order_date"), ts).alias("_ordered_at"),
        status_of(col("status")).alias("_status"),
    ]);
    let lf = lf.with_columns([
        coalesce(&[col("_total"), col("_sub")]).alias("_net_before"),
        coalesce(&[col("_sub"), col("_total")]).alias("_gross"),
    ]);
    let lf = lf.with_columns([frame::over(col("_net_before").sum(), &[col("order_id")]).alias("_order_net")]);
    let lf = lf.with_columns([(merchandise_refund(
        col("_refund"),
        col("_order_total").fill_null(lit(0.0)),
        col("_order_net"),
    ) * share(col("_net_before"), &by))
    .alias("_line_refund")]);
    let e = LineExprs {
        line_no: Some(col("_k")),
        quantity: col("_qty"),
        gross: col("_gross"),
        discount: (col("_gross") - col("_net_before")).fill_null(lit(0.0)),
        tax: col("_tax").fill_null(lit(0.0)),
        shipping: col("_ship").fill_null(lit(0.0)) * share(col("_net_before"), &by),
        refunded: col("_line_refund"),
        net: col("_net_before") - col("_line_refund"),
        checks: vec![
            required(col("order_id"), col("order_id"), "order_id"),
            required(col("order_date"), col("_ordered_at"), "order_date"),
            required(col("status"), col("_status"), "status"),
            when(col("_item").is_null()).then(lit("order has no line_item cells")).otherwise(null_str()),
            required(field(col("_item"), "quantity"), col("_qty"), "line item quantity"),
            required(
                coalesce(&[field(col("_item"), "total"), field(col("_item"), "sub_total")]),
                col("_net_before"),
                "line item total",
            ),
            unparseable(col("order_total"), col("_order_total"), "order_total"),
            unparseable(col("refund_items"), col("_refund"), "refund_items"),
            missing_currency(ctx),
        ],
        ..order_fields(ctx)
    };
    finish(ctx, raw, lf, e)
}

fn missing_currency(ctx: &LoadCtx) -> Expr {
    when(coalesce(&[col("currency"), constant(ctx, ConstantField::Currency)]).is_null())
        .then(lit("missing currency: the file has none; set `constants: { currency: XXX }`"))
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
        let cells = df!("c" => [
            Some("name:Mug|quantity:2|total:31.80|sub_total:35.00"),
            Some("sub_total:5|total:4|total:9"),
            Some("name:x|quantity:"),
            Some("name:no fields"),
            None,
        ])
        .unwrap();
        let got = cells
            .lazy()
            .select([field(col("c"), "quantity").alias("q"), field(col("c"), "total").alias("t")])
            .collect()
            .unwrap();
        let q = frame::strings(&got, "q").unwrap();
        let t = frame::strings(&got, "t").unwrap();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(q, [s("2"), None, s(""), None, None]);
        assert_eq!(t, [s("31.80"), s("4"), None, None, None]);
    }
}
