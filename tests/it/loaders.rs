//! Every real export under tests/fixtures loads with the figures computed independently
//! (tests/fixtures/*/SCENARIO.md and shopify_real/expected.py say how).

use crate::support::*;
use clv::schema;

struct ShopifyExpected {
    file: &'static str,
    records: u64,
    orders: usize,
    gross: f64,
    net: f64,
    refunded: f64,
    statuses: &'static [(&'static str, usize)],
    currency: &'static str,
}

/// From tests/fixtures/shopify_real/expected.py (Python csv module, the documented rules).
const SHOPIFY: &[ShopifyExpected] = &[
    ShopifyExpected {
        file: "diptargha_maison_maria__orders_export_1.csv",
        records: 61,
        orders: 60,
        gross: 2209.54,
        net: 1903.40,
        refunded: 254.07,
        statuses: &[("cancelled", 8), ("completed", 52)],
        currency: "GBP",
    },
    ShopifyExpected {
        file: "felixtellmann_kidsliving_api__orders_export.csv",
        records: 101,
        orders: 50,
        gross: 144894.00,
        net: 126388.37,
        refunded: 0.0,
        statuses: &[("cancelled", 2), ("completed", 35), ("pending", 13)],
        currency: "ZAR",
    },
    ShopifyExpected {
        file: "oks234_customer_vip__orders_export_1.csv",
        records: 811,
        orders: 409,
        gross: 84212.00,
        net: 60885.52,
        refunded: 11079.22,
        statuses: &[("cancelled", 20), ("completed", 332), ("partially_refunded", 26), ("refunded", 31)],
        currency: "USD",
    },
    ShopifyExpected {
        file: "suestecreative_dna_crm__orders_export_1.csv",
        records: 143,
        orders: 137,
        gross: 15617.83,
        net: 11859.46,
        refunded: 518.30,
        statuses: &[("cancelled", 3), ("completed", 131), ("partially_refunded", 1), ("refunded", 2)],
        currency: "EUR",
    },
    ShopifyExpected {
        file: "zhangerson_shopify_parsing__orders_export.csv",
        records: 6,
        orders: 5,
        gross: 7600.00,
        net: 7200.00,
        refunded: 0.0,
        statuses: &[("pending", 5)],
        currency: "BDT",
    },
    ShopifyExpected {
        file: "zhangerson_shopify_parsing__orders_export_21.csv",
        records: 57,
        orders: 57,
        gross: 126125.00,
        net: 126125.00,
        refunded: 0.0,
        statuses: &[("pending", 57)],
        currency: "BDT",
    },
];

#[test]
fn shopify_real_exports_load_with_independently_computed_totals() {
    for e in SHOPIFY {
        let l = load(&format!("{{ id: src, source: shopify, path: tests/fixtures/shopify_real/{} }}", e.file));
        assert_eq!(l.rows_read, e.records, "{}: records", e.file);
        assert_eq!(l.rejects.height(), 0, "{}: rejects {:?}", e.file, l.rejects);
        assert_eq!(l.lines.height() as u64, e.records, "{}: lines", e.file);
        let orders: std::collections::BTreeSet<_> = strings(&l.lines, schema::ORDER_ID).into_iter().collect();
        assert_eq!(orders.len(), e.orders, "{}: orders", e.file);
        assert_close(sum(&l.lines, schema::GROSS), e.gross, 0.005, &format!("{}: gross", e.file));
        assert_close(sum(&l.lines, schema::NET), e.net, 0.01, &format!("{}: net", e.file));
        assert_close(sum(&l.lines, schema::REFUNDED), e.refunded, 0.01, &format!("{}: refunded", e.file));
        let statuses = per_key_counts(&l.lines, schema::ORDER_ID, schema::STATUS);
        let expected: std::collections::BTreeMap<String, usize> =
            e.statuses.iter().map(|(s, n)| (s.to_string(), *n)).collect();
        assert_eq!(statuses, expected, "{}: statuses per order", e.file);
        // First-row-only fields reach every line of the order: continuation rows have a blank
        // Currency in the file, but every loaded line carries the order's currency.
        let currencies = strings(&l.lines, schema::CURRENCY);
        assert!(currencies.iter().all(|c| c.as_deref() == Some(e.currency)), "{}: currencies {currencies:?}", e.file);
        assert_eq!(line_numbers(&l.lines), positions_in_order(&l.lines), "{}: line numbers", e.file);
    }
}

