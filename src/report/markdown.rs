//! `OUT/reports/<market>.md`.

use crate::error::Result;
use crate::frame;
use crate::schema::{self, aux};
use crate::unify::Accounting;
use polars::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

pub struct Context<'a> {
    pub pipeline: &'a str,
    pub as_of: &'a str,
    pub base_currency: &'a str,
    pub run_id: &'a str,
    pub accounting: &'a BTreeMap<String, Accounting>,
}

/// Per-source figures of one market's orders (cancelled lines excluded from orders and revenue).
pub struct SourceFigures {
    pub source: String,
    pub orders: u64,
    pub customers: u64,
    pub revenue: f64,
}

/// One pass over a market's lines. Customers are counted once per run of their lines and source
/// (the published lines of a customer are consecutive, in ascending `aux::CUSTOMER` order:
/// counting runs needs no set, see [`Distinct`]), orders by their `aux::ORDER_KEY` in a bit set (a
/// hash set of order ids was most of the pass); any order of lines counts right.
pub fn figures(orders: &DataFrame) -> Result<(Vec<SourceFigures>, SourceFigures)> {
    struct Source<'a> {
        name: &'a str,
        orders: u64,
        customers: Distinct,
        revenue: f64,
        /// The customer run this source last counted.
        last_run: usize,
    }
    let text = |name: &str| frame::texts(orders, name);
    let sources = text(schema::SOURCE)?;
    let customer_ids = frame::u32_values(orders, aux::CUSTOMER)?.into_no_null_iter();
    let void = frame::map_texts(orders, schema::STATUS, |s| s.is_none_or(|s| s == schema::status::CANCELLED))?;
    let keys = frame::u32_values(orders, aux::ORDER_KEY)?;
    let net = frame::f64_column(orders, schema::NET_BASE)?;
    let mut by_source: Vec<Source> = Vec::new();
    let mut customers = Distinct::default();
    // Order keys are unique across sources: one bit per key says the order was counted.
    let mut counted = vec![0u64; keys.max().map_or(0, |m| m as usize / 64 + 1)];
    let (mut run, mut current, mut revenue) = (0, 0, 0.0);
    let lines = sources.zip(keys.into_no_null_iter()).zip(customer_ids.zip(void)).zip(net.iter());
    for (((source, key), (customer, void)), net) in lines {
        if void {
            continue;
        }
        if run == 0 || current != customer {
            (run, current) = (run + 1, customer);
            customers.add(customer);
        }
        let name = source.unwrap_or_default();
        let i = match by_source.iter().position(|s| frame::same_text(Some(s.name), Some(name))) {
            Some(i) => i,
            None => {
                by_source.push(Source { name, orders: 0, customers: Distinct::default(), revenue: 0.0, last_run: 0 });
                by_source.len() - 1
            }
        };
        let s = &mut by_source[i];
        if s.last_run != run {
            s.customers.add(customer);
            s.last_run = run;
        }
        let (word, bit) = (key as usize / 64, 1u64 << (key % 64));
        if counted[word] & bit == 0 {
            counted[word] |= bit;
            s.orders += 1;
        }
        s.revenue += net.unwrap_or(0.0);
        revenue += net.unwrap_or(0.0);
    }
    by_source.sort_by_key(|s| s.name);
    let per_source: Vec<SourceFigures> = by_source
        .iter()
        .map(|s| SourceFigures {
            source: s.name.to_string(),
            orders: s.orders,
            customers: s.customers.len(),
            revenue: s.revenue,
        })
        .collect();
    let total = SourceFigures {
        source: "all".into(),
        orders: per_source.iter().map(|f| f.orders).sum(),
        customers: customers.len(),
        revenue,
    };
    Ok((per_source, total))
}

/// Distinct values of a column met in runs: counted without a set while each run's value sorts
/// after the previous run's (a market's customers, as unify sorts them), by a set from the first
/// that does not. Two inserts per customer into large hash sets were most of [`figures`]' time.
#[derive(Default)]
struct Distinct {
    ascending: Vec<u32>,
    set: Option<PlHashSet<u32>>,
}

