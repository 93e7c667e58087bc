//! Forward-mode dual numbers with four partials. Pareto/NBD's 2F1 has no handy derivative in its
//! parameters, so its gradient was eight likelihood evaluations by central differences; evaluated
//! on duals, one pass gives the value and all four partials. Code written over [`Real`] runs on
//! plain `f64` (the value alone) or on [`Dual`] (value and gradient).

use super::special::{digamma, ln_gamma};
use std::ops::{Add, Div, Mul, Neg, Sub};

/// A number the likelihood code computes with: `f64` or [`Dual`].
pub trait Real:
    Copy
    + Send
    + Sync
    + Add<Output = Self>
    + Sub<Output = Self>
    + Mul<Output = Self>
    + Div<Output = Self>
    + Neg<Output = Self>
    + Add<f64, Output = Self>
    + Sub<f64, Output = Self>
    + Mul<f64, Output = Self>
    + Div<f64, Output = Self>
{
    fn constant(v: f64) -> Self;
    /// The value (without partials).
    fn value(self) -> f64;
    fn ln(self) -> Self;
    fn exp(self) -> Self;
    fn exp_m1(self) -> Self;
    fn ln_gamma(self) -> Self;
}

impl Real for f64 {
    fn constant(v: f64) -> Self {
        v
    }
    fn value(self) -> f64 {
        self
    }
    fn ln(self) -> Self {
        f64::ln(self)
    }
    fn exp(self) -> Self {
        f64::exp(self)
    }
    fn exp_m1(self) -> Self {
        f64::exp_m1(self)
    }
    fn ln_gamma(self) -> Self {
        ln_gamma(self)
    }
}

/// `v + Σ d_i ε_i`: a value and its partials with respect to four inputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Dual {
    pub v: f64,
    pub d: [f64; 4],
}

impl Dual {
    /// The `i`-th input, with value `v`.
    pub fn input(v: f64, i: usize) -> Self {
        let mut d = [0.0; 4];
        d[i] = 1.0;
        Dual { v, d }
    }

    /// f(self) given f's value and derivative at `self.v`.
    #[inline]
    fn chain(self, v: f64, slope: f64) -> Self {
        Dual { v, d: self.d.map(|d| d * slope) }
    }
}

impl Real for Dual {
    fn constant(v: f64) -> Self {
        Dual { v, d: [0.0; 4] }
    }
    fn value(self) -> f64 {
        self.v
    }
    fn ln(self) -> Self {
        self.chain(self.v.ln(), 1.0 / self.v)
    }
    fn exp(self) -> Self {
        let e = self.v.exp();
        self.chain(e, e)
    }
    fn exp_m1(self) -> Self {
        self.chain(self.v.exp_m1(), self.v.exp())
    }
    fn ln_gamma(self) -> Self {
        self.chain(ln_gamma(self.v), digamma(self.v))
    }
}

fn zip(a: [f64; 4], b: [f64; 4], f: impl Fn(f64, f64) -> f64) -> [f64; 4] {
    [f(a[0], b[0]), f(a[1], b[1]), f(a[2], b[2]), f(a[3], b[3])]
}

impl Add for Dual {
    type Output = Dual;
    #[inline]
    fn add(self, o: Dual) -> Dual {
        Dual { v: self.v + o.v, d: zip(self.d, o.d, |a, b| a + b) }
    }
}

impl Sub for Dual {
    type Output = Dual;
    #[inline]
    fn sub(self, o: Dual) -> Dual {
        Dual { v: self.v - o.v, d: zip(self.d, o.d, |a, b| a - b) }
    }
}

impl Mul for Dual {
    type Output = Dual;
    #[inline]
    #[allow(clippy::suspicious_arithmetic_impl)] // the product rule adds
    fn mul(self, o: Dual) -> Dual {
        Dual { v: self.v * o.v, d: zip(self.d, o.d, |a, b| a * o.v + self.v * b) }
    }
}

impl Div for Dual {
    type Output = Dual;
    #[inline]
    #[allow(clippy::suspicious_arithmetic_impl)] // the quotient rule multiplies
    fn div(self, o: Dual) -> Dual {
        let inv = 1.0 / o.v;
        let q = self.v * inv;
        Dual { v: q, d: zip(self.d, o.d, |a, b| (a - q * b) * inv) }
    }
}

impl Neg for Dual {
    type Output = Dual;
    #[inline]
    fn neg(self) -> Dual {
        Dual { v: -self.v, d: self.d.map(|d| -d) }
    }
}

impl Add<f64> for Dual {
    type Output = Dual;
    #[inline]
    fn add(self, o: f64) -> Dual {
        Dual { v: self.v + o, d: self.d }
    }
}

impl Sub<f64> for Dual {
    type Output = Dual;
    #[inline]
    fn sub(self, o: f64) -> Dual {
        Dual { v: self.v - o, d: self.d }
    }
}

impl Mul<f64> for Dual {
    type Output = Dual;
    #[inline]
    fn mul(self, o: f64) -> Dual {
        Dual { v: self.v * o, d: self.d.map(|d| d * o) }
    }
}

impl Div<f64> for Dual {
    type Output = Dual;
    #[inline]
    fn div(self, o: f64) -> Dual {
        self * (1.0 / o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Partials of a function built from every operation, against the hand-derived ones.
    #[test]
    fn partials_follow_the_rules_of_calculus() {
        let (x, y) = (Dual::input(1.7, 0), Dual::input(0.4, 1));
        // f = ln(x) * y / (x + 2) - exp(y) + expm1(x * 0.5) + lnΓ(x) - 3
        let f = x.ln() * y / (x + 2.0) - y.exp() + (x * 0.5).exp_m1() + x.ln_gamma() - 3.0;
        let (xv, yv) = (1.7f64, 0.4f64);
        let value = xv.ln() * yv / (xv + 2.0) - yv.exp() + (xv * 0.5).exp_m1() + ln_gamma(xv) - 3.0;
        let dx = yv * (1.0 / (xv * (xv + 2.0)) - xv.ln() / (xv + 2.0).powi(2)) + 0.5 * (xv * 0.5).exp() + digamma(xv);
        let dy = xv.ln() / (xv + 2.0) - yv.exp();
        assert!((f.v - value).abs() < 1e-14);
        assert!((f.d[0] - dx).abs() < 1e-13, "{} vs {dx}", f.d[0]);
        assert!((f.d[1] - dy).abs() < 1e-13, "{} vs {dy}", f.d[1]);
        assert_eq!((f.d[2], f.d[3]), (0.0, 0.0));
        assert_eq!((-x).d[0], -1.0);
        assert!(((x / 4.0).d[0] - 0.25).abs() < 1e-16);
    }
}