/// The rejects are these (line, reason) pairs, in this order.
fn assert_rejects(l: &clv::sources::Loaded, want: &[(i64, &str)]) {
    let lines = clv::frame::floats(&l.rejects, schema::rejects::LINE).unwrap();
    let reasons = strings(&l.rejects, schema::rejects::REASON);
    let got: Vec<(i64, &str)> =
        lines.iter().zip(&reasons).map(|(line, reason)| (line.unwrap() as i64, reason.as_deref().unwrap())).collect();
    assert_eq!(got, want);
}

fn line_numbers(lines: &polars::prelude::DataFrame) -> Vec<i64> {
    lines.column(schema::LINE_NO).unwrap().i64().unwrap().into_no_null_iter().collect()
}

/// Each line's position among its order's lines, in file order (1, 2, ... per order id).
fn positions_in_order(lines: &polars::prelude::DataFrame) -> Vec<i64> {
    let mut seen = std::collections::HashMap::new();
    strings(lines, schema::ORDER_ID)
        .into_iter()
        .map(|id| {
            let n = seen.entry(id).or_insert(0);
            *n += 1;
            *n
        })
        .collect()
}

#[test]
fn shopify_tax_inclusive_order_has_its_vat_taken_out() {
    // #1411 in oks234: Subtotal 95.40, Shipping 30.00, Taxes 20.02 (German MwSt inside), Total 125.40.
    // Merchandise VAT = 20.02 * 95.40 / 125.40 = 15.23; net = 95.40 - 15.23 = 80.17 (before refunds: none).
    let l = load(
        "{ id: src, source: shopify, path: tests/fixtures/shopify_real/oks234_customer_vip__orders_export_1.csv }",
    );
    let ids = strings(&l.lines, schema::ORDER_ID);
    let net = clv::frame::floats(&l.lines, schema::NET).unwrap();
    let total: f64 = ids.iter().zip(&net).filter(|(i, _)| i.as_deref() == Some("#1411")).map(|(_, n)| n.unwrap()).sum();
    assert_close(total, 95.40 - 20.02 * 95.40 / 125.40, 0.001, "#1411 net");
}

#[test]
fn amazon_real_rows_with_raw_quotes_in_product_names() {
    let l = load(
        "{ id: src, source: amazon, path: tests/fixtures/amazon_real/all_orders_real_rows_2020_amazon_com_fba.tsv }",
    );
    assert_eq!(l.rows_read, 13);
    assert_eq!(l.rejects.height(), 0);
    assert_eq!(l.lines.height(), 13);
    // Had a `"` been taken as a quote, fields would have shifted: these totals would not match.
    assert_close(sum(&l.lines, schema::QUANTITY), 19.0, 0.0, "quantity");
    assert_close(sum(&l.lines, schema::GROSS), 271.81, 0.005, "item-price");
    assert_close(sum(&l.lines, schema::TAX), 19.34, 0.005, "item-tax");
    assert_close(sum(&l.lines, schema::NET), 271.81, 0.005, "net: Amazon.com prices exclude tax");
    assert!(strings(&l.lines, schema::CURRENCY).iter().all(|c| c.as_deref() == Some("USD")));
    assert!(strings(&l.lines, schema::STATUS).iter().all(|c| c.as_deref() == Some("completed")));
    assert!(
        strings(&l.lines, schema::aux::CUSTOMER_KEY)
            .iter()
            .all(|c| c.as_deref().is_some_and(|k| k.starts_with("src:order:")))
    );
    assert!(l.notes.iter().any(|n| n.contains("repeat purchases on Amazon cannot be seen")), "{:?}", l.notes);
}

#[test]
fn amazon_cancelled_item_on_amazon_it() {
    let l = load(
        "{ id: src, source: amazon, path: tests/fixtures/amazon_real/all_orders_scrubbed_row_2017_amazon_it.tsv }",
    );
    assert_eq!(l.lines.height(), 1);
    assert_eq!(strings(&l.lines, schema::STATUS), [Some("cancelled".to_string())]);
    assert_eq!(strings(&l.lines, schema::CURRENCY), [Some("EUR".to_string())]);
    assert_eq!(strings(&l.lines, schema::aux::SHIP_COUNTRY), [Some("US".to_string())]);
    assert_close(sum(&l.lines, schema::GROSS), 89.95, 0.0, "gross");
}

/// One row for any Amazon header variant, values placed by column name.
fn amazon_row(header: &[&str]) -> String {
    header
        .iter()
        .map(|h| match *h {
            "amazon-order-id" | "merchant-order-id" => "302-1234567-7654321",
            "purchase-date" => "2024-03-01T10:00:00+00:00",
            "last-updated-date" => "2024-03-02T08:00:00+00:00",
            "order-status" => "Shipped",
            "item-status" => "Shipped",
            "sales-channel" => "Amazon.de",
            "product-name" => "Kissen 12\" x 18\" \"Premium\"",
            "quantity" => "2",
            "currency" => "EUR",
            "item-price" => "59.50",
            "item-tax" => "9.50",
            "item-promotion-discount" => "-5.00",
            "ship-country" => "DE",
            _ => "",
        })
        .collect::<Vec<_>>()
        .join("\t")
}

