//! The `customers` and `markets` output tables of the clv stage, as frames for the Parquet writer.

use crate::clv::{Errors, Fits, MarketResult};
use crate::cohort::Cohorts;
use crate::error::{Context, Result};
use crate::frame;
use crate::segment::Segments;
use crate::summarize::Market;
use polars::prelude::*;

/// Money columns of `customers` (written as DECIMAL(18,2)).
pub const CUSTOMER_MONEY: [&str; 5] = ["revenue", "monetary", "historical_clv", "expected_spend", "predicted_clv"];
/// Money columns of `markets`.
pub const MARKET_MONEY: [&str; 7] =
    ["revenue", "aov", "clv_basic", "clv_retention", "clv_b2b", "clv_historical", "predicted_clv_total"];

fn f64s(name: &str, v: Vec<Option<f64>>) -> Column {
    Column::new(name.into(), v)
}

fn date(name: &str, days: Vec<Option<i32>>) -> Result<Column> {
    Column::new(name.into(), days).cast(&DataType::Date).ctx(|| format!("{name} as date"))
}

pub fn customers(m: &Market, r: &MarketResult, seg: Option<&Segments>) -> Result<DataFrame> {
    let s = &r.scores;
    let rfm = |f: fn(&crate::summarize::Rfm) -> f64| s.rfm.iter().map(|x| x.as_ref().map(f)).collect::<Vec<_>>();
    let mut columns = vec![
        Column::new("customer_id".into(), m.customers.iter().map(|c| c.id.as_str()).collect::<Vec<_>>()),
        date("first_purchase", m.customers.iter().map(|c| c.first_day()).collect())?,
        date("last_purchase", m.customers.iter().map(|c| c.last_day()).collect())?,
        Column::new("orders".into(), m.customers.iter().map(|c| c.orders as i64).collect::<Vec<_>>()),
        f64s("frequency", rfm(|r| r.frequency)),
        f64s("recency", rfm(|r| r.recency)),
        f64s("tenure", rfm(|r| r.tenure)),
        f64s("revenue", m.customers.iter().map(|c| Some(c.revenue)).collect()),
        f64s("monetary", rfm(|r| r.monetary)),
        f64s("historical_clv", s.historical_clv.iter().map(|v| Some(*v)).collect()),
        f64s("p_alive", s.p_alive.clone()),
        f64s("expected_purchases", s.expected_purchases.clone()),
        f64s("expected_spend", s.expected_spend.clone()),
        f64s("predicted_clv", s.predicted_clv.clone()),
    ];
    if let Some(g) = seg {
        let score = |v: &[u8]| v.iter().map(|s| *s as i64).collect::<Vec<_>>();
        columns.extend([
            Column::new("tier".into(), g.tier.clone()),
            Column::new("r_score".into(), score(&g.r_score)),
            Column::new("f_score".into(), score(&g.f_score)),
            Column::new("m_score".into(), score(&g.m_score)),
            Column::new("rfm_segment".into(), g.rfm_segment.clone()),
            Column::new("lifecycle".into(), g.lifecycle.clone()),
        ]);
    }
    frame::frame(columns)
}

/// Money columns of the action lists.
pub const ACTION_MONEY: [&str; 1] = ["value_at_stake"];

/// One action list of a market, highest value first.
pub fn actions(m: &Market, r: &MarketResult, seg: &Segments, list: &str) -> Result<DataFrame> {
    let rows: Vec<&crate::segment::Action> = seg.actions.iter().filter(|a| a.list == list).collect();
    frame::frame(vec![
        Column::new("customer_id".into(), rows.iter().map(|a| m.customers[a.customer].id.as_str()).collect::<Vec<_>>()),
        Column::new("tier".into(), rows.iter().map(|a| seg.tier[a.customer]).collect::<Vec<_>>()),
        Column::new("lifecycle".into(), rows.iter().map(|a| seg.lifecycle[a.customer]).collect::<Vec<_>>()),
        // Rounded here too, for the CSV that people open in Excel.
        f64s(
            "p_alive",
            rows.iter().map(|a| r.scores.p_alive[a.customer].map(|p| (p * 1000.0).round() / 1000.0)).collect(),
        ),
        f64s("value_at_stake", rows.iter().map(|a| Some((a.value * 100.0).round() / 100.0)).collect()),
        Column::new("reason".into(), rows.iter().map(|a| a.reason.as_str()).collect::<Vec<_>>()),
    ])
}

