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
    let (mut purchased, mut last_updated) = (fields::Last::default(), fields::Last::default());
    for r in 0..n {
        let row = r as u32;
        let purchase_raw = purchase_date.get(row);
        let ordered_at = purchase_raw.and_then(|s| purchased.get(s, |s| ts.parse(s)));
        updated_at.push(updated.get(row).and_then(|s| last_updated.get(s, |s| ts.parse(s))));
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
        out.ordered_at.set(r, ordered_at);
        out.status[r] = status;
        out.quantity.set(r, qty.value);
        out.gross.set(r, price.value);
        out.discount.set(r, Some(promo.value.map_or(0.0, f64::abs)));
        out.tax.set(r, Some(tax.or_zero()));
        out.shipping.set(r, Some(ship.or_zero() - ship_promo.value.map_or(0.0, f64::abs)));
        out.refunded.set(r, if returned { net_before } else { Some(0.0) });
        out.net.set(r, if returned { Some(0.0) } else { net_before });
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
    type Info = super::InputFile;
    fn info(&self) -> super::InputFile {
        self.input.clone()
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
        let keys = customer_keys(&id, frame::str_column(&loaded.lines, schema::ORDER_ID)?);
        return frame::put_column(&mut loaded.lines, aux::CUSTOMER_KEY, keys);
    }
    let (inputs, reports): (Vec<_>, Vec<_>) = reports.into_iter().map(|r| (r.input, r.columns)).unzip();
    loaded.files.extend(inputs);
    // A hash pass and one column each, not a group-by, a join and expressions: the join copied
    // every line column once more, and the expressions built both keys for every line. The lines
    // are looked up in parts side by side: each lookup misses the cache, each new column copies text.
    let tests = parse::TestPatterns::new(&ctx.tests);
    let (keys, test_buyers, bills) = {
        let first = first_buyers(&reports)?;
        let lines = &loaded.lines;
        let parts = frame::on_threads(&frame::spans(lines.height(), frame::threads()), |&(offset, len)| {
            buyer_columns(&id, &first, &tests, &lines.slice(offset as i64, len))
        });
        let (mut keys, mut test_buyers, mut bills) = (Vec::new(), Vec::new(), Vec::new());
        for part in parts {
            let (k, t, c) = part?;
            keys.push(k);
            test_buyers.push(t);
            bills.push(c);
        }
        (frame::concat_strings(keys), test_buyers.concat(), frame::concat_strings(bills))
    };
    std::mem::drop(reports);
    let unmatched = test_buyers.iter().filter(|t| t.is_none()).count();
    let lines = &mut loaded.lines;
    let own = lines.column(aux::TEST_ORDER).and_then(|c| c.bool()).ctx(|| "test orders")?;
    let tests = own.iter().zip(test_buyers).map(|(own, buyer)| own == Some(true) || buyer == Some(true));
    let tests = BooleanChunked::from_iter_values(aux::TEST_ORDER.into(), tests);
    frame::put_column(lines, aux::TEST_ORDER, tests)?;
    frame::put_column(lines, aux::CUSTOMER_KEY, keys.with_name(aux::CUSTOMER_KEY.into()))?;
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
fn customer_key(source: &str, order: Option<&str>, buyer: Option<&str>) -> Option<String> {
    buyer.and_then(parse::email_key).or_else(|| order.map(|o| format!("{source}:order:{o}")))
}

fn customer_keys(source: &str, orders: &StringChunked) -> StringChunked {
    let keys: StringChunked = orders.iter().map(|order| customer_key(source, order, None)).collect();
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

/// Customer keys, whether the buyer's e-mail marks a test order (`None`: no buyer) and bill
/// countries (the line's own, else the buyer's) of `lines`. An order's lines come in a run: one
/// lookup and one key per run.
fn buyer_columns(
    source: &str,
    first: &PlHashMap<&str, Buyer>,
    tests: &parse::TestPatterns,
    lines: &DataFrame,
) -> Result<(StringChunked, Vec<Option<bool>>, StringChunked)> {
    let orders = frame::text_columns(lines, &[schema::ORDER_ID])?.remove(0);
    let orders = frame::Texts::of(&orders);
    let rows = lines.height();
    let column = || StringChunkedBuilder::new(PlSmallStr::EMPTY, rows);
    let (mut keys, mut test_buyers, mut bills) = (column(), Vec::with_capacity(rows), column());
    /// A run of one order's lines: the order, its customer key, whether its buyer is a test
    /// (`None`: no buyer) and the buyer's bill country.
    struct Run<'a> {
        order: Option<&'a str>,
        key: Option<String>,
        test_buyer: Option<bool>,
        bill: Option<String>,
    }
    let mut run: Option<Run> = None;
    for (row, own_bill) in (0..rows as u32).zip(frame::texts(lines, aux::BILL_COUNTRY)?) {
        let order = orders.get(row);
        let r = match &run {
            Some(r) if frame::same_text(r.order, order) => r,
            _ => {
                let found = order.and_then(|o| first.get(o));
                let buyer = found.map(|f| f.0);
                let bill = found.and_then(|f| f.1).map(parse::country);
                let test_buyer = buyer.map(|b| tests.is_test(Some(b), None));
                run.insert(Run { order, key: customer_key(source, order, buyer), test_buyer, bill })
            }
        };
        keys.append_option(r.key.as_deref());
        test_buyers.push(r.test_buyer);
        bills.append_option(own_bill.or(r.bill.as_deref()));
    }
    Ok((keys.finish(), test_buyers, bills.finish()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usable_buyer_email_names_the_customer_else_the_order_does() {
        let key = |order, buyer| customer_key("amz", order, buyer);
        assert_eq!(key(Some("111-1"), Some(" Ann@X.com ")).as_deref(), Some("email:ann@x.com"));
        assert_eq!(key(Some("111-2"), Some("not an address")).as_deref(), Some("amz:order:111-2"));
        assert_eq!(key(Some("111-3"), None).as_deref(), Some("amz:order:111-3"));
        assert_eq!(key(None, Some("b@x.com")).as_deref(), Some("email:b@x.com"));
        assert_eq!(key(None, None), None);
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
        // Lines: A's two lines in a run, the second with its own bill country; B a second time
        // after another order.
        let lines = df!(
            schema::ORDER_ID => [Some("C"), Some("A"), Some("A"), Some("Z"), None, Some("B"), Some("C"), Some("B")],
            aux::BILL_COUNTRY => [None, None, Some("NL"), None, None, None, None, None::<&str>],
        )
        .unwrap();
        // What a report is reduced to when read (and cached) must not change any lookup.
        let reduced = [first_rows(one.clone()).unwrap(), first_rows(two.clone()).unwrap()];
        assert_eq!(reduced[0].height(), 2, "A's first row with an e-mail and B's");
        // A test pattern that only C's buyer matches.
        let tests = parse::TestPatterns::new(&crate::config::TestOrders { emails: vec!["c@*".into()], tags: vec![] });
        for reports in [[one, two], reduced] {
            let (keys, test_buyer, bill) =
                buyer_columns("amz", &first_buyers(&reports).unwrap(), &tests, &lines).unwrap();
            let (keys, bill): (Vec<_>, Vec<_>) = (keys.iter().collect(), bill.iter().collect());
            let (t, f) = (Some(true), Some(false));
            assert_eq!(
                test_buyer,
                [t, f, f, None, None, f, t, f],
                "a buyer for every line but Z's and the null order's"
            );
            assert_eq!(bill, [Some("ES"), Some("DE"), Some("NL"), None, None, None, Some("ES"), None]);
            let want = ["email:c@x", "email:a1@x", "email:a1@x", "amz:order:Z"].map(Some);
            assert_eq!(keys[..4], want);
            assert_eq!(keys[4..], [None, Some("email:b@x"), Some("email:c@x"), Some("email:b@x")]);
        }
    }
}