#[test]
fn amazon_every_header_variant_loads_by_name() {
    let variants = std::fs::read_to_string("tests/fixtures/amazon_real/all_orders_header_variants.txt").unwrap();
    let archived =
        std::fs::read_to_string("tests/fixtures/amazon_real/archived_orders_by_order_date_header.tsv").unwrap();
    let headers: Vec<&str> =
        variants.lines().chain(archived.lines()).filter(|l| l.starts_with("amazon-order-id")).collect();
    assert_eq!(headers.len(), 5, "four All Orders variants and the Archived Orders report");
    for header in headers {
        let cols: Vec<&str> = header.split('\t').collect();
        let text = format!("{header}\n{}\n", amazon_row(&cols));
        let (_dir, path) = temp_file("orders.txt", text.as_bytes());
        let l = load(&format!("{{ id: src, source: amazon, path: '{path}' }}"));
        assert_eq!(l.lines.height(), 1, "{} columns", cols.len());
        // Amazon.de is tax-inclusive: 59.50 - 5.00 promotion - 9.50 VAT inside the price.
        assert_close(sum(&l.lines, schema::NET), 45.0, 1e-9, &format!("{} columns: net", cols.len()));
        assert_close(sum(&l.lines, schema::DISCOUNT), 5.0, 1e-9, "discount is the absolute promotion");
    }
}

#[test]
fn amazon_missing_required_column_names_file_column_and_found() {
    let (_dir, path) = temp_file("orders.txt", b"amazon-order-id\tpurchase-date\n1\t2024-01-01T00:00:00+00:00\n");
    let msg = load_err(&format!("{{ id: src, source: amazon, path: '{path}' }}"));
    assert!(
        msg.contains("orders.txt") && msg.contains("'order-status'") && msg.contains("found")
            || msg.contains("has 2 column"),
        "{msg}"
    );
    assert!(msg.contains("amazon-order-id, purchase-date"), "{msg}");
}

#[test]
fn amazon_buyers_report_links_orders_to_relay_emails() {
    let header = std::fs::read_to_string("tests/fixtures/amazon_real/amazon_fulfilled_shipments_header.tsv").unwrap();
    let cols: Vec<&str> = header.trim_end().split('\t').collect();
    let row = |order: &str, email: &str| {
        cols.iter()
            .map(|c| match *c {
                "amazon-order-id" => order.to_string(),
                "buyer-email" => email.to_string(),
                "bill-country" => "US".to_string(),
                _ => String::new(),
            })
            .collect::<Vec<_>>()
            .join("\t")
    };
    let text = format!(
        "{}\n{}\n{}\n",
        header.trim_end(),
        row("114-4892924-3377867", "Abc123@Marketplace.Amazon.com"),
        row("113-9925451-0581038", "abc123@marketplace.amazon.com")
    );
    let (_dir, buyers) = temp_file("shipments.txt", text.as_bytes());
    let l = load(&format!(
        "{{ id: src, source: amazon, path: tests/fixtures/amazon_real/all_orders_real_rows_2020_amazon_com_fba.tsv, buyers: '{buyers}' }}"
    ));
    let keys = strings(&l.lines, schema::aux::CUSTOMER_KEY);
    let relay = keys.iter().filter(|k| k.as_deref() == Some("email:abc123@marketplace.amazon.com")).count();
    assert_eq!(relay, 2, "two orders of one buyer (letter case differs) are one customer: {keys:?}");
    assert!(l.notes.iter().any(|n| n.starts_with("11 Amazon line(s) have no buyer")), "{:?}", l.notes);
}

#[test]
fn generic_csv_reads_the_italian_export_with_decimal_commas() {
    let l = load(
        "{ id: src, source: csv, path: tests/fixtures/woocommerce_real/it_shop_custom_export_fixture_decimal_comma.csv, \
           decimal_comma: true, date_format: '%Y/%m/%d', timezone: Europe/Rome, \
           columns: { order_id: Order ID, customer: Customer Name, ordered_at: Order Date, quantity: Quantity of items purchased, unit_price: Item price EXCL. tax }, \
           constants: { currency: EUR, country: IT } }",
    );
    assert_eq!(l.rows_read, 9);
    assert_eq!(l.rejects.height(), 0);
    assert_close(sum(&l.lines, schema::GROSS), 105.0, 1e-9, "gross");
    let orders: std::collections::BTreeSet<_> = strings(&l.lines, schema::ORDER_ID).into_iter().collect();
    assert_eq!(orders.len(), 2);
    let customers: std::collections::BTreeSet<_> = strings(&l.lines, schema::aux::CUSTOMER_KEY).into_iter().collect();
    assert_eq!(customers.len(), 2);
}

