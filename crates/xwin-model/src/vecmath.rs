//! Loops over f32 rows written so that they vectorise (eight independent accumulators, no
//! calls per element), for the softmax passes of attention and the fused LM-head loss.

/// `Σ a[i]·b[i]`.
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// Largest element (−∞ for an empty row).
pub(crate) fn row_max(row: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..8 {
            acc[l] = acc[l].max(c[l]);
        }
    }
    acc.iter().copied().fold(tail, f32::max)
}

/// `Σ row[i]`.
pub(crate) fn row_sum(row: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for l in 0..8 {
            acc[l] += c[l];
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `row[j] = exp(row[j] − shift)`, 0 where `row[j]` is −∞ or the shift is −∞ (an empty row).
pub(crate) fn exp_shifted(row: &mut [f32], shift: f32) {
    if shift == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        // SAFETY: the features the function is compiled for were just detected.
        unsafe { exp_shifted_avx2(row, shift) };
        return;
    }
    exp_shifted_body(row, shift);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn exp_shifted_avx2(row: &mut [f32], shift: f32) {
    exp_shifted_body(row, shift);
}

/// Cephes' `expf` (relative error ~1e-7) written so that the loop vectorises: round by the
/// 1.5·2²³ trick, the power of two from the exponent bits, no branches but a select. glibc's
/// `expf` is a call per element (it was 8 % of a training step).
#[inline(always)]
fn exp_shifted_body(row: &mut [f32], shift: f32) {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    for x in row.iter_mut() {
        let t = *x - shift;
        let hidden = t < -87.0;
        // A select, not `max`: `f32::max` would turn a NaN into −87 and hide it.
        let t = if hidden { -87.0 } else { t };
        let n = t * LOG2E + ROUND;
        let bits = n.to_bits();
        let n = n - ROUND;
        let r = t - n * C1 - n * C2;
        let z = r * r;
        let mut y = 1.987_569_1e-4;
        y = y * r + 1.398_199_9e-3;
        y = y * r + 8.333_452e-3;
        y = y * r + 4.166_579_6e-2;
        y = y * r + 1.666_666_5e-1;
        y = y * r + 5.000_000_1e-1;
        let y = y * z + r + 1.0;
        // 2ⁿ: n sits in the low mantissa bits of `t · log2 e + 1.5·2²³`.
        let pow2 = f32::from_bits((bits.wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23);
        *x = if hidden { 0.0 } else { y * pow2 };
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_shifted, row_max, row_sum};

    /// The vectorised exponential against std's over the range softmax uses, relative error.
    #[test]
    fn exp_matches_std() {
        let xs: Vec<f32> = (0..20_000)
            .map(|i| -87.0 + i as f32 * 87.0 / 20_000.0)
            .collect();
        let mut ys = xs.clone();
        exp_shifted(&mut ys, 0.0);
        for (x, y) in xs.iter().zip(&ys) {
            let want = x.exp();
            assert!(
                ((y - want) / want).abs() < 3e-7,
                "exp({x}) = {y}, want {want}"
            );
        }
        let mut edge = vec![f32::NEG_INFINITY, -200.0, 0.0, f32::NAN];
        exp_shifted(&mut edge, 0.0);
        assert_eq!(edge[..3], [0.0, 0.0, 1.0]);
        assert!(edge[3].is_nan(), "a NaN stays NaN");
    }

    /// The reductions over lengths with and without a remainder past the eight lanes, against
    /// plain folds; −∞ and an empty row included.
    #[test]
    fn reductions_match_plain_folds() {
        for n in [0usize, 1, 7, 8, 9, 33] {
            let row: Vec<f32> = (0..n).map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25).collect();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&row), max, "n {n}");
            let sum: f32 = row.iter().sum();
            assert!((row_sum(&row) - sum).abs() < 1e-6, "n {n}");
            let dot: f32 = row.iter().map(|x| x * x).sum();
            assert!((super::dot(&row, &row) - dot).abs() < 1e-5, "n {n}");
        }
        assert_eq!(row_max(&[f32::NEG_INFINITY; 9]), f32::NEG_INFINITY);
    }
}
