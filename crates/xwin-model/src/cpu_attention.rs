//! Causal attention on the CPU, forward and backward, one block of queries at a time.
//!
//! Training used to build `softmax(q·kᵀ + bias)·v` from autodiff ops over `[batch, heads, seq,
//! seq]` tensors: each op a pass over 33 MB at the benchmark shape, all of them kept for the
//! backward pass, ~8× PyTorch's fused kernel. Here a block of [`BLOCK_Q`] query rows meets only
//! the keys it may see (causal blocks beyond the diagonal are never computed), its scores live in
//! a per-thread scratch that stays in L2, and the backward pass recomputes them from the saved
//! per-row log-sum-exp (as FlashAttention does) instead of keeping them. Key/value heads shared by
//! several query heads (GQA) are read in place, never repeated. The matrix products go through
//! [`crate::matmul`], the exponentials through a polynomial that vectorises.
//!
//! Which keys a query sees, exactly as [`crate::attention::attention_bias`] with
//! [`crate::layout::BatchLayout::padding_mask`]: query `i` sees key `j ≤ i + (seq_k − seq_q)`;
//! with padding, a real query also skips padding keys (a padding query sees every causal key,
//! so no row is empty; its output is never read). A row that sees nothing gives 0.

use crate::matmul::{Operand, Output, product};
use crate::vecmath::{dot, exp_shifted, min_items_per_task, row_max, row_sum};
use rayon::prelude::*;

/// Query rows per block: 64 rows × 512 keys of f32 scores is 128 KiB, two such buffers (scores
/// and their gradient) stay in a 512 KiB L2.
const BLOCK_Q: usize = 64;

/// Sizes of one attention call.
///
/// # Shapes
/// - q, out, d_out, d_q `[batch, heads, seq_q, head_dim]`; k, v, d_k, d_v `[batch, kv_heads,
///   seq_k, head_dim]`; lse `[batch, heads, seq_q]`; key_valid `[batch, seq_k]` (1 = real token)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AttentionDims {
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub seq_q: usize,
    pub seq_k: usize,
    pub head_dim: usize,
}

impl AttentionDims {
    fn group(&self) -> usize {
        self.heads / self.kv_heads
    }

    fn offset(&self) -> usize {
        self.seq_k - self.seq_q
    }
}

/// The saved forward: output and each query row's log-sum-exp of its scaled scores (−∞ for a
/// row that sees no key).
#[derive(Debug, Clone)]
pub struct Forward {
    pub out: Vec<f32>,
    pub lse: Vec<f32>,
}

/// Gradients with respect to q, k and v.
#[derive(Debug, Clone)]
pub struct Gradients {
    pub d_q: Vec<f32>,
    pub d_k: Vec<f32>,
    pub d_v: Vec<f32>,
}

/// Inputs shared by the forward and backward passes.
#[derive(Debug, Clone, Copy)]
pub struct Inputs<'a> {
    pub dims: AttentionDims,
    pub q: &'a [f32],
    pub k: &'a [f32],
    pub v: &'a [f32],
    /// Elements from one `[seq_k, head_dim]` key (and value) head to the next: `seq_k ·
    /// head_dim` when contiguous, more when they are the filled part of a KV cache's longer
    /// buffer (read in place, not copied out each decode step).
    pub kv_stride: usize,
    pub key_valid: Option<&'a [f32]>,
    pub scale: f32,
}