#[test]
fn generic_csv_mixed_decimal_commas_and_dots_in_one_column() {
    let text = "order;customer;date;amount\nA1;Ann@Example.com;05/01/2024;57,10\nA1;ann@example.com;05/01/2024;3.5\nA2;bob@example.com;06/01/2024;1.234,56\n";
    let (_dir, path) = temp_file("legacy.csv", text.as_bytes());
    let l = load(&format!(
        "{{ id: src, source: csv, path: '{path}', delimiter: ';', decimal_comma: true, date_format: '%d/%m/%Y', \
           columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount }}, constants: {{ currency: EUR }} }}"
    ));
    assert_eq!(l.rejects.height(), 0);
    assert_close(sum(&l.lines, schema::NET), 57.10 + 3.5 + 1234.56, 1e-9, "net");
    let keys = strings(&l.lines, schema::aux::CUSTOMER_KEY);
    assert_eq!(keys[0], keys[1], "e-mails differing only by case are one customer");
}

#[test]
fn unreadable_rows_go_to_rejects_with_file_line_reason_and_raw_text() {
    let text = "order,customer,date,amount\nA1,a@x.io,2024-01-05,10.00\n\"A2\",b@x.io,\"not\na date\",5.00\nA3,c@x.io,2024-01-06\nA4,d@x.io,2024-01-07,57,10\nA5,e@x.io,2024-01-08,7.5\n";
    let (_dir, path) = temp_file("bad.csv", text.as_bytes());
    let l = load(&format!(
        "{{ id: src, source: csv, path: '{path}', columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount }}, \
           constants: {{ currency: USD }}, max_reject_rate: 1.0 }}"
    ));
    assert_eq!(l.rows_read, 5);
    assert_eq!(l.lines.height(), 2);
    let lines = clv::frame::floats(&l.rejects, schema::rejects::LINE).unwrap();
    let reasons = strings(&l.rejects, schema::rejects::REASON);
    let raws = strings(&l.rejects, schema::rejects::RAW);
    assert_eq!(lines, [Some(3.0), Some(5.0), Some(6.0)]);
    assert_eq!(reasons[0].as_deref(), Some("unparseable ordered_at 'not\na date'"));
    assert_eq!(reasons[1].as_deref(), Some("expected 4 fields, found 3"));
    assert_eq!(reasons[2].as_deref(), Some("expected 4 fields, found 5"));
    // The record as written, with the customer (personal data) masked.
    assert_eq!(raws[0].as_deref(), Some("A2,***,\"not\na date\",5.00"));
    assert_eq!(raws[1].as_deref(), Some("A3,***,2024-01-06"));
}

#[test]
fn woocommerce_advanced_order_export_header_only_and_one_row() {
    let l = load(
        "{ id: src, source: woocommerce, path: tests/fixtures/woocommerce_real/advanced_order_export_algolplus_header_as_used.csv, constants: { currency: EUR } }",
    );
    assert_eq!((l.rows_read, l.lines.height(), l.rejects.height()), (0, 0, 0));

    let header =
        std::fs::read_to_string("tests/fixtures/woocommerce_real/advanced_order_export_algolplus_header_as_used.csv")
            .unwrap();
    let names: Vec<String> = header.trim_end().split(',').map(|s| s.trim_matches('"').to_string()).collect();
    let row: Vec<String> = names
        .iter()
        .map(|n| match n.as_str() {
            "Order Number" => "1001",
            "Order Status" => "completed",
            "Order Date" => "9/6/2016 6:29:00",
            "Email (Billing)" => "Ann@Example.org",
            "Country Code (Shipping)" => "DE",
            "Quantity" => "2",
            "Item Cost" => "20.00",
            "Order Line (w/o tax)" => "36.00",
            "Order Line Tax" => "6.84",
            "Order Line Total Refunded" => "10.00",
            _ => "",
        })
        .map(|v| format!("\"{v}\""))
        .collect();
    let (_dir, path) = temp_file("aoe.csv", format!("{}\n{}\n", header.trim_end(), row.join(",")).as_bytes());
    let l = load(&format!(
        "{{ id: src, source: woocommerce, path: '{path}', timezone: Europe/Berlin, constants: {{ currency: EUR }} }}"
    ));
    assert_eq!(l.lines.height(), 1, "{:?}", l.rejects);
    assert_close(sum(&l.lines, schema::GROSS), 40.0, 1e-9, "gross = Item Cost x Quantity");
    assert_close(sum(&l.lines, schema::DISCOUNT), 4.0, 1e-9, "discount = gross - line total");
    assert_close(sum(&l.lines, schema::NET), 26.0, 1e-9, "net = line total - refunded");
    // 6 September 2016 06:29 in Berlin (CEST, UTC+2) is 04:29 UTC.
    let at = l.lines.column(schema::ORDERED_AT).unwrap().cast(&polars::prelude::DataType::Int64).unwrap();
    assert_eq!(at.i64().unwrap().get(0), Some(1_473_136_140_000_000));
}

