//! Amazon Seller Central "All Orders" report: tab-separated with quoting off (product names hold
//! raw `"`), one row per order item, prices are row totals. The optional Fulfilled Shipments
//! report is the only Amazon file naming a buyer (a relay e-mail); without it every Amazon order
//! is its own customer and the report says repeat purchases on Amazon cannot be seen.

use super::fields::{self, Amount, Typed};
use super::{Export, FileOut, LineExprs, LoadCtx, Loaded, Want, finish, parse, read};
use crate::config::{Delimiter, TextFormat};
use crate::error::{Context, Result};
use crate::frame;
use crate::schema::{self, aux, status};
use polars::prelude::*;
use std::borrow::Cow;

/// Marketplaces whose prices include VAT/GST: their `item-tax` is inside `item-price`.
const TAX_INCLUSIVE: &[&str] = &[
    "amazon.co.uk",
    "amazon.de",
    "amazon.fr",
    "amazon.it",
    "amazon.es",
    "amazon.nl",
    "amazon.se",
    "amazon.pl",
    "amazon.com.be",
    "amazon.ie",
    "amazon.com.tr",
    "amazon.co.jp",
    "amazon.com.au",
    "amazon.in",
];

/// Currency of each marketplace, for lines whose `currency` is blank (cancelled lines).
const MARKETPLACE_CURRENCY: &[(&str, &str)] = &[
    ("amazon.com", "USD"),
    ("amazon.ca", "CAD"),
    ("amazon.com.mx", "MXN"),
    ("amazon.com.br", "BRL"),
    ("amazon.co.uk", "GBP"),
    ("amazon.de", "EUR"),
    ("amazon.fr", "EUR"),
    ("amazon.it", "EUR"),
    ("amazon.es", "EUR"),
    ("amazon.nl", "EUR"),
    ("amazon.com.be", "EUR"),
    ("amazon.ie", "EUR"),
    ("amazon.se", "SEK"),
    ("amazon.pl", "PLN"),
    ("amazon.com.tr", "TRY"),
    ("amazon.co.jp", "JPY"),
    ("amazon.com.au", "AUD"),
    ("amazon.in", "INR"),
    ("amazon.ae", "AED"),
    ("amazon.sa", "SAR"),
    ("amazon.sg", "SGD"),
    ("amazon.eg", "EGP"),
];

fn tsv(encoding: &'static encoding_rs::Encoding) -> TextFormat {
    TextFormat { delimiter: Delimiter::Byte(b'\t'), has_header: true, quoting: false, encoding, decimal_comma: false }
}

fn wants() -> Vec<Want> {
    vec![
        Want::required("order_id", &["amazon-order-id"]),
        Want::required("purchase_date", &["purchase-date"]),
        Want::optional("updated", &["last-updated-date"]),
        Want::required("order_status", &["order-status"]),
        Want::optional("item_status", &["item-status"]),
        Want::optional("sales_channel", &["sales-channel"]),
        Want::required("quantity", &["quantity", "quantity-purchased"]),
        Want::required("currency", &["currency"]),
        Want::required("item_price", &["item-price"]),
        Want::optional("item_tax", &["item-tax"]),
        Want::optional("shipping_price", &["shipping-price"]),
        Want::optional("item_promo", &["item-promotion-discount"]),
        Want::optional("ship_promo", &["ship-promotion-discount"]),
        Want::optional("ship_country", &["ship-country"]),
    ]
}

/// A marketplace's facts: whether its prices include tax, and its currency.
fn marketplace(sales_channel: &str) -> (bool, Option<&'static str>) {
    let m = sales_channel.trim().to_lowercase();
    let currency = MARKETPLACE_CURRENCY.iter().find(|(name, _)| *name == m).map(|(_, c)| *c);
    (TAX_INCLUSIVE.contains(&m.as_str()), currency)
}

