//! Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV"): a customer's transaction
//! values are Gamma(p, ν) around a mean whose ν ~ Gamma(q, γ). Fitted on repeat buyers' x and mean
//! repeat spend m_x.

use super::special::ln_gamma;
use super::{Fit, Likelihood, Prior};

pub const NAMES: &[&str] = &["p", "q", "gamma"];

/// Repeat buyers: number of repeat purchases, mean repeat spend, and count (for compression).
#[derive(Debug, Clone, Default)]
pub struct Spend {
    pub x: Vec<f64>,
    pub m: Vec<f64>,
    pub w: Vec<f64>,
}

impl Spend {
    /// Keeps customers with x > 0 and m > 0.
    pub fn new(x: &[f64], m: &[f64]) -> Spend {
        let mut s = Spend::default();
        for (&x, &m) in x.iter().zip(m) {
            if x > 0.0 && m > 0.0 {
                s.x.push(x);
                s.m.push(m);
                s.w.push(1.0);
            }
        }
        s
    }

    pub fn customers(&self) -> f64 {
        self.w.iter().sum()
    }
}

pub fn ll(params: &[f64], d: &Spend) -> f64 {
    let (p, q, g) = (params[0], params[1], params[2]);
    let base = q * g.ln() - ln_gamma(q);
    let mut total = 0.0;
    for i in 0..d.x.len() {
        let (x, m) = (d.x[i], d.m[i]);
        let px = p * x;
        total += d.w[i]
            * (base + ln_gamma(px + q) - ln_gamma(px) + (px - 1.0) * m.ln() + px * x.ln()
                - (px + q) * (g + m * x).ln());
    }
    total
}

/// Where a free fit starts: from ones (lifetimes' start), and from a typical shape (p 5, q 10)
/// scaled so the population mean spend p γ / (q - 1) matches the data's: from ones alone the
/// fit can run along the ridge p -> infinity, γ -> 0 and stop short of the optimum.
pub fn starts(d: &Spend) -> Vec<Vec<f64>> {
    let n: f64 = d.w.iter().sum();
    let mean = d.m.iter().zip(&d.w).map(|(m, w)| m * w).sum::<f64>() / n.max(1e-9);
    let (p, q) = (5.0, 10.0);
    vec![vec![1.0; 3], vec![p, q, (mean * (q - 1.0) / p).max(1e-6)]]
}

pub fn fit(d: &Spend, starts: &[Vec<f64>], prior: Option<&Prior>) -> Fit {
    let value = |p: &[f64]| ll(p, d);
    super::fit(&Likelihood { names: NAMES, value: &value, gradient: None }, starts, prior)
}

/// E[spend per transaction | x, m_x]; for x = 0 the population mean p γ / (q - 1).
pub fn expected_spend(params: &[f64], x: f64, m: f64) -> f64 {
    let (p, q, g) = (params[0], params[1], params[2]);
    p * (g + x * m) / (p * x + q - 1.0)
}