#[test]
fn woocommerce_webtoffee_items_refunds_and_guests() {
    let base =
        std::fs::read_to_string("tests/fixtures/woocommerce_real/webtoffee_order_export_base_columns.txt").unwrap();
    let cols: Vec<&str> = base
        .lines()
        .find(|l| l.starts_with("order_id"))
        .unwrap()
        .trim_end_matches(",line_item_1,line_item_2,...")
        .split(',')
        .collect();
    let mut header: Vec<String> = cols.iter().map(|s| s.to_string()).collect();
    header.extend(["line_item_1".to_string(), "line_item_2".to_string()]);
    let order = |id: &str, status: &str, email: &str, customer: &str, items: [&str; 2], refunds: &str, total: &str| {
        header
            .iter()
            .map(|h| match h.as_str() {
                "order_id" => id.to_string(),
                "order_date" => "2024-01-05 10:22:31".to_string(),
                "status" => status.to_string(),
                "order_total" => total.to_string(),
                "order_currency" => "EUR".to_string(),
                "customer_id" => customer.to_string(),
                "billing_email" => email.to_string(),
                "billing_country" => "DE".to_string(),
                "shipping_country" => "AT".to_string(),
                "refund_items" => refunds.to_string(),
                "line_item_1" => items[0].to_string(),
                "line_item_2" => items[1].to_string(),
                _ => String::new(),
            })
            .map(|v| format!("\"{}\"", v.replace('"', "\"\"")))
            .collect::<Vec<_>>()
            .join(",")
    };
    let text = [
        header.iter().map(|h| format!("\"{h}\"")).collect::<Vec<_>>().join(","),
        order(
            "7001",
            "completed",
            "Ann@Example.org",
            "12",
            [
                "name:Mug \"Morning\"|product_id:5|sku:M1|quantity:2|total:31.80|sub_total:35.00",
                "name:Candle|product_id:6|sku:C1|quantity:1|total:10.00|sub_total:10.00",
            ],
            "amount:20.90|reason:Broken|date:2024-01-09 10:00:00",
            "50.90",
        ),
        order(
            "7002",
            "processing",
            "",
            "0",
            ["name:Mug|product_id:5|sku:M1|quantity:1|total:17.50|sub_total:17.50", ""],
            "",
            "20.83",
        ),
        String::new(),
    ]
    .join("\n");
    let (_dir, path) = temp_file("wt.csv", text.as_bytes());
    let l = load(&format!("{{ id: src, source: woocommerce, path: '{path}', timezone: Europe/Berlin }}"));
    assert_eq!(l.rows_read, 2);
    assert_eq!(l.lines.height(), 3, "two items of 7001 and one of 7002: {:?}", l.rejects);
    assert_close(sum(&l.lines, schema::GROSS), 35.0 + 10.0 + 17.5, 1e-9, "gross = sub_total");
    assert_close(sum(&l.lines, schema::DISCOUNT), 3.2, 1e-9, "discount = sub_total - total");
    // 7001: merchandise 41.80 of a 50.90 total; refund 20.90 -> merchandise part 20.90 * 41.80 / 50.90.
    let refund = 20.90 * 41.80 / 50.90;
    assert_close(sum(&l.lines, schema::REFUNDED), refund, 1e-9, "refund's merchandise part");
    assert_close(sum(&l.lines, schema::NET), 41.80 - refund + 17.5, 1e-9, "net");
    let keys = strings(&l.lines, schema::aux::CUSTOMER_KEY);
    assert_eq!(keys.iter().filter(|k| k.as_deref() == Some("email:ann@example.org")).count(), 2);
    assert_eq!(keys.iter().filter(|k| k.is_none()).count(), 1, "a guest without e-mail has no customer");
    assert_eq!(strings(&l.lines, schema::aux::SHIP_COUNTRY)[0].as_deref(), Some("AT"));
}

