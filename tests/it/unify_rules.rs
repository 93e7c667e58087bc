//! The unify rules, end to end through `pipeline::run` on small hand-made exports whose every
//! figure is worked out in the comments.

use crate::support::Table;
use clv::config;
use clv::pipeline::{self, RunOptions};
use std::path::Path;

const AMAZON_HEADER: &str = "amazon-order-id\tmerchant-order-id\tpurchase-date\tlast-updated-date\torder-status\tfulfillment-channel\tsales-channel\torder-channel\turl\tship-service-level\tproduct-name\tsku\tasin\titem-status\tquantity\tcurrency\titem-price\titem-tax\tshipping-price\tshipping-tax\tgift-wrap-price\tgift-wrap-tax\titem-promotion-discount\tship-promotion-discount\tship-city\tship-state\tship-postal-code\tship-country\tpromotion-ids\tis-business-order\tpurchase-order-number\tprice-designation";

/// An All Orders row from [id, purchase-date, last-updated-date, status, sales-channel, currency,
/// item-price, item-tax, ship-country].
fn amazon_row([id, at, updated, status, channel, currency, price, tax, country]: [&str; 9]) -> String {
    format!(
        "{id}\t{id}\t{at}\t{updated}\t{status}\tAmazon\t{channel}\t\t\tStandard\tPillow 12\" x 18\"\tp1\tB0\t{status}\t1\t{currency}\t{price}\t{tax}\t\t\t\t\t\t\tCity\t\t00000\t{country}\t\tfalse\t\t"
    )
}

const SHOPIFY_HEADER: &str = "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,Lineitem quantity,Lineitem price,Billing Country,Shipping Country,Cancelled at,Refunded Amount,Tags,Source";

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn orders(out: &Path, market: &str) -> Table {
    Table::read(&out.join(format!("orders/market={market}/part-0.parquet")))
}