/// A small frame as CSV text (header, then one line per row), for people who open Excel.
pub fn csv(df: &DataFrame) -> Result<String> {
    let names: Vec<String> = df.get_column_names().iter().map(|n| n.to_string()).collect();
    let columns: Vec<StringChunked> = names.iter().map(|n| frame::as_text(df, n)).collect::<Result<_>>()?;
    let mut cells: Vec<_> = columns.iter().map(|c| c.iter()).collect();
    let mut out = String::new();
    csv_line(&mut out, names.iter().map(String::as_str));
    for _ in 0..df.height() {
        csv_line(&mut out, cells.iter_mut().map(|c| c.next().flatten().unwrap_or("")));
    }
    Ok(out)
}

fn csv_line<'a>(out: &mut String, values: impl Iterator<Item = &'a str>) {
    for (k, v) in values.enumerate() {
        if k > 0 {
            out.push(',');
        }
        crate::publish::push_csv_cell(out, v);
    }
    out.push('\n');
}

/// Money columns of the CAC table.
pub const CAC_MONEY: [&str; 4] = ["spend", "cac", "historical_ltv", "predicted_ltv"];

pub fn cac(rows: &[&crate::cac::Cac]) -> Result<DataFrame> {
    frame::frame(vec![
        date("month", rows.iter().map(|r| Some(r.month)).collect())?,
        Column::new("channel".into(), rows.iter().map(|r| r.channel.as_str()).collect::<Vec<_>>()),
        Column::new("attribution".into(), rows.iter().map(|r| r.attribution).collect::<Vec<_>>()),
        f64s("spend", rows.iter().map(|r| Some(r.spend)).collect()),
        Column::new("new_customers".into(), rows.iter().map(|r| r.new_customers).collect::<Vec<_>>()),
        f64s("cac", rows.iter().map(|r| r.cac).collect()),
        f64s("historical_ltv", rows.iter().map(|r| r.historical_ltv).collect()),
        f64s("predicted_ltv", rows.iter().map(|r| r.predicted_ltv).collect()),
        f64s("ltv_cac_historical", rows.iter().map(|r| r.ltv_cac_historical).collect()),
        f64s("ltv_cac_predicted", rows.iter().map(|r| r.ltv_cac_predicted).collect()),
        Column::new("months_to_payback".into(), rows.iter().map(|r| r.months_to_payback).collect::<Vec<_>>()),
    ])
}

/// Money columns of the cohort tables.
pub const COHORT_MONEY: [&str; 2] = ["revenue", "cumulative_revenue_per_customer"];

/// The cohort rows of one market.
pub fn cohorts(c: &Cohorts, market: &str) -> Result<DataFrame> {
    let idx: Vec<usize> = (0..c.market.len()).filter(|&i| c.market[i] == market).collect();
    let pick_i64 = |v: &[i64]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
    let pick_f64 = |v: &[f64]| idx.iter().map(|&i| Some(v[i])).collect::<Vec<_>>();
    frame::frame(vec![
        Column::new("source".into(), idx.iter().map(|&i| c.source[i].as_str()).collect::<Vec<_>>()),
        date("cohort", idx.iter().map(|&i| Some(c.cohort[i])).collect())?,
        Column::new("months_since".into(), pick_i64(&c.months_since)),
        Column::new("customers".into(), pick_i64(&c.customers)),
        Column::new("active_customers".into(), pick_i64(&c.active_customers)),
        f64s("retention", pick_f64(&c.retention)),
        f64s("revenue", pick_f64(&c.revenue)),
        f64s("cumulative_revenue_per_customer", pick_f64(&c.cumulative_revenue_per_customer)),
    ])
}

