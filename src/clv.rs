//! The `clv` stage: per market, in parallel (one rayon task per market, plain Rust, no Polars),
//! fit BG/NBD and/or Pareto/NBD and Gamma-Gamma, validate on a holdout, score every customer, and
//! compute the simple formulas people also ask for. Markets below `min_customers` are fitted with
//! a Gaussian prior on the log-parameters centred on the all-markets fit (empirical-Bayes style
//! shrinkage), and say so.

use crate::config::{ClvSpec, ModelChoice};
use crate::models::{Fit, Prior, Rfm, Start, bgnbd, gammagamma, paretonbd};
use crate::summarize::{Customer, Market, Summary};
use rayon::prelude::*;

/// A year and a month in days.
const YEAR_DAYS: f64 = 365.25;
const MONTH_DAYS: f64 = YEAR_DAYS / 12.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    BgNbd,
    ParetoNbd,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::BgNbd => "bg_nbd",
            Kind::ParetoNbd => "pareto_nbd",
        }
    }
    fn fit(self, d: &Rfm, starts: &[Start], prior: Option<&Prior>) -> Fit {
        match self {
            Kind::BgNbd => bgnbd::fit(d, starts, prior),
            Kind::ParetoNbd => paretonbd::fit(d, starts, prior),
        }
    }
    /// P(alive) of each triple of `d`.
    fn p_alive_each(self, p: &[f64], d: &Rfm) -> Vec<f64> {
        match self {
            Kind::BgNbd => (0..d.len()).into_par_iter().map(|i| bgnbd::p_alive(p, d.x[i], d.t_x[i], d.t[i])).collect(),
            Kind::ParetoNbd => paretonbd::p_alive_each(p, d),
        }
    }
    /// Expected purchases in (T, T + h] of a customer still alive at T, for each of `hs`.
    fn expected_if_alive(self, p: &[f64], hs: &[f64], x: f64, t: f64) -> Vec<f64> {
        match self {
            Kind::BgNbd => hs.iter().map(|&h| bgnbd::expected_if_alive(p, h, x, t)).collect(),
            Kind::ParetoNbd => hs.iter().copied().map(paretonbd::expected_if_alive_by(p, x, t)).collect(),
        }
    }
}

/// Customers with a purchase by the cutoff, as model input.
struct Data {
    /// Index into the market's customers.
    who: Vec<usize>,
    x: Vec<f64>,
    t_x: Vec<f64>,
    t: Vec<f64>,
    m: Vec<f64>,
    /// The distinct (x, t_x, T) triples the purchase models are fitted to and score: a market of
    /// 600,000 customers holds ~240,000.
    rfm: Rfm,
}

fn data(customers: &[Customer], cutoff: i32, unit_days: f64) -> Data {
    let mut d = Data { who: vec![], x: vec![], t_x: vec![], t: vec![], m: vec![], rfm: Rfm::default() };
    for (i, c) in customers.iter().enumerate() {
        if let Some(r) = c.rfm_at(cutoff, unit_days) {
            d.who.push(i);
            d.x.push(r.frequency);
            d.t_x.push(r.recency);
            d.t.push(r.tenure);
            d.m.push(r.monetary);
        }
    }
    d.rfm = Rfm::compress(&d.x, &d.t_x, &d.t);
    d
}

/// The fits of one market (or of all markets pooled).
#[derive(Debug, Clone, Default)]
pub struct Fits {
    pub bgnbd: Option<Fit>,
    pub pnbd: Option<Fit>,
    pub gg: Option<Fit>,
}

impl Fits {
    fn purchase(&self, kind: Kind) -> Option<&Fit> {
        match kind {
            Kind::BgNbd => self.bgnbd.as_ref(),
            Kind::ParetoNbd => self.pnbd.as_ref(),
        }
    }
}

