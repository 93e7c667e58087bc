//! CLV models (Fader, Hardie & Lee): BG/NBD and Pareto/NBD for purchase counts, Gamma-Gamma for
//! spend. Plain Rust numeric code over compact per-market arrays, so markets fit in parallel on
//! rayon with no Polars calls inside. Likelihoods are in log space throughout.

pub mod bgnbd;
pub mod gammagamma;
pub mod optimize;
pub mod paretonbd;
pub mod special;

/// Customers compressed to unique (x, t_x, T) triples with counts, sorted by x so that terms that
/// depend on x alone are computed once per distinct x.
#[derive(Debug, Clone, Default)]
pub struct Rfm {
    pub x: Vec<f64>,
    pub t_x: Vec<f64>,
    pub t: Vec<f64>,
    pub w: Vec<f64>,
}

impl Rfm {
    pub fn compress(x: &[f64], t_x: &[f64], t: &[f64]) -> Rfm {
        let mut idx: Vec<usize> = (0..x.len()).collect();
        idx.sort_by(|&i, &j| x[i].total_cmp(&x[j]).then(t_x[i].total_cmp(&t_x[j])).then(t[i].total_cmp(&t[j])));
        let mut out = Rfm::default();
        for i in idx {
            let n = out.x.len();
            if n > 0 && out.x[n - 1] == x[i] && out.t_x[n - 1] == t_x[i] && out.t[n - 1] == t[i] {
                out.w[n - 1] += 1.0;
            } else {
                out.x.push(x[i]);
                out.t_x.push(t_x[i]);
                out.t.push(t[i]);
                out.w.push(1.0);
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.x.len()
    }

    pub fn is_empty(&self) -> bool {
        self.x.is_empty()
    }

    pub fn customers(&self) -> f64 {
        self.w.iter().sum()
    }
}

/// A fitted model: parameters in the data's time unit, standard errors from the observed
/// information, the total log-likelihood, and what the optimizer had to say.
#[derive(Debug, Clone)]
pub struct Fit {
    pub names: &'static [&'static str],
    pub params: Vec<f64>,
    pub se: Vec<Option<f64>>,
    pub ll: f64,
    pub converged: bool,
    pub iterations: usize,
    /// Parameters that ran to the edge of the space (e.g. BG/NBD a -> 0, b -> inf when nobody
    /// shows any dropout): the fit is usable but those values are limits, not estimates.
    pub at_boundary: Vec<&'static str>,
}

impl Fit {
    pub fn get(&self, name: &str) -> f64 {
        self.params[self.names.iter().position(|n| *n == name).expect("known parameter")]
    }
}

/// log-parameters beyond this are "at the boundary": a parameter below 1e-4 or above 1e4, far from
/// any estimate the data supports in days or weeks (e.g. BG/NBD a -> 0, b -> inf: no dropout seen).
const BOUNDARY: f64 = 9.21;
/// log-parameters are clamped here so that a boundary fit stays finite.
const CLAMP: f64 = 30.0;

/// A Gaussian prior on the log-parameters: shrinks a small market's fit toward `center`.
#[derive(Debug, Clone)]
pub struct Prior {
    pub center: Vec<f64>,
    /// Precision (1 / variance) on each log-parameter.
    pub precision: f64,
}

/// Maximises `ll` (the total log-likelihood at natural parameters) from each start, keeping the best.
pub fn fit(
    names: &'static [&'static str],
    ll: &(dyn Fn(&[f64]) -> f64 + Sync),
    starts: &[Vec<f64>],
    prior: Option<&Prior>,
) -> Fit {
    let natural = |theta: &[f64]| -> Vec<f64> { theta.iter().map(|t| t.clamp(-CLAMP, CLAMP).exp()).collect() };
    let objective = |theta: &[f64]| -> f64 {
        let mut v = -ll(&natural(theta));
        if let Some(p) = prior {
            v += 0.5 * p.precision * theta.iter().zip(&p.center).map(|(t, c)| (t - c).powi(2)).sum::<f64>();
        }
        v
    };
    let mut best: Option<optimize::Minimum> = None;
    for start in starts {
        let theta0: Vec<f64> = start.iter().map(|v| v.ln()).collect();
        let m = optimize::minimize(&objective, &theta0, 1e-9);
        if best.as_ref().is_none_or(|b| m.f < b.f) {
            best = Some(m);
        }
    }
    let m = best.expect("at least one start");
    let params = natural(&m.x);
    let at_boundary: Vec<&'static str> =
        names.iter().zip(&m.x).filter(|(_, t)| t.abs() > BOUNDARY).map(|(n, _)| *n).collect();
    // At the optimum the gradient is zero, so the natural-scale covariance is J^-1 H^-1 J^-T with
    // J = diag(1/p): se(p_i) = p_i * sqrt((H_theta^-1)_ii).
    let h = optimize::hessian(&objective, &m.x);
    let se = match optimize::invert(&h) {
        Some(inv) => (0..names.len())
            .map(|i| (inv[i][i] > 0.0 && at_boundary.is_empty()).then(|| params[i] * inv[i][i].sqrt()))
            .collect(),
        None => vec![None; names.len()],
    };
    Fit { names, ll: ll(&params), params, se, converged: m.converged, iterations: m.iterations, at_boundary }
}
