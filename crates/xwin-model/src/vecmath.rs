//! Loops over f32 slices written so that they vectorise (eight independent accumulators, no
//! calls per element): the softmax passes of attention and the fused LM-head loss, SwiGLU,
//! AdamW. They live here because this crate is built optimised in every profile.
//!
//! Element `i` always goes to accumulator `i mod 8`, the remainder too, and the accumulators are
//! combined in one fixed order: appending zeros (keys a longer padded batch adds) leaves a sum
//! bit for bit unchanged, so results do not depend on how sequences were batched.

use std::mem::MaybeUninit;

/// Defines `fn $name` twice, once compiled for AVX2 + FMA, and picks at run time: the loops
/// inside then vectorise eight lanes wide (the crate's baseline is SSE2). The body is an
/// `#[inline(always)]` function so that the helpers it calls inline into each version.
macro_rules! multiversion {
    ($(#[$meta:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            #[inline(always)]
            fn body($($arg: $ty),*) $(-> $ret)? $body
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                fn avx2($($arg: $ty),*) $(-> $ret)? {
                    body($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the features `avx2` is compiled for were just detected.
                    return unsafe { avx2($($arg),*) };
                }
            }
            body($($arg),*)
        }
    };
}

multiversion! {
    /// `Σ a[i]·b[i]`.
    pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
        let (ra, rb) = (ca.remainder(), cb.remainder());
        for (x, y) in ca.zip(cb) {
            for l in 0..8 {
                acc[l] += x[l] * y[l];
            }
        }
        for (l, (x, y)) in ra.iter().zip(rb).enumerate() {
            acc[l] += x * y;
        }
        combine(acc)
    }
}

multiversion! {
    /// Largest element (−∞ for an empty row).
    pub(crate) fn row_max(row: &[f32]) -> f32 {
        let mut acc = [f32::NEG_INFINITY; 8];
        let chunks = row.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                acc[l] = acc[l].max(c[l]);
            }
        }
        for (l, &x) in rest.iter().enumerate() {
            acc[l] = acc[l].max(x);
        }
        acc.iter().copied().fold(f32::NEG_INFINITY, f32::max)
    }
}

multiversion! {
    /// `Σ row[i]`.
    pub(crate) fn row_sum(row: &[f32]) -> f32 {
        let mut acc = [0.0f32; 8];
        let chunks = row.chunks_exact(8);
        let rest = chunks.remainder();
        for c in chunks {
            for l in 0..8 {
                acc[l] += c[l];
            }
        }
        for (l, &x) in rest.iter().enumerate() {
            acc[l] += x;
        }
        combine(acc)
    }
}

