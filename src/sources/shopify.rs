//! Shopify admin "Export orders" CSV: one row per line item; order-level fields (totals, taxes,
//! discount, refund, addresses, status) only on the first row of each order, so they are read from
//! that row and spread over the order's lines pro rata. Orders group by `Name` (`#1411`).

use super::fields::{self, Amount, Typed, merchandise_refund, shares, sum_and_count};
use super::{Export, FileOut, LineExprs, LoadCtx, Want, finish, parse, read};
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

/// Rows grouped by order (`Name`; rows without one form one order, as in a group-by), orders in the
/// order they first appear, each order's rows in file order. Exports keep an order's rows
/// together, so this is usually the identity; an order split into two blocks is gathered.
struct Orders {
    /// Row indices, order by order.
    rows: Vec<u32>,
    /// Where each order starts in `rows` (one more entry than orders).
    starts: Vec<usize>,
}

impl Orders {
    fn of(names: &StringChunked) -> Orders {
        let n = names.len();
        let mut order_of_row = Vec::with_capacity(n);
        let mut index: PlHashMap<Option<&str>, u32> = PlHashMap::new();
        let (mut previous, mut current, mut contiguous) = (None, 0u32, true);
        for name in names.iter() {
            if !previous.is_some_and(|p| frame::same_text(p, name)) {
                let next = index.len() as u32;
                current = *index.entry(name).or_insert(next);
                contiguous &= current == next;
                previous = Some(name);
            }
            order_of_row.push(current);
        }
        let mut starts = vec![0usize; index.len() + 1];
        for &o in &order_of_row {
            starts[o as usize + 1] += 1;
        }
        for o in 0..index.len() {
            starts[o + 1] += starts[o];
        }
        let rows = if contiguous {
            (0..n as u32).collect()
        } else {
            let mut next = starts.clone();
            let mut rows = vec![0u32; n];
            for (r, &o) in order_of_row.iter().enumerate() {
                rows[next[o as usize]] = r as u32;
                next[o as usize] += 1;
            }
            rows
        };
        Orders { rows, starts }
    }

    fn each(&self) -> impl Iterator<Item = &[u32]> {
        self.starts.windows(2).map(|w| &self.rows[w[0]..w[1]])
    }
}

/// The typed values of every line, computed order by order in one pass: amounts parsed once per
/// order, the order's discount, tax, shipping and refund spread over its lines pro rata, the
/// order's text fields normalised once.
struct Lines {
    /// Each row's order (its index in `firsts`), and each order's first row.
    order_of_row: Vec<u32>,
    firsts: Vec<u32>,
    line_no: Vec<i64>,
    typed: Typed,
    /// Per order: the customer key; the countries, currency, channel and tags, named as their
    /// line columns, each distinct text normalised once (a `String` per order and field before).
    customer_key: Vec<Option<String>>,
    texts: Vec<Column>,
}