fn params(fits: &Fits) -> Vec<Column> {
    let get = |f: &Option<crate::models::Fit>, i: usize| f.as_ref().map(|f| f.params[i]);
    let ll = |f: &Option<crate::models::Fit>| f.as_ref().map(|f| f.ll);
    vec![
        f64s("bgnbd_r", vec![get(&fits.bgnbd, 0)]),
        f64s("bgnbd_alpha", vec![get(&fits.bgnbd, 1)]),
        f64s("bgnbd_a", vec![get(&fits.bgnbd, 2)]),
        f64s("bgnbd_b", vec![get(&fits.bgnbd, 3)]),
        f64s("bgnbd_ll", vec![ll(&fits.bgnbd)]),
        f64s("pnbd_r", vec![get(&fits.pnbd, 0)]),
        f64s("pnbd_alpha", vec![get(&fits.pnbd, 1)]),
        f64s("pnbd_s", vec![get(&fits.pnbd, 2)]),
        f64s("pnbd_beta", vec![get(&fits.pnbd, 3)]),
        f64s("pnbd_ll", vec![ll(&fits.pnbd)]),
        f64s("gg_p", vec![get(&fits.gg, 0)]),
        f64s("gg_q", vec![get(&fits.gg, 1)]),
        f64s("gg_gamma", vec![get(&fits.gg, 2)]),
        f64s("gg_ll", vec![ll(&fits.gg)]),
    ]
}

fn holdout_columns(prefix: &str, e: Option<Errors>) -> Vec<Column> {
    vec![
        f64s(&format!("{prefix}_mae"), vec![e.map(|e| e.mae)]),
        f64s(&format!("{prefix}_rmse"), vec![e.map(|e| e.rmse)]),
        f64s(&format!("{prefix}_corr"), vec![e.map(|e| e.corr).filter(|c| c.is_finite())]),
        f64s(&format!("{prefix}_error_pct"), vec![e.map(|e| e.total_error_pct).filter(|c| c.is_finite())]),
    ]
}

pub fn market(r: &MarketResult, time_unit: &str) -> Result<DataFrame> {
    let f = &r.formulas;
    let converged = [&r.fits.bgnbd, &r.fits.pnbd, &r.fits.gg].iter().all(|f| f.as_ref().is_none_or(|f| f.converged));
    let holdout = |model: &str, revenue: bool| {
        r.holdout
            .as_ref()
            .and_then(|h| h.rows.iter().find(|row| row.model == model))
            .map(|row| if revenue { row.revenue } else { row.purchases })
    };
    let chosen = r.model.map(|k| k.name()).unwrap_or("none");
    let mut cols = vec![
        Column::new("customers".into(), [r.customers as i64]),
        Column::new("orders".into(), [r.orders as i64]),
        f64s("revenue", vec![Some(r.revenue)]),
        f64s("aov", vec![f.aov]),
        f64s("purchase_frequency", vec![f.purchase_frequency]),
        f64s("retention_rate", vec![f.retention]),
        f64s("churn_rate", vec![f.churn_rate]),
        f64s("clv_basic", vec![f.clv_basic]),
        f64s("clv_retention", vec![f.clv_retention]),
        f64s("clv_b2b", vec![f.clv_b2b]),
        f64s("clv_historical", vec![f.clv_historical]),
        f64s("predicted_clv_total", vec![Some(r.scores.predicted_clv.iter().flatten().sum())]),
        Column::new("model".into(), [chosen]),
        Column::new("time_unit".into(), [time_unit]),
    ];
    cols.extend(params(&r.fits));
    cols.push(Column::new("converged".into(), [converged]));
    cols.push(Column::new("pooled".into(), [r.pooled]));
    cols.extend(holdout_columns("holdout_purchases", holdout(chosen, false)));
    cols.extend(holdout_columns("holdout_revenue", holdout(chosen, true)));
    cols.extend(holdout_columns("naive_purchases", holdout("naive", false)));
    cols.extend(holdout_columns("naive_revenue", holdout("naive", true)));
    frame::frame(cols)
}
