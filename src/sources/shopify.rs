//! Shopify admin "Export orders" CSV: one row per line item; order-level fields (totals, taxes,
//! discount, refund, addresses, status) only on the first row of each order, so they are read from
//! that row and spread over the order's lines pro rata. Orders group by `Name` (`#1411`).

use super::{
    Export, FileOut, LineExprs, LoadCtx, Want, amount, email_key, finish, merchandise_refund, parse, read, required,
    share, status_of, unparseable,
};
use crate::error::{Context, Result};
use crate::frame;
use crate::schema::status;
use polars::prelude::*;

fn wants() -> Vec<Want> {
    vec![
        Want::required("name", &["Name"]),
        Want::required("email", &["Email"]),
        Want::required("financial", &["Financial Status"]),
        Want::required("currency", &["Currency"]),
        Want::required("subtotal", &["Subtotal"]),
        Want::required("shipping", &["Shipping"]),
        Want::required("taxes", &["Taxes"]),
        Want::required("total", &["Total"]),
        Want::required("discount", &["Discount Amount"]),
        Want::required("created", &["Created at"]),
        Want::required("qty", &["Lineitem quantity"]),
        Want::required("price", &["Lineitem price"]),
        Want::optional("cancelled", &["Cancelled at"]),
        Want::optional("refunded", &["Refunded Amount"]),
        Want::optional("bill_country", &["Billing Country"]),
        Want::optional("ship_country", &["Shipping Country"]),
        Want::optional("tags", &["Tags"]),
        Want::optional("source", &["Source"]),
    ]
}

/// The order a row belongs to. Exports keep an order's rows together, so each row can point at
/// its order's first row: order-level fields are a gather from there, and the index is an integer
/// key that windows hash far faster than the Name. A file where some Name appears in two blocks
/// keeps the Name as the key and windows for the order-level fields.
const ORDER: &str = "_order";

/// Each row's order's first row, or `None` when some Name appears in two separate blocks.
fn first_rows(names: &StringChunked) -> Option<Vec<u32>> {
    let mut seen: PlHashSet<Option<&str>> = PlHashSet::new();
    let mut previous = None;
    let mut start = 0;
    let mut first = Vec::with_capacity(names.len());
    for (i, name) in names.iter().enumerate() {
        if previous != Some(name) {
            if !seen.insert(name) {
                return None;
            }
            (previous, start) = (Some(name), i as u32);
        }
        first.push(start);
    }
    Some(first)
}

