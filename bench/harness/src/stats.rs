//! The two-sided Mann-Whitney U test (Wilcoxon rank-sum): do two samples
//! come from one distribution? Normal approximation with the tie correction
//! and a continuity correction, as SciPy's `mannwhitneyu(method="asymptotic")`
//! computes it; fine from about 20 samples a side.

/// The test's result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MannWhitney {
    /// U of the first sample.
    pub u: f64,
    /// Two-sided p-value: how likely a difference this large is when the
    /// two samples come from one distribution.
    pub p: f64,
}

/// Tests `x` against `y`; `None` when either is empty.
pub fn mann_whitney(x: &[f64], y: &[f64]) -> Option<MannWhitney> {
    let (n1, n2) = (x.len() as f64, y.len() as f64);
    if x.is_empty() || y.is_empty() {
        return None;
    }
    let mut all: Vec<(f64, bool)> = x
        .iter()
        .map(|&v| (v, true))
        .chain(y.iter().map(|&v| (v, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Average ranks over ties; Σ(t³ − t) over tie groups for the variance.
    let (mut rank_sum_x, mut ties) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let t = (j - i + 1) as f64;
        let rank = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_x += rank * all[i..=j].iter().filter(|v| v.1).count() as f64;
        ties += t * t * t - t;
        i = j + 1;
    }
    let n = n1 + n2;
    let u = rank_sum_x - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let variance = n1 * n2 / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0)));
    if variance <= 0.0 {
        return Some(MannWhitney { u, p: 1.0 });
    }
    let z = ((u - mean).abs() - 0.5).max(0.0) / variance.sqrt();
    Some(MannWhitney {
        u,
        p: erfc(z / std::f64::consts::SQRT_2).min(1.0),
    })
}

/// The median (mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The complementary error function, to a relative error under 1.2e-7
/// (Numerical Recipes' Chebyshev fit): ample for p-values.
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol * b.abs().max(1e-300)
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, want) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122_186_953_5),
            (1.0, 0.157_299_207_050_285_1),
            (2.0, 0.004_677_734_981_047_266),
            (3.0, 2.209_049_699_858_544e-5),
            (-1.0, 1.842_700_792_949_715),
        ] {
            assert!(close(erfc(x), want, 2e-7), "erfc({x}) = {}", erfc(x));
        }
    }

    /// SciPy's documented example: `mannwhitneyu(males, females,
    /// method="asymptotic")` gives U = 17, p = 0.11134688653314041.
    #[test]
    fn matches_scipy_documented_example() {
        let males = [19.0, 22.0, 16.0, 29.0, 24.0];
        let females = [20.0, 11.0, 17.0, 12.0];
        let r = mann_whitney(&males, &females).unwrap();
        assert_eq!(r.u, 17.0);
        assert!(close(r.p, 0.111_346_886_533_140_41, 1e-6), "p = {}", r.p);
    }

    #[test]
    fn separated_samples_with_ties() {
        // Fully separated: U = 0; mean 12.5, σ² = 25/12·11 → z = 12/4.787.
        let r = mann_whitney(&[1.0, 2.0, 3.0, 4.0, 5.0], &[6.0, 7.0, 8.0, 9.0, 10.0]).unwrap();
        assert_eq!(r.u, 0.0);
        assert!(close(r.p, 0.012_185_780_355_344_5, 1e-5), "p = {}", r.p);
        // Ties shrink the variance: [1,2,2,3] against [2,3,3,4] has tie
        // groups of 3 (the 2s) and 3 (the 3s), Σ(t³−t) = 48, σ² = 16/12·(9 − 48/56).
        let r = mann_whitney(&[1.0, 2.0, 2.0, 3.0], &[2.0, 3.0, 3.0, 4.0]).unwrap();
        let (mean, var) = (8.0, 16.0 / 12.0 * (9.0 - 48.0 / 56.0));
        let z = ((r.u - mean).abs() - 0.5) / f64::sqrt(var);
        assert_eq!(r.u, 3.0);
        assert!(close(r.p, erfc(z / std::f64::consts::SQRT_2), 1e-12));
    }

    #[test]
    fn identical_and_interleaved_samples_are_not_different() {
        let same = [1.0; 10];
        assert_eq!(mann_whitney(&same, &same).unwrap().p, 1.0);
        let x: Vec<f64> = (0..100).map(|i| (2 * i) as f64).collect();
        let y: Vec<f64> = (0..100).map(|i| (2 * i + 1) as f64).collect();
        assert!(mann_whitney(&x, &y).unwrap().p > 0.5);
        assert!(mann_whitney(&[], &y).is_none());
    }

    #[test]
    fn a_small_shift_in_many_samples_is_found() {
        // A 10% shift on a spread of ±50%: what the timing check must catch.
        let x: Vec<f64> = (0..150).map(|i| 0.5 + (i % 50) as f64 / 50.0).collect();
        let y: Vec<f64> = x.iter().map(|v| v * 1.25).collect();
        assert!(mann_whitney(&x, &y).unwrap().p < 0.01);
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