/// The typed values of every row, in one pass; text columns few-valued enough to repeat
/// (marketplace, countries, currencies) are normalised once per distinct value.
fn lines(df: &DataFrame, ts: &parse::Timestamps) -> Result<Vec<Column>> {
    const NAMES: [&str; 14] = [
        "order_id",
        "purchase_date",
        "updated",
        "order_status",
        "item_status",
        "sales_channel",
        "quantity",
        "currency",
        "item_price",
        "item_tax",
        "shipping_price",
        "item_promo",
        "ship_promo",
        "ship_country",
    ];
    let columns = frame::text_columns(df, &NAMES)?;
    let [
        order_id,
        purchase_date,
        updated,
        order_status,
        item_status,
        sales_channel,
        quantity,
        currency,
        item_price,
        item_tax,
        shipping_price,
        item_promo,
        ship_promo,
        ship_country,
    ] = std::array::from_fn(|i| frame::Texts::of(&columns[i]));
    let n = df.height();
    let mut out = Typed::new(n);
    let mut updated_at = Vec::with_capacity(n);
    let mut currencies = fields::Normalised::new(n);
    let mut countries = fields::Normalised::new(n);
    let mut marketplaces = fields::Memo::default();
    let mut statuses = fields::Memo::default();
    for r in 0..n {
        let row = r as u32;
        let purchase_raw = purchase_date.get(row);
        let ordered_at = purchase_raw.and_then(|s| ts.parse(s));
        updated_at.push(updated.get(row).and_then(|s| ts.parse(s)));
        let order_raw = order_status.get(row);
        let order = order_raw.and_then(|s| statuses.get(s, parse::status));
        let item = item_status.get(row).and_then(|s| statuses.get(s, parse::status));
        let (inclusive, market_currency) =
            sales_channel.get(row).map_or((false, None), |s| marketplaces.get(s, marketplace));
        let [qty, price, tax, ship, promo, ship_promo] =
            [&quantity, &item_price, &item_tax, &shipping_price, &item_promo, &ship_promo]
                .map(|c| Amount::at(c, row, false));
        let status = match (item, order) {
            (Some(status::CANCELLED), _) | (_, Some(status::CANCELLED)) => Some(status::CANCELLED),
            _ => order,
        };
        let net_before =
            price.value.map(|g| g - promo.value.map_or(0.0, f64::abs) - tax.or_zero() * f64::from(u8::from(inclusive)));
        let returned = status == Some(status::REFUNDED);
        out.ordered_at[r] = ordered_at;
        out.status[r] = status;
        out.quantity[r] = qty.value;
        out.gross[r] = price.value;
        out.discount[r] = Some(promo.value.map_or(0.0, f64::abs));
        out.tax[r] = Some(tax.or_zero());
        out.shipping[r] = Some(ship.or_zero() - ship_promo.value.map_or(0.0, f64::abs));
        out.refunded[r] = if returned { net_before } else { Some(0.0) };
        out.net[r] = if returned { Some(0.0) } else { net_before };
        out.reason[r] = fields::required(order_id.get(row), true, "amazon-order-id")
            .or_else(|| fields::required(purchase_raw, ordered_at.is_some(), "purchase-date"))
            .or_else(|| fields::unparseable(order_raw, order.is_some(), "order-status"))
            .or_else(|| qty.unparseable("quantity"))
            .or_else(|| price.unparseable("item-price"))
            .or_else(|| tax.unparseable("item-tax"))
            .or_else(|| ship.unparseable("shipping-price"))
            .or_else(|| promo.unparseable("item-promotion-discount"))
            .or_else(|| {
                (price.raw.is_none() && status == Some(status::COMPLETED))
                    .then(|| "missing item-price on a shipped line".to_string())
            });
        match currency.get(row) {
            Some(code) => currencies.push_with(Some(code), str::to_uppercase),
            None => currencies.push(market_currency),
        }
        countries.push_with(ship_country.get(row), parse::country);
    }
    let mut columns = out.columns();
    columns.extend([
        Int64Chunked::from_iter_options("_updated".into(), updated_at.into_iter()).into_column(),
        currencies.finish("_currency"),
        countries.finish("_ship_country"),
    ]);
    Ok(columns)
}

pub fn file(ctx: &LoadCtx, file: Export) -> Result<FileOut> {
    let raw = read(file, &tsv(ctx.spec.format.encoding), |_| Ok(wants()))?;
    let ts = parse::Timestamps::new(None, &[], ctx.zone);
    let columns = lines(&raw.frame, &ts)?;
    let df = raw.frame.clone().hstack(&columns).ctx(|| "Amazon lines")?;
    let e = LineExprs {
        order_id: col("order_id"),
        updated_at: col("_updated"),
        ship_country: col("_ship_country"),
        currency: col("_currency"),
        ..Typed::exprs()
    };
    finish(ctx, raw, df.lazy(), e)
}

/// What a lookup needs of a Fulfilled Shipments report (a row per item shipped): each order id's
/// first row naming a buyer, with its e-mail and bill country, and the file as the manifest
/// records it. The text is dropped once read.
pub struct Report {
    columns: DataFrame,
    input: super::InputFile,
}

pub fn read_report(ctx: &LoadCtx, file: Export) -> Result<Report> {
    let raw = read(file, &tsv(ctx.spec.format.encoding), |_| {
        Ok(vec![
            Want::required("order_id", &["amazon-order-id"]),
            Want::required("buyer_email", &["buyer-email"]),
            Want::optional("bill_country", &["bill-country"]),
        ])
    })?;
    let columns = raw.frame.select(["order_id", "buyer_email", "bill_country"]).ctx(|| "buyer columns")?;
    Ok(Report { columns: first_rows(columns)?, input: raw.input })
}