pub fn file(ctx: &LoadCtx, file: Export) -> Result<FileOut> {
    let raw = read(file, &ctx.spec.format, |_| Ok(wants()))?;
    let ts = parse::Timestamps::new(None, &["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%.f %z"], ctx.zone);
    let num = |e: Expr| amount(e, false);
    let by = [ORDER];
    let mut df = raw.frame.clone();
    let blocks = match first_rows(frame::str_column(&df, "name")?) {
        Some(first) => {
            df.with_column(frame::u32_column(ORDER, first)).ctx(|| "Shopify orders")?;
            true
        }
        None => false,
    };
    // The value on the order's first row.
    let order = |c: &str| match blocks {
        true => col(c).gather(col(ORDER), false),
        false => frame::over(col(c).first(), &[col(ORDER)]),
    };
    let mut lf = df.lazy();
    if !blocks {
        lf = lf.with_column(col("name").alias(ORDER));
    }
    let lf = lf.with_columns([
        num(col("qty")).alias("_qty"),
        num(col("price")).alias("_price"),
        num(order("subtotal")).alias("_sub"),
        num(order("shipping")).alias("_ship"),
        num(order("taxes")).alias("_taxes"),
        num(order("total")).alias("_total"),
        num(order("discount")).alias("_disc"),
        num(order("refunded")).alias("_refund"),
        super::timestamp(order("created"), ts).alias("_ordered_at"),
        status_of(order("financial")).alias("_financial"),
    ]);
    let z = |c: &str| col(c).fill_null(lit(0.0));
    let lf = lf.with_columns([(col("_qty") * col("_price")).alias("_gross")]);
    let lf = lf.with_columns([share(col("_gross"), &by).alias("_w")]);
    // Tax-inclusive (EU VAT) orders: Total = Subtotal + Shipping, the taxes are inside the prices.
    let inclusive = z("_taxes")
        .gt(lit(0.0))
        .and((z("_total") - z("_sub") - z("_ship")).abs().lt(lit(0.005)))
        .and((z("_total") - z("_sub") - z("_ship") - z("_taxes")).abs().gt(lit(0.005)));
    let merch_share =
        when((z("_sub") + z("_ship")).gt(lit(0.0))).then(z("_sub") / (z("_sub") + z("_ship"))).otherwise(lit(1.0));
    let lf = lf.with_columns([
        (z("_disc") * col("_w")).alias("_line_disc"),
        (z("_taxes") * merch_share * col("_w")).alias("_line_tax"),
        (z("_ship") * col("_w")).alias("_line_ship"),
        inclusive.alias("_inclusive"),
    ]);
    let lf = lf.with_columns([(col("_gross")
        - col("_line_disc")
        - when(col("_inclusive")).then(col("_line_tax")).otherwise(lit(0.0)))
    .alias("_net_before")]);
    let lf = lf.with_columns([frame::over(col("_net_before").sum(), &[col(ORDER)]).alias("_order_net")]);
    let lf = lf.with_columns([(merchandise_refund(col("_refund"), z("_total"), col("_order_net"))
        * share(col("_net_before"), &by))
    .alias("_line_refund")]);
    let status = when(order("cancelled").is_not_null())
        .then(lit(status::CANCELLED))
        .otherwise(col("_financial").fill_null(lit(status::COMPLETED)));
    // Within a block, a line's position is its distance from the order's first row: no hash of
    // the Name per line (`finish` numbers lines by order id otherwise).
    let line_no = blocks.then(|| col(super::REC).cast(DataType::Int64) - col(ORDER).cast(DataType::Int64) + lit(1i64));
    let e = LineExprs {
        order_id: col("name"),
        line_no,
        customer_key: email_key(order("email")),
        email: order("email"),
        ordered_at: col("_ordered_at"),
        ship_country: super::country(order("ship_country")),
        bill_country: super::country(order("bill_country")),
        currency: order("currency").str().to_uppercase(),
        quantity: col("_qty"),
        gross: col("_gross"),
        discount: col("_line_disc"),
        tax: col("_line_tax"),
        shipping: col("_line_ship"),
        refunded: col("_line_refund"),
        net: col("_net_before") - col("_line_refund"),
        status,
        channel: order("source").str().to_lowercase(),
        tags: order("tags").str().to_lowercase(),
        checks: vec![
            required(col("name"), col("name"), "Name"),
            required(order("created"), col("_ordered_at"), "Created at"),
            required(col("qty"), col("_qty"), "Lineitem quantity"),
            required(col("price"), col("_price"), "Lineitem price"),
            unparseable(order("subtotal"), col("_sub"), "Subtotal"),
            unparseable(order("shipping"), col("_ship"), "Shipping"),
            unparseable(order("taxes"), col("_taxes"), "Taxes"),
            unparseable(order("total"), col("_total"), "Total"),
            unparseable(order("discount"), col("_disc"), "Discount Amount"),
            unparseable(order("refunded"), col("_refund"), "Refunded Amount"),
            unparseable(order("financial"), col("_financial"), "Financial Status"),
        ],
        ..LineExprs::default()
    };
    finish(ctx, raw, lf, e)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_point_at_their_orders_first_row_unless_an_order_is_split() {
        let names: StringChunked = [Some("#1"), Some("#1"), None, None, Some("#2")].into_iter().collect();
        assert_eq!(first_rows(&names), Some(vec![0, 0, 2, 2, 4]));
        let split: StringChunked = [Some("#1"), Some("#2"), Some("#1")].into_iter().collect();
        assert_eq!(first_rows(&split), None);
    }
}
