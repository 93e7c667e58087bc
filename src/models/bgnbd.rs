//! BG/NBD (Fader, Hardie & Lee 2005, "Counting your customers the easy way"): purchases follow a
//! Poisson process with rate ~ Gamma(r, alpha); after each purchase the customer drops out with
//! probability ~ Beta(a, b).

use super::Rfm;
use super::special::{hyp2f1, ln_beta, ln_gamma, log_add_exp};

pub const NAMES: &[&str] = &["r", "alpha", "a", "b"];

/// Total log-likelihood of `d` at (r, alpha, a, b).
pub fn ll(p: &[f64], d: &Rfm) -> f64 {
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    let ln_b_ab = ln_beta(a, b);
    let base = r * alpha.ln() - ln_gamma(r);
    let (mut cur, mut lg_rx, mut lb1, mut lb2) = (f64::NAN, 0.0, 0.0, f64::NEG_INFINITY);
    let mut total = 0.0;
    for i in 0..d.len() {
        let x = d.x[i];
        if x != cur {
            cur = x;
            lg_rx = ln_gamma(r + x);
            lb1 = ln_beta(a, b + x) - ln_b_ab;
            lb2 = if x > 0.0 { ln_beta(a + 1.0, b + x - 1.0) - ln_b_ab } else { f64::NEG_INFINITY };
        }
        let t1 = lb1 - (r + x) * (alpha + d.t[i]).ln();
        let tail = if x > 0.0 { log_add_exp(t1, lb2 - (r + x) * (alpha + d.t_x[i]).ln()) } else { t1 };
        total += d.w[i] * (base + lg_rx + tail);
    }
    total
}

/// P(alive | x, t_x, T).
pub fn p_alive(p: &[f64], x: f64, t_x: f64, t: f64) -> f64 {
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    if x == 0.0 {
        return 1.0;
    }
    let ln_odds = (a / (b + x - 1.0)).ln() + (r + x) * ((alpha + t).ln() - (alpha + t_x).ln());
    logistic(-ln_odds)
}

pub(super) fn logistic(v: f64) -> f64 {
    if v >= 0.0 { 1.0 / (1.0 + (-v).exp()) } else { v.exp() / (1.0 + v.exp()) }
}

/// Expected purchases in (T, T + h] given (x, t_x, T). The 2F1 is taken through the Euler
/// transformation, whose parameters do not grow with x: no overflow for heavy buyers.
pub fn expected_purchases(p: &[f64], h: f64, x: f64, t_x: f64, t: f64) -> f64 {
    if h <= 0.0 {
        return 0.0;
    }
    let (r, alpha, a, b) = (p[0], p[1], p[2], p[3]);
    let a = if (a - 1.0).abs() < 1e-9 { 1.0 + 1e-9 } else { a };
    let z = h / (alpha + t + h);
    let (ln_f, sign) = hyp2f1(a + b - 1.0 - r, a - 1.0, a + b + x - 1.0, z);
    let bracket = 1.0 - sign * ((a - 1.0) * (1.0 - z).ln() + ln_f).exp();
    (a + b + x - 1.0) / (a - 1.0) * bracket * p_alive(&[r, alpha, a, b], x, t_x, t)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDNOW: [f64; 4] = [0.2426, 4.4135, 0.7929, 2.4258];

    #[test]
    fn published_conditional_expectation() {
        // Fader, Hardie & Lee (2005), section 5: x = 2, t_x = 30.43, T = 38.86 -> 1.226 purchases
        // expected in the next 39 weeks.
        let e = expected_purchases(&CDNOW, 39.0, 2.0, 30.43, 38.86);
        assert!((e - 1.226).abs() < 5e-4, "{e}");
    }

    #[test]
    fn euler_form_matches_the_original_series() {
        let (r, alpha, a, b) = (CDNOW[0], CDNOW[1], CDNOW[2], CDNOW[3]);
        for (x, t_x, t, h) in [(0.0, 0.0, 20.0, 10.0), (3.0, 10.0, 30.0, 52.0), (7.0, 25.0, 39.0, 39.0)] {
            let z = h / (alpha + t + h);
            let (lf, s) = hyp2f1(r + x, b + x, a + b + x - 1.0, z);
            let original = (a + b + x - 1.0) / (a - 1.0)
                * (1.0 - ((alpha + t) / (alpha + t + h)).powf(r + x) * s * lf.exp())
                * p_alive(&CDNOW, x, t_x, t);
            let e = expected_purchases(&CDNOW, h, x, t_x, t);
            assert!((e - original).abs() < 1e-10 * original.max(1.0), "x={x}: {e} vs {original}");
        }
    }

    #[test]
    fn heavy_buyers_and_tiny_tenure_stay_finite() {
        let d = Rfm::compress(&[10_000.0, 0.0, 1.0], &[50.0, 0.0, 1e-9], &[50.0, 1e-9, 1e-9]);
        assert!(ll(&CDNOW, &d).is_finite());
        let e = expected_purchases(&CDNOW, 52.0, 10_000.0, 50.0, 50.0);
        assert!(e.is_finite() && e > 0.0, "{e}");
        assert!(p_alive(&CDNOW, 10_000.0, 1.0, 50.0) >= 0.0);
    }
}
