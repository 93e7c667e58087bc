//! The generic source: any delimited file plus a `columns:` mapping from canonical fields to its
//! column names, and `constants:` for fields the file lacks. Amounts are taken as excluding tax;
//! negative quantities or amounts are returns and reduce revenue.

use super::{Export, FileOut, LineExprs, LoadCtx, Want, amount, finish, parse, read, required, status_of, unparseable};
use crate::config::ConstantField;
use crate::error::Result;
use crate::frame::{self, null_str};
use polars::prelude::*;

pub fn file(ctx: &LoadCtx, file: Export) -> Result<FileOut> {
    let m = &ctx.spec.columns;
    let mapped: Vec<(&str, &Option<String>)> = vec![
        ("order_id", &m.order_id),
        ("customer", &m.customer),
        ("ordered_at", &m.ordered_at),
        ("quantity", &m.quantity),
        ("unit_price", &m.unit_price),
        ("amount", &m.amount),
        ("discount", &m.discount),
        ("tax", &m.tax),
        ("shipping", &m.shipping),
        ("refunded", &m.refunded),
        ("currency", &m.currency),
        ("country", &m.country),
        ("status", &m.status),
    ];
    let wants: Vec<Want> = mapped
        .iter()
        .map(|(name, header)| match header {
            Some(h) => Want::required(name, &[h.as_str()]),
            None => Want::optional(name, &[]),
        })
        .collect();
    let raw = read(file, &ctx.spec.format, |_| Ok(wants))?;
    let dc = ctx.spec.format.decimal_comma;
    let num = |c: &str| amount(col(c), dc);
    let ts = parse::Timestamps::new(ctx.spec.date_format.as_deref(), parse::ISO_FORMATS, ctx.spec.timezone);
    let constant = |f: ConstantField| ctx.spec.constants.get(&f).map(|v| lit(v.clone())).unwrap_or_else(null_str);
    let lf = raw.frame.clone().lazy().with_columns([
        num("quantity").alias("_qty"),
        num("unit_price").alias("_price"),
        num("amount").alias("_amount"),
        num("discount").alias("_disc"),
        num("tax").alias("_tax"),
        num("shipping").alias("_ship"),
        num("refunded").alias("_refunded"),
        super::timestamp(col("ordered_at"), ts).alias("_ordered_at"),
        status_of(coalesce(&[col("status"), constant(ConstantField::Status)])).alias("_status"),
    ]);
    let qty = if m.quantity.is_some() { col("_qty") } else { lit(1.0) };
    let gross = if m.amount.is_some() { col("_amount") } else { qty.clone() * col("_price") };
    let lf = lf.with_columns([gross.alias("_gross")]);
    let shown = raw.shown.clone();
    let order_id = if m.order_id.is_some() {
        col("order_id")
    } else {
        // Without an order column every row is its own order.
        concat_str([lit(format!("{shown}:")), col(crate::schema::aux::LINE).cast(DataType::String)], "", false)
    };
    let id = ctx.spec.id.clone();
    let customer = frame::str_to_str(col("customer"), move |s| {
        Some(parse::email_key(s).unwrap_or_else(|| format!("{id}:customer:{}", s.trim())))
    });
    let mut checks = vec![
        required(col("customer"), col("customer"), "customer"),
        required(col("ordered_at"), col("_ordered_at"), "ordered_at"),
        unparseable(col("quantity"), col("_qty"), "quantity"),
        unparseable(col("unit_price"), col("_price"), "unit_price"),
        unparseable(col("amount"), col("_amount"), "amount"),
        unparseable(col("discount"), col("_disc"), "discount"),
        unparseable(col("tax"), col("_tax"), "tax"),
        unparseable(col("shipping"), col("_ship"), "shipping"),
        unparseable(col("refunded"), col("_refunded"), "refunded"),
        when(col("_gross").is_null()).then(lit("missing line amount")).otherwise(null_str()),
    ];
    if m.status.is_some() || ctx.spec.constants.contains_key(&ConstantField::Status) {
        checks.push(unparseable(coalesce(&[col("status"), constant(ConstantField::Status)]), col("_status"), "status"));
    }
    if m.order_id.is_some() {
        checks.push(required(col("order_id"), col("order_id"), "order_id"));
    }
    let z = |c: &str| col(c).fill_null(lit(0.0));
    let e = LineExprs {
        order_id,
        customer_key: customer,
        email: col("customer"),
        ordered_at: col("_ordered_at"),
        ship_country: coalesce(&[col("country"), constant(ConstantField::Country)]),
        currency: coalesce(&[col("currency"), constant(ConstantField::Currency)]).str().to_uppercase(),
        quantity: qty,
        gross: col("_gross"),
        discount: z("_disc").abs(),
        tax: z("_tax"),
        shipping: z("_ship"),
        refunded: z("_refunded").abs(),
        net: col("_gross") - z("_disc").abs() - z("_refunded").abs(),
        status: col("_status").fill_null(lit(crate::schema::status::COMPLETED)),
        checks,
        ..LineExprs::default()
    };
    finish(ctx, raw, lf, e)
}
