//! Maximum likelihood: BFGS on the logs of the parameters (so they stay positive), with central
//! difference gradients and a backtracking Armijo line search; then the observed information
//! (numerical Hessian) for standard errors. Small, dependency-free and deterministic.

pub struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    pub iterations: usize,
    pub converged: bool,
}

const MAX_ITER: usize = 1000;

fn value(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> f64 {
    let v = f(x);
    if v.is_finite() { v } else { f64::INFINITY }
}

pub fn gradient(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; x.len()];
    let mut y = x.to_vec();
    for i in 0..x.len() {
        let h = 1e-6 * x[i].abs().max(1.0);
        y[i] = x[i] + h;
        let up = value(f, &y);
        y[i] = x[i] - h;
        let down = value(f, &y);
        y[i] = x[i];
        g[i] = (up - down) / (2.0 * h);
    }
    g
}

/// Minimises `f` (with gradient `grad`) from `x0`. Converged: the largest gradient component is
/// below `gtol` (scaled by the function's magnitude) or the objective stopped changing at machine
/// precision.
pub fn minimize(f: &dyn Fn(&[f64]) -> f64, grad: &dyn Fn(&[f64]) -> Vec<f64>, x0: &[f64], gtol: f64) -> Minimum {
    let n = x0.len();
    let mut x = x0.to_vec();
    let mut fx = value(f, &x);
    let mut g = grad(&x);
    let mut h = identity(n);
    let mut stalled = 0;
    for iter in 0..MAX_ITER {
        let scale = fx.abs().max(1.0);
        if g.iter().all(|v| v.is_finite()) && g.iter().map(|v| v.abs()).fold(0.0, f64::max) < gtol * scale {
            return Minimum { x, f: fx, iterations: iter, converged: true };
        }
        let mut d: Vec<f64> = (0..n).map(|i| -(0..n).map(|j| h[i][j] * g[j]).sum::<f64>()).collect();
        let mut slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        // Not a descent direction (or NaN): restart from steepest descent.
        if slope.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
            h = identity(n);
            d = g.iter().map(|v| -v).collect();
            slope = -g.iter().map(|v| v * v).sum::<f64>();
        }
        // Backtracking line search; steps in log-parameter space are capped at 5 (a factor e^5).
        let max_step = d.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let mut t = if max_step > 5.0 { 5.0 / max_step } else { 1.0 };
        let mut accepted = None;
        for _ in 0..60 {
            let xn: Vec<f64> = x.iter().zip(&d).map(|(a, b)| a + t * b).collect();
            let fn_ = value(f, &xn);
            if fn_ <= fx + 1e-4 * t * slope {
                accepted = Some((xn, fn_));
                break;
            }
            t *= 0.5;
        }
        let Some((xn, fn_)) = accepted else {
            // No decrease along the direction: at the optimum to working precision.
            let converged = stalled > 0 || g.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-4 * scale;
            return Minimum { x, f: fx, iterations: iter, converged };
        };
        let gn = grad(&xn);
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        let sy: f64 = s.iter().zip(&y).map(|(a, b)| a * b).sum();
        if sy > 1e-12 {
            // BFGS update of the inverse Hessian.
            let hy: Vec<f64> = (0..n).map(|i| (0..n).map(|j| h[i][j] * y[j]).sum()).collect();
            let yhy: f64 = y.iter().zip(&hy).map(|(a, b)| a * b).sum();
            for i in 0..n {
                for j in 0..n {
                    h[i][j] += (sy + yhy) * s[i] * s[j] / (sy * sy) - (hy[i] * s[j] + s[i] * hy[j]) / sy;
                }
            }
        }
        stalled = if (fx - fn_).abs() <= 1e-14 * scale { stalled + 1 } else { 0 };
        x = xn;
        fx = fn_;
        g = gn;
        if stalled >= 3 {
            return Minimum { x, f: fx, iterations: iter + 1, converged: true };
        }
    }
    Minimum { x, f: fx, iterations: MAX_ITER, converged: false }
}

