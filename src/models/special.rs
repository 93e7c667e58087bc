//! Special functions in log space: ln Γ, ψ, ln B, log-add/sub-exp, and the Gauss hypergeometric
//! function 2F1: by power series in general, and for Pareto/NBD's 2F1(a, b; a+1; z) by the Euler
//! transformation plus Gauss's continued fraction, which converges where the series crawls (z -> 1).
//! What Pareto/NBD's likelihood uses is generic over [`Real`], so it also runs on dual numbers.

use super::dual::Real;

pub fn ln_gamma(x: f64) -> f64 {
    libm::lgamma(x)
}

pub fn ln_beta(a: f64, b: f64) -> f64 {
    ln_gamma(a) + ln_gamma(b) - ln_gamma(a + b)
}

/// The digamma function ψ = Γ'/Γ: recurrence up to x >= 10, then the asymptotic series (error ~1e-14).
pub fn digamma(mut x: f64) -> f64 {
    let mut acc = 0.0;
    while x < 10.0 {
        acc -= 1.0 / x;
        x += 1.0;
    }
    let f = 1.0 / (x * x);
    acc + x.ln()
        - 0.5 / x
        - f * (1.0 / 12.0 - f * (1.0 / 120.0 - f * (1.0 / 252.0 - f * (1.0 / 240.0 - f * (1.0 / 132.0)))))
}

/// ln(e^a + e^b) without overflow.
pub fn log_add_exp<T: Real>(a: T, b: T) -> T {
    if a.value() == f64::NEG_INFINITY {
        return b;
    }
    if b.value() == f64::NEG_INFINITY {
        return a;
    }
    // e^(m-m) is 1 exactly (and constant): one exp call instead of two, the same bits.
    let (m, other) = if b.value() > a.value() { (b, a) } else { (a, b) };
    m + (T::constant(1.0) + (other - m).exp()).ln()
}

/// ln(e^a + e^b) as [`log_add_exp`] computes it (the same bits; NaN where both are -inf), with
/// a's share e^a / (e^a + e^b) from the same exp: a likelihood's gradient weighs each term by
/// its share.
pub fn log_add_exp_share(a: f64, b: f64) -> (f64, f64) {
    if b > a {
        let ratio = (a - b).exp();
        (b + (1.0 + ratio).ln(), ratio / (1.0 + ratio))
    } else {
        let ratio = (b - a).exp();
        (a + (1.0 + ratio).ln(), 1.0 / (1.0 + ratio))
    }
}

/// ln(e^a - e^b) for a >= b; -inf when they are equal (or b > a by rounding).
pub fn log_sub_exp<T: Real>(a: T, b: T) -> T {
    if b.value() >= a.value() {
        return T::constant(f64::NEG_INFINITY);
    }
    a + (-(b - a).exp_m1()).ln()
}

/// Most series terms (or continued-fraction steps) before giving up on convergence.
const MAX_TERMS: usize = 200_000;

/// ln of 2F1(1, d; c; z) for 0 <= z < 1 and 0 < d < c, by Gauss's continued fraction (the
/// incomplete-beta fraction with a = c - 1, b = d - c + 1, modified Lentz). Near z = 1 the power
/// series needs ~ln(ε)/ln(z) terms (244,654 at z = 0.9999); the fraction needs hundreds at worst and
/// ~10 for ordinary z, with the same accuracy.
pub fn ln_hyp2f1_1dc<T: Real>(d: T, c: T, z: T) -> T {
    const TINY: f64 = 1e-300;
    let clamp = |v: T| if v.value().abs() < TINY { T::constant(TINY) } else { v };
    let one = T::constant(1.0);
    let (a, b) = (c - 1.0, d - c + 1.0);
    let (qab, qap, qam) = (a + b, a + 1.0, a - 1.0);
    let mut cc = one;
    let mut dd = one / clamp(one - qab * z / qap);
    let mut h = dd;
    for m in 1..MAX_TERMS {
        let m = m as f64;
        let even = (b - m) * m * z / ((qam + 2.0 * m) * (a + 2.0 * m));
        dd = one / clamp(even * dd + 1.0);
        cc = clamp(even / cc + 1.0);
        h = h * (dd * cc);
        let odd = -(a + m) * (qab + m) * z / ((a + 2.0 * m) * (qap + 2.0 * m));
        dd = one / clamp(odd * dd + 1.0);
        cc = clamp(odd / cc + 1.0);
        let step = dd * cc;
        h = h * step;
        if (step.value() - 1.0).abs() < 1e-16 {
            break;
        }
    }
    h.ln()
}

/// ln 2F1(a, b; a + 1; z) for 0 <= z < 1, through the Euler transformation
/// 2F1(a, b; a+1; z) = (1-z)^(1-b) 2F1(1, a+1-b; a+1; z). `ln_one_minus_z` is passed in because
/// callers know 1 - z exactly as a ratio (no cancellation when z is near 1).
pub fn ln_hyp2f1_a_b_a1<T: Real>(a: T, b: T, z: T, ln_one_minus_z: T) -> T {
    (T::constant(1.0) - b) * ln_one_minus_z + ln_hyp2f1_1dc(a + 1.0 - b, a + 1.0, z)
}