/// The rows [`first_buyers`] would take from one report: each order id's first row with an e-mail.
fn first_rows(report: DataFrame) -> Result<DataFrame> {
    let first: BooleanChunked = {
        let (ids, emails) = (frame::str_column(&report, "order_id")?, frame::str_column(&report, "buyer_email")?);
        let mut seen = PlHashSet::with_capacity(ids.len());
        ids.iter()
            .zip(emails.iter())
            .map(|(id, email)| email.is_some() && id.is_some_and(|id| seen.insert(id)))
            .collect()
    };
    report.filter(&first).ctx(|| "first buyer rows")
}

impl super::cache::Cached for Report {
    const KIND: &'static str = "buyers";
    const TABLES: &'static [&'static str] = &["buyers.parquet"];
    fn input(&self) -> &super::InputFile {
        &self.input
    }
    fn tables(&self) -> Vec<&DataFrame> {
        vec![&self.columns]
    }
    fn from_tables(input: super::InputFile, tables: Vec<DataFrame>) -> std::result::Result<Self, String> {
        let [columns]: [DataFrame; 1] = tables.try_into().map_err(|_| "one table expected".to_string())?;
        for name in ["order_id", "buyer_email", "bill_country"] {
            frame::str_column(&columns, name).map_err(|e| format!("buyers.parquet: {e}"))?;
        }
        Ok(Report { columns, input })
    }
}

/// Gives every Amazon line a customer: the buyer of the Fulfilled Shipments `reports` when one is
/// configured and names the order, else the order itself (`<source>:order:<id>`).
pub fn attach_buyers(ctx: &LoadCtx, loaded: &mut Loaded, reports: Vec<Report>) -> Result<()> {
    let id = ctx.spec.id.clone();
    if ctx.spec.buyers.is_empty() {
        loaded.notes.push(
            "No Fulfilled Shipments report (`buyers:`) is configured: every Amazon order counts as its own \
             customer, so repeat purchases on Amazon cannot be seen and Amazon CLV is understated."
                .into(),
        );
        let keys = customer_keys(&id, frame::str_column(&loaded.lines, schema::ORDER_ID)?, None);
        return frame::put_column(&mut loaded.lines, aux::CUSTOMER_KEY, keys);
    }
    let (inputs, reports): (Vec<_>, Vec<_>) = reports.into_iter().map(|r| (r.input, r.columns)).unzip();
    loaded.files.extend(inputs);
    // A hash pass and one column each, not a group-by, a join and expressions: the join copied
    // every line column once more, and the expressions built both keys for every line. The lines
    // are looked up in parts side by side: each lookup misses the cache, each new column copies text.
    let (keys, buyer, bills) = {
        let first = first_buyers(&reports)?;
        let lines = &loaded.lines;
        let parts = frame::on_threads(&frame::spans(lines.height(), frame::threads()), |&(offset, len)| {
            buyer_columns(&id, &first, &lines.slice(offset as i64, len))
        });
        let (mut keys, mut buyer, mut bills) = (Vec::new(), Vec::new(), Vec::new());
        for part in parts {
            let (k, b, c) = part?;
            keys.push(k);
            buyer.push(b);
            bills.push(c);
        }
        (frame::concat_strings(keys), frame::concat_strings(buyer), frame::concat_strings(bills))
    };
    std::mem::drop(reports);
    let unmatched = buyer.null_count();
    let lines = &mut loaded.lines;
    frame::put_column(lines, aux::CUSTOMER_KEY, keys.with_name(aux::CUSTOMER_KEY.into()))?;
    frame::put_column(lines, aux::EMAIL, buyer)?;
    frame::put_categories(lines, aux::BILL_COUNTRY, bills)?;
    if unmatched > 0 {
        loaded.notes.push(format!(
            "{unmatched} Amazon line(s) have no buyer in the Fulfilled Shipments report (not shipped by Amazon, \
             or the buyer columns are blank): each of their orders counts as its own customer."
        ));
    }
    Ok(())
}

/// Each line's customer key: `email:<address>` when the shipments name a usable buyer e-mail, else
/// the order itself (`<source>:order:<order id>`); null without an order id.
fn customer_keys(source: &str, orders: &StringChunked, buyers: Option<&StringChunked>) -> StringChunked {
    let buyers: Box<dyn Iterator<Item = Option<&str>>> = match buyers {
        Some(b) => Box::new(b.iter()),
        None => Box::new(std::iter::repeat(None)),
    };
    let keys: StringChunked = orders
        .iter()
        .zip(buyers)
        .map(|(order, buyer)| buyer.and_then(parse::email_key).or_else(|| order.map(|o| format!("{source}:order:{o}"))))
        .collect();
    keys.with_name(aux::CUSTOMER_KEY.into())
}

