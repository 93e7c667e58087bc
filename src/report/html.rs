//! `OUT/reports/<market>.html` and `index.html`: one self-contained file each (inline CSS and SVG,
//! no scripts, no network). Every number drawn in a chart is also in the table under it, and all
//! text from the data is escaped.

use super::charts::{self, escape};
use super::markdown::{SourceFigures, money, signed_pct};
use crate::cac::Cac;
use crate::clv::MarketResult;
use crate::cohort::Cohorts;
use crate::fx::from_epoch_days;
use crate::segment::Segments;
use crate::summarize::Market;
use crate::unify::Accounting;
use std::collections::BTreeMap;
use std::fmt::Write;

const STYLE: &str = "body{font-family:'DejaVu Sans',Arial,sans-serif;margin:24px auto;max-width:980px;color:#111}\
h1{font-size:24px}h2{font-size:18px;margin-top:32px;border-bottom:1px solid #ddd}\
.kpis{display:flex;gap:16px;flex-wrap:wrap}.kpi{background:#f1f5f9;border-radius:8px;padding:10px 16px}\
.kpi b{display:block;font-size:20px}table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}\
td,th{border:1px solid #ddd;padding:3px 8px;text-align:right}th:first-child,td:first-child{text-align:left}\
figure{margin:8px 0}figcaption{font-weight:bold;font-size:14px;margin-bottom:4px}\
.label{font-size:11px;fill:#333}.value{font-size:11px;fill:#111}.cell{font-size:10px}.axis{stroke:#999}\
.note{color:#555;font-size:13px}";

/// Everything one market's page shows.
pub struct Page<'a> {
    pub market: &'a str,
    pub pipeline: &'a str,
    pub as_of: &'a str,
    pub currency: &'a str,
    pub run_id: &'a str,
    /// Days per time unit (for days since the last purchase).
    pub unit_days: f64,
    pub by_source: &'a [SourceFigures],
    pub total: &'a SourceFigures,
    pub accounting: &'a BTreeMap<String, Accounting>,
    pub clv: Option<(&'a Market, &'a MarketResult)>,
    pub segments: Option<&'a Segments>,
    pub cohorts: Option<&'a Cohorts>,
    pub cac: Option<Vec<&'a Cac>>,
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut t = String::from("<table><tr>");
    for h in head {
        let _ = write!(t, "<th>{}</th>", escape(h));
    }
    t.push_str("</tr>");
    for r in rows {
        t.push_str("<tr>");
        for c in r {
            let _ = write!(t, "<td>{}</td>", escape(c));
        }
        t.push_str("</tr>");
    }
    t.push_str("</table>\n");
    t
}

fn pct(v: f64) -> String {
    format!("{:.1}%", 100.0 * v)
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>\n{body}</body></html>\n",
        escape(title)
    )
}

pub fn market_page(p: &Page) -> String {
    let cur = p.currency;
    let mut b = format!(
        "<h1>Customer lifetime value: market {}</h1><p class=\"note\">Pipeline {} as of {}, run {}. Money in {}: net merchandise value after discounts and refunds, without tax and shipping.</p>\n",
        escape(p.market),
        escape(p.pipeline),
        escape(p.as_of),
        escape(p.run_id),
        escape(cur)
    );
    let predicted: f64 = p.clv.map_or(0.0, |(_, r)| r.scores.predicted_clv.iter().flatten().sum());
    let _ = writeln!(
        b,
        "<div class=\"kpis\"><div class=\"kpi\">customers<b>{}</b></div><div class=\"kpi\">orders<b>{}</b></div><div class=\"kpi\">revenue ({cur})<b>{}</b></div><div class=\"kpi\">predicted CLV, next horizon ({cur})<b>{}</b></div></div>",
        p.total.customers,
        p.total.orders,
        money(p.total.revenue),
        money(predicted)
    );

    b.push_str("<h2>Revenue by source</h2>");
    let items: Vec<(String, f64)> = p.by_source.iter().map(|f| (f.source.clone(), f.revenue)).collect();
    b.push_str(&charts::bars(&format!("Revenue by source ({cur})"), &items, &|v| money(v)));
    let rows: Vec<Vec<String>> = p
        .by_source
        .iter()
        .chain([p.total])
        .map(|f| vec![f.source.clone(), f.orders.to_string(), f.customers.to_string(), money(f.revenue)])
        .collect();
    b.push_str(&table(&["source", "orders", "customers", &format!("revenue ({cur})")], &rows));

    if let (Some((m, r)), Some(seg)) = (p.clv, p.segments) {
        value_sections(&mut b, m, r, seg, cur, p.unit_days);
    }
    if let Some((_, r)) = p.clv {
        holdout_section(&mut b, r);
    }
    if let Some(c) = p.cohorts {
        cohort_sections(&mut b, c, p.market, cur);
    }
    match &p.cac {
        Some(rows) => cac_section(&mut b, rows, cur),
        None => b.push_str(
            "<h2>Acquisition cost</h2><p class=\"note\">No marketing spend data. Add a <code>spend</code> stage with a CSV of month,market,channel,spend,currency to see CAC, LTV:CAC and months to pay back.</p>\n",
        ),
    }
    b.push_str("<h2>Data quality</h2>");
    let rows: Vec<Vec<String>> = p
        .accounting
        .iter()
        .map(|(s, a)| {
            vec![
                s.clone(),
                a.rows_read.to_string(),
                a.kept.to_string(),
                a.dropped.values().sum::<u64>().to_string(),
                a.rejected.values().sum::<u64>().to_string(),
                if a.balanced() && a.revenue_balanced() { "yes".into() } else { "NO".into() },
            ]
        })
        .collect();
    b.push_str(&table(&["source", "rows read", "kept", "dropped", "rejected", "reconciled"], &rows));
    page(&format!("clv: {}", p.market), &b)
}