impl Distinct {
    fn add(&mut self, value: u32) {
        match &mut self.set {
            Some(set) => {
                set.insert(value);
            }
            None if self.ascending.last().is_none_or(|last| *last < value) => self.ascending.push(value),
            None => {
                let mut set: PlHashSet<u32> = self.ascending.drain(..).collect();
                set.insert(value);
                self.set = Some(set);
            }
        }
    }

    fn len(&self) -> u64 {
        self.set.as_ref().map_or(self.ascending.len(), PlHashSet::len) as u64
    }
}

pub fn money(v: f64) -> String {
    let s = format!("{:.2}", v.abs());
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let mut grouped = String::new();
    for (i, ch) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(ch);
    }
    format!("{}{grouped}.{frac}", if v < 0.0 { "-" } else { "" })
}

/// A relative error in percent with its sign; "n/a" where it is undefined (nothing to compare
/// with, e.g. a holdout without purchases).
pub fn signed_pct(v: f64) -> String {
    if v.is_finite() { format!("{v:+.1}%") } else { "n/a".into() }
}

/// Escapes text from the data for a Markdown table cell.
fn cell(s: &str) -> String {
    s.replace('\\', "\\\\").replace('|', "\\|").replace(['\n', '\r'], " ").replace('<', "&lt;").replace('>', "&gt;")
}

/// The market's report, from its per-source figures (see [`figures`]).
pub fn render(market: &str, by_source: &[SourceFigures], total: &SourceFigures, ctx: &Context) -> String {
    let mut md = String::new();
    let cur = ctx.base_currency;
    let _ = writeln!(md, "# Market `{}`: {} as of {}\n", cell(market), cell(ctx.pipeline), ctx.as_of);
    let _ = writeln!(
        md,
        "Run `{}`. Revenue is net merchandise value (after discounts and refunds, without tax and shipping) in {cur}; cancelled orders are not counted.\n",
        ctx.run_id
    );
    let _ = writeln!(md, "## Orders by source\n");
    let _ = writeln!(md, "| source | orders | customers | revenue ({cur}) |\n|---|---:|---:|---:|");
    for f in by_source.iter().chain(std::iter::once(total)) {
        let name = if f.source == "all" { "**all sources**".to_string() } else { cell(&f.source) };
        let _ = writeln!(md, "| {name} | {} | {} | {} |", f.orders, f.customers, money(f.revenue));
    }
    let _ = writeln!(md, "\nA customer who bought through several sources is counted once in **all sources**.\n");

    let _ = writeln!(md, "## Data quality (every source, all markets)\n");
    let _ = writeln!(
        md,
        "Every row read is kept, dropped with a reason, or rejected as unreadable; revenue (net, {cur}) read = kept + dropped.\n"
    );
    let _ = writeln!(
        md,
        "| source | rows read | kept | dropped | rejected | revenue read ({cur}) | kept | dropped | reconciled |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (source, a) in ctx.accounting {
        let dropped: u64 = a.dropped.values().sum();
        let rejected: u64 = a.rejected.values().sum();
        let ok = if a.balanced() && a.revenue_balanced() { "yes" } else { "**NO**" };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {dropped} | {rejected} | {} | {} | {} | {ok} |",
            cell(source),
            a.rows_read,
            a.kept,
            money(a.revenue_read),
            money(a.revenue_kept),
            money(a.revenue_dropped.values().sum())
        );
    }
    let mut drops = String::new();
    let mut rejects = String::new();
    let mut notes = String::new();
    for (source, a) in ctx.accounting {
        for (reason, n) in &a.dropped {
            let _ = writeln!(drops, "| {} | {} | {n} |", cell(source), cell(reason));
        }
        for (reason, n) in &a.rejected {
            let _ = writeln!(rejects, "| {} | {} | {n} |", cell(source), cell(reason));
        }
        if a.unknown_country > 0 {
            let _ = writeln!(
                notes,
                "- `{}`: {} kept row(s) name a country that is not an ISO country (e.g. `Unspecified`); they count in market `other`.",
                cell(source),
                a.unknown_country
            );
        }
        for note in &a.notes {
            let _ = writeln!(notes, "- `{}`: {}", cell(source), cell(note));
        }
    }
    if !drops.is_empty() {
        let _ = writeln!(md, "\n### Dropped rows by reason\n\n| source | reason | rows |\n|---|---|---:|\n{drops}");
    }
    if !rejects.is_empty() {
        let _ = writeln!(
            md,
            "\n### Rejected rows by reason\n\nThe rows, with file, line and raw text, are in `rejects/source=<id>/`.\n\n| source | reason | rows |\n|---|---|---:|\n{rejects}"
        );
    }
    if !notes.is_empty() {
        let _ = writeln!(md, "\n### Notes\n\n{notes}");
    }
    md
}

