//! CAC and LTV:CAC on a small example worked out by hand.

use crate::support::Table;
use clv::config;
use clv::pipeline::{self, RunOptions};

#[test]
fn ltv_to_cac_on_a_hand_computed_example() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("orders.csv"),
        "order,customer,date,amount,country\n1,a@shop.io,2024-01-10,100.00,GB\n2,b@shop.io,2024-01-20,40.00,GB\n\
         3,a@shop.io,2024-03-05,50.00,GB\n4,c@shop.io,2024-02-01,60.00,GB\n",
    )
    .unwrap();
    std::fs::write(
        d.join("spend.csv"),
        "month,market,channel,spend,currency\n2024-01,uk,google,60,GBP\n2024-01,uk,meta,20,GBP\n2024-02,uk,google,30,GBP\n",
    )
    .unwrap();
    let yaml = format!(
        "name: t\nbase_currency: GBP\nmarkets: {{ uk: [GB] }}\nstages:\n\
         - load: {{ id: shop, source: csv, path: '{d}/orders.csv', columns: {{ order_id: order, customer: customer, ordered_at: date, amount: amount, country: country }}, constants: {{ currency: GBP }} }}\n\
         - unify: {{ id: orders, inputs: [shop] }}\n\
         - summarize: {{ id: rfm, input: orders }}\n\
         - clv: {{ id: clv, input: rfm, margin: 0.5, min_customers: 1 }}\n\
         - cohorts: {{ id: cohorts, input: orders }}\n\
         - spend: {{ id: spend, path: '{d}/spend.csv' }}\n",
        d = d.display()
    );
    std::fs::write(d.join("p.yaml"), yaml).unwrap();
    let out = d.join("out");
    let as_of = chrono::NaiveDate::from_ymd_opt(2024, 6, 30);
    pipeline::run(
        &config::load(&d.join("p.yaml")).unwrap(),
        &RunOptions { out: Some(out.clone()), as_of, ..Default::default() },
    )
    .unwrap();

    let t = Table::read(&out.join("cac/market=uk/part-0.parquet"));
    let (channel, spend, new) = (t.texts("channel"), t.numbers("spend"), t.numbers("new_customers"));
    let (cac, hist, pred) = (t.numbers("cac"), t.numbers("ltv_cac_historical"), t.numbers("ltv_cac_predicted"));
    let payback = t.numbers("months_to_payback");
    let rows: Vec<(String, f64, f64, f64, f64, f64)> =
        (0..t.rows()).map(|i| (channel[i].clone(), spend[i], new[i], cac[i], hist[i], payback[i])).collect();
    // January: 2 customers, 190 of revenue (95 each, 47.5 at margin 0.5); February: 1 customer, 60 (30).
    let want = [
        ("google", 60.0, 2.0, 30.0, 47.5 / 30.0, 0.0),
        ("meta", 20.0, 2.0, 10.0, 47.5 / 10.0, 0.0),
        ("all", 80.0, 2.0, 40.0, 47.5 / 40.0, 2.0),
        ("google", 30.0, 1.0, 30.0, 1.0, 0.0),
        ("all", 30.0, 1.0, 30.0, 1.0, 0.0),
    ];
    assert_eq!(rows.len(), want.len(), "{rows:?}");
    for (got, want) in rows.iter().zip(want) {
        assert_eq!(got.0, want.0);
        for (g, w) in [got.1, got.2, got.3, got.4, got.5].iter().zip([want.1, want.2, want.3, want.4, want.5]) {
            assert!((g - w).abs() < 1e-9, "{got:?} vs {want:?}");
        }
    }
    assert!(hist.iter().zip(&pred).all(|(h, p)| p >= h), "predicted LTV adds the expected future to the past");
    let report = std::fs::read_to_string(out.join("reports/uk.md")).unwrap();
    assert!(report.contains("| 2024-01 | all (all) | 80.00 | 2 | 40.00 | 1.19 |"), "{report}");
}