fn value_sections(b: &mut String, m: &Market, r: &MarketResult, seg: &Segments, cur: &str, unit_days: f64) {
    let clv: Vec<f64> = r.scores.predicted_clv.iter().map(|v| v.unwrap_or(0.0)).collect();
    let total: f64 = clv.iter().sum::<f64>().max(1e-12);
    let n = m.customers.len().max(1) as f64;
    let tiers = ["vip", "mid", "low"];
    let share = |t: &str| seg.tier.iter().filter(|x| **x == t).count() as f64 / n;
    let value = |t: &str| seg.tier.iter().zip(&clv).filter(|(x, _)| **x == t).map(|(_, v)| v).sum::<f64>() / total;
    b.push_str("<h2>Who holds the value</h2>");
    let cats: Vec<String> = tiers.iter().map(|t| t.to_string()).collect();
    let series = vec![
        ("share of customers".to_string(), tiers.iter().map(|t| share(t)).collect::<Vec<_>>()),
        ("share of predicted CLV".to_string(), tiers.iter().map(|t| value(t)).collect()),
    ];
    b.push_str(&charts::grouped_bars("Customers vs predicted value by tier", &cats, &series, &|v| pct(v)));
    let rows: Vec<Vec<String>> = tiers.iter().map(|t| vec![t.to_string(), pct(share(t)), pct(value(t))]).collect();
    b.push_str(&table(&["tier", "share of customers", "share of predicted CLV"], &rows));

    let edges = [0.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];
    let bins: Vec<(String, f64)> = edges
        .iter()
        .enumerate()
        .map(|(k, lo)| {
            let hi = edges.get(k + 1).copied().unwrap_or(f64::INFINITY);
            let count = clv.iter().filter(|v| **v >= *lo && **v < hi).count() as f64;
            let label = if hi.is_finite() { format!("{lo:.0} - {hi:.0}") } else { format!("{lo:.0} +") };
            (label, count)
        })
        .collect();
    b.push_str(&format!("<h2>Predicted CLV ({cur}) per customer</h2>"));
    b.push_str(&charts::bars("Customers by predicted CLV", &bins, &|v| format!("{v:.0}")));
    let rows: Vec<Vec<String>> = bins.iter().map(|(l, c)| vec![l.clone(), format!("{c:.0}")]).collect();
    b.push_str(&table(&[&format!("predicted CLV ({cur})"), "customers"], &rows));

    // Mean P(alive) by repeat purchases and by days since the last purchase.
    let f_buckets = ["0", "1", "2", "3-5", "6+"];
    let r_buckets = ["0-30 days", "31-90", "91-180", "181-365", "365+"];
    let f_of = |x: f64| match x as i64 {
        0 => 0,
        1 => 1,
        2 => 2,
        3..=5 => 3,
        _ => 4,
    };
    let r_of = |days: f64| match days {
        d if d <= 30.0 => 0,
        d if d <= 90.0 => 1,
        d if d <= 180.0 => 2,
        d if d <= 365.0 => 3,
        _ => 4,
    };
    let mut sum = vec![vec![(0.0, 0.0); 5]; 5];
    for (rfm, p) in r.scores.rfm.iter().zip(&r.scores.p_alive) {
        let (Some(rfm), Some(p)) = (rfm, p) else { continue };
        let idle_days = (rfm.tenure - rfm.recency) * unit_days;
        let cell = &mut sum[f_of(rfm.frequency)][r_of(idle_days)];
        *cell = (cell.0 + p, cell.1 + 1.0);
    }
    let values: Vec<Vec<Option<f64>>> =
        sum.iter().map(|row| row.iter().map(|(s, n)| (*n > 0.0).then(|| s / n)).collect()).collect();
    b.push_str("<h2>Who is still active</h2>");
    let rows_l: Vec<String> = f_buckets.iter().map(|f| format!("{f} repeat")).collect();
    let cols_l: Vec<String> = r_buckets.iter().map(|r| r.to_string()).collect();
    b.push_str(&charts::heatmap(
        "Mean P(alive) by repeat purchases (rows) and days since the last purchase (columns)",
        &rows_l,
        &cols_l,
        &values,
        &|v| format!("{:.0}%", 100.0 * v),
    ));
    let rows: Vec<Vec<String>> = rows_l
        .iter()
        .zip(&values)
        .map(|(l, vs)| std::iter::once(l.clone()).chain(vs.iter().map(|v| v.map_or("-".into(), pct))).collect())
        .collect();
    let head: Vec<&str> = std::iter::once("repeat purchases").chain(r_buckets.iter().copied()).collect();
    b.push_str(&table(&head, &rows));
}

