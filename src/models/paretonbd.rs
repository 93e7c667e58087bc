//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987; likelihood as in Fader & Hardie's 2005 note):
//! purchases at rate ~ Gamma(r, alpha) while alive, lifetimes exponential with rate ~ Gamma(s, beta).
//! L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^-(r+x) (β+T)^-s + s/(r+s+x) · A0 ], where
//! A0 = F(t_x) - F(T) and F(t) = 2F1(r+s+x, ·; r+s+x+1; z(t)) / (max(α,β)+t)^(r+s+x).
//! 2F1 of this shape is evaluated through its Euler transform, whose remaining 2F1(1, d; c; z) is
//! Gauss's continued fraction (see `special`), with 1 - z passed as the exact ratio
//! (min+t)/(max+t).

use super::bgnbd::logistic;
use super::dual::{Dual, Real};
use super::special::{ln_hyp2f1_a_b_a1, log_add_exp, log_sub_exp};
use super::{Fit, Likelihood, Prior, Rfm, Start, chunked};

pub const NAMES: &[&str] = &["r", "alpha", "s", "beta"];

/// ln F(t) for one customer.
fn ln_f<T: Real>(r: T, alpha: T, s: T, beta: T, x: f64, t: f64) -> T {
    let a = r + s + x;
    if alpha.value() >= beta.value() {
        let ln_one_minus_z = (beta + t).ln() - (alpha + t).ln();
        let z = (alpha - beta) / (alpha + t);
        ln_hyp2f1_a_b_a1(a, s + 1.0, z, ln_one_minus_z) - a * (alpha + t).ln()
    } else {
        let ln_one_minus_z = (alpha + t).ln() - (beta + t).ln();
        let z = (beta - alpha) / (beta + t);
        ln_hyp2f1_a_b_a1(a, r + x, z, ln_one_minus_z) - a * (beta + t).ln()
    }
}

/// (ln of the "alive through T" term, ln of the "died in (t_x, T]" term) of the bracket, given
/// (ln(α+T), ln(β+T)), ln s - ln(r+s+x), and ln F at t_x and at T.
fn terms_from<T: Real>(r: T, s: T, x: f64, ln_t: (T, T), ln_s_over_rsx: T, ln_f: (T, T)) -> (T, T) {
    let alive = -(r + x) * ln_t.0 - s * ln_t.1;
    (alive, ln_s_over_rsx + log_sub_exp(ln_f.0, ln_f.1))
}

/// The log-likelihood, on `f64` (its value) or on [`Dual`] inputs (value and gradient).
pub fn ll<T: Real>(p: &[T], d: &Rfm) -> T {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    // F depends on (x, t) only: one series per distinct pair, not two per customer. Logs of
    // α + T and β + T: one per distinct tenure.
    let ln_fs: Vec<T> = chunked(d.pairs.len(), |range| {
        range.map(|k| ln_f(r, alpha, s, beta, d.pairs[k].0, d.pairs[k].1)).collect::<Vec<T>>()
    })
    .concat();
    let ln_ts: Vec<(T, T)> = d.ts.iter().map(|&t| ((alpha + t).ln(), (beta + t).ln())).collect();
    let base = r * alpha.ln() + s * beta.ln() - r.ln_gamma();
    let ln_s = s.ln();
    let zero = T::constant(0.0);
    chunked(d.len(), |range| {
        let (mut cur, mut lg_rx, mut ln_s_over_rsx, mut total) = (f64::NAN, zero, zero, zero);
        for i in range {
            let x = d.x[i];
            if x != cur {
                cur = x;
                lg_rx = (r + x).ln_gamma();
                ln_s_over_rsx = ln_s - (r + s + x).ln();
            }
            let ln_f = (ln_fs[d.pair_tx[i] as usize], ln_fs[d.pair_t[i] as usize]);
            let (alive, died) = terms_from(r, s, x, ln_ts[d.t_at[i] as usize], ln_s_over_rsx, ln_f);
            total = total + (base + lg_rx + log_add_exp(alive, died)) * d.w[i];
        }
        total
    })
    .into_iter()
    .fold(zero, |a, b| a + b)
}

/// The log-likelihood and its gradient, in one pass over dual numbers.
pub fn ll_gradient(p: &[f64], d: &Rfm) -> (f64, Vec<f64>) {
    let inputs: Vec<Dual> = p.iter().enumerate().map(|(i, &v)| Dual::input(v, i)).collect();
    let l = ll(&inputs, d);
    (l.v, l.d.to_vec())
}