#[test]
fn unify_rules_on_three_platforms() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Amazon: A1 is pending (no price) in the older pull and shipped in the newer one, whose file
    // name sorts first, as two identical rows (two units at 20.00 USD: not duplicates). A2
    // (Amazon.co.uk, 30.00 GBP with 5.00 VAT inside) is only in the older pull. Both belong to one
    // relay buyer, whose first order (A2, 2024-02-01) is in the UK.
    let a1_pending =
        ["A1", "2024-03-01T10:00:00+00:00", "2024-03-01T11:00:00+00:00", "Pending", "Amazon.com", "USD", "", "", "US"];
    let a1_shipped = [
        "A1",
        "2024-03-01T10:00:00+00:00",
        "2024-03-03T09:00:00+00:00",
        "Shipped",
        "Amazon.com",
        "USD",
        "20.00",
        "1.60",
        "US",
    ];
    let a2 = [
        "A2",
        "2024-02-01T10:00:00+00:00",
        "2024-02-02T10:00:00+00:00",
        "Shipped",
        "Amazon.co.uk",
        "GBP",
        "30.00",
        "5.00",
        "GB",
    ];
    let pull = |rows: &[[&str; 9]]| {
        let mut lines = vec![AMAZON_HEADER.to_string()];
        lines.extend(rows.iter().map(|r| amazon_row(*r)));
        lines.join("\n") + "\n"
    };
    write(d, "amazon/orders_1.txt", &pull(&[a1_pending, a2]));
    write(d, "amazon/orders_0.txt", &pull(&[a1_shipped, a1_shipped]));
    write(
        d,
        "amazon/shipments.txt",
        "amazon-order-id\tbuyer-email\tbill-country\nA1\tr1@marketplace.amazon.com\tGB\nA2\tr1@marketplace.amazon.com\tGB\n",
    );
    // Shopify: #1 Ann (US, 50.00 + 4.00 tax, tax-exclusive) on 2024-01-10; #2 a test order; #3 a
    // copy of an Amazon order; #4 Ann after as_of; #5 no e-mail; #6 Ann cancelled.
    write(d, "shopify/export.csv", &[
        SHOPIFY_HEADER,
        "#1,Ann@Mail.de,paid,USD,50.00,0.00,4.00,54.00,0.00,2024-01-10 09:00:00 -0500,1,50.00,US,US,,0.00,,web",
        "#2,test@shop.com,paid,USD,10.00,0.00,0.00,10.00,0.00,2024-01-11 09:00:00 -0500,1,10.00,US,US,,0.00,test,web",
        "#3,x@marketplace.amazon.com,paid,USD,20.00,0.00,0.00,20.00,0.00,2024-03-01 09:00:00 -0500,1,20.00,US,US,,0.00,,amazon",
        "#4,ann@mail.de,paid,USD,99.00,0.00,0.00,99.00,0.00,2025-06-01 09:00:00 -0400,1,99.00,US,US,,0.00,,web",
        "#5,,paid,USD,15.00,0.00,0.00,15.00,0.00,2024-01-12 09:00:00 -0500,1,15.00,US,US,,0.00,,web",
        "#6,ann@mail.de,voided,USD,40.00,0.00,0.00,40.00,0.00,2024-01-20 09:00:00 -0500,1,40.00,US,US,2024-01-20 10:00:00 -0500,0.00,,web",
        "",
    ].join("\n"));
    // The shop: ANN@mail.de buys 100.00 EUR (ex tax) shipped to Germany on 2024-02-15.
    write(
        d,
        "shop/orders.csv",
        "order_id,order_date,status,order_total,order_currency,customer_id,billing_email,shipping_country,line_item_1\n\
        9001,2024-02-15 12:00:00,completed,119.00,EUR,0,ANN@mail.de,DE,name:Blanket|quantity:1|total:100.00|sub_total:100.00\n",
    );
    write(d, "fx.csv", "date,currency,rate\n2024-01-01,EUR,1.10\n2024-01-01,GBP,1.30\n2024-02-10,EUR,1.20\n");
    let yaml = format!(
        "name: t\nbase_currency: USD\nfx_rates: {d}/fx.csv\nmarkets: {{ us: [US], uk: [GB], eu: [DE] }}\nstages:\n\
         - load: {{ id: amazon, source: amazon, path: '{d}/amazon/orders_*.txt', buyers: '{d}/amazon/shipments.txt' }}\n\
         - load: {{ id: shopify, source: shopify, path: '{d}/shopify/*.csv' }}\n\
         - load: {{ id: shop, source: woocommerce, path: '{d}/shop/*.csv', timezone: Europe/Berlin }}\n\
         - unify: {{ id: orders, inputs: [amazon, shopify, shop] }}\n",
        d = d.display()
    );
    std::fs::write(d.join("p.yaml"), &yaml).unwrap();
    let p = config::load(&d.join("p.yaml")).unwrap();
    let out = d.join("out");
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 12, 31);
    pipeline::run(&p, &RunOptions { out: Some(out.clone()), as_of, ..Default::default() }).unwrap();

    let us = orders(&out, "us");
    let uk = orders(&out, "uk");
    assert_eq!(orders(&out, "eu").rows(), 0, "nobody's first order was in the EU");
    // Ann: #1 (50.00 USD), #6 (cancelled: net 0) and the shop order, which is hers (same e-mail,
    // other case) and so in her first order's market: 100.00 EUR at the 2024-02-10 rate 1.20 = 120.00.
    assert_eq!(us.rows(), 3);
    let ids = us.texts("customer_id");
    assert!(ids.iter().all(|i| *i == ids[0]), "one customer across Shopify and the shop: {ids:?}");
    assert!(ids[0].len() == 32 && !ids[0].contains('@'));
    let net_base: f64 = us.numbers("net_base").iter().sum();
    assert!((net_base - 170.0).abs() < 1e-9, "us revenue {net_base}");
    let sources = us.texts("source");
    assert!(sources.contains(&"shop".to_string()));
    // The relay buyer: A2 = (30.00 - 5.00 VAT) * 1.30 = 32.50; A1 from the newer pull: 2 x 20.00.
    assert_eq!(uk.rows(), 3);
    let uk_net: f64 = uk.numbers("net_base").iter().sum();
    assert!((uk_net - 72.5).abs() < 1e-9, "uk revenue {uk_net}");

    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    let acc = &manifest["accounting"];
    assert_eq!(acc["amazon"]["rows_read"], 4);
    assert_eq!(acc["amazon"]["kept"], 3);
    assert_eq!(acc["amazon"]["dropped"]["duplicate: the same order is in a newer export file"], 1);
    assert_eq!(acc["shopify"]["rows_read"], 6);
    assert_eq!(acc["shopify"]["kept"], 2);
    assert_eq!(acc["shopify"]["dropped"]["test order"], 1);
    assert_eq!(acc["shopify"]["dropped"]["ordered after as_of (2024-12-31)"], 1);
    assert_eq!(acc["shopify"]["dropped"]["no customer (no e-mail or customer id)"], 1);
    assert_eq!(
        acc["shopify"]["dropped"]["cross-channel duplicate: Shopify order from amazon, loaded from that platform's own export"],
        1
    );
    let report = std::fs::read_to_string(out.join("reports/us.md")).unwrap();
    assert!(report.contains("| **all sources** | 2 | 1 | 170.00 |"), "{report}");
}