/// A buyer as the shipment reports name it: e-mail and bill country.
type Buyer<'a> = (&'a str, Option<&'a str>);

/// Each order id's first buyer in the shipment reports (reports and rows in order), with the bill
/// country on that row.
fn first_buyers(reports: &[DataFrame]) -> Result<PlHashMap<&str, Buyer<'_>>> {
    let mut first = PlHashMap::with_capacity(reports.iter().map(DataFrame::height).sum());
    for report in reports {
        let ids = frame::str_column(report, "order_id")?;
        let (emails, bills) = (frame::str_column(report, "buyer_email")?, frame::str_column(report, "bill_country")?);
        for ((id, email), bill) in ids.iter().zip(emails.iter()).zip(bills.iter()) {
            if let (Some(id), Some(email)) = (id, email) {
                first.entry(id).or_insert((email, bill));
            }
        }
    }
    Ok(first)
}

/// For each order id in `orders`: its buyer's e-mail and bill country, if the reports name one.
fn buyers_of(first: &PlHashMap<&str, Buyer>, orders: &StringChunked) -> (StringChunked, StringChunked) {
    let found: Vec<Option<&Buyer>> = orders.iter().map(|o| o.and_then(|o| first.get(o))).collect();
    let buyer = found.iter().map(|f| f.map(|f| f.0)).collect();
    let bill = found.iter().map(|f| f.and_then(|f| f.1)).collect();
    (buyer, bill)
}

/// Customer keys, buyer e-mails and bill countries (the line's own, else the buyer's) of `lines`.
fn buyer_columns(
    source: &str,
    first: &PlHashMap<&str, Buyer>,
    lines: &DataFrame,
) -> Result<(StringChunked, StringChunked, StringChunked)> {
    let orders = frame::str_column(lines, schema::ORDER_ID)?;
    let (buyer, bill) = buyers_of(first, orders);
    let keys = customer_keys(source, orders, Some(&buyer));
    let bills: StringChunked = frame::texts(lines, aux::BILL_COUNTRY)?
        .zip(bill.iter())
        .map(|(own, shipped)| own.map(Cow::Borrowed).or_else(|| shipped.map(|b| Cow::Owned(b.trim().to_uppercase()))))
        .collect();
    Ok((keys, buyer, bills))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_buyer_email_names_the_customer_else_the_order_does() {
        let orders: StringChunked = [Some("111-1"), Some("111-2"), Some("111-3"), None].into_iter().collect();
        let buyers: StringChunked =
            [Some(" Ann@X.com "), Some("not an address"), None, Some("b@x.com")].into_iter().collect();
        let keys: Vec<Option<String>> =
            customer_keys("amz", &orders, Some(&buyers)).iter().map(|k| k.map(str::to_string)).collect();
        let want = [Some("email:ann@x.com"), Some("amz:order:111-2"), Some("amz:order:111-3"), Some("email:b@x.com")];
        assert_eq!(keys, want.map(|k| k.map(str::to_string)));
        let alone = customer_keys("amz", &orders, None);
        let alone: Vec<Option<&str>> = alone.iter().collect();
        assert_eq!(alone, [Some("amz:order:111-1"), Some("amz:order:111-2"), Some("amz:order:111-3"), None]);
    }

    #[test]
    fn each_order_takes_the_first_named_buyer_and_that_rows_bill_country() {
        let one = df!(
            "order_id" => [Some("A"), Some("A"), Some("B"), None],
            "buyer_email" => [None, Some("a1@x"), Some("b@x"), Some("n@x")],
            "bill_country" => [Some("FR"), Some("DE"), None, Some("US")],
        )
        .unwrap();
        let two = df!(
            "order_id" => [Some("A"), Some("C")],
            "buyer_email" => [Some("a2@x"), Some("c@x")],
            "bill_country" => [Some("IT"), Some("ES")],
        )
        .unwrap();
        let orders: StringChunked = [Some("C"), Some("A"), Some("Z"), None, Some("B")].into_iter().collect();
        // What a report is reduced to when read (and cached) must not change any lookup.
        let reduced = [first_rows(one.clone()).unwrap(), first_rows(two.clone()).unwrap()];
        assert_eq!(reduced[0].height(), 2, "A's first row with an e-mail and B's");
        for reports in [[one, two], reduced] {
            let (buyer, bill) = buyers_of(&first_buyers(&reports).unwrap(), &orders);
            let buyer: Vec<Option<&str>> = buyer.iter().collect();
            let bill: Vec<Option<&str>> = bill.iter().collect();
            assert_eq!(buyer, [Some("c@x"), Some("a1@x"), None, None, Some("b@x")]);
            assert_eq!(bill, [Some("ES"), Some("DE"), None, None, None]);
        }
    }
}
