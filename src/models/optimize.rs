//! Maximum likelihood: BFGS on the logs of the parameters (so they stay positive), with analytic
//! gradients, a starting curvature (given, or estimated where it starts) and a backtracking
//! Armijo line search; then the observed information (differences of the gradient) for standard
//! errors. Small, dependency-free and deterministic.

pub struct Minimum {
    pub x: Vec<f64>,
    pub f: f64,
    /// The gradient at `x`.
    pub g: Vec<f64>,
    pub iterations: usize,
    /// Evaluations of the function (values, or values with gradients) it took.
    pub evaluations: usize,
    pub converged: bool,
}

const MAX_ITER: usize = 1000;

/// A decrease the line search still looks for, relative to the value: below it, a likelihood
/// summed over many customers is rounding noise.
const LINE_NOISE: f64 = 1e-12;

fn finite(v: f64) -> f64 {
    if v.is_finite() { v } else { f64::INFINITY }
}

/// A function's value and gradient at a point, from one pass (dual numbers): dearer than the
/// value alone, cheaper than the two apart.
pub type ValueGradient<'a> = &'a dyn Fn(&[f64]) -> (f64, Vec<f64>);

/// Minimises `f` (value and gradient from `fg`) from `x0`. Converged: the largest gradient
/// component is below `gtol` (scaled by the function's magnitude) or the objective stopped
/// changing at machine precision. `curvature`: an inverse Hessian to start from (else
/// [`initial_curvature`]). Each step first tries the full quasi-Newton step with value and
/// gradient together (nearly always taken); only when that fails does the line search backtrack
/// on values alone.
pub fn minimize(
    f: &dyn Fn(&[f64]) -> f64,
    fg: ValueGradient,
    x0: &[f64],
    curvature: Option<&[Vec<f64>]>,
    gtol: f64,
) -> Minimum {
    let evaluations = std::cell::Cell::new(0);
    let count = || evaluations.set(evaluations.get() + 1);
    let f = |x: &[f64]| {
        count();
        f(x)
    };
    let fg = |x: &[f64]| {
        count();
        fg(x)
    };
    let done =
        |x, f, g, iterations, converged| Minimum { x, f, g, iterations, evaluations: evaluations.get(), converged };
    let n = x0.len();
    let mut x = x0.to_vec();
    let (fx0, mut g) = fg(&x);
    let mut fx = finite(fx0);
    let mut h = match curvature {
        Some(c) => c.to_vec(),
        None => initial_curvature(&|y| fg(y).1, &x, &g),
    };
    let mut stalled = 0;
    for iter in 0..MAX_ITER {
        let scale = fx.abs().max(1.0);
        if g.iter().all(|v| v.is_finite()) && g.iter().map(|v| v.abs()).fold(0.0, f64::max) < gtol * scale {
            return done(x, fx, g, iter, true);
        }
        let mut d: Vec<f64> = (0..n).map(|i| -(0..n).map(|j| h[i][j] * g[j]).sum::<f64>()).collect();
        let mut slope: f64 = d.iter().zip(&g).map(|(a, b)| a * b).sum();
        // Not a descent direction (or NaN): restart from steepest descent.
        if slope.partial_cmp(&0.0) != Some(std::cmp::Ordering::Less) {
            h = identity(n);
            d = g.iter().map(|v| -v).collect();
            slope = -g.iter().map(|v| v * v).sum::<f64>();
        }
        // The quasi-Newton step promises less than one rounding of the value: whatever decrease a
        // line search still finds is rounding luck, and each such search halved the step ~20
        // times (three of them in a row end the search anyway, see `stalled`).
        if -0.5 * slope <= f64::EPSILON * fx.abs() {
            return done(x, fx, g, iter, true);
        }
        // Backtracking line search; steps in log-parameter space are capped at 5 (a factor e^5).
        let max_step = d.iter().map(|v| v.abs()).fold(0.0, f64::max);
        let mut t = if max_step > 5.0 { 5.0 / max_step } else { 1.0 };
        let along = |t: f64| -> Vec<f64> { x.iter().zip(&d).map(|(a, b)| a + t * b).collect() };
        let armijo = |t: f64, v: f64| v <= fx + 1e-4 * t * slope;
        let first = along(t);
        let (v, gn) = fg(&first);
        let mut accepted = armijo(t, finite(v)).then(|| (first, finite(v), gn));
        for _ in 1..60 {
            if accepted.is_some() || -t * slope < LINE_NOISE * scale {
                break;
            }
            t *= 0.5;
            let xn = along(t);
            let v = finite(f(&xn));
            if armijo(t, v) {
                let gn = fg(&xn).1;
                accepted = Some((xn, v, gn));
            }
        }
        let Some((xn, fn_, gn)) = accepted else {
            // No decrease along the direction: at the optimum to working precision.
            let converged = stalled > 0 || g.iter().map(|v| v.abs()).fold(0.0, f64::max) < 1e-4 * scale;
            return done(x, fx, g, iter, converged);
        };
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
            return done(x, fx, g, iter + 1, true);
        }
    }
    done(x, fx, g, MAX_ITER, false)
}