/// A starting point near the optimum: the purchase process's (r, alpha) from a BG/NBD fit, s = 1
/// and beta = the mean tenure. Starting far away sends the optimizer through regions where
/// max(alpha, beta) >> min(alpha, beta) + t and the 2F1 series needs thousands of terms. The two
/// models agree on the mean purchase rate r / alpha but not on its spread: Pareto/NBD's r and
/// alpha came out ~2.3 times BG/NBD's on CDNOW and on every market of the sample data, and BFGS
/// took ~16 iterations to walk that ridge. So (r, alpha) is scaled by 1, 2 or 4, whichever the
/// likelihood prefers (three evaluations of its value): 6 iterations on the sample markets.
pub fn start(d: &Rfm, bgnbd: &Fit) -> Start {
    let mean_t = d.t.iter().zip(&d.w).map(|(t, w)| t * w).sum::<f64>() / d.customers().max(1.0);
    let at = |k: f64| vec![bgnbd.params[0] * k, bgnbd.params[1] * k, 1.0, mean_t.max(1e-3)];
    let valued = |k: f64| {
        let p = at(k);
        (Some(ll(&p, d)).filter(|v| !v.is_nan()).unwrap_or(f64::NEG_INFINITY), p)
    };
    // On a tie (every candidate -inf on degenerate data) the BG/NBD point itself.
    let [first, rest @ ..] = [1.0, 2.0, 4.0].map(valued);
    rest.into_iter().fold(first, |best, c| if c.0 > best.0 { c } else { best }).1.into()
}

/// Maximum-likelihood fit, the gradient by dual numbers.
pub fn fit(d: &Rfm, starts: &[Start], prior: Option<&Prior>) -> Fit {
    let value = |p: &[f64]| ll(p, d);
    let gradient = |p: &[f64]| ll_gradient(p, d);
    super::fit(&Likelihood { names: NAMES, value: &value, gradient: &gradient }, starts, prior)
}

pub fn p_alive(p: &[f64], x: f64, t_x: f64, t: f64) -> f64 {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    p_alive_given(p, x, t, (ln_f(r, alpha, s, beta, x, t_x), ln_f(r, alpha, s, beta, x, t)))
}

/// P(alive | x, t_x, T) given ln F at t_x and at T.
fn p_alive_given(p: &[f64], x: f64, t: f64, ln_f: (f64, f64)) -> f64 {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    let ln_t = ((alpha + t).ln(), (beta + t).ln());
    let (alive, died) = terms_from(r, s, x, ln_t, s.ln() - (r + s + x).ln(), ln_f);
    logistic(alive - died)
}

/// [`p_alive`] of each triple of `d`, F computed once per distinct (x, t) pair (a market's
/// 240,000 triples hold ~12,000 pairs), in parallel (plain Rust: no Polars here).
pub fn p_alive_each(p: &[f64], d: &Rfm) -> Vec<f64> {
    use rayon::prelude::*;
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    let ln_fs: Vec<f64> = d.pairs.par_iter().map(|&(x, t)| ln_f(r, alpha, s, beta, x, t)).collect();
    (0..d.len())
        .into_par_iter()
        .map(|i| p_alive_given(p, d.x[i], d.t[i], (ln_fs[d.pair_tx[i] as usize], ln_fs[d.pair_t[i] as usize])))
        .collect()
}

/// Expected purchases in (T, T + h].
pub fn expected_purchases(p: &[f64], h: f64, x: f64, t_x: f64, t: f64) -> f64 {
    expected_if_alive(p, h, x, t) * p_alive(p, x, t_x, t)
}

/// Expected purchases in (T, T + h] of a customer still alive at T (x, T known).
pub fn expected_if_alive(p: &[f64], h: f64, x: f64, t: f64) -> f64 {
    expected_if_alive_by(p, x, t)(h)
}

