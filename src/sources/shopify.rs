//! Shopify admin "Export orders" CSV: one row per line item; order-level fields (totals, taxes,
//! discount, refund, addresses, status) only on the first row of each order, so they are read from
//! that row and spread over the order's lines pro rata. Orders group by `Name` (`#1411`).

use super::{
    FileOut, LineExprs, LoadCtx, Want, amount, email_key, finish, merchandise_refund, parse, read, required, share,
    status_of, unparseable,
};
use crate::error::Result;
use crate::frame;
use crate::schema::status;
use polars::prelude::*;
use std::path::Path;

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

/// The order a row belongs to. Exports keep an order's rows together, so a block number (the
/// Name changes from the previous row) is an integer key that windows hash far faster than the
/// Name itself; a file where some Name appears in two blocks keeps the Name as the key.
const ORDER: &str = "_order";

/// The value on the order's first row.
fn order(c: &str) -> Expr {
    frame::over(col(c).first(), &[col(ORDER)])
}

fn order_key(frame: &DataFrame) -> Result<Expr> {
    let blocks = col("name").neq_missing(col("name").shift(lit(1))).cast(DataType::UInt32).cum_sum(false);
    let counts = crate::frame::collect(
        frame.clone().lazy().select([blocks.clone().max().alias("blocks"), col("name").n_unique().alias("names")]),
        "Shopify order blocks",
    )?;
    let (b, n) = (crate::frame::floats(&counts, "blocks")?, crate::frame::floats(&counts, "names")?);
    Ok(if b.first() == n.first() { blocks } else { col("name") })
}

pub fn file(ctx: &LoadCtx, path: &Path) -> Result<FileOut> {
    let raw = read(path, &ctx.spec.format, |_| Ok(wants()))?;
    let ts = parse::Timestamps::new(None, &["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%.f %z"], ctx.zone);
    let num = |e: Expr| amount(e, false);
    let by = [ORDER];
    let key = order_key(&raw.frame)?;
    let lf = raw.frame.clone().lazy().with_column(key.alias(ORDER)).with_columns([
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
    let e = LineExprs {
        order_id: col("name"),
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