fn generic_pipeline(d: &Path, rows: &str, max_reject_rate: &str) -> config::Pipeline {
    write(d, "legacy.csv", &format!("order,customer,date,amount,country\n{rows}"));
    let yaml = format!(
        "name: t\nbase_currency: GBP\nmarkets: {{ uk: [GB] }}\nstages:\n\
         - load: {{ id: legacy, source: csv, path: '{d}/legacy.csv', max_reject_rate: {max_reject_rate}, \
           columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount, country: country }}, constants: {{ currency: GBP }} }}\n\
         - unify: {{ id: orders, inputs: [legacy] }}\n",
        d = d.display()
    );
    std::fs::write(d.join("p.yaml"), yaml).unwrap();
    config::load(&d.join("p.yaml")).unwrap()
}

#[test]
fn country_names_and_unrecognised_countries() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let p = generic_pipeline(
        d,
        "1,a@shop.io,2024-01-01,10.00,United Kingdom\n2,b@shop.io,2024-01-02,20.00,Unspecified\n3,c@shop.io,2024-01-03,30.00,European Community\n",
        "0.01",
    );
    let out = d.join("out");
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 12, 31);
    pipeline::run(&p, &RunOptions { out: Some(out.clone()), as_of, ..Default::default() }).unwrap();
    assert_eq!(orders(&out, "uk").numbers("net_base"), [10.0]);
    assert_eq!(orders(&out, "uk").texts("country"), ["GB"]);
    let mut other = orders(&out, "other").numbers("net_base");
    other.sort_by(f64::total_cmp);
    assert_eq!(other, [20.0, 30.0]);
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["accounting"]["legacy"]["unknown_country"], 2);
    let report = std::fs::read_to_string(out.join("reports/other.md")).unwrap();
    assert!(report.contains("2 kept row(s) name a country that is not an ISO country"), "{report}");
}

#[test]
fn too_many_rejects_exit_1_and_publish_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generic_pipeline(d, "1,a@shop.io,2024-01-01,10.00,GB\n2,b@shop.io,yesterday,20.00,GB\n", "0.01");
    let out = d.join("out");
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", d.join("p.yaml").to_str().unwrap(), "--out", out.to_str().unwrap(), "--as-of", "2024-12-31"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("source `legacy`: 1 of 2 rows rejected (50.0%), above max_reject_rate 1.0%"), "{stderr}");
    assert!(stderr.contains("legacy.csv:3: unparseable ordered_at 'yesterday'"), "{stderr}");
    assert!(!out.join("orders").exists() && !out.join("manifest.json").exists(), "nothing is published");
}