fn num(v: f64) -> String {
    if v.abs() >= 1000.0 { format!("{v:.1}") } else { format!("{v:.4}") }
}

/// The model section of a market report: parameters with standard errors, diagnostics, holdout.
pub fn model_section(r: &crate::clv::MarketResult, time_unit: &str, currency: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "\n## CLV models\n");
    let chosen = r.model.map(|k| k.name()).unwrap_or("none");
    let _ = writeln!(
        md,
        "Model used for the scores: **{chosen}**{}. Parameters are per {time_unit}; log-likelihoods are totals.\n",
        if r.pooled { " (shrunk toward the all-markets fit: small market)" } else { "" }
    );
    let _ = writeln!(md, "| model | parameter | estimate | std. error |\n|---|---|---:|---:|");
    for (label, fit) in [("BG/NBD", &r.fits.bgnbd), ("Pareto/NBD", &r.fits.pnbd), ("Gamma-Gamma", &r.fits.gg)] {
        let Some(f) = fit else { continue };
        for (i, name) in f.names.iter().enumerate() {
            let se = f.se[i].map(num).unwrap_or_else(|| "-".into());
            let _ = writeln!(md, "| {label} | {name} | {} | {se} |", num(f.params[i]));
        }
        let _ = writeln!(
            md,
            "| {label} | log-likelihood | {:.2} | {} |",
            f.ll,
            if f.converged { "converged" } else { "**not converged**" }
        );
    }
    if !r.diagnostics.is_empty() {
        let _ = writeln!(md, "\nDiagnostics:\n");
        for d in &r.diagnostics {
            let _ = writeln!(md, "- {d}");
        }
    }
    if let Some(h) = &r.holdout {
        let _ = writeln!(
            md,
            "\n### Holdout: the last {:.0} days\n\nFitted before the holdout on {} customers; they made {:.0} purchases worth {} {currency} in it.\n",
            h.days,
            h.customers,
            h.actual_purchases,
            money(h.actual_revenue)
        );
        let _ = writeln!(
            md,
            "| model | purchases MAE | RMSE | correlation | total error | revenue MAE | revenue total error |\n|---|---:|---:|---:|---:|---:|---:|"
        );
        for row in &h.rows {
            let (p, v) = (row.purchases, row.revenue);
            let _ = writeln!(
                md,
                "| {} | {:.4} | {:.4} | {} | {} | {:.2} | {} |",
                row.model,
                p.mae,
                p.rmse,
                if p.corr.is_finite() { format!("{:.3}", p.corr) } else { "n/a".into() },
                signed_pct(p.total_error_pct),
                v.mae,
                signed_pct(v.total_error_pct)
            );
        }
    }
    let f = &r.formulas;
    let opt = |v: Option<f64>| v.map(money).unwrap_or_else(|| "n/a".into());
    let _ = writeln!(md, "\n### Simple CLV formulas (last 12 months)\n");
    let _ = writeln!(md, "| formula | value ({currency}) |\n|---|---:|");
    let _ = writeln!(
        md,
        "| basic: AOV x purchase frequency x lifespan (CAC not subtracted: no spend data) | {} |",
        opt(f.clv_basic)
    );
    let _ = writeln!(md, "| retention: margin x yearly revenue x r / (1 + d - r) | {} |", opt(f.clv_retention));
    let _ = writeln!(md, "| B2B: yearly revenue x retention / churn | {} |", opt(f.clv_b2b));
    let _ = writeln!(md, "| historical: revenue x margin, per customer | {} |", opt(f.clv_historical));
    let _ =
        writeln!(md, "| predicted (model), all customers | {} |", money(r.scores.predicted_clv.iter().flatten().sum()));
    md
}