impl Inputs<'_> {
    fn check(&self) {
        let d = self.dims;
        assert!(
            d.kv_heads > 0 && d.heads.is_multiple_of(d.kv_heads),
            "{d:?}: heads not a multiple of kv heads"
        );
        assert!(d.seq_k >= d.seq_q, "{d:?}: fewer keys than queries");
        assert_eq!(self.q.len(), d.batch * d.heads * d.seq_q * d.head_dim, "q");
        let head = d.seq_k * d.head_dim;
        assert!(
            self.kv_stride >= head,
            "{d:?}: kv_stride {}",
            self.kv_stride
        );
        let blocks = d.batch * d.kv_heads;
        let needed = if blocks == 0 {
            0
        } else {
            (blocks - 1) * self.kv_stride + head
        };
        assert!(
            self.k.len() >= needed,
            "k holds {} of {needed}",
            self.k.len()
        );
        assert!(
            self.v.len() >= needed,
            "v holds {} of {needed}",
            self.v.len()
        );
        if let Some(valid) = self.key_valid {
            assert_eq!(valid.len(), d.batch * d.seq_k, "key_valid");
        }
    }

    /// The rows `[i0, i1)` of head `h` in batch row `b`: probabilities `P` (row stride `n`, the
    /// number of keys any of them sees) from scores recomputed here. With `lse` the rows are
    /// normalised by it (backward); without, by their own sums, which are returned as lse.
    fn probabilities(
        &self,
        b: usize,
        h: usize,
        i0: usize,
        i1: usize,
        p: &mut [f32],
        mut lse: Lse<'_>,
    ) -> usize {
        let d = self.dims;
        let (dh, offset) = (d.head_dim, d.offset());
        let n = (i1 + offset).min(d.seq_k);
        let q = &self.q[((b * d.heads + h) * d.seq_q + i0) * dh..];
        let k = self.kv(self.k, b, h);
        // P[r, j] = scale · q[i0 + r] · k[j]
        product(
            (i1 - i0, n, dh),
            p,
            Operand::rows(q, dh),
            Operand::transposed(k, dh),
            Output::scaled(self.scale),
        );
        let valid = self.key_valid.map(|v| &v[b * d.seq_k..(b + 1) * d.seq_k]);
        for (r, row) in p[..(i1 - i0) * n].chunks_exact_mut(n).enumerate() {
            let i = i0 + r;
            let seen = i + offset + 1;
            row[seen.min(n)..].fill(f32::NEG_INFINITY);
            if let Some(valid) = valid.filter(|v| v[offset + i] != 0.0) {
                for (x, &ok) in row.iter_mut().zip(valid) {
                    if ok == 0.0 {
                        *x = f32::NEG_INFINITY;
                    }
                }
            }
            match &mut lse {
                Lse::Compute(out) => out[r] = softmax_in_place(row),
                Lse::Given(given) => exp_shifted(row, given[r]),
            }
        }
        n
    }

    /// Key or value head read by query head `h` of batch row `b`.
    fn kv<'s>(&self, t: &'s [f32], b: usize, h: usize) -> &'s [f32] {
        let d = self.dims;
        let at = (b * d.kv_heads + h / d.group()) * self.kv_stride;
        &t[at..at + d.seq_k * d.head_dim]
    }
}