fn kinds(choice: ModelChoice) -> Vec<Kind> {
    match choice {
        ModelChoice::BgNbd => vec![Kind::BgNbd],
        ModelChoice::ParetoNbd => vec![Kind::ParetoNbd],
        ModelChoice::Auto => vec![Kind::BgNbd, Kind::ParetoNbd],
    }
}

/// Fits every model of `kinds` (and Gamma-Gamma) to `d`. `pooled`: the all-markets fits and the
/// prior precision for a small market. `warm`: fits of the same market on less data (the holdout
/// calibration), whose optima and curvatures start these fits: they lie close, so BFGS needs a
/// few steps.
fn fit_all(d: &Data, kinds: &[Kind], pooled: Option<(&Fits, f64)>, warm: Option<&Fits>) -> Fits {
    let rfm = &d.rfm;
    let prior_for = |fit: Option<&Fit>| {
        pooled.and_then(|(_, precision)| {
            fit.map(|f| Prior { center: f.params.iter().map(|p| p.ln()).collect(), precision })
        })
    };
    // A warm fit starts from the earlier optimum and its curvature, a pooled one from the prior's centre, a free
    // one from the model's own starts.
    fn start(warm: Option<&Fit>, prior: Option<&Prior>, free: impl FnOnce() -> Vec<Start>) -> Vec<Start> {
        match (warm, prior) {
            (Some(w), _) => vec![w.warm_start()],
            (None, Some(p)) => vec![p.center.iter().map(|c| c.exp()).collect::<Vec<f64>>().into()],
            (None, None) => free(),
        }
    }
    let mut out = Fits::default();
    if rfm.customers() >= 2.0 {
        for &k in kinds {
            let prior = prior_for(pooled.and_then(|(p, _)| p.purchase(k)));
            let earlier = warm.and_then(|w| w.purchase(k));
            let f = match (k, &prior, earlier) {
                (Kind::ParetoNbd, None, None) => {
                    // Start near the optimum (see paretonbd::start): from the BG/NBD fit.
                    let bg = out.bgnbd.clone().unwrap_or_else(|| bgnbd::fit(rfm, &bgnbd::starts(rfm), None));
                    paretonbd::fit(rfm, &[paretonbd::start(rfm, &bg)], None)
                }
                _ => k.fit(rfm, &start(earlier, prior.as_ref(), || bgnbd::starts(rfm)), prior.as_ref()),
            };
            match k {
                Kind::BgNbd => out.bgnbd = Some(f),
                Kind::ParetoNbd => out.pnbd = Some(f),
            }
        }
    }
    let spend = gammagamma::Spend::new(&d.x, &d.m);
    if spend.customers() >= 2.0 {
        let prior = prior_for(pooled.and_then(|(p, _)| p.gg.as_ref()));
        let earlier = warm.and_then(|w| w.gg.as_ref());
        out.gg = Some(gammagamma::fit(
            &spend,
            &start(earlier, prior.as_ref(), || gammagamma::starts(&spend)),
            prior.as_ref(),
        ));
    }
    out
}

/// Prediction errors over customers: per-customer MAE, RMSE, correlation, and the total error.
#[derive(Debug, Clone, Copy, Default)]
pub struct Errors {
    pub mae: f64,
    pub rmse: f64,
    pub corr: f64,
    /// (sum predicted - sum actual) / sum actual, in percent.
    pub total_error_pct: f64,
}

pub fn errors(predicted: &[f64], actual: &[f64]) -> Errors {
    let n = predicted.len().max(1) as f64;
    let (sp, sa): (f64, f64) = (predicted.iter().sum(), actual.iter().sum());
    let mae = predicted.iter().zip(actual).map(|(p, a)| (p - a).abs()).sum::<f64>() / n;
    let rmse = (predicted.iter().zip(actual).map(|(p, a)| (p - a).powi(2)).sum::<f64>() / n).sqrt();
    let (mp, ma) = (sp / n, sa / n);
    let cov: f64 = predicted.iter().zip(actual).map(|(p, a)| (p - mp) * (a - ma)).sum();
    let vp: f64 = predicted.iter().map(|p| (p - mp).powi(2)).sum();
    let va: f64 = actual.iter().map(|a| (a - ma).powi(2)).sum();
    let corr = if vp > 0.0 && va > 0.0 { cov / (vp * va).sqrt() } else { f64::NAN };
    let total_error_pct = if sa != 0.0 { 100.0 * (sp - sa) / sa } else { f64::NAN };
    Errors { mae, rmse, corr, total_error_pct }
}