fn holdout_section(b: &mut String, r: &MarketResult) {
    let Some(h) = &r.holdout else { return };
    b.push_str(&format!("<h2>Predicted vs actual: the last {:.0} days</h2>", h.days));
    let models: Vec<String> = h.rows.iter().map(|x| x.model.clone()).collect();
    let predicted: Vec<f64> =
        h.rows.iter().map(|x| h.actual_purchases * (1.0 + x.purchases.total_error_pct / 100.0)).collect();
    let series = vec![
        ("predicted purchases".to_string(), predicted.clone()),
        ("actual purchases".to_string(), vec![h.actual_purchases; models.len()]),
    ];
    b.push_str(&charts::grouped_bars(
        "Purchases in the holdout: predicted by each model vs actual",
        &models,
        &series,
        &|v| format!("{v:.0}"),
    ));
    let rows: Vec<Vec<String>> = h
        .rows
        .iter()
        .zip(&predicted)
        .map(|(x, p)| {
            vec![
                x.model.clone(),
                format!("{p:.0}"),
                format!("{:.0}", h.actual_purchases),
                format!("{:.4}", x.purchases.mae),
                signed_pct(x.purchases.total_error_pct),
            ]
        })
        .collect();
    b.push_str(&table(&["model", "predicted purchases", "actual", "MAE per customer", "total error"], &rows));
}

fn cohort_sections(b: &mut String, c: &Cohorts, market: &str, cur: &str) {
    let idx: Vec<usize> = (0..c.market.len()).filter(|&i| c.market[i] == market && c.source[i] == "all").collect();
    let mut cohorts: Vec<i32> = idx.iter().map(|&i| c.cohort[i]).collect();
    cohorts.dedup();
    let recent: Vec<i32> = cohorts.iter().rev().take(12).rev().copied().collect();
    let months = 12;
    let label = |d: i32| from_epoch_days(d).format("%Y-%m").to_string();
    let cell = |cohort: i32, k: i64, f: &dyn Fn(usize) -> f64| {
        idx.iter().find(|&&i| c.cohort[i] == cohort && c.months_since[i] == k).map(|&i| f(i))
    };
    let retention: Vec<Vec<Option<f64>>> =
        recent.iter().map(|&co| (1..=months).map(|k| cell(co, k, &|i| c.retention[i])).collect()).collect();
    let rows_l: Vec<String> = recent.iter().map(|&d| label(d)).collect();
    let cols_l: Vec<String> = (1..=months).map(|k| format!("+{k}")).collect();
    b.push_str("<h2>Cohorts: do new customers come back?</h2>");
    b.push_str(&charts::heatmap(
        "Share of each month's new customers buying again, by months since their first order",
        &rows_l,
        &cols_l,
        &retention,
        &|v| format!("{:.0}", 100.0 * v),
    ));
    let rows: Vec<Vec<String>> = rows_l
        .iter()
        .zip(&retention)
        .zip(&recent)
        .map(|((l, vs), &co)| {
            let size = cell(co, 0, &|i| c.customers[i] as f64).unwrap_or(0.0);
            [l.clone(), format!("{size:.0}")].into_iter().chain(vs.iter().map(|v| v.map_or("-".into(), pct))).collect()
        })
        .collect();
    let head: Vec<String> = ["cohort".to_string(), "customers".into()].into_iter().chain(cols_l.clone()).collect();
    b.push_str(&table(&head.iter().map(String::as_str).collect::<Vec<_>>(), &rows));

    let last: Vec<i32> = recent.iter().rev().step_by(3).take(5).rev().copied().collect();
    let series: Vec<(String, Vec<(f64, f64)>)> = last
        .iter()
        .map(|&co| {
            let pts = idx
                .iter()
                .filter(|&&i| c.cohort[i] == co)
                .map(|&i| (c.months_since[i] as f64, c.cumulative_revenue_per_customer[i]))
                .collect();
            (label(co), pts)
        })
        .collect();
    b.push_str(&charts::lines(
        &format!("Cumulative revenue per customer ({cur}) by months since the first order"),
        &series,
        "months since the first order",
        &|v| money(v),
    ));
    let rows: Vec<Vec<String>> = series
        .iter()
        .map(|(l, pts)| {
            let at = |k: f64| pts.iter().find(|p| p.0 == k).map_or("-".into(), |p| money(p.1));
            vec![l.clone(), at(0.0), at(3.0), at(6.0), at(12.0), pts.last().map_or("-".into(), |p| money(p.1))]
        })
        .collect();
    b.push_str(&table(&["cohort", "month 0", "+3", "+6", "+12", "to date"], &rows));
}

