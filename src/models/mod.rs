//! CLV models (Fader, Hardie & Lee): BG/NBD and Pareto/NBD for purchase counts, Gamma-Gamma for
//! spend. Plain Rust numeric code over compact per-market arrays, so markets fit in parallel on
//! rayon with no Polars calls inside. Likelihoods are in log space throughout.

pub mod bgnbd;
pub mod dual;
pub mod gammagamma;
pub mod optimize;
pub mod paretonbd;
pub mod special;

use foldhash::HashMap;
use rayon::prelude::*;

/// Customers compressed to unique (x, t_x, T) triples with counts, sorted by x so that terms that
/// depend on x alone are computed once per distinct x. Terms that depend on one time alone (ln(α+T),
/// Pareto/NBD's F(x, t)) are computed once per distinct value per evaluation, through the indices.
#[derive(Debug, Clone, Default)]
pub struct Rfm {
    pub x: Vec<f64>,
    pub t_x: Vec<f64>,
    pub t: Vec<f64>,
    pub w: Vec<f64>,
    /// Distinct tenures and each triple's index into them.
    pub ts: Vec<f64>,
    pub t_at: Vec<u32>,
    /// Distinct recencies and each triple's index into them.
    pub txs: Vec<f64>,
    pub tx_at: Vec<u32>,
    /// Distinct (x, time) pairs over recencies and tenures, and each triple's two indices.
    pub pairs: Vec<(f64, f64)>,
    pub pair_tx: Vec<u32>,
    pub pair_t: Vec<u32>,
    /// Each customer's triple, in the order the customers were given.
    pub of: Vec<u32>,
}

/// Index of `v` in `values`, adding it when new.
fn intern<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, u32>, values: &mut Vec<V>, key: K, v: V) -> u32 {
    *map.entry(key).or_insert_with(|| {
        values.push(v);
        (values.len() - 1) as u32
    })
}