impl Lines {
    fn compute(df: &DataFrame, ts: &parse::Timestamps) -> Result<Lines> {
        const NAMES: [&str; 18] = [
            "name",
            "email",
            "financial",
            "currency",
            "subtotal",
            "shipping",
            "taxes",
            "total",
            "discount",
            "created",
            "qty",
            "price",
            "cancelled",
            "refunded",
            "bill_country",
            "ship_country",
            "tags",
            "source",
        ];
        let columns = frame::text_columns(df, &NAMES)?;
        let [
            name,
            email,
            financial,
            currency,
            subtotal,
            shipping,
            taxes,
            total,
            discount,
            created,
            qty,
            price,
            cancelled,
            refunded,
            bill_country,
            ship_country,
            tags,
            source,
        ] = std::array::from_fn(|i| frame::Texts::of(&columns[i]));
        let n = df.height();
        let orders = Orders::of(&columns[0]);
        let n_orders = orders.starts.len() - 1;
        let mut out = Lines {
            order_of_row: vec![0; n],
            firsts: Vec::with_capacity(n_orders),
            line_no: vec![0; n],
            typed: Typed::new(n),
            customer_key: Vec::with_capacity(n_orders),
            texts: Vec::new(),
        };
        let [mut ship, mut bill, mut currencies, mut channels, mut tag_texts] =
            std::array::from_fn(|_| fields::Normalised::new(n_orders));
        let (mut gross, mut net_before) = (Vec::new(), Vec::new());
        for (o, rows) in orders.each().enumerate() {
            let first = rows[0];
            out.firsts.push(first);
            out.customer_key.push(email.get(first).and_then(parse::email_key));
            ship.push_with(ship_country.get(first), parse::country);
            bill.push_with(bill_country.get(first), parse::country);
            currencies.push_with(currency.get(first), str::to_uppercase);
            channels.push_with(source.get(first), str::to_lowercase);
            tag_texts.push_with(tags.get(first), str::to_lowercase);
            let [sub, ship, tax, tot, disc, refund] =
                [&subtotal, &shipping, &taxes, &total, &discount, &refunded].map(|c| Amount::at(c, first, false));
            let created_raw = created.get(first);
            let ordered_at = created_raw.and_then(|s| ts.parse(s));
            let financial_raw = financial.get(first);
            let financial_status = financial_raw.and_then(parse::status);
            let status = match cancelled.get(first) {
                Some(_) => status::CANCELLED,
                None => financial_status.unwrap_or(status::COMPLETED),
            };
            // The checks in the order they are made; a problem on the order's first row rejects
            // all its lines.
            let order_reason = || {
                [
                    sub.unparseable("Subtotal"),
                    ship.unparseable("Shipping"),
                    tax.unparseable("Taxes"),
                    tot.unparseable("Total"),
                    disc.unparseable("Discount Amount"),
                    refund.unparseable("Refunded Amount"),
                    fields::unparseable(financial_raw, financial_status.is_some(), "Financial Status"),
                ]
                .into_iter()
                .flatten()
                .next()
            };
            let created_reason = fields::required(created_raw, ordered_at.is_some(), "Created at");
            gross.clear();
            for (k, &r) in rows.iter().enumerate() {
                let (q, p) = (Amount::at(&qty, r, false), Amount::at(&price, r, false));
                let g = q.value.zip(p.value).map(|(q, p)| q * p);
                gross.push(g);
                let r = r as usize;
                out.order_of_row[r] = o as u32;
                out.line_no[r] = k as i64 + 1;
                out.typed.ordered_at.set(r, ordered_at);
                out.typed.status[r] = Some(status);
                out.typed.quantity.set(r, q.value);
                out.typed.gross.set(r, g);
                out.typed.reason[r] = match name.get(r as u32) {
                    None => Some("missing Name".to_string()),
                    Some(_) => created_reason
                        .clone()
                        .or_else(|| q.required("Lineitem quantity"))
                        .or_else(|| p.required("Lineitem price"))
                        .or_else(order_reason),
                };
            }
            // Tax-inclusive (EU VAT) orders: Total = Subtotal + Shipping, the taxes are inside
            // the prices.
            let (s, sh, t, to) = (sub.or_zero(), ship.or_zero(), tax.or_zero(), tot.or_zero());
            let inclusive = t > 0.0 && (to - s - sh).abs() < 0.005 && (to - s - sh - t).abs() > 0.005;
            let merchandise_share = if s + sh > 0.0 { s / (s + sh) } else { 1.0 };
            net_before.clear();
            for ((&r, w), g) in rows.iter().zip(shares(&gross)).zip(&gross) {
                let r = r as usize;
                let line_disc = w.map(|w| disc.or_zero() * w);
                let line_tax = w.map(|w| t * merchandise_share * w);
                out.typed.discount.set(r, line_disc);
                out.typed.tax.set(r, line_tax);
                out.typed.shipping.set(r, w.map(|w| sh * w));
                let included = if inclusive { line_tax } else { Some(0.0) };
                net_before.push(g.zip(line_disc).zip(included).map(|((g, d), i)| g - d - i));
            }
            let (order_net, _) = sum_and_count(net_before.iter().copied());
            let refund_merchandise = merchandise_refund(refund.value, to, order_net);
            for ((&r, w), nb) in rows.iter().zip(shares(&net_before)).zip(&net_before) {
                let line_refund = w.map(|w| refund_merchandise * w);
                out.typed.refunded.set(r as usize, line_refund);
                out.typed.net.set(r as usize, nb.zip(line_refund).map(|(nb, lr)| nb - lr));
            }
        }
        out.texts = vec![
            ship.finish("_ship_country"),
            bill.finish("_bill_country"),
            currencies.finish("_currency"),
            channels.finish("_channel"),
            tag_texts.finish("_tags"),
        ];
        Ok(out)
    }

    /// The typed columns, the line numbers and the order's text fields on every line.
    fn columns(self, raw: &DataFrame) -> Result<Vec<Column>> {
        let firsts = IdxCa::from_vec("".into(), self.firsts);
        let order_of_row = IdxCa::from_vec("".into(), self.order_of_row);
        let per_line =
            |per_order: Column| per_order.take(&order_of_row).ctx(|| format!("Shopify {}", per_order.name()));
        let email = frame::str_column(raw, "email")?.take(&firsts).ctx(|| "Shopify e-mails")?;
        let email = email.take(&order_of_row).ctx(|| "Shopify e-mails")?.with_name("_email".into());
        let mut columns = self.typed.columns();
        columns.extend([
            Column::new("_line_no".into(), self.line_no),
            email.into_column(),
            per_line(
                StringChunked::from_iter_options("_customer_key".into(), self.customer_key.into_iter()).into_column(),
            )?,
        ]);
        for texts in self.texts {
            columns.push(per_line(texts)?);
        }
        Ok(columns)
    }
}

pub fn file(ctx: &LoadCtx, file: Export) -> Result<FileOut> {
    let raw = read(file, &ctx.spec.format, |_| Ok(wants()))?;
    let ts = parse::Timestamps::new(None, &["%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M:%S%.f %z"], ctx.zone);
    let columns = Lines::compute(&raw.frame, &ts)?.columns(&raw.frame)?;
    let df = raw.frame.clone().hstack(&columns).ctx(|| "Shopify lines")?;
    let e = LineExprs {
        order_id: col("name"),
        line_no: Some(col("_line_no")),
        customer_key: col("_customer_key"),
        email: col("_email"),
        ship_country: col("_ship_country"),
        bill_country: col("_bill_country"),
        currency: col("_currency"),
        channel: col("_channel"),
        tags: col("_tags"),
        ..Typed::exprs()
    };
    finish(ctx, raw, df.lazy(), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn orders(names: &[Option<&str>]) -> Vec<Vec<u32>> {
        let names: StringChunked = names.iter().copied().collect();
        Orders::of(&names).each().map(<[u32]>::to_vec).collect()
    }

    #[test]
    fn rows_group_by_order_in_first_appearance_even_when_an_order_is_split() {
        assert_eq!(orders(&[Some("#1"), Some("#1"), None, None, Some("#2")]), [vec![0, 1], vec![2, 3], vec![4]]);
        assert_eq!(orders(&[Some("#1"), Some("#2"), Some("#1"), None, Some("#2")]), [vec![0, 2], vec![1, 4], vec![3]]);
        assert!(orders(&[]).is_empty());
    }
}