#[test]
fn missing_column_exits_2_before_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    generic_pipeline(d, "", "0.01");
    write(d, "legacy.csv", "order,customer,when,amount,country\n1,a@shop.io,2024-01-01,10.00,GB\n");
    let out = d.join("out");
    std::fs::create_dir_all(out.join("orders/market=uk")).unwrap();
    std::fs::write(out.join("orders/market=uk/part-0.parquet"), b"yesterday's output").unwrap();
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_clv"))
        .args(["run", d.join("p.yaml").to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("legacy.csv: missing required column(s) 'date'; the file has 5 column(s): order, customer, when, amount, country"), "{stderr}");
    assert_eq!(std::fs::read(out.join("orders/market=uk/part-0.parquet")).unwrap(), b"yesterday's output");
}

/// Every string value of every output file: Parquet decoded with arrow-rs, text files as they are.
fn output_strings(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                let t = Table::read(&p);
                for f in t.batch.schema().fields() {
                    if f.data_type() == &arrow::datatypes::DataType::Utf8 {
                        out.extend(t.texts(f.name()).into_iter().map(|v| (p.display().to_string(), v)));
                    }
                }
            } else {
                out.push((p.display().to_string(), String::from_utf8_lossy(&std::fs::read(&p).unwrap()).into_owned()));
            }
        }
    }
    out
}

#[test]
fn no_email_name_phone_or_address_reaches_any_output() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A good order and two bad ones (unreadable date, unreadable price), full of personal data.
    write(
        d,
        "shopify/export.csv",
        &[
            "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,Lineitem quantity,Lineitem price,Billing Name,Billing Street,Billing Phone,Shipping Country",
            "#1,Jane.Roe@Mail.de,paid,USD,50.00,0.00,0.00,50.00,0.00,2024-01-10 09:00:00 -0500,1,50.00,Jane Roe,12 Elm Street,+1 555 0100,US",
            "#2,john.doe@mail.de,paid,USD,20.00,0.00,0.00,20.00,0.00,soon,1,20.00,John Doe,\"3 Oak Road, Apt 4\",+1 555 0199,US",
            "#3,ann.poe@mail.de,paid,USD,20.00,0.00,0.00,20.00,0.00,2024-01-11 09:00:00 -0500,1,2O.00,Ann Poe,9 Pine Lane,+1 555 0142,US",
            "",
        ]
        .join("\n"),
    );
    let yaml = format!(
        "name: t\nbase_currency: USD\nmarkets: {{ us: [US] }}\nstages:\n\
         - load: {{ id: shopify, source: shopify, path: '{d}/shopify/*.csv', max_reject_rate: 1.0 }}\n\
         - unify: {{ id: orders, inputs: [shopify] }}\n\
         - summarize: {{ id: rfm, input: orders }}\n\
         - clv: {{ id: clv, input: rfm, min_customers: 1 }}\n",
        d = d.display()
    );
    std::fs::write(d.join("p.yaml"), yaml).unwrap();
    let out = d.join("out");
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 12, 31);
    pipeline::run(
        &config::load(&d.join("p.yaml")).unwrap(),
        &RunOptions { out: Some(out.clone()), as_of, ..Default::default() },
    )
    .unwrap();
    let rejects = Table::read(&out.join("rejects/source=shopify/part-0.parquet"));
    assert_eq!(rejects.rows(), 2, "the two bad rows are rejected and kept for inspection");
    assert!(rejects.texts("raw")[0].contains("soon"), "{:?}", rejects.texts("raw"));
    let strings = output_strings(&out);
    assert!(strings.len() > 10);
    for needle in [
        "@",
        "Jane",
        "Roe",
        "John",
        "Doe",
        "Ann Poe",
        "Elm Street",
        "Oak Road",
        "Pine Lane",
        "555 0100",
        "555 0199",
        "555 0142",
    ] {
        for (file, value) in &strings {
            assert!(!value.contains(needle), "{needle:?} in {file}: {value}");
        }
    }
}
