//! Pareto/NBD (Schmittlein, Morrison & Colombo 1987; likelihood as in Fader & Hardie's 2005 note):
//! purchases at rate ~ Gamma(r, alpha) while alive, lifetimes exponential with rate ~ Gamma(s, beta).
//! L = Γ(r+x) α^r β^s / Γ(r) · [ (α+T)^-(r+x) (β+T)^-s + s/(r+s+x) · A0 ], where
//! A0 = F(t_x) - F(T) and F(t) = 2F1(r+s+x, ·; r+s+x+1; z(t)) / (max(α,β)+t)^(r+s+x).
//! 2F1 of this shape is evaluated through its Euler transform, whose remaining 2F1(1, d; c; z) is
//! Gauss's continued fraction (see `special`), with 1 - z passed as the exact ratio
//! (min+t)/(max+t).

use super::bgnbd::logistic;
use super::special::{ln_gamma, ln_hyp2f1_a_b_a1, log_add_exp, log_sub_exp};
use super::{Fit, Likelihood, Prior, Rfm, chunked};

pub const NAMES: &[&str] = &["r", "alpha", "s", "beta"];

/// ln F(t) for one customer.
fn ln_f(r: f64, alpha: f64, s: f64, beta: f64, x: f64, t: f64) -> f64 {
    let a = r + s + x;
    if alpha >= beta {
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
/// ln F at t_x and at T.
fn terms_from(p: &[f64], x: f64, t: f64, ln_f_tx: f64, ln_f_t: f64) -> (f64, f64) {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    let alive = -(r + x) * (alpha + t).ln() - s * (beta + t).ln();
    (alive, s.ln() - (r + s + x).ln() + log_sub_exp(ln_f_tx, ln_f_t))
}

fn terms(p: &[f64], x: f64, t_x: f64, t: f64) -> (f64, f64) {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    terms_from(p, x, t, ln_f(r, alpha, s, beta, x, t_x), ln_f(r, alpha, s, beta, x, t))
}

pub fn ll(p: &[f64], d: &Rfm) -> f64 {
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    // F depends on (x, t) only: one series per distinct pair, not two per customer.
    let ln_fs: Vec<f64> = chunked(d.pairs.len(), |range| {
        range.map(|k| ln_f(r, alpha, s, beta, d.pairs[k].0, d.pairs[k].1)).collect::<Vec<f64>>()
    })
    .concat();
    let base = r * alpha.ln() + s * beta.ln() - ln_gamma(r);
    chunked(d.len(), |range| {
        let (mut cur, mut lg_rx, mut total) = (f64::NAN, 0.0, 0.0);
        for i in range {
            let x = d.x[i];
            if x != cur {
                cur = x;
                lg_rx = ln_gamma(r + x);
            }
            let (ftx, ft) = (ln_fs[d.pair_tx[i] as usize], ln_fs[d.pair_t[i] as usize]);
            let (alive, died) = terms_from(p, x, d.t[i], ftx, ft);
            total += d.w[i] * (base + lg_rx + log_add_exp(alive, died));
        }
        total
    })
    .into_iter()
    .sum()
}

/// A starting point near the optimum: the purchase process's (r, alpha) from a BG/NBD fit, s = 1
/// and beta = the mean tenure. Starting far away sends the optimizer through regions where
/// max(alpha, beta) >> min(alpha, beta) + t and the 2F1 series needs thousands of terms.
pub fn start(d: &Rfm, bgnbd: &Fit) -> Vec<f64> {
    let mean_t = d.t.iter().zip(&d.w).map(|(t, w)| t * w).sum::<f64>() / d.customers().max(1.0);
    vec![bgnbd.params[0], bgnbd.params[1], 1.0, mean_t.max(1e-3)]
}

/// Maximum-likelihood fit (numerical gradient: each evaluation is cheap thanks to the F cache).
pub fn fit(d: &Rfm, starts: &[Vec<f64>], prior: Option<&Prior>) -> Fit {
    let value = |p: &[f64]| ll(p, d);
    super::fit(&Likelihood { names: NAMES, value: &value, gradient: None }, starts, prior)
}

pub fn p_alive(p: &[f64], x: f64, t_x: f64, t: f64) -> f64 {
    let (alive, died) = terms(p, x, t_x, t);
    logistic(alive - died)
}

/// Expected purchases in (T, T + h].
pub fn expected_purchases(p: &[f64], h: f64, x: f64, t_x: f64, t: f64) -> f64 {
    expected_if_alive(p, h, x, t) * p_alive(p, x, t_x, t)
}

/// Expected purchases in (T, T + h] of a customer still alive at T (x, T known).
pub fn expected_if_alive(p: &[f64], h: f64, x: f64, t: f64) -> f64 {
    if h <= 0.0 {
        return 0.0;
    }
    let (r, alpha, s, beta) = (p[0], p[1], p[2], p[3]);
    // (1 - ((β+T)/(β+T+h))^(s-1)) / (s-1), continuous through s = 1 (limit ln((β+T+h)/(β+T))).
    let ln_ratio = (beta + t).ln() - (beta + t + h).ln();
    let factor = if (s - 1.0).abs() < 1e-10 { -ln_ratio } else { -((s - 1.0) * ln_ratio).exp_m1() / (s - 1.0) };
    (r + x) * (beta + t) / (alpha + t) * factor
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
            let e = expected_purchases(&p, 52.0, 10_000.0, 50.0, 50.0);
            assert!(e.is_finite(), "{p:?}: {e}");
        }
    }
}