#[test]
fn windows_1252_and_wrong_encoding() {
    let text = b"order,customer,date,amount\nA1,Ren\xe9@example.com,2024-01-05,10.00\n";
    let (_dir, path) = temp_file("cp1252.csv", text);
    let stage = |enc: &str| {
        format!(
            "{{ id: src, source: csv, path: '{path}', {enc} columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount }}, constants: {{ currency: USD }} }}"
        )
    };
    let l = load(&stage("encoding: windows-1252,"));
    assert_eq!(strings(&l.lines, schema::aux::CUSTOMER_KEY), [Some("email:rené@example.com".to_string())]);
    let msg = load_err(&stage(""));
    assert!(msg.contains("cp1252.csv") && msg.contains("not valid UTF-8 at byte offset 33 (line 2)"), "{msg}");
}

#[test]
fn shopify_order_rows_split_into_two_blocks_still_share_the_first_rows_fields() {
    // #1's second line comes after #2: the loader must not take it for an order of its own.
    let text = "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,Lineitem quantity,Lineitem price,Refunded Amount\n\
        #1,a@mail.de,refunded,EUR,30.00,0.00,0.00,30.00,0.00,2024-01-05 10:00:00 +0100,1,10.00,30.00\n\
        #2,b@mail.de,paid,EUR,5.00,0.00,0.00,5.00,0.00,2024-01-06 10:00:00 +0100,1,5.00,0.00\n\
        #1,a@mail.de,,,,,,,,2024-01-05 10:00:00 +0100,1,20.00,\n";
    let (_dir, path) = temp_file("split.csv", text.as_bytes());
    let l = load(&format!("{{ id: src, source: shopify, path: '{path}' }}"));
    let ids = strings(&l.lines, schema::ORDER_ID);
    let status = strings(&l.lines, schema::STATUS);
    let currency = strings(&l.lines, schema::CURRENCY);
    for i in (0..ids.len()).filter(|&i| ids[i].as_deref() == Some("#1")) {
        assert_eq!((status[i].as_deref(), currency[i].as_deref()), (Some("refunded"), Some("EUR")));
    }
    // The refund of 30.00 covers both lines of #1: nothing of #1 is left as revenue.
    assert_close(sum(&l.lines, schema::NET), 5.0, 1e-9, "net");
    assert_eq!(line_numbers(&l.lines), [1, 1, 2]);
}

#[test]
fn shopify_rows_are_rejected_with_the_first_failing_check_and_order_fields_reject_every_line() {
    let text = "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,Lineitem quantity,Lineitem price,Refunded Amount,Cancelled at\n\
        #1,a@mail.de,paid,EUR,abc,0.00,0.00,30.00,0.00,2024-01-05 10:00:00 +0100,1,10.00,,\n\
        #1,,,,,,,,,,1,20.00,,\n\
        #2,b@mail.de,weird,EUR,5.00,0.00,0.00,5.00,0.00,2024-01-06 10:00:00 +0100,1,5.00,0.00,\n\
        #3,c@mail.de,paid,EUR,5.00,0.00,0.00,5.00,0.00,yesterday,1,5.00,0.00,\n\
        #4,d@mail.de,paid,EUR,5.00,0.00,0.00,5.00,0.00,2024-01-06 10:00:00 +0100,,5.00,0.00,\n\
        #4,,,,,,,,,,x,5.00,,\n\
        ,e@mail.de,paid,EUR,5.00,0.00,0.00,5.00,0.00,2024-01-06 10:00:00 +0100,1,5.00,0.00,\n\
        #5,f@mail.de,paid,EUR,5.00,0.00,0.00,5.00,0.00,2024-01-06 10:00:00 +0100,1,5.00,1.5.0,\n\
        #6,g@mail.de,paid,EUR,10.00,0.00,0.00,10.00,0.00,2024-01-06 10:00:00 +0100,1,5.00,0.00,2024-01-07\n\
        #6,,,,,,,,,,1,5.00,,\n\
        #7,h@mail.de,paid,EUR,10.00,0.00,0.00,10.00,0.00,2024-01-06 10:00:00 +0100,1,,0.00,\n";
    let (_dir, path) = temp_file("bad.csv", text.as_bytes());
    let l = load(&format!("{{ id: src, source: shopify, path: '{path}', max_reject_rate: 1.0 }}"));
    assert_rejects(
        &l,
        &[
            (2, "unparseable Subtotal 'abc'"),
            (3, "unparseable Subtotal 'abc'"),
            (4, "unparseable Financial Status 'weird'"),
            (5, "unparseable Created at 'yesterday'"),
            (6, "missing Lineitem quantity"),
            (7, "unparseable Lineitem quantity 'x'"),
            (8, "missing Name"),
            (9, "unparseable Refunded Amount '1.5.0'"),
            (12, "missing Lineitem price"),
        ],
    );
    // The cancelled order #6 is kept, both lines cancelled, numbered within their order.
    assert_eq!(strings(&l.lines, schema::ORDER_ID), [Some("#6".to_string()), Some("#6".to_string())]);
    assert_eq!(strings(&l.lines, schema::STATUS), [Some("cancelled".to_string()), Some("cancelled".to_string())]);
    assert_eq!(line_numbers(&l.lines), [1, 2]);
}