/// [`expected_if_alive`] of one customer as a function of h: what does not depend on h is
/// computed once (the scores ask for thirteen horizons per customer), with the same bits.
pub fn expected_if_alive_by(p: &[f64], x: f64, t: f64) -> impl Fn(f64) -> f64 {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    let (ln_bt, scale) = ((beta + t).ln(), (r + x) * (beta + t) / (alpha + t));
    move |h| {
        if h <= 0.0 {
            return 0.0;
        }
        // (1 - ((β+T)/(β+T+h))^(s-1)) / (s-1), continuous through s = 1 (limit ln((β+T+h)/(β+T))).
        let ln_ratio = ln_bt - (beta + t + h).ln();
        let factor = if (s - 1.0).abs() < 1e-10 { -ln_ratio } else { -((s - 1.0) * ln_ratio).exp_m1() / (s - 1.0) };
        scale * factor
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::special::hyp2f1;

    const CDNOW: [f64; 4] = [0.5533, 10.5776, 0.6062, 11.6679];

    #[test]
    fn euler_form_matches_the_plain_2f1_series() {
        let (r, alpha, s, beta) = (CDNOW[0], CDNOW[1], CDNOW[2], CDNOW[3]);
        for (x, t) in [(0.0, 38.0), (2.0, 30.43), (5.0, 1.0)] {
            // beta > alpha: F = 2F1(r+s+x, r+x; r+s+x+1; (beta-alpha)/(beta+t)) / (beta+t)^(r+s+x)
            let a = r + s + x;
            let (lf, _) = hyp2f1(a, r + x, a + 1.0, (beta - alpha) / (beta + t));
            let plain = lf - a * (beta + t).ln();
            let ours = ln_f(r, alpha, s, beta, x, t);
            assert!((plain - ours).abs() < 1e-12, "{plain} vs {ours}");
        }
    }

    /// The dual-number gradient against central differences of the likelihood, for parameters
    /// on both sides of alpha = beta (the two branches of F).
    #[test]
    fn gradient_matches_finite_differences() {
        let d = Rfm::compress(
            &[0.0, 1.0, 2.0, 2.0, 5.0, 0.0, 7.0],
            &[0.0, 10.0, 20.5, 3.0, 30.0, 0.0, 38.0],
            &[38.0, 38.0, 30.0, 25.0, 38.0, 12.0, 38.5],
        );
        for p in [CDNOW, [0.9, 12.0, 1.3, 4.0], [2.0, 3.0, 0.4, 3.0]] {
            let (_, gradient) = ll_gradient(&p, &d);
            crate::models::assert_gradient(NAMES, &p, |q| ll(q, &d), &gradient);
        }
    }

    /// The start is the candidate the likelihood prefers, and on a tie (no customers: every
    /// candidate's likelihood is 0) the BG/NBD point itself.
    #[test]
    fn the_start_is_the_likeliest_scaling_of_the_bgnbd_point() {
        let bg = Fit {
            names: crate::models::bgnbd::NAMES,
            params: vec![0.3, 40.0, 1.0, 5.0],
            se: vec![None; 4],
            ll: 0.0,
            converged: true,
            iterations: 0,
            evaluations: 0,
            at_boundary: vec![],
            curvature: None,
        };
        assert_eq!(start(&Rfm::default(), &bg).params[..2], [0.3, 40.0]);
        let d = Rfm::compress(
            &[0.0, 1.0, 3.0, 2.0, 0.0],
            &[0.0, 30.0, 200.0, 90.0, 0.0],
            &[300.0, 310.0, 320.0, 100.0, 50.0],
        );
        let chosen = start(&d, &bg);
        for k in [1.0, 2.0, 4.0] {
            let candidate = [0.3 * k, 40.0 * k, chosen.params[2], chosen.params[3]];
            assert!(ll(&chosen.params, &d) >= ll(&candidate, &d), "x{k} is likelier");
        }
    }

    /// Customers who all share one dropout rate (whole days, as exports have them): the
    /// likelihood keeps rising toward s, beta -> infinity along s / beta = mu, with no optimum.
    /// The fit follows the ridge to the edge, says so, and keeps the rate.
    #[test]
    fn a_common_dropout_rate_runs_to_the_edge() {
        let mut rng = crate::sample::Rng::new(11);
        let mu = 0.004;
        let (mut x, mut t_x, mut t) = (vec![], vec![], vec![]);
        for _ in 0..3_000 {
            let (lambda, life, age) = (rng.gamma(0.8, 1.0 / 100.0), rng.exp(mu), 100.0 + 600.0 * rng.f64());
            let (mut n, mut last, mut clock) = (0.0, 0.0, rng.exp(lambda));
            while clock < life.min(age) {
                (n, last, clock) = (n + 1.0, clock, clock + rng.exp(lambda));
            }
            x.push(n);
            t_x.push(last.floor());
            t.push(age.floor());
        }
        let d = Rfm::compress(&x, &t_x, &t);
        let bg = crate::models::bgnbd::fit(&d, &crate::models::bgnbd::starts(&d), None);
        let fit = fit(&d, &[start(&d, &bg)], None);
        assert!(fit.converged && fit.at_boundary == ["s", "beta"], "{fit:?}");
        assert!((fit.get("s") / fit.get("beta") / mu - 1.0).abs() < 0.1, "{fit:?}");
    }

    #[test]
    fn alive_for_certain_when_the_last_purchase_is_now() {
        assert!((p_alive(&CDNOW, 3.0, 20.0, 20.0) - 1.0).abs() < 1e-12);
        assert!(p_alive(&CDNOW, 3.0, 1.0, 38.0) < 0.5);
    }

    #[test]
    fn extremes_stay_finite() {
        let d = Rfm::compress(&[10_000.0, 0.0, 1.0], &[50.0, 0.0, 1e-9], &[50.0, 1e-9, 1e-9]);
        for p in [CDNOW, [0.5, 1e-4, 0.6, 50.0], [0.5, 500.0, 1e-3, 1e-3]] {
            assert!(ll(&p, &d).is_finite(), "{p:?}");
            let (value, gradient) = ll_gradient(&p, &d);
            assert_eq!(value, ll(&p, &d), "the dual pass computes the same value");
            assert!(gradient.iter().all(|g| g.is_finite()), "{p:?}: {gradient:?}");
            let e = expected_purchases(&p, 52.0, 10_000.0, 50.0, 50.0);
            assert!(e.is_finite(), "{p:?}: {e}");
        }
    }
}