/// The eight lanes summed pairwise, always in the same order.
fn combine(acc: [f32; 8]) -> f32 {
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `row[j] = exp(row[j] − shift)`, 0 where `row[j]` is −∞ or the shift is −∞ (an empty row).
pub(crate) fn exp_shifted(row: &mut [f32], shift: f32) {
    if shift == f32::NEG_INFINITY {
        row.fill(0.0);
        return;
    }
    exp_shifted_loop(row, shift);
}

multiversion! {
    fn exp_shifted_loop(row: &mut [f32], shift: f32) {
        for x in row.iter_mut() {
            *x = exp(*x - shift);
        }
    }
}

/// Cephes' `expf` (relative error ~1e-7) written so that a loop over it vectorises: round by
/// the 1.5·2²³ trick, the power of two from the exponent bits, no branches but selects. glibc's
/// `expf` is a call per element (it was 8 % of a training step). Below −87 it gives 0 (−∞
/// included), above 88 +∞, and NaN stays NaN.
#[inline(always)]
fn exp(t: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
    const C1: f32 = 0.693_359_4;
    const C2: f32 = -2.121_944_4e-4;
    let (hidden, huge) = (t < -87.0, t > 88.0);
    // Selects, not `max`/`min`: those would turn a NaN into a number and hide it.
    let x = if hidden {
        -87.0
    } else if huge {
        88.0
    } else {
        t
    };
    let n = x * LOG2E + ROUND;
    let bits = n.to_bits();
    let n = n - ROUND;
    let r = x - n * C1 - n * C2;
    let z = r * r;
    let mut y = 1.987_569_1e-4;
    y = y * r + 1.398_199_9e-3;
    y = y * r + 8.333_452e-3;
    y = y * r + 4.166_579_6e-2;
    y = y * r + 1.666_666_5e-1;
    y = y * r + 0.5; // Cephes writes 5.0000001e-1, which is 0.5 in f32
    let y = y * z + r + 1.0;
    // 2ⁿ: n sits in the low mantissa bits of `x · log2 e + 1.5·2²³`.
    let pow2 = f32::from_bits((bits.wrapping_sub(ROUND.to_bits()).wrapping_add(127)) << 23);
    if hidden {
        0.0
    } else if huge {
        f32::INFINITY
    } else {
        y * pow2
    }
}

/// `σ(g)` without overflow for either sign: `e = exp(−|g|)`, then `1/(1+e)` or `e/(1+e)`.
#[inline(always)]
fn sigmoid(g: f32) -> f32 {
    let e = exp(-g.abs());
    let s = 1.0 / (1.0 + e);
    if g >= 0.0 { s } else { e * s }
}

/// Elements per parallel task of the elementwise kernels.
const CHUNK: usize = 1 << 14;

/// Least work (elements touched or multiply-adds) worth a Rayon task of its own. Handing work
/// to the pool wakes a worker and puts the caller to sleep on a latch (tens of µs in a VM); in
/// batched decoding every op is small, and context switches were 30 % of a step's samples in
/// `perf` (`STEPS_ONLY=1 cargo run -p xwin-bench --example decode_parts`).
const TASK_MIN_WORK: usize = 1 << 17;

/// `with_min_len` for a parallel iterator whose items each cost `work_per_item`: the fewest
/// items a task takes so that small calls run on the calling thread, whole.
pub(crate) fn min_items_per_task(work_per_item: usize) -> usize {
    (TASK_MIN_WORK / work_per_item.max(1)).max(1)
}

/// A new buffer of `len` elements, each written once by `fill`, without zeroing it first (a
/// zero fill of every kernel output was 5 % of a training step, on one core).
///
/// # Safety
/// `fill` must write every element of the slice it is given.
pub(crate) unsafe fn written(len: usize, fill: impl FnOnce(&mut [MaybeUninit<f32>])) -> Vec<f32> {
    let mut out = Vec::with_capacity(len);
    fill(&mut out.spare_capacity_mut()[..len]);
    // SAFETY: `fill` initialised all `len` elements (the caller's contract).
    unsafe { out.set_len(len) };
    out
}

/// `out = silu(gate) · up`, the SwiGLU of Llama's MLP.
pub(crate) fn silu_mul(gate: &[f32], up: &[f32]) -> Vec<f32> {
    use rayon::prelude::*;
    assert_eq!(gate.len(), up.len(), "silu_mul operands");
    let fill = |out: &mut [MaybeUninit<f32>]| {
        out.par_chunks_mut(CHUNK)
            .zip(gate.par_chunks(CHUNK).zip(up.par_chunks(CHUNK)))
            .for_each(|(out, (gate, up))| silu_mul_chunk(out, gate, up))
    };
    // SAFETY: the chunks cover `out`, and each chunk's kernel writes all of its elements.
    unsafe { written(gate.len(), fill) }
}

multiversion! {
    fn silu_mul_chunk(out: &mut [MaybeUninit<f32>], gate: &[f32], up: &[f32]) {
        for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
            o.write(g * sigmoid(g) * u);
        }
    }
}