#[test]
fn amazon_rows_are_rejected_with_the_first_failing_check_and_kept_rows_follow_the_marketplace() {
    let text = "amazon-order-id\tpurchase-date\tlast-updated-date\torder-status\titem-status\tsales-channel\tquantity\tcurrency\titem-price\titem-tax\tshipping-price\titem-promotion-discount\tship-promotion-discount\tship-country\n\
        \t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\t\t\tUS\n\
        111-0000001-0000001\tnot a date\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\t\t\tUS\n\
        111-0000002-0000001\t2024-01-05T10:00:00+00:00\t\tWeird\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\t\t\tUS\n\
        111-0000003-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\tx\tUSD\t10.00\t0.8\t1.00\t\t\tUS\n\
        111-0000004-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\tabc\t0.8\t1.00\t\t\tUS\n\
        111-0000005-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\tt\t1.00\t\t\tUS\n\
        111-0000006-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\ts\t\t\tUS\n\
        111-0000007-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\tp\t\tUS\n\
        111-0000008-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t\t0.8\t1.00\t\t\tUS\n\
        302-0000009-0000001\t2024-01-05T10:00:00+00:00\t2024-01-06T10:00:00+00:00\tShipped\tShipped\t Amazon.de \t2\tEUR\t59.50\t9.50\t4.99\t-5.00\t-4.99\t de \n\
        302-0000010-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tCancelled\tAmazon.de\t1\teur\t20.00\t3.19\t0\t\t\tDE\n\
        302-0000011-0000001\t2024-01-05T10:00:00+00:00\t\tShipped - Returned to Seller\t\tAmazon.fr\t1\tEUR\t30.00\t5.00\t0\t\t\tFR\n\
        203-0000012-0000001\t2024-01-05T10:00:00+00:00\t\tPending\t\tAmazon.co.uk\t1\t\t\t\t\t\t\tGB\n\
        111-0000013-0000001\t2024-01-05T10:00:00+00:00\t\t\t\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\t\tz\tUS\n\
        111-0000014-0000001\t2024-01-05T10:00:00+00:00\t\tShipped\tShipped\tAmazon.com\t1\tUSD\t10.00\t0.8\t1.00\t\t\t\n";
    let (_dir, path) = temp_file("orders_bad.txt", text.as_bytes());
    let l = load(&format!("{{ id: src, source: amazon, path: '{path}', max_reject_rate: 1.0 }}"));
    assert_rejects(
        &l,
        &[
            (2, "missing amazon-order-id"),
            (3, "unparseable purchase-date 'not a date'"),
            (4, "unparseable order-status 'Weird'"),
            (5, "unparseable quantity 'x'"),
            (6, "unparseable item-price 'abc'"),
            (7, "unparseable item-tax 't'"),
            (8, "unparseable shipping-price 's'"),
            (9, "unparseable item-promotion-discount 'p'"),
            (10, "missing item-price on a shipped line"),
        ],
    );
    let row = |id: &str| strings(&l.lines, schema::ORDER_ID).iter().position(|o| o.as_deref() == Some(id)).unwrap();
    let value = |c: &str, id: &str| clv::frame::floats(&l.lines, c).unwrap()[row(id)];
    let text = |c: &str, id: &str| strings(&l.lines, c)[row(id)].clone();
    // amazon.de prices include VAT: 59.50 - 5.00 promotion - 9.50 VAT; the shipping promotion
    // cancels the shipping.
    let de = "302-0000009-0000001";
    assert_eq!((value(schema::NET, de), value(schema::SHIPPING, de)), (Some(45.0), Some(0.0)));
    assert_eq!(text(schema::aux::SHIP_COUNTRY, de).as_deref(), Some("DE"));
    // An item cancelled in a shipped order is cancelled; a returned one is refunded in full.
    assert_eq!(text(schema::STATUS, "302-0000010-0000001").as_deref(), Some("cancelled"));
    let fr = "302-0000011-0000001";
    assert_eq!((value(schema::REFUNDED, fr), value(schema::NET, fr)), (Some(25.0), Some(0.0)));
    // A pending line without a price or currency takes its marketplace's currency.
    assert_eq!(text(schema::CURRENCY, "203-0000012-0000001").as_deref(), Some("GBP"));
    assert_eq!(text(schema::CURRENCY, "302-0000010-0000001").as_deref(), Some("EUR"));
}