/// 2F1(a, b; c; z) for |z| < 1 by its power series. Terms and sum are kept in linear space and
/// rescaled together only when they near overflow, so a term costs a multiply and an add (this
/// runs ~13 times per customer when scoring). Returns (ln |value|, sign).
pub fn hyp2f1(a: f64, b: f64, c: f64, z: f64) -> (f64, f64) {
    const BIG: f64 = 1e280;
    let mut t = 1.0f64; // the current term, times e^-ln_scale
    let mut s = 1.0f64; // the sum, times e^-ln_scale
    let mut ln_scale = 0.0f64;
    for k in 0..MAX_TERMS {
        let k = k as f64;
        let ratio = (a + k) * (b + k) / ((c + k) * (k + 1.0)) * z;
        if ratio == 0.0 {
            break;
        }
        t *= ratio;
        if t.abs() > BIG || s.abs() > BIG {
            let f = t.abs().max(s.abs());
            t /= f;
            s /= f;
            ln_scale += f.ln();
        }
        s += t;
        if t.abs() < 1e-17 * s.abs() && ratio.abs() < 1.0 {
            break;
        }
    }
    (s.abs().ln() + ln_scale, s.signum())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gamma_and_logs() {
        assert!((ln_gamma(5.0) - 24f64.ln()).abs() < 1e-12);
        assert!((ln_beta(2.0, 3.0) - (1.0f64 / 12.0).ln()).abs() < 1e-12);
        assert!((log_add_exp(1000.0, 1000.0) - (1000.0 + 2f64.ln())).abs() < 1e-12);
        assert!((log_sub_exp(3f64.ln(), 1f64.ln()) - 2f64.ln()).abs() < 1e-12);
        assert_eq!(log_sub_exp(1.0, 1.0), f64::NEG_INFINITY);
    }

    proptest::proptest! {
        /// One exp call gives the bits the two-call form gave (e^0 = 1 exactly): fits and their
        /// published parameters do not move.
        #[test]
        fn log_add_exp_gives_the_two_exp_forms_bits(a in -800.0f64..800.0, b in -800.0f64..800.0) {
            let m = if b > a { b } else { a };
            let two = m + ((a - m).exp() + (b - m).exp()).ln();
            proptest::prop_assert_eq!(log_add_exp(a, b).to_bits(), two.to_bits());
            proptest::prop_assert_eq!(log_add_exp(a, a).to_bits(), (a + 2f64.ln()).to_bits());
        }

        /// The log is log_add_exp's, bit for bit; the share is e^(a - log) and the two shares
        /// add up to one, also where one is below e^-700.
        #[test]
        fn log_add_exp_share_is_the_first_terms_share(a in -800.0f64..800.0, b in -800.0f64..800.0) {
            let (log, share) = log_add_exp_share(a, b);
            proptest::prop_assert_eq!(log.to_bits(), log_add_exp(a, b).to_bits());
            let direct = (a - log).exp();
            proptest::prop_assert!((share - direct).abs() <= 1e-13 * direct.max(f64::MIN_POSITIVE), "{share} vs {direct}");
            proptest::prop_assert!((share + log_add_exp_share(b, a).1 - 1.0).abs() < 1e-15);
        }
    }

    #[test]
    fn digamma_values() {
        // ψ(1) = -γ (Euler-Mascheroni), ψ(1/2) = -γ - 2 ln 2, ψ(x+1) = ψ(x) + 1/x.
        let euler = 0.577_215_664_901_532_9;
        assert!((digamma(1.0) + euler).abs() < 1e-13);
        assert!((digamma(0.5) + euler + 2.0 * 2f64.ln()).abs() < 1e-13);
        assert!((digamma(7.3) - digamma(6.3) - 1.0 / 6.3).abs() < 1e-13);
        // ψ(ε) = -1/ε - γ + (π²/6) ε - ζ(3) ε² + ...
        assert!((digamma(1e-3) - (-1000.0 - euler + 1.644_934 * 1e-3 - 1.202_057 * 1e-6)).abs() < 1e-8);
    }

    #[test]
    fn hyp2f1_closed_forms() {
        // 2F1(1, 1; 2; z) = -ln(1 - z) / z
        for z in [0.1, 0.5, 0.9, 0.999] {
            let (l, s) = hyp2f1(1.0, 1.0, 2.0, z);
            let exact = -(1.0f64 - z).ln() / z;
            assert!((s * l.exp() - exact).abs() < 1e-10 * exact, "z={z}");
        }
        // 2F1(a, b; b; z) = (1 - z)^(-a)
        let (l, _) = hyp2f1(2.5, 1.5, 1.5, 0.3);
        assert!((l - (-2.5 * 0.7f64.ln())).abs() < 1e-12);
        // The Euler-transformed form agrees with the plain series where both converge.
        let (a, b, z) = (12.3, 1.6, 0.4);
        let (plain, _) = hyp2f1(a, b, a + 1.0, z);
        let euler = ln_hyp2f1_a_b_a1(a, b, z, (1.0f64 - z).ln());
        assert!((plain - euler).abs() < 1e-12, "{plain} vs {euler}");
    }

    #[test]
    fn continued_fraction_matches_the_series_and_converges_near_one() {
        // Reference values from the power series summed to 1e-17 (244,654 terms for the last).
        for (d, c, z, want) in [
            (1.3, 2.35, 0.97, 3.96886338843472),
            (5.3, 6.35, 0.5, 1.73774591222445),
            (1000.3, 1001.35, 0.97, 32.2714077812899),
            (1.2, 2.21, 0.9999, 10.313357606229),
        ] {
            let got = ln_hyp2f1_1dc(d, c, z).exp();
            assert!((got - want).abs() < 1e-12 * want, "2F1(1,{d};{c};{z}) = {got}, want {want}");
        }
    }

    #[test]
    fn hyp2f1_large_intermediate_terms() {
        // 2F1(a, b; b; z) = (1-z)^-a with a = 2000: terms grow to ~e^1000 before decaying.
        let (l, s) = hyp2f1(2000.0, 3.0, 3.0, 0.5);
        assert_eq!(s, 1.0);
        assert!((l - 2000.0 * 2f64.ln()).abs() < 1e-8 * l, "{l}");
    }
}