/// The inverse Hessian at `x` (gradient `g`), by differences of the gradient, for a start with no
/// known curvature. With the identity instead, the first step is the raw gradient (of the order of
/// the number of customers): it flung the search far out, where the line search backtracked for
/// tens of evaluations (and Pareto/NBD's series are slow). Where the Hessian is not positive
/// definite (Pareto/NBD away from its optimum), its diagonal alone; failing that, the identity.
fn initial_curvature(grad: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64], g: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let h = hessian_from_gradient(grad, x, g);
    if h.iter().flatten().all(|v| v.is_finite())
        && positive_definite(&h)
        && let Some(inverse) = invert(&h)
    {
        return inverse;
    }
    match (0..n).all(|i| h[i][i] > 0.0 && h[i][i].is_finite()) {
        true => (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 / h[i][i] } else { 0.0 }).collect()).collect(),
        false => identity(n),
    }
}

/// Cholesky's test: every pivot of the factorisation is positive.
fn positive_definite(m: &[Vec<f64>]) -> bool {
    let n = m.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let sum: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let pivot = m[i][i] - sum;
                if pivot.is_nan() || pivot <= 0.0 {
                    return false;
                }
                l[i][i] = pivot.sqrt();
            } else {
                l[i][j] = (m[i][j] - sum) / l[j][j];
            }
        }
    }
    true
}