enum Lse<'a> {
    Compute(&'a mut [f32]),
    Given(&'a [f32]),
}

/// `softmax(scale · q·kᵀ)·v` under the causal and padding masks, with each row's log-sum-exp.
pub fn forward(x: Inputs<'_>) -> Forward {
    x.check();
    let d = x.dims;
    let dh = d.head_dim;
    let mut out = vec![0.0f32; d.batch * d.heads * d.seq_q * dh];
    let mut lse = vec![0.0f32; d.batch * d.heads * d.seq_q];
    if out.is_empty() {
        return Forward { out, lse };
    }
    // Two products per head (causal halves aside): q·kᵀ and P·v.
    let min_heads = min_items_per_task(2 * d.seq_q * d.seq_k * dh);
    out.par_chunks_mut(d.seq_q * dh)
        .zip(lse.par_chunks_mut(d.seq_q))
        .enumerate()
        .with_min_len(min_heads)
        .for_each(|(bh, (out, lse))| {
            let (b, h) = (bh / d.heads, bh % d.heads);
            let v = x.kv(x.v, b, h);
            let mut p = vec![0.0f32; BLOCK_Q.min(d.seq_q) * d.seq_k];
            for i0 in (0..d.seq_q).step_by(BLOCK_Q) {
                let i1 = (i0 + BLOCK_Q).min(d.seq_q);
                let n = x.probabilities(b, h, i0, i1, &mut p, Lse::Compute(&mut lse[i0..i1]));
                // out[i0..i1] = P · v[..n]
                product(
                    (i1 - i0, dh, n),
                    &mut out[i0 * dh..],
                    Operand::rows(&p, n),
                    Operand::rows(v, dh),
                    Output::SET,
                );
            }
        });
    Forward { out, lse }
}

/// Gradients of `Σ d_out ∘ out` with respect to q, k and v, from the saved forward (`out` and
/// `lse` of [`forward`]).
pub fn backward(x: Inputs<'_>, out: &[f32], lse: &[f32], d_out: &[f32]) -> Gradients {
    x.check();
    let d = x.dims;
    let (dh, group) = (d.head_dim, d.group());
    assert_eq!(d_out.len(), x.q.len(), "d_out");
    assert_eq!(out.len(), x.q.len(), "out");
    assert_eq!(lse.len(), d.batch * d.heads * d.seq_q, "lse");
    let mut d_q = vec![0.0f32; x.q.len()];
    let mut d_k = vec![0.0f32; d.batch * d.kv_heads * d.seq_k * dh];
    let mut d_v = vec![0.0f32; d_k.len()];
    if d_q.is_empty() || d_k.is_empty() {
        return Gradients { d_q, d_k, d_v };
    }
    // One task per key/value head: it owns that head's d_k and d_v and the d_q of the query
    // heads reading it, which are contiguous in `[batch, heads, …]`.
    d_q.par_chunks_mut(group * d.seq_q * dh)
        .zip(d_k.par_chunks_mut(d.seq_k * dh))
        .zip(d_v.par_chunks_mut(d.seq_k * dh))
        .enumerate()
        .for_each(|(bkv, ((d_q, d_k), d_v))| {
            let b = bkv / d.kv_heads;
            let rows = BLOCK_Q.min(d.seq_q);
            let mut p = vec![0.0f32; rows * d.seq_k];
            let mut ds = vec![0.0f32; rows * d.seq_k];
            for g in 0..group {
                let h = (bkv % d.kv_heads) * group + g;
                let head = (b * d.heads + h) * d.seq_q;
                let (k, v) = (x.kv(x.k, b, h), x.kv(x.v, b, h));
                for i0 in (0..d.seq_q).step_by(BLOCK_Q) {
                    let i1 = (i0 + BLOCK_Q).min(d.seq_q);
                    let m = i1 - i0;
                    let lse_blk = &lse[head + i0..head + i1];
                    let n = x.probabilities(b, h, i0, i1, &mut p, Lse::Given(lse_blk));
                    let span = (head + i0) * dh..(head + i1) * dh;
                    let (q_blk, do_blk) = (&x.q[span.clone()], &d_out[span]);
                    // dP = dO · v[..n]ᵀ
                    product(
                        (m, n, dh),
                        &mut ds,
                        Operand::rows(do_blk, dh),
                        Operand::transposed(v, dh),
                        Output::SET,
                    );
                    // dS = P ∘ (dP − rowsum(dO ∘ O))
                    let o = &out[(head + i0) * dh..(head + i1) * dh];
                    for r in 0..m {
                        let delta = dot(&do_blk[r * dh..(r + 1) * dh], &o[r * dh..(r + 1) * dh]);
                        let (ds_row, p_row) = (&mut ds[r * n..(r + 1) * n], &p[r * n..(r + 1) * n]);
                        for (s, &pr) in ds_row.iter_mut().zip(p_row) {
                            *s = pr * (*s - delta);
                        }
                    }
                    // dQ = scale · dS · k[..n]
                    product(
                        (m, dh, n),
                        &mut d_q[(g * d.seq_q + i0) * dh..],
                        Operand::rows(&ds, n),
                        Operand::rows(k, dh),
                        Output::scaled(x.scale),
                    );
                    // dK[..n] += scale · dSᵀ · Q
                    let add_scaled = Output {
                        scale: x.scale,
                        accumulate: true,
                    };
                    let (ds_t, p_t) = (Operand::transposed(&ds, n), Operand::transposed(&p, n));
                    product((n, dh, m), d_k, ds_t, Operand::rows(q_blk, dh), add_scaled);
                    // dV[..n] += Pᵀ · dO
                    product((n, dh, m), d_v, p_t, Operand::rows(do_blk, dh), Output::ADD);
                }
            }
        });
    Gradients { d_q, d_k, d_v }
}

/// Softmax of one row in place (−∞ entries become exact zeros); returns its log-sum-exp, −∞
/// (and a zero row) when every entry is −∞.
fn softmax_in_place(row: &mut [f32]) -> f32 {
    let max = row_max(row);
    if max == f32::NEG_INFINITY {
        row.fill(0.0);
        return f32::NEG_INFINITY;
    }
    exp_shifted(row, max);
    let sum = row_sum(row);
    let inv = 1.0 / sum;
    for x in row.iter_mut() {
        *x *= inv;
    }
    max + sum.ln()
}