/// The segment section of a market report: tiers, lifecycle stages, action lists.
pub fn segment_section(seg: &crate::segment::Segments, currency: &str) -> String {
    let mut md = String::from("\n## Segments\n\n");
    let count = |v: &[&'static str]| {
        let mut c: BTreeMap<&str, usize> = BTreeMap::new();
        v.iter().for_each(|x| *c.entry(x).or_default() += 1);
        c
    };
    let n = seg.tier.len().max(1) as f64;
    let _ = writeln!(md, "| value tier | customers | share |\n|---|---:|---:|");
    for (tier, k) in count(&seg.tier) {
        let _ = writeln!(md, "| {tier} | {k} | {:.1}% |", 100.0 * k as f64 / n);
    }
    let _ = writeln!(md, "\n| lifecycle | customers | share |\n|---|---:|---:|");
    for (stage, k) in count(&seg.lifecycle) {
        let _ = writeln!(md, "| {stage} | {k} | {:.1}% |", 100.0 * k as f64 / n);
    }
    let _ = writeln!(md, "\n| action list | customers | predicted CLV at stake ({currency}) |\n|---|---:|---:|");
    for list in crate::segment::ACTION_LISTS {
        let rows: Vec<&crate::segment::Action> = seg.actions.iter().filter(|a| a.list == list).collect();
        let _ = writeln!(md, "| {list} | {} | {} |", rows.len(), money(rows.iter().map(|a| a.value).sum()));
    }
    md
}

pub const NO_SPEND: &str = "\n## Acquisition cost\n\nNo marketing spend data. Add a `spend` stage with a CSV of \
`month,market,channel,spend,currency` (month as YYYY-MM) and a `cohorts` stage to see CAC, LTV:CAC and months to pay \
back per market, channel and acquisition month. The usual target is LTV:CAC of 3 or more.\n";