impl Rfm {
    pub fn compress(x: &[f64], t_x: &[f64], t: &[f64]) -> Rfm {
        // Sorted as integer keys in `total_cmp`'s order (equal keys are equal values, so an
        // unstable sort gives what a stable one would), not through an index and three loads.
        let key = |v: f64| {
            let bits = v.to_bits() as i64;
            bits ^ (((bits >> 63) as u64) >> 1) as i64
        };
        let mut keys: Vec<(i64, i64, i64, u32)> =
            (0..x.len()).map(|i| (key(x[i]), key(t_x[i]), key(t[i]), i as u32)).collect();
        keys.sort_unstable_by_key(|k| (k.0, k.1, k.2));
        let mut out = Rfm { of: vec![0; x.len()], ..Rfm::default() };
        for (_, _, _, i) in keys {
            let i = i as usize;
            let n = out.x.len();
            if n > 0 && out.x[n - 1] == x[i] && out.t_x[n - 1] == t_x[i] && out.t[n - 1] == t[i] {
                out.w[n - 1] += 1.0;
            } else {
                out.x.push(x[i]);
                out.t_x.push(t_x[i]);
                out.t.push(t[i]);
                out.w.push(1.0);
            }
            out.of[i] = (out.x.len() - 1) as u32;
        }
        let (mut tm, mut txm, mut pm) = (HashMap::default(), HashMap::default(), HashMap::default());
        for i in 0..out.x.len() {
            let (x, t_x, t) = (out.x[i], out.t_x[i], out.t[i]);
            out.t_at.push(intern(&mut tm, &mut out.ts, t.to_bits(), t));
            out.tx_at.push(intern(&mut txm, &mut out.txs, t_x.to_bits(), t_x));
            out.pair_tx.push(intern(&mut pm, &mut out.pairs, (x.to_bits(), t_x.to_bits()), (x, t_x)));
            out.pair_t.push(intern(&mut pm, &mut out.pairs, (x.to_bits(), t.to_bits()), (x, t)));
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

    /// `f(x, T)` of each distinct (x, T) among the triples, in parallel, indexed like `pairs`
    /// (look a triple's up through `pair_t`); pairs that are only someone's (x, t_x) get the
    /// default. What a customer alive at T is expected to do depends on (x, T) alone, which far
    /// fewer customers tell apart than (x, t_x, T).
    pub fn by_tenure_pair<T: Send + Default>(&self, f: impl Fn(f64, f64) -> T + Sync) -> Vec<T> {
        let mut tenure = vec![false; self.pairs.len()];
        for &p in &self.pair_t {
            tenure[p as usize] = true;
        }
        (0..self.pairs.len())
            .into_par_iter()
            .map(|p| if tenure[p] { f(self.pairs[p].0, self.pairs[p].1) } else { T::default() })
            .collect()
    }
}

/// Work per parallel task: partial sums are over fixed chunks and added in chunk order, so a
/// likelihood is bit-for-bit the same whatever the number of threads.
const CHUNK: usize = 8192;

/// `f` over fixed-size chunks of `0..n`, in parallel, results in chunk order.
pub(crate) fn chunked<T: Send>(n: usize, f: impl Fn(std::ops::Range<usize>) -> T + Sync) -> Vec<T> {
    let chunks: Vec<usize> = (0..n.div_ceil(CHUNK)).collect();
    chunks.par_iter().map(|&c| f(c * CHUNK..((c + 1) * CHUNK).min(n))).collect()
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
    /// Likelihood evaluations the optimisation took, over all starts.
    pub evaluations: usize,
    /// Parameters that ran to the edge of the space (e.g. BG/NBD a -> 0, b -> inf when nobody
    /// shows any dropout): the fit is usable but those values are limits, not estimates.
    pub at_boundary: Vec<&'static str>,
    /// The inverse Hessian of the objective in log-parameters at the optimum (`None` if
    /// singular): the curvature a later fit of the same model on similar data starts from.
    pub curvature: Option<Vec<Vec<f64>>>,
}

impl Fit {
    pub fn get(&self, name: &str) -> f64 {
        self.params[self.names.iter().position(|n| *n == name).expect("known parameter")]
    }

    /// A start for the same model on similar data (the same market with more days): from this
    /// optimum and its curvature, which the optimizer would otherwise estimate at the start and
    /// then correct step by step (a traced Pareto/NBD fit: 12 evaluations instead of 24). A fit
    /// at the edge passes on no curvature: along its ridge the inverse Hessian is huge, and the
    /// first steps from it overshot (Pareto/NBD as of long after the data: ~58 evaluations
    /// against ~24 with the curvature estimated afresh).
    pub fn warm_start(&self) -> Start {
        let curvature = self.curvature.clone().filter(|_| self.at_boundary.is_empty());
        Start { params: self.params.clone(), curvature }
    }
}

/// Where an optimisation starts: natural parameters and, when known, the curvature there (the
/// inverse Hessian in log-parameters; otherwise the optimizer estimates it).
#[derive(Debug, Clone)]
pub struct Start {
    pub params: Vec<f64>,
    pub curvature: Option<Vec<Vec<f64>>>,
}

impl From<Vec<f64>> for Start {
    fn from(params: Vec<f64>) -> Self {
        Start { params, curvature: None }
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

/// A log-likelihood's value and gradient at natural parameters.
pub type ValueAndGradient<'a> = &'a (dyn Fn(&[f64]) -> (f64, Vec<f64>) + Sync);

/// The log-likelihood to maximise: its value at natural parameters, and its value with the
/// gradient (one pass over dual numbers, dearer than the value alone).
pub struct Likelihood<'a> {
    pub names: &'static [&'static str],
    pub value: &'a (dyn Fn(&[f64]) -> f64 + Sync),
    pub gradient: ValueAndGradient<'a>,
}

/// Maximises the likelihood from the starts (natural parameters) in turn, keeping the best. The
/// first start whose optimum converges inside the space ends the search: later starts are
/// fallbacks for a start that stalls or runs to the boundary.
pub fn fit(lik: &Likelihood, starts: &[Start], prior: Option<&Prior>) -> Fit {
    let names = lik.names;
    let natural = |theta: &[f64]| -> Vec<f64> { theta.iter().map(|t| t.clamp(-CLAMP, CLAMP).exp()).collect() };
    let penalty = |theta: &[f64]| -> f64 {
        prior
            .map_or(0.0, |p| 0.5 * p.precision * theta.iter().zip(&p.center).map(|(t, c)| (t - c).powi(2)).sum::<f64>())
    };
    let objective = |theta: &[f64]| -> f64 { -(lik.value)(&natural(theta)) + penalty(theta) };
    // d(-ll)/dθ_i = -p_i ∂ll/∂p_i (chain rule through p = e^θ), plus the prior's pull.
    let with_gradient = |theta: &[f64]| -> (f64, Vec<f64>) {
        let p = natural(theta);
        let (ll, dp) = (lik.gradient)(&p);
        let g = (0..theta.len())
            .map(|i| {
                let inside = theta[i].abs() < CLAMP;
                let pull = prior.map_or(0.0, |pr| pr.precision * (theta[i] - pr.center[i]));
                if inside { -p[i] * dp[i] + pull } else { pull }
            })
            .collect();
        (-ll + penalty(theta), g)
    };
    let started = std::time::Instant::now();
    let mut best: Option<optimize::Minimum> = None;
    let mut evaluations = 0;
    for start in starts {
        let theta0: Vec<f64> = start.params.iter().map(|v| v.ln()).collect();
        let m = optimize::minimize(&objective, &with_gradient, &theta0, start.curvature.as_deref(), 1e-9);
        evaluations += m.evaluations;
        let settled = m.converged && m.x.iter().all(|t| t.abs() <= BOUNDARY);
        if best.as_ref().is_none_or(|b| m.f < b.f) {
            best = Some(m);
        }
        if settled {
            break;
        }
    }
    let m = best.expect("at least one start");
    let params = natural(&m.x);
    let at_boundary: Vec<&'static str> =
        names.iter().zip(&m.x).filter(|(_, t)| t.abs() > BOUNDARY).map(|(n, _)| *n).collect();
    // At the optimum the gradient is zero, so the natural-scale covariance is J^-1 H^-1 J^-T with
    // J = diag(1/p): se(p_i) = p_i * sqrt((H_theta^-1)_ii).
    let h = optimize::hessian_from_gradient(&|theta| with_gradient(theta).1, &m.x, &m.g);
    let curvature = optimize::invert(&h);
    let se = match &curvature {
        Some(inv) => (0..names.len())
            .map(|i| (inv[i][i] > 0.0 && at_boundary.is_empty()).then(|| params[i] * inv[i][i].sqrt()))
            .collect(),
        None => vec![None; names.len()],
    };
    tracing::debug!(
        parameters = names.join(","),
        starts = starts.len(),
        warm = starts.iter().any(|s| s.curvature.is_some()),
        iterations = m.iterations,
        evaluations,
        ms = started.elapsed().as_millis() as u64,
        "fitted"
    );
    Fit {
        names,
        ll: (lik.value)(&params),
        params,
        se,
        converged: m.converged,
        iterations: m.iterations,
        evaluations,
        at_boundary,
        curvature,
    }
}

/// Test helper: an analytic gradient against central finite differences of the likelihood.
#[cfg(test)]
pub(crate) fn assert_gradient(names: &[&str], p: &[f64], ll: impl Fn(&[f64]) -> f64, gradient: &[f64]) {
    for i in 0..p.len() {
        let h = 1e-6 * p[i];
        let (mut up, mut down) = (p.to_vec(), p.to_vec());
        up[i] += h;
        down[i] -= h;
        let numeric = (ll(&up) - ll(&down)) / (2.0 * h);
        assert!(
            (gradient[i] - numeric).abs() < 1e-5 * numeric.abs().max(1.0),
            "{}: {} vs {numeric}",
            names[i],
            gradient[i]
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A warm start carries the earlier fit's curvature only when that fit settled inside the
    /// space.
    #[test]
    fn a_fit_at_the_edge_passes_on_no_curvature() {
        let fit = |at_boundary: Vec<&'static str>| Fit {
            names: bgnbd::NAMES,
            params: vec![0.3, 40.0, 1e-5, 9e4],
            se: vec![None; 4],
            ll: 0.0,
            converged: true,
            iterations: 1,
            evaluations: 1,
            at_boundary,
            curvature: Some(vec![vec![1.0; 4]; 4]),
        };
        assert!(fit(vec![]).warm_start().curvature.is_some());
        let edge = fit(vec!["a", "b"]).warm_start();
        assert!(edge.curvature.is_none() && edge.params == [0.3, 40.0, 1e-5, 9e4]);
    }

    /// Starts are fallbacks: a start that converges inside the space ends the search, one that
    /// runs to the boundary lets the next start run too.
    #[test]
    fn a_start_that_settles_inside_ends_the_search() {
        const NAMES: &[&str] = &["a", "b"];
        // A concave bowl in the log-parameters, peaked at (2, 3).
        let bowl = |p: &[f64]| -((p[0] / 2.0).ln().powi(2) + (p[1] / 3.0).ln().powi(2));
        let bowl_gradient =
            |p: &[f64]| (bowl(p), vec![-2.0 * (p[0] / 2.0).ln() / p[0], -2.0 * (p[1] / 3.0).ln() / p[1]]);
        let lik = Likelihood { names: NAMES, value: &bowl, gradient: &bowl_gradient };
        let (near, far): (Start, Start) = (vec![1.5, 4.0].into(), vec![40.0, 0.1].into());
        let alone = fit(&lik, std::slice::from_ref(&near), None);
        let both = fit(&lik, &[near.clone(), far.clone()], None);
        assert!(alone.converged && alone.at_boundary.is_empty());
        assert_eq!(both.evaluations, alone.evaluations, "the second start did not run");
        assert_eq!(both.params, alone.params);
        // Rising without end as a -> 0: every start runs to the boundary, so both run.
        let slope = |p: &[f64]| -p[0] - (p[1] / 3.0).ln().powi(2);
        let slope_gradient = |p: &[f64]| (slope(p), vec![-1.0, -2.0 * (p[1] / 3.0).ln() / p[1]]);
        let lik = Likelihood { names: NAMES, value: &slope, gradient: &slope_gradient };
        let (first, second) =
            (fit(&lik, std::slice::from_ref(&near), None), fit(&lik, std::slice::from_ref(&far), None));
        assert_eq!(first.at_boundary, ["a"]);
        let both = fit(&lik, &[near, far], None);
        assert_eq!(both.evaluations, first.evaluations + second.evaluations, "the second start ran");
    }

    /// The distinct triples in ascending order with their counts, and every index pointing at its
    /// value, against a brute-force count (values include a negative and repeats out of order).
    #[test]
    fn compress_counts_each_distinct_triple() {
        let x = [2.0, 0.0, 2.0, 1.0, 0.0, 2.0, -1.0, 2.0];
        let t_x = [5.0, 0.0, 5.0, 3.0, 0.0, 4.0, 0.5, 5.0];
        let t = [9.0, 9.0, 9.0, 9.0, 7.0, 9.0, 1.0, 8.0];
        let d = Rfm::compress(&x, &t_x, &t);
        let mut want: Vec<((f64, f64, f64), f64)> = Vec::new();
        for i in 0..x.len() {
            match want.iter_mut().find(|(v, _)| *v == (x[i], t_x[i], t[i])) {
                Some((_, w)) => *w += 1.0,
                None => want.push(((x[i], t_x[i], t[i]), 1.0)),
            }
        }
        want.sort_by(|a, b| a.0.0.total_cmp(&b.0.0).then(a.0.1.total_cmp(&b.0.1)).then(a.0.2.total_cmp(&b.0.2)));
        let got: Vec<((f64, f64, f64), f64)> = (0..d.len()).map(|i| ((d.x[i], d.t_x[i], d.t[i]), d.w[i])).collect();
        assert_eq!(got, want);
        for i in 0..d.len() {
            assert_eq!(d.ts[d.t_at[i] as usize], d.t[i]);
            assert_eq!(d.txs[d.tx_at[i] as usize], d.t_x[i]);
            assert_eq!(d.pairs[d.pair_tx[i] as usize], (d.x[i], d.t_x[i]));
            assert_eq!(d.pairs[d.pair_t[i] as usize], (d.x[i], d.t[i]));
        }
    }
}