fn identity(n: usize) -> Vec<Vec<f64>> {
    (0..n).map(|i| (0..n).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect()
}

/// Relative step of the Hessian's differences. Forward differences err by ~step (truncation)
/// plus ~(the gradient's rounding) / step: on CDNOW, standard errors at 1e-7 are within 1e-6 of
/// `lifetimes`' published six digits, at 1e-8 (rounding) and 1e-6 (truncation) further off.
const STEP: f64 = 1e-7;

/// Hessian as forward differences of an analytic gradient from `g`, the gradient at `x` (known
/// from the optimisation), symmetrised: n gradients, where central differences took 2n.
pub fn hessian_from_gradient(grad: &dyn Fn(&[f64]) -> Vec<f64>, x: &[f64], g: &[f64]) -> Vec<Vec<f64>> {
    let n = x.len();
    let mut y = x.to_vec();
    let rows: Vec<Vec<f64>> = (0..n)
        .map(|i| {
            let h = STEP * x[i].abs().max(1.0);
            y[i] = x[i] + h;
            let up = grad(&y);
            y[i] = x[i];
            up.iter().zip(g).map(|(u, d)| (u - d) / h).collect()
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
        let g =
            |x: &[f64]| vec![-2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]), 200.0 * (x[1] - x[0] * x[0])];
        let m = minimize(&f, &|x| (f(x), g(x)), &[-1.2, 1.0], None, 1e-9);
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-5 && (m.x[1] - 1.0).abs() < 1e-5, "{:?}", m.x);
        assert_eq!(m.g, g(&m.x));
    }

    /// A likelihood summed over many customers carries rounding noise of ~1e-10 in its value;
    /// near its optimum the gradient can stay above the tolerance while the quasi-Newton step
    /// promises less than one rounding of the value. The search stops there instead of halving
    /// line searches through the noise (~20 evaluations each, three times over).
    #[test]
    fn a_step_promising_less_than_the_values_rounding_ends_the_search() {
        let c = 1e5;
        let f = |x: &[f64]| 1e6 + 0.5 * c * (x[0] - 1.0).powi(2) + 3e-10 * (x[0] * 1e13).sin();
        let g = |x: &[f64]| vec![c * (x[0] - 1.0)];
        // Gradient 3e-3, above 1e-9 of the value; the Newton step promises 4.5e-11 < 1e6 * 2^-52.
        let x0 = [1.0 + 3e-8];
        let m = minimize(&f, &|x| (f(x), g(x)), &x0, Some(&[vec![1.0 / c]]), 1e-9);
        assert!(m.converged && m.x == x0 && m.evaluations == 1, "{} evaluations at {:?}", m.evaluations, m.x);
        // A step promising more is still searched for: from further out the minimum is reached.
        let m = minimize(&f, &|x| (f(x), g(x)), &[1.001], Some(&[vec![1.0 / c]]), 1e-9);
        assert!(m.converged && (m.x[0] - 1.0).abs() < 1e-7, "{:?}", m.x);
    }

    /// Far out on a ridge (Pareto/NBD's s and beta running off together) the gradient carries
    /// rounding errors larger than itself, and the quasi-Newton direction can point uphill. The
    /// line search gives up once the decrease it could still find is below 1e-12 of the value,
    /// instead of halving ~50 times until a step too small to change the value is "accepted".
    #[test]
    fn a_line_search_stops_below_the_values_noise() {
        let c = 1e5;
        let f = |x: &[f64]| 1e6 + 0.5 * c * (x[0] - 1.0).powi(2);
        // The true gradient at x0 is -1e-3; the one reported carries an error of +1e-2.
        let g = |x: &[f64]| vec![c * (x[0] - 1.0) + 1e-2];
        let x0 = [1.0 - 1e-8];
        let m = minimize(&f, &|x| (f(x), g(x)), &x0, Some(&[vec![1.0 / c]]), 1e-9);
        assert!(m.converged && m.x == x0 && m.evaluations == 2, "{} evaluations at {:?}", m.evaluations, m.x);
    }

    #[test]
    fn hessian_and_inverse_of_a_quadratic() {
        // f = x^2 + 3xy + 5y^2 -> H = [[2, 3], [3, 10]]
        let g = |x: &[f64]| vec![2.0 * x[0] + 3.0 * x[1], 3.0 * x[0] + 10.0 * x[1]];
        let x = [0.3, -0.2];
        let h = hessian_from_gradient(&g, &x, &g(&x));
        let rounded: Vec<f64> = h.concat().iter().map(|v| (v * 1e6).round()).collect();
        assert_eq!(rounded, [2e6, 3e6, 3e6, 10e6]);
        let inv = invert(&h).unwrap();
        // [[2,3],[3,10]]^-1 = [[10,-3],[-3,2]] / 11
        assert!((inv[0][0] - 10.0 / 11.0).abs() < 1e-6 && (inv[0][1] + 3.0 / 11.0).abs() < 1e-6);
        assert!(invert(&[vec![1.0, 2.0], vec![2.0, 4.0]]).is_none());
    }

    #[test]
    fn a_start_with_the_exact_curvature_takes_one_newton_step() {
        let f = |x: &[f64]| x[0] * x[0] + 3.0 * x[0] * x[1] + 5.0 * x[1] * x[1] - x[0];
        let g = |x: &[f64]| vec![2.0 * x[0] + 3.0 * x[1] - 1.0, 3.0 * x[0] + 10.0 * x[1]];
        let inverse = invert(&[vec![2.0, 3.0], vec![3.0, 10.0]]).unwrap();
        let warm = minimize(&f, &|x| (f(x), g(x)), &[0.3, -0.2], Some(&inverse), 1e-12);
        // The minimum of the quadratic: H x = (1, 0) -> x = (10, -3) / 11.
        assert!(warm.converged && warm.iterations == 1, "{} iterations", warm.iterations);
        assert!((warm.x[0] - 10.0 / 11.0).abs() < 1e-12 && (warm.x[1] + 3.0 / 11.0).abs() < 1e-12);
        // Without it, the curvature is estimated first: two more gradients, then the same step.
        let cold = minimize(&f, &|x| (f(x), g(x)), &[0.3, -0.2], None, 1e-12);
        assert!(cold.evaluations >= warm.evaluations + 2 && (cold.x[0] - warm.x[0]).abs() < 1e-9);
    }
}