/// CAC and LTV:CAC per acquisition month and channel.
pub fn cac_section(rows: &[&crate::cac::Cac], currency: &str) -> String {
    let mut md = String::from("\n## Acquisition cost\n\n");
    md.push_str(
        "CAC = spend / customers acquired; LTV = margin x net revenue per customer so far (historical), plus the mean \
         predicted CLV (predicted). Channels named like a source count that source's new customers; other channels \
         are blended over all of the month's new customers. Target: LTV:CAC of 3 or more.\n\n",
    );
    let _ = writeln!(
        md,
        "| month | channel | spend ({currency}) | new customers | CAC | LTV:CAC historical | LTV:CAC predicted | months to pay back |\n|---|---|---:|---:|---:|---:|---:|---:|"
    );
    let opt = |v: Option<f64>, f: &dyn Fn(f64) -> String| v.map(f).unwrap_or_else(|| "n/a".into());
    for r in rows {
        let month = crate::fx::from_epoch_days(r.month).format("%Y-%m");
        let _ = writeln!(
            md,
            "| {month} | {} ({}) | {} | {} | {} | {} | {} | {} |",
            cell(&r.channel),
            r.attribution,
            money(r.spend),
            r.new_customers,
            opt(r.cac, &money),
            opt(r.ltv_cac_historical, &|v| format!("{v:.2}")),
            opt(r.ltv_cac_predicted, &|v| format!("{v:.2}")),
            r.months_to_payback.map_or("not yet".into(), |m| m.to_string())
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_relative_error_reads_n_a() {
        assert_eq!(signed_pct(12.34), "+12.3%");
        assert_eq!(signed_pct(-5.0), "-5.0%");
        // A holdout without purchases: (predicted - 0) / 0.
        assert_eq!(signed_pct(crate::clv::errors(&[0.5], &[0.0]).total_error_pct), "n/a");
    }

    /// Order keys as unify gives them: one per distinct (source, order id), here spread out
    /// (67 apart) so that keys fall in different words of the bit set.
    fn order_keys(sources: &[&str], ids: &[&str]) -> Vec<u32> {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        let mut key = |pair| match seen.iter().position(|p| *p == pair) {
            Some(i) => i as u32 * 67,
            None => {
                seen.push(pair);
                (seen.len() - 1) as u32 * 67
            }
        };
        sources.iter().zip(ids).map(|(s, i)| key((*s, *i))).collect()
    }

    /// Orders and customers counted distinct per source and customers over all, without the
    /// cancelled lines; a customer buying from two sources counts once in the total, and a
    /// customer or order met again after others (lines not grouped) is not counted twice.
    #[test]
    fn figures_count_distinct_orders_and_customers_without_cancelled_lines() {
        let (c, d) = (schema::status::COMPLETED, schema::status::CANCELLED);
        let sources = ["shop", "shop", "shop", "amazon", "amazon", "shop", "amazon", "shop"];
        let orders = crate::unify::with_customers(
            df!(
                schema::SOURCE => sources,
                aux::ORDER_KEY => order_keys(&sources, &["1", "1", "2", "A", "B", "3", "C", "1"]),
                schema::CUSTOMER_ID => ["ann", "ann", "bob", "ann", "cy", "dee", "eve", "ann"],
                schema::STATUS => [c, c, c, c, c, d, d, c],
                schema::NET_BASE => [10.0, 5.0, 7.0, 3.0, 4.0, 0.0, 0.0, 1.0],
            )
            .unwrap(),
        );
        let (by_source, total) = figures(&orders).unwrap();
        let got: Vec<(&str, u64, u64, f64)> =
            by_source.iter().map(|f| (f.source.as_str(), f.orders, f.customers, f.revenue)).collect();
        assert_eq!(got, [("amazon", 2, 2, 7.0), ("shop", 2, 2, 23.0)]);
        assert_eq!((total.orders, total.customers, total.revenue), (4, 3, 30.0));
    }

    /// Sorted lines (as published) and the same lines shuffled count alike; repeats after others
    /// switch the count to a set without losing what was counted before.
    #[test]
    fn figures_do_not_depend_on_the_order_of_lines() {
        let c = schema::status::COMPLETED;
        let rows: Vec<(&str, &str, &str)> =
            vec![("shop", "1", "a"), ("shop", "2", "b"), ("amazon", "3", "b"), ("shop", "4", "c"), ("shop", "5", "d")];
        let frame = |rows: &[(&str, &str, &str)]| {
            let (sources, ids): (Vec<&str>, Vec<&str>) = rows.iter().map(|r| (r.0, r.1)).unzip();
            crate::unify::with_customers(
                df!(
                    schema::SOURCE => &sources,
                    aux::ORDER_KEY => order_keys(&sources, &ids),
                    schema::CUSTOMER_ID => rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                    schema::STATUS => vec![c; rows.len()],
                    schema::NET_BASE => vec![1.0; rows.len()],
                )
                .unwrap(),
            )
        };
        let counts = |df: &DataFrame| {
            let (by_source, total) = figures(df).unwrap();
            let per: Vec<(String, u64, u64)> =
                by_source.iter().map(|f| (f.source.clone(), f.orders, f.customers)).collect();
            (per, total.orders, total.customers)
        };
        let sorted = counts(&frame(&rows));
        assert_eq!(sorted, (vec![("amazon".into(), 1, 1), ("shop".into(), 4, 4)], 5, 4));
        // Customer "a" again after the others: the count switches to a set at the last line.
        let again = [rows.clone(), vec![("shop", "1", "a")]].concat();
        assert_eq!(counts(&frame(&again)), sorted);
        // Descending from the start, and "c" again after others.
        let mut shuffled = rows.clone();
        shuffled.reverse();
        shuffled.push(("shop", "4", "c"));
        assert_eq!(counts(&frame(&shuffled)), sorted);
    }

    #[test]
    fn money_groups_thousands() {
        assert_eq!(super::money(1234567.891), "1,234,567.89");
        assert_eq!(super::money(-5.0), "-5.00");
        assert_eq!(super::money(999.5), "999.50");
    }
}
