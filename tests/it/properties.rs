//! Property tests: the loaders never panic on arbitrary bytes (they load or say why not), and
//! orders written by a test writer in a platform's format load back to the same rows and totals.

use crate::support::*;
use clv::schema;
use proptest::prelude::*;

const SHOPIFY_HEADER: &str = "Name,Email,Financial Status,Currency,Subtotal,Shipping,Taxes,Total,Discount Amount,Created at,Lineitem quantity,Lineitem price,Shipping Country";

/// Text that looks like an export: header-ish words, delimiters, quotes, dates, numbers, newlines.
fn export_like() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        Just("\t".to_string()),
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("2024-01-05T10:00:00+00:00".to_string()),
        Just("2024-01-05 10:00:00 -0500".to_string()),
        Just("12,50".to_string()),
        Just("-3.5".to_string()),
        Just("a@b.io".to_string()),
        "[a-zA-Z0-9 .#@'-]{0,12}",
    ];
    let header = prop_oneof![
        Just(SHOPIFY_HEADER.to_string()),
        Just("amazon-order-id\tpurchase-date\torder-status\tquantity\tcurrency\titem-price".to_string()),
        Just("order_id,order_date,status,order_currency,billing_email,line_item_1".to_string()),
        Just("order,customer,date,amount".to_string()),
    ];
    (header, proptest::collection::vec(token, 0..80)).prop_map(|(h, t)| format!("{h}\n{}", t.concat()).into_bytes())
}

fn any_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![proptest::collection::vec(any::<u8>(), 0..300), export_like()]
}

proptest! {
    // 48 cases in the suite; PROPTEST_CASES=2000 for a deeper search.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn loaders_never_panic_on_arbitrary_bytes(bytes in any_bytes(), kind in 0usize..4) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.txt");
        std::fs::write(&path, &bytes).unwrap();
        let stage = lenient_stage(["amazon", "shopify", "woocommerce", "csv"][kind], &path.display().to_string());
        // Either it loads (every record accounted for) or it fails with an error; never a panic.
        assert_loads_or_fails(&stage);
    }

    #[test]
    fn shopify_orders_round_trip(orders in proptest::collection::vec(
        (proptest::collection::vec((1u32..6, 1u32..50_000), 1..4), 0usize..4, any::<bool>()), 1..8)
    ) {
        let emails = ["ann@mail.de", "bob@mail.de", "cy@mail.de", "di@mail.de"];
        let mut text = format!("{SHOPIFY_HEADER}\n");
        let (mut lines, mut total) = (0usize, 0.0f64);
        for (n, (items, who, upper)) in orders.iter().enumerate() {
            let sub: f64 = items.iter().map(|(q, c)| *q as f64 * *c as f64 / 100.0).sum();
            let email = if *upper { emails[*who].to_uppercase() } else { emails[*who].to_string() };
            for (k, (q, cents)) in items.iter().enumerate() {
                let price = format!("{:.2}", *cents as f64 / 100.0);
                if k == 0 {
                    text += &format!("#{},{email},paid,USD,{sub:.2},0.00,0.00,{sub:.2},0.00,2024-01-05 10:00:00 -0500,{q},{price},US\n", 1000 + n);
                } else {
                    text += &format!("#{},{email},,,,,,,,2024-01-05 10:00:00 -0500,{q},{price},\n", 1000 + n);
                }
                lines += 1;
                total += *q as f64 * *cents as f64 / 100.0;
            }
        }
        let (_dir, path) = temp_file("orders.csv", text.as_bytes());
        let l = load(&format!("{{ id: src, source: shopify, path: '{path}' }}"));
        prop_assert_eq!(l.rejects.height(), 0);
        prop_assert_eq!(l.lines.height(), lines);
        prop_assert!((sum(&l.lines, schema::GROSS) - total).abs() < 1e-6);
        prop_assert!((sum(&l.lines, schema::NET) - total).abs() < 1e-6);
        let keys = strings(&l.lines, schema::aux::CUSTOMER_KEY);
        prop_assert!(keys.iter().all(|k| k.as_deref().is_some_and(|k| k.starts_with("email:") && k == k.to_lowercase())));
    }

    #[test]
    fn generic_csv_with_decimal_commas_round_trips(amounts in proptest::collection::vec(0i64..10_000_000, 1..20)) {
        let mut text = String::from("order;customer;date;amount\n");
        for (i, cents) in amounts.iter().enumerate() {
            let (units, rest) = (cents / 100, cents % 100);
            // European style with thousands dots, or plain with a decimal point: both in one file.
            let amount = if i % 2 == 0 {
                let grouped = units.to_string().as_bytes().rchunks(3).rev().map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(".");
                format!("{grouped},{rest:02}")
            } else {
                format!("{units}.{rest:02}")
            };
            text += &format!("O{i};c{i}@mail.de;2024-01-05;{amount}\n");
        }
        let (_dir, path) = temp_file("legacy.csv", text.as_bytes());
        let l = load(&format!(
            "{{ id: src, source: csv, path: '{path}', delimiter: ';', decimal_comma: true, \
               columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount }}, constants: {{ currency: USD }} }}"
        ));
        prop_assert_eq!(l.rejects.height(), 0);
        let want: f64 = amounts.iter().map(|c| *c as f64 / 100.0).sum();
        prop_assert!((sum(&l.lines, schema::NET) - want).abs() < 1e-6 * want.max(1.0));
    }
}