/// How a model (or the naive baseline) did on the holdout.
#[derive(Debug, Clone)]
pub struct HoldoutRow {
    pub model: String,
    pub purchases: Errors,
    pub revenue: Errors,
}

#[derive(Debug, Clone)]
pub struct Holdout {
    pub days: f64,
    pub customers: usize,
    pub actual_purchases: f64,
    pub actual_revenue: f64,
    pub rows: Vec<HoldoutRow>,
}

/// Per-customer scores, aligned with the market's customers.
#[derive(Debug, Clone, Default)]
pub struct Scores {
    pub rfm: Vec<Option<crate::summarize::Rfm>>,
    pub p_alive: Vec<Option<f64>>,
    pub expected_purchases: Vec<Option<f64>>,
    pub expected_spend: Vec<Option<f64>>,
    pub predicted_clv: Vec<Option<f64>>,
    pub historical_clv: Vec<f64>,
}

/// The simple per-market formulas (yearly figures over the 12 months to the calibration end).
#[derive(Debug, Clone, Default)]
pub struct Formulas {
    pub aov: Option<f64>,
    pub purchase_frequency: Option<f64>,
    pub retention: Option<f64>,
    pub churn_rate: Option<f64>,
    pub clv_basic: Option<f64>,
    pub clv_retention: Option<f64>,
    pub clv_b2b: Option<f64>,
    pub clv_historical: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct MarketResult {
    pub market: String,
    pub customers: usize,
    pub orders: u64,
    pub revenue: f64,
    pub fits: Fits,
    /// The purchase model used for the scores.
    pub model: Option<Kind>,
    pub pooled: bool,
    pub holdout: Option<Holdout>,
    pub scores: Scores,
    pub formulas: Formulas,
    pub diagnostics: Vec<String>,
}

pub struct ClvResult {
    pub markets: Vec<MarketResult>,
    /// The all-markets fits, the centre small markets are shrunk toward; empty when no market is
    /// that small (they are fitted only then).
    pub all_markets: Fits,
    /// The stage's gross margin (historical LTV for LTV:CAC uses it too).
    pub margin: f64,
}

/// Runs the stage over the markets of the summary named in `only` (every market when empty: a
/// `--market` run fits only what it publishes). The all-markets fit that small markets are shrunk
/// toward pools every market of the summary either way, so a market's results do not depend on
/// which others the run publishes.
pub fn run(spec: &ClvSpec, summary: &Summary, only: &[String]) -> ClvResult {
    let (cal, unit) = (summary.calibration_end, summary.unit_days);
    let kinds = kinds(spec.model);
    let fitted: Vec<&Market> = summary.markets.iter().filter(|m| only.is_empty() || only.contains(&m.name)).collect();
    // As `market` counts them: customers with a purchase by the calibration end. Counting stops
    // at `min_customers`: reading every customer's first purchase cost ~0.17 s of one core at 10M
    // lines, before the fits could start.
    let small = |m: &&Market| {
        let enough = usize::try_from(spec.min_customers).unwrap_or(usize::MAX);
        m.customers.iter().filter(|c| c.events.first().is_some_and(|e| e.0 <= cal)).take(enough).count() < enough
    };
    let all_markets = if fitted.iter().any(small) {
        let everyone: Vec<Customer> = summary.markets.iter().flat_map(|m| m.customers.iter().cloned()).collect();
        fit_all(&data(&everyone, cal, unit), &kinds, None, None)
    } else {
        Fits::default()
    };
    let markets = fitted.par_iter().map(|m| market(spec, m, cal, unit, &kinds, &all_markets)).collect();
    ClvResult { markets, all_markets, margin: spec.margin }
}

fn market(spec: &ClvSpec, m: &Market, cal: i32, unit: f64, kinds: &[Kind], all: &Fits) -> MarketResult {
    let mut diagnostics = Vec::new();
    let d = data(&m.customers, cal, unit);
    let n = d.who.len() as u64;
    let pooled = n < spec.min_customers;
    // Prior precision on each log-parameter grows with the shortfall: a market with no data is
    // the all-markets fit; one at min_customers is fitted on its own.
    let prior = pooled.then(|| (all, 0.1 * (spec.min_customers - n) as f64));
    if pooled {
        diagnostics.push(format!(
            "{n} customers (< min_customers {}): parameters shrunk toward the all-markets fit",
            spec.min_customers
        ));
    }

    // Holdout: fit before the split, predict the holdout, compare with what happened.
    let mut holdout = None;
    let mut calibration = None;
    let mut chosen = kinds.first().copied();
    if let Some(days) = spec.holdout_days {
        let split = cal - days.round() as i32;
        let ds = data(&m.customers, split, unit);
        let fits = fit_all(&ds, kinds, prior, None);
        let h = days / unit;
        let actual: Vec<(f64, f64)> = ds.who.iter().map(|&i| m.customers[i].between(split, cal)).collect();
        let (act_n, act_v): (Vec<f64>, Vec<f64>) = actual.iter().copied().unzip();
        let spend = |j: usize| spend_estimate(fits.gg.as_ref(), ds.x[j], ds.m[j], &m.customers[ds.who[j]]);
        let mut rows = Vec::new();
        for &k in kinds {
            let Some(f) = fits.purchase(k) else { continue };
            let alive = k.p_alive_each(&f.params, &ds.rfm);
            let r = &ds.rfm;
            let if_alive = r.by_tenure_pair(|x, t| k.expected_if_alive(&f.params, &[h], x, t)[0]);
            let pred_n: Vec<f64> =
                r.of.iter().map(|&u| if_alive[r.pair_t[u as usize] as usize] * alive[u as usize]).collect();
            let pred_v: Vec<f64> = pred_n.iter().enumerate().map(|(j, p)| p * spend(j)).collect();
            rows.push(HoldoutRow {
                model: k.name().into(),
                purchases: errors(&pred_n, &act_n),
                revenue: errors(&pred_v, &act_v),
            });
        }
        // Naive baseline: each customer keeps their calibration repeat rate.
        let naive_n: Vec<f64> =
            (0..ds.who.len()).map(|j| if ds.t[j] > 0.0 { ds.x[j] / ds.t[j] * h } else { 0.0 }).collect();
        let naive_v: Vec<f64> =
            naive_n.iter().enumerate().map(|(j, p)| p * mean_event_value(&m.customers[ds.who[j]])).collect();
        if spec.model == ModelChoice::Auto
            && let Some(best) = rows.iter().min_by(|a, b| a.purchases.mae.total_cmp(&b.purchases.mae))
        {
            chosen = kinds.iter().copied().find(|k| k.name() == best.model);
        }
        rows.push(HoldoutRow {
            model: "naive".into(),
            purchases: errors(&naive_n, &act_n),
            revenue: errors(&naive_v, &act_v),
        });
        calibration = Some(fits);
        holdout = Some(Holdout {
            days,
            customers: ds.who.len(),
            actual_purchases: act_n.iter().sum(),
            actual_revenue: act_v.iter().sum(),
            rows,
        });
    }

    let fits = fit_all(&d, kinds, prior, calibration.as_ref());
    if spec.model == ModelChoice::Auto && holdout.is_none() {
        // Without a holdout, the better likelihood on the same data (both have four parameters).
        chosen = match (&fits.bgnbd, &fits.pnbd) {
            (Some(b), Some(p)) if p.ll > b.ll => Some(Kind::ParetoNbd),
            (Some(_), _) => Some(Kind::BgNbd),
            (None, Some(_)) => Some(Kind::ParetoNbd),
            _ => None,
        };
    }
    for (label, f) in [("BG/NBD", &fits.bgnbd), ("Pareto/NBD", &fits.pnbd), ("Gamma-Gamma", &fits.gg)] {
        if let Some(f) = f {
            if !f.converged {
                diagnostics
                    .push(format!("{label}: the optimizer stopped before converging ({} iterations)", f.iterations));
            }
            if !f.at_boundary.is_empty() {
                diagnostics.push(format!(
                    "{label}: {} at the edge of the parameter space, so no standard errors. For BG/NBD, a -> 0 with b large \
                     means the data show no dropout; a and b both large mean the same dropout chance for everyone",
                    f.at_boundary.join(", ")
                ));
            }
        }
    }
    if fits.gg.is_none() {
        diagnostics
            .push("Gamma-Gamma: fewer than 2 repeat buyers; expected spend is each customer's mean purchase".into());
    }
    let model = chosen.filter(|k| fits.purchase(*k).is_some());
    let scores = score(spec, m, &d, &fits, model, unit);
    let formulas = formulas(spec, m, cal);
    MarketResult {
        market: m.name.clone(),
        customers: m.customers.len(),
        orders: m.customers.iter().map(|c| c.orders).sum(),
        revenue: m.customers.iter().map(|c| c.revenue).sum(),
        fits,
        model,
        pooled,
        holdout,
        scores,
        formulas,
        diagnostics,
    }
}

fn mean_event_value(c: &Customer) -> f64 {
    if c.events.is_empty() { 0.0 } else { c.events.iter().map(|e| e.1).sum::<f64>() / c.events.len() as f64 }
}

/// Expected spend per purchase: Gamma-Gamma where fitted (population mean for one-time buyers
/// when q > 1), else the customer's own mean purchase.
fn spend_estimate(gg: Option<&Fit>, x: f64, m: f64, c: &Customer) -> f64 {
    match gg {
        Some(f) if x > 0.0 => gammagamma::expected_spend(&f.params, x, m),
        Some(f) if f.params[1] > 1.0 => gammagamma::expected_spend(&f.params, 0.0, 0.0),
        _ => mean_event_value(c),
    }
}

fn score(spec: &ClvSpec, m: &Market, d: &Data, fits: &Fits, model: Option<Kind>, unit: f64) -> Scores {
    let n = m.customers.len();
    let mut s = Scores {
        rfm: vec![None; n],
        p_alive: vec![None; n],
        expected_purchases: vec![None; n],
        expected_spend: vec![None; n],
        predicted_clv: vec![None; n],
        historical_clv: m.customers.iter().map(|c| c.revenue * spec.margin).collect(),
    };
    let months = (spec.horizon_days / MONTH_DAYS).round().max(1.0) as usize;
    let month = MONTH_DAYS / unit;
    let horizon = spec.horizon_days / unit;
    let monthly_discount = (1.0 + spec.annual_discount_rate).powf(1.0 / 12.0);
    let purchase = model.and_then(|k| fits.purchase(k).map(|f| (k, f)));
    // P(alive) per distinct (x, t_x, T); the purchases expected of a customer alive at T, by the
    // horizon and by the end of each month, per distinct (x, T), which far fewer customers tell
    // apart (BG/NBD's is a 2F1 series per horizon).
    let r = &d.rfm;
    let horizons: Vec<f64> =
        std::iter::once(horizon).chain((1..=months).map(|step| (step as f64 * month).min(horizon))).collect();
    let (alive, if_alive): (Vec<f64>, Vec<Vec<f64>>) = match purchase {
        Some((k, f)) => {
            (k.p_alive_each(&f.params, r), r.by_tenure_pair(|x, t| k.expected_if_alive(&f.params, &horizons, x, t)))
        }
        None => (Vec::new(), Vec::new()),
    };
    for (j, &i) in d.who.iter().enumerate() {
        let (x, t_x, t) = (d.x[j], d.t_x[j], d.t[j]);
        s.rfm[i] = Some(crate::summarize::Rfm { frequency: x, recency: t_x, tenure: t, monetary: d.m[j] });
        let spend = spend_estimate(fits.gg.as_ref(), x, d.m[j], &m.customers[i]);
        s.expected_spend[i] = Some(spend);
        let u = r.of[j] as usize;
        let (Some(&alive), Some([by_horizon, by_month @ ..])) =
            (alive.get(u), if_alive.get(r.pair_t[u] as usize).map(Vec::as_slice))
        else {
            continue;
        };
        s.p_alive[i] = Some(alive);
        s.expected_purchases[i] = Some(alive * by_horizon);
        // Discounted month by month: purchases expected in month k, valued at the month's end.
        let mut clv = 0.0;
        let mut before = 0.0;
        for (step, &until) in (1..).zip(by_month) {
            let until = alive * until;
            clv += (until - before) * spend / monthly_discount.powi(step);
            before = until;
        }
        s.predicted_clv[i] = Some(spec.margin * clv);
    }
    s
}

fn formulas(spec: &ClvSpec, m: &Market, cal: i32) -> Formulas {
    let year = YEAR_DAYS.round() as i32;
    let active =
        |from: i32, to: i32| -> Vec<&Customer> { m.customers.iter().filter(|c| c.between(from, to).0 > 0.0).collect() };
    let last_year = active(cal - year, cal);
    let year_before = active(cal - 2 * year, cal - year);
    let (events, value) = last_year.iter().fold((0.0, 0.0), |(n, v), c| {
        let (dn, dv) = c.between(cal - year, cal);
        (n + dn, v + dv)
    });
    let n_active = last_year.len() as f64;
    let retention = (!year_before.is_empty()).then(|| {
        let kept = year_before.iter().filter(|c| c.between(cal - year, cal).0 > 0.0).count();
        kept as f64 / year_before.len() as f64
    });
    let churn = retention.map(|r| 1.0 - r);
    let aov = (events > 0.0).then(|| value / events);
    let frequency = (n_active > 0.0).then(|| events / n_active);
    let yearly_revenue = (n_active > 0.0).then(|| value / n_active);
    let d = spec.annual_discount_rate;
    let customers = m.customers.len() as f64;
    Formulas {
        aov,
        purchase_frequency: frequency,
        retention,
        churn_rate: churn,
        clv_basic: match (aov, frequency, churn) {
            (Some(a), Some(f), Some(c)) if c > 0.0 => Some(a * f / c),
            _ => None,
        },
        clv_retention: match (yearly_revenue, retention) {
            (Some(v), Some(r)) => Some(spec.margin * v * r / (1.0 + d - r)),
            _ => None,
        },
        clv_b2b: match (yearly_revenue, retention, churn) {
            (Some(v), Some(r), Some(c)) if c > 0.0 => Some(v * r / c),
            _ => None,
        },
        clv_historical: (customers > 0.0)
            .then(|| m.customers.iter().map(|c| c.revenue).sum::<f64>() * spec.margin / customers),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SpendModel;
    use crate::sample::Rng;

    /// Customers of a BG/NBD process (rate per day ~ Gamma(r, 1/alpha), dropout ~ Beta(a, b)),
    /// first purchases over days 0..300, observed to day 365.
    fn market(name: &str, n: usize, p: [f64; 4], seed: u64) -> Market {
        let mut rng = Rng::new(seed);
        let customers = (0..n)
            .map(|i| {
                let (lambda, drop) = (rng.gamma(p[0], 1.0 / p[1]), rng.beta(p[2], p[3]));
                let mut t = rng.below(300) as f64;
                let mut events = vec![(t as i32, 20.0)];
                loop {
                    t += rng.exp(lambda.max(1e-9));
                    if t > 365.0 || rng.chance(drop) {
                        break;
                    }
                    if events.last().is_some_and(|e| e.0 < t as i32) {
                        events.push((t as i32, 20.0));
                    }
                }
                Customer {
                    id: format!("{name}{i}"),
                    orders: events.len() as u64,
                    revenue: 20.0 * events.len() as f64,
                    events,
                }
            })
            .collect();
        Market { name: name.into(), customers }
    }

    #[test]
    fn small_markets_are_shrunk_toward_the_all_markets_fit() {
        let summary = Summary {
            markets: vec![market("big", 3000, [0.5, 20.0, 1.0, 3.0], 1), market("tiny", 30, [2.0, 10.0, 1.0, 9.0], 2)],
            calibration_end: 365,
            unit_days: 7.0,
        };
        let spec = ClvSpec {
            id: "clv".into(),
            input: "rfm".into(),
            model: ModelChoice::BgNbd,
            spend_model: SpendModel::GammaGamma,
            holdout_days: None,
            horizon_days: 365.25,
            annual_discount_rate: 0.1,
            margin: 0.3,
            min_customers: 200,
        };
        let r = run(&spec, &summary, &[]);
        let (big, tiny) = (&r.markets[0], &r.markets[1]);
        assert!(!big.pooled && tiny.pooled);
        assert!(
            tiny.diagnostics.iter().any(|d| d.contains("shrunk toward the all-markets fit")),
            "{:?}",
            tiny.diagnostics
        );
        let all = &r.all_markets.bgnbd.as_ref().unwrap().params;
        let pooled = &tiny.fits.bgnbd.as_ref().unwrap().params;
        let d = data(&summary.markets[1].customers, 365, 7.0);
        let free = bgnbd::fit(&d.rfm, &bgnbd::starts(&d.rfm), None).params;
        let distance = |p: &[f64]| p.iter().zip(all).map(|(a, b)| (a.ln() - b.ln()).powi(2)).sum::<f64>();
        // r and alpha move together (the data pin down roughly their ratio), so shrinkage is judged
        // on the whole vector of log-parameters: it at least halves the distance.
        assert!(distance(pooled) < 0.5 * distance(&free), "pooled {pooled:?} free {free:?} all {all:?}");
        // The big market stands on its own: its fit is not the all-markets fit's.
        assert!(big.fits.bgnbd.as_ref().unwrap().params.iter().all(|p| p.is_finite()));

        // A run restricted to the tiny market fits only it, still shrunk toward every market.
        let alone = run(&spec, &summary, &["tiny".to_string()]);
        assert_eq!(alone.markets.iter().map(|m| m.market.as_str()).collect::<Vec<_>>(), ["tiny"]);
        assert_eq!(alone.markets[0].fits.bgnbd.as_ref().unwrap().params, *pooled);
        assert_eq!(alone.markets[0].scores.predicted_clv, tiny.scores.predicted_clv);
        // Restricted to the big market, nothing needs the all-markets fit.
        let big_alone = run(&spec, &summary, &["big".to_string()]);
        assert!(big_alone.all_markets.bgnbd.is_none());
        assert_eq!(big_alone.markets[0].scores.predicted_clv, big.scores.predicted_clv);
    }

    #[test]
    fn every_customer_is_scored_from_their_own_triple() {
        // Many customers share (x, t_x, T), and more share (x, T): P(alive) is computed once per
        // triple and the expected purchases once per (x, T), and each customer's scores must
        // equal the formulas evaluated on that customer alone, for either purchase model.
        let summary = Summary {
            markets: vec![market("m", 2000, [0.5, 20.0, 1.0, 3.0], 3)],
            calibration_end: 365,
            unit_days: 7.0,
        };
        for model in [ModelChoice::ParetoNbd, ModelChoice::BgNbd] {
            let spec = ClvSpec {
                id: "clv".into(),
                input: "rfm".into(),
                model,
                spend_model: SpendModel::GammaGamma,
                holdout_days: Some(91.0),
                horizon_days: 365.25,
                annual_discount_rate: 0.1,
                margin: 0.3,
                min_customers: 200,
            };
            let r = run(&spec, &summary, &[]);
            let m = &r.markets[0];
            type Formulas = (fn(&[f64], f64, f64, f64) -> f64, fn(&[f64], f64, f64, f64) -> f64);
            let (p, (p_alive, expected_if_alive)): (&Vec<f64>, Formulas) = match model {
                ModelChoice::BgNbd => {
                    (&m.fits.bgnbd.as_ref().unwrap().params, (bgnbd::p_alive, bgnbd::expected_if_alive))
                }
                _ => (&m.fits.pnbd.as_ref().unwrap().params, (paretonbd::p_alive, paretonbd::expected_if_alive)),
            };
            let gg = m.fits.gg.as_ref();
            let d = data(&summary.markets[0].customers, 365, 7.0);
            assert!(d.rfm.len() < d.x.len() * 3 / 4, "the test needs shared triples");
            let (month, discount) = (MONTH_DAYS / 7.0, 1.1f64.powf(1.0 / 12.0));
            for (j, &i) in d.who.iter().enumerate() {
                let (x, t_x, t) = (d.x[j], d.t_x[j], d.t[j]);
                let alive = p_alive(p, x, t_x, t);
                assert_eq!(m.scores.p_alive[i], Some(alive));
                let horizon = 365.25 / 7.0;
                assert_eq!(m.scores.expected_purchases[i], Some(alive * expected_if_alive(p, horizon, x, t)));
                let spend = spend_estimate(gg, x, d.m[j], &summary.markets[0].customers[i]);
                let (mut clv, mut before) = (0.0, 0.0);
                for step in 1..=12 {
                    let until = alive * expected_if_alive(p, (step as f64 * month).min(horizon), x, t);
                    clv += (until - before) * spend / discount.powi(step);
                    before = until;
                }
                assert_eq!(m.scores.predicted_clv[i], Some(0.3 * clv));
            }
            // The holdout's predictions, customer by customer from a fit on the calibration data.
            let holdout = m.holdout.as_ref().unwrap();
            let (customers, split) = (&summary.markets[0].customers, 365 - 91);
            let ds = data(customers, split, 7.0);
            assert_eq!(holdout.customers, ds.who.len());
            let kind = if model == ModelChoice::BgNbd { Kind::BgNbd } else { Kind::ParetoNbd };
            let calibrated = fit_all(&ds, &[kind], None, None);
            let pc = &calibrated.purchase(kind).unwrap().params;
            let predicted: Vec<f64> = (0..ds.who.len())
                .map(|j| p_alive(pc, ds.x[j], ds.t_x[j], ds.t[j]) * expected_if_alive(pc, 91.0 / 7.0, ds.x[j], ds.t[j]))
                .collect();
            let actual: Vec<f64> = ds.who.iter().map(|&i| customers[i].between(split, 365).0).collect();
            let row = holdout.rows.iter().find(|r| r.model == kind.name()).unwrap();
            assert_eq!(row.purchases.mae, errors(&predicted, &actual).mae, "{}", kind.name());
        }
    }

    #[test]
    fn error_metrics_by_hand() {
        let e = errors(&[1.0, 2.0, 3.0], &[1.0, 3.0, 5.0]);
        assert!((e.mae - 1.0).abs() < 1e-12);
        assert!((e.rmse - (5.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((e.corr - 1.0).abs() < 1e-12);
        assert!((e.total_error_pct - (6.0 - 9.0) / 9.0 * 100.0).abs() < 1e-12);
    }
}