fn cac_section(b: &mut String, rows: &[&Cac], cur: &str) {
    let all: Vec<&&Cac> = rows.iter().filter(|r| r.channel == "all").collect();
    b.push_str("<h2>Acquisition cost and payback</h2><p class=\"note\">Target: LTV:CAC of 3 or more.</p>");
    let items: Vec<(String, f64)> = all
        .iter()
        .map(|r| (from_epoch_days(r.month).format("%Y-%m").to_string(), r.ltv_cac_predicted.unwrap_or(0.0)))
        .collect();
    b.push_str(&charts::bars("LTV:CAC (predicted) by acquisition month, all channels", &items, &|v| format!("{v:.2}")));
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                from_epoch_days(r.month).format("%Y-%m").to_string(),
                format!("{} ({})", r.channel, r.attribution),
                money(r.spend),
                r.new_customers.to_string(),
                r.cac.map_or("n/a".into(), money),
                r.ltv_cac_historical.map_or("n/a".into(), |v| format!("{v:.2}")),
                r.ltv_cac_predicted.map_or("n/a".into(), |v| format!("{v:.2}")),
                r.months_to_payback.map_or("not yet".into(), |m| m.to_string()),
            ]
        })
        .collect();
    let spend = format!("spend ({cur})");
    b.push_str(&table(
        &[
            "month",
            "channel",
            &spend,
            "new customers",
            "CAC",
            "LTV:CAC historical",
            "LTV:CAC predicted",
            "months to pay back",
        ],
        &table_rows,
    ));
}

/// One line of the markets comparison.
pub struct MarketLine {
    pub market: String,
    pub customers: u64,
    pub revenue: f64,
    pub predicted_clv: f64,
    pub ltv_cac: Option<f64>,
}

pub fn index_page(lines: &[MarketLine], pipeline: &str, as_of: &str, currency: &str) -> String {
    let mut b = format!(
        "<h1>Customer lifetime value by market</h1><p class=\"note\">Pipeline {} as of {}. Money in {}.</p>\n",
        escape(pipeline),
        escape(as_of),
        escape(currency)
    );
    let items = |f: &dyn Fn(&MarketLine) -> f64| lines.iter().map(|l| (l.market.clone(), f(l))).collect::<Vec<_>>();
    b.push_str(&charts::bars("Customers", &items(&|l| l.customers as f64), &|v| format!("{v:.0}")));
    b.push_str(&charts::bars(
        &format!("Predicted CLV per customer ({currency})"),
        &items(&|l| l.predicted_clv / (l.customers.max(1) as f64)),
        &|v| money(v),
    ));
    // Markets without spend data have no LTV:CAC: they are left out of the chart, not drawn as 0.
    let ltv_cac: Vec<(String, f64)> = lines.iter().filter_map(|l| l.ltv_cac.map(|v| (l.market.clone(), v))).collect();
    if !ltv_cac.is_empty() {
        b.push_str(&charts::bars("LTV:CAC (predicted, all months)", &ltv_cac, &|v| format!("{v:.2}")));
    }
    let mut t = String::from(
        "<table><tr><th>market</th><th>customers</th><th>revenue</th><th>predicted CLV</th><th>per customer</th><th>LTV:CAC</th></tr>",
    );
    for l in lines {
        let _ = write!(
            t,
            "<tr><td><a href=\"{m}.html\">{m}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            l.customers,
            money(l.revenue),
            money(l.predicted_clv),
            money(l.predicted_clv / (l.customers.max(1) as f64)),
            l.ltv_cac.map_or("n/a".into(), |v| format!("{v:.2}")),
            m = escape(&l.market)
        );
    }
    t.push_str("</table>\n");
    b.push_str(&t);
    page("clv: markets", &b)
}