/// Gradients of `Σ d_out · silu(gate) · up`: `(d_gate, d_up)` with
/// `d_up = d_out · g·σ(g)` and `d_gate = d_out · u · σ(g)·(1 + g·(1 − σ(g)))`.
pub(crate) fn silu_mul_backward(gate: &[f32], up: &[f32], d_out: &[f32]) -> (Vec<f32>, Vec<f32>) {
    use rayon::prelude::*;
    assert!(
        gate.len() == up.len() && up.len() == d_out.len(),
        "silu_mul_backward operands"
    );
    let n = gate.len();
    let mut d_gate = Vec::with_capacity(n);
    let fill = |d_up: &mut [MaybeUninit<f32>]| {
        d_gate.spare_capacity_mut()[..n]
            .par_chunks_mut(CHUNK)
            .zip(d_up.par_chunks_mut(CHUNK))
            .zip(
                gate.par_chunks(CHUNK)
                    .zip(up.par_chunks(CHUNK))
                    .zip(d_out.par_chunks(CHUNK)),
            )
            .for_each(|((d_gate, d_up), ((gate, up), d_out))| {
                silu_mul_backward_chunk(d_gate, d_up, gate, up, d_out)
            })
    };
    // SAFETY (both): the chunks cover both buffers (all operands are `n` long), and each
    // chunk's kernel writes all of its elements of both.
    let d_up = unsafe { written(n, fill) };
    unsafe { d_gate.set_len(n) };
    (d_gate, d_up)
}

multiversion! {
    fn silu_mul_backward_chunk(
        d_gate: &mut [MaybeUninit<f32>],
        d_up: &mut [MaybeUninit<f32>],
        gate: &[f32],
        up: &[f32],
        d_out: &[f32],
    ) {
        let n = gate.len().min(up.len()).min(d_out.len());
        let n = n.min(d_gate.len()).min(d_up.len());
        for i in 0..n {
            let (g, u, d) = (gate[i], up[i], d_out[i]);
            let s = sigmoid(g);
            d_up[i].write(d * g * s);
            d_gate[i].write(d * u * s * (1.0 + g * (1.0 - s)));
        }
    }
}

/// One AdamW step's scalars, computed as burn's AdamW computes them (see
/// `xwin_train::FusedAdamW`).
#[derive(Debug, Clone, Copy)]
pub struct AdamWStep {
    pub beta1: f32,
    pub beta2: f32,
    /// `1 − β₁ᵗ` and `1 − β₂ᵗ`.
    pub correction1: f32,
    pub correction2: f32,
    pub eps: f32,
    pub lr: f32,
    /// `1 − lr · weight decay`, applied only when `decay` is set.
    pub keep: f32,
    pub decay: bool,
    /// No moments yet: they start from this gradient alone.
    pub first: bool,
}

/// AdamW over one parameter in place: `m ← β₁m + (1−β₁)g`, `v ← β₂v + (1−β₂)g²`,
/// `p ← p·keep − lr·(m/c₁)/(√(v/c₂) + ε)`, each element with the same f32 operations in the
/// same order as burn's AdamW, in parallel chunks.
pub fn adamw_update(s: AdamWStep, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    use rayon::prelude::*;
    assert!(
        param.len() == grad.len() && grad.len() == m.len() && m.len() == v.len(),
        "adamw_update operands"
    );
    param
        .par_chunks_mut(CHUNK)
        .zip(m.par_chunks_mut(CHUNK))
        .zip(v.par_chunks_mut(CHUNK))
        .zip(grad.par_chunks(CHUNK))
        .for_each(|(((p, m), v), g)| adamw_chunk(s, p, g, m, v));
}