fn identity(n: usize) -> Vec<Vec<f64>> {
    (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect()
}

/// Central-difference Hessian of `f` at `x`.
pub fn hessian(f: &dyn Fn(&[f64]) -> f64, x: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let step: Vec<f64> = x.iter().map(|v| 1e-4 * v.abs().max(1.0)).collect();
    let at = |di: (usize, f64), dj: (usize, f64)| {
        let mut y = x.to_vec();
        y[di.0] += di.1;
        y[dj.0] += dj.1;
        f(&y)
    };
    let mut hm = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in i..n {
            let (hi, hj) = (step[i], step[j]);
            let v = (at((i, hi), (j, hj)) - at((i, hi), (j, -hj)) - at((i, -hi), (j, hj)) + at((i, -hi), (j, -hj)))
                / (4.0 * hi * hj);
            hm[i][j] = v;
            hm[j][i] = v;
        }
    }
    hm
}

/// Hessian as central differences of an analytic gradient, symmetrised: 2n gradients instead of
/// 2n(n+1) values, and no second differences of values (which cancel to a few digits).
pub fn hessian_from_gradient(grad: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut y = x.to_vec();
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let h = 1e-5 * x[i].abs().max(1.0);
            y[i] = x[i] + h;
            let up = grad(&y);
            y[i] = x[i] - h;
            let down = grad(&y);
            y[i] = x[i];
            up.iter().zip(&down).map(|(u, d)| (u - d) / (2.0 * h)).collect()
        })
        .collect();
    (0..n).map(|i| (0..n).map(|j| 0.5 * (rows[i][j] + rows[j][i])).collect()).collect()
}

/// Inverse by Gauss-Jordan elimination with partial pivoting; `None` if singular.
pub fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = m.len();
    let mut a: Vec<Vec<f64>> =
        m.iter().enumerate().map(|(i, r)| [r.clone(), identity(n)[i].clone()].concat()).collect();
    for c in 0..n {
        let p = (c..n).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[p][c].abs() < 1e-300 || !a[p][c].is_finite() {
            return None;
        }
        a.swap(c, p);
        let d = a[c][c];
        a[c].iter_mut().for_each(|v| *v /= d);
        for r in 0..n {
            if r != c {
                let k = a[r][c];
                let pivot = a[c].clone();
                a[r].iter_mut().zip(&pivot).for_each(|(v, p)| *v -= k * p);
            }
        }
    }
    Some(a.into_iter().map(|r| r[n..].to_vec()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rosenbrock() {
        let f = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let m = minimize(&f, &|x| gradient(&f, x), &[-1.2, 1.0], 1e-9);
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5, "{:?}", m.x);
    }

    #[test]
    fn hessian_and_inverse_of_a_quadratic() {
        // f = x^2 + 3xy + 5y^2 -> H = [[2, 3], [3, 10]]
        let f = |x: &[f64]| x[0] * x[0] + 3.0 * x[0] * x[1] + 5.0 * x[1] * x[1];
        let h = hessian(&f, &[0.3, -0.2]);
        assert!((h[0][0] - 2.0).abs() < 1e-6 && (h[0][1] - 3.0).abs() < 1e-6 && (h[1][1] - 10.0).abs() < 1e-6);
        let g = |x: &[f64]| vec![2.0 * x[0] + 3.0 * x[1], 3.0 * x[0] + 10.0 * x[1]];
        let hg: Vec<f64> = hessian_from_gradient(&g, &[0.3, -0.2]).concat().iter().map(|v| (v * 1e6).round()).collect();
        assert_eq!(hg, [2e6, 3e6, 3e6, 10e6]);
        let inv = invert(&h).unwrap();
        // [[2,3],[3,10]]^-1 = [[10,-3],[-3,2]] / 11
        assert!((inv[0][0] - 10.0 / 11.0).abs() < 1e-6 && (inv[0][1] + 3.0 / 11.0).abs() < 1e-6);
        assert!(invert(&[vec![1.0, 2.0], vec![2.0, 4.0]]).is_none());
    }
}