#[test]
fn webtoffee_rows_are_rejected_with_the_first_failing_check_and_refunds_spread_by_net() {
    let text = "order_id,order_date,status,shipping_total,order_total,order_currency,customer_id,billing_email,billing_country,shipping_country,refund_items,line_item_1,line_item_2,line_item_3\n\
        ,2024-01-05 10:00:00,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,,name:A|quantity:1|total:20.00|sub_total:20.00|tax:3.80,,\n\
        101,not a date,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,,name:A|quantity:1|total:20.00|sub_total:20.00|tax:3.80,,\n\
        102,2024-01-05 10:00:00,weird,5.00,25.00,EUR,7,a@x.de,DE,DE,,name:A|quantity:1|total:20.00|sub_total:20.00|tax:3.80,,\n\
        103,2024-01-05 10:00:00,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,,,,\n\
        104,2024-01-05 10:00:00,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,,name:A|quantity:x|total:20.00,name:B|quantity:1|total:5.00,\n\
        105,2024-01-05 10:00:00,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,,name:A|quantity:1,,\n\
        106,2024-01-05 10:00:00,completed,5.00,abc,EUR,7,a@x.de,DE,DE,,name:A|quantity:1|total:20.00,,\n\
        107,2024-01-05 10:00:00,completed,5.00,25.00,EUR,7,a@x.de,DE,DE,id:1|amount:zz,name:A|quantity:1|total:20.00,,\n\
        108,2024-01-05 10:00:00,completed,5.00,25.00,,7,a@x.de,DE,DE,,name:A|quantity:1|total:20.00,,\n\
        109,2024-01-05 10:00:00,completed,5.00,65.00,EUR,0,,de ,at,id:1|amount:30.00,name:A|quantity:2|total:40.00|sub_total:44.00|tax:7.60,,name:C|quantity:1|total:20.00|sub_total:20.00|tax:3.80\n\
        110,2024-01-05 10:00:00,refunded,0,10.00,eur,12,,FR,FR,id:1|amount:4.00;id:2|amount:6.00,name:A|quantity:1|total:10.00,name:B|quantity:1|total:0.00,\n\
        109,2024-01-06 10:00:00,completed,0,10.00,EUR,0,B@Y.DE,DE,DE,,name:D|quantity:1|total:10.00,,\n";
    let (_dir, path) = temp_file("webtoffee_bad.csv", text.as_bytes());
    let l = load(&format!("{{ id: src, source: woocommerce, path: '{path}', max_reject_rate: 1.0 }}"));
    assert_rejects(
        &l,
        &[
            (2, "missing order_id"),
            (3, "unparseable order_date 'not a date'"),
            (4, "unparseable status 'weird'"),
            (5, "order has no line_item cells"),
            (6, "unparseable line item quantity 'x'"),
            (7, "missing line item total"),
            (8, "unparseable order_total 'abc'"),
            (9, "unparseable refund_items 'id:1|amount:zz'"),
            (10, "missing currency: the file has none; set `constants: { currency: XXX }`"),
        ],
    );
    // Order 110 refunds 4.00 + 6.00 of a 10.00 total: all of it lands on the line that has the
    // net, none on the free one.
    let ids = strings(&l.lines, schema::ORDER_ID);
    let refunded = clv::frame::floats(&l.lines, schema::REFUNDED).unwrap();
    let of_110: Vec<Option<f64>> =
        (0..ids.len()).filter(|&i| ids[i].as_deref() == Some("110")).map(|i| refunded[i]).collect();
    assert_eq!(of_110, [Some(10.0), Some(0.0)]);
    // Order 109 (three item cells, the second empty): lines 1 and 3, shipping 5.00 and the 30.00
    // refund spread 40:20 by net; its merchandise part is 30 x 60 / 65 of the 65.00 total. A later
    // row with the same order id (a newer copy, one line) does not share in them.
    let of_109: Vec<usize> = (0..ids.len()).filter(|&i| ids[i].as_deref() == Some("109")).collect();
    assert_eq!(of_109.len(), 3);
    let shipping = clv::frame::floats(&l.lines, schema::SHIPPING).unwrap();
    let first = of_109[0];
    assert!((shipping[first].unwrap() - 5.0 * 40.0 / 60.0).abs() < 1e-12);
    assert!((refunded[first].unwrap() - 30.0 * 60.0 / 65.0 * 40.0 / 60.0).abs() < 1e-12);
}