multiversion! {
    fn adamw_chunk(s: AdamWStep, p: &mut [f32], g: &[f32], m: &mut [f32], v: &mut [f32]) {
        let (f1, f2) = (1.0 - s.beta1, 1.0 - s.beta2);
        let n = p.len().min(g.len()).min(m.len()).min(v.len());
        for i in 0..n {
            let gi = g[i];
            let (mi, vi) = if s.first {
                (gi * f1, (gi * gi) * f2)
            } else {
                (m[i] * s.beta1 + gi * f1, v[i] * s.beta2 + (gi * gi) * f2)
            };
            m[i] = mi;
            v[i] = vi;
            let update = (mi / s.correction1) / ((vi / s.correction2).sqrt() + s.eps);
            let decayed = if s.decay { p[i] * s.keep } else { p[i] };
            p[i] = decayed - update * s.lr;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{exp_shifted, row_max, row_sum, silu_mul, silu_mul_backward};

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
        let mut edge = vec![f32::NEG_INFINITY, -200.0, 0.0, 100.0, f32::NAN];
        exp_shifted(&mut edge, 0.0);
        assert_eq!(edge[..4], [0.0, 0.0, 1.0, f32::INFINITY]);
        assert!(edge[4].is_nan(), "a NaN stays NaN");
    }

    /// The reductions over lengths with and without a remainder past the eight lanes, against
    /// plain folds; −∞ and an empty row included.
    #[test]
    fn reductions_match_plain_folds() {
        for n in [0usize, 1, 7, 8, 9, 33] {
            let row: Vec<f32> = (0..n)
                .map(|i| ((i * 37 % 11) as f32 - 5.0) * 0.25)
                .collect();
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            assert_eq!(row_max(&row), max, "n {n}");
            let sum: f32 = row.iter().sum();
            assert!((row_sum(&row) - sum).abs() < 1e-6, "n {n}");
            let dot: f32 = row.iter().map(|x| x * x).sum();
            assert!((super::dot(&row, &row) - dot).abs() < 1e-5, "n {n}");
        }
        assert_eq!(row_max(&[f32::NEG_INFINITY; 9]), f32::NEG_INFINITY);
        // Zeros appended (a longer padded batch) leave sums bit for bit unchanged.
        let row: Vec<f32> = (0..13).map(|i| 1.0 / (i as f32 + 3.0)).collect();
        for extra in 1..20 {
            let mut longer = row.clone();
            longer.resize(13 + extra, 0.0);
            assert_eq!(
                row_sum(&longer).to_bits(),
                row_sum(&row).to_bits(),
                "+{extra} zeros"
            );
            assert_eq!(
                super::dot(&longer, &longer).to_bits(),
                super::dot(&row, &row).to_bits()
            );
        }
    }

    /// SwiGLU and its gradients against f64 formulas, over both signs, large magnitudes (where
    /// a naive `1/(1+exp(−g))` overflows) and more elements than one parallel chunk.
    #[test]
    fn silu_mul_and_gradients_match_f64() {
        let n = 40_000;
        let gate: Vec<f32> = (0..n).map(|i| (i as f32 - 20_000.0) * 0.005).collect();
        let up: Vec<f32> = (0..n)
            .map(|i| ((i * 7919 % 1000) as f32 - 500.0) * 0.01)
            .collect();
        let d_out: Vec<f32> = (0..n)
            .map(|i| ((i * 104_729 % 997) as f32 - 498.0) * 0.002)
            .collect();
        let out = silu_mul(&gate, &up);
        let (d_gate, d_up) = silu_mul_backward(&gate, &up, &d_out);
        for i in 0..n {
            let (g, u, d) = (f64::from(gate[i]), f64::from(up[i]), f64::from(d_out[i]));
            let s = 1.0 / (1.0 + (-g).exp());
            let close =
                |got: f32, want: f64| (f64::from(got) - want).abs() <= 1e-6 * (1.0 + want.abs());
            assert!(
                close(out[i], g * s * u),
                "out at g {g}: {} vs {}",
                out[i],
                g * s * u
            );
            assert!(close(d_up[i], d * g * s), "d_up at g {g}");
            let dg = d * u * s * (1.0 + g * (1.0 - s));
            assert!(
                close(d_gate[i], dg),
                "d_gate at g {g}: {} vs {dg}",
                d_gate[i]
            );
        }
    }
}
