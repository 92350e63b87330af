//! Causal attention for training off the CPU that keeps no `[batch, heads, seq, keys]` tensor
//! for the backward pass.
//!
//! The composite ([`crate::attention::attention_with_bias`]) leaves autodiff three score-sized
//! f32 tensors per layer (measured, `cargo run -p xwin-bench --example attention_memory`): 6 GiB
//! per layer for one 4096-token Llama-2-7B sequence, 192 GiB over its 32 layers. Here, as in
//! FlashAttention, the
//! forward keeps only its inputs and each query row's log-sum-exp; the backward recomputes the
//! probabilities from them (`p = exp(s − lse)`, one more `q·kᵀ`) and forms the gradients.
//! Both passes walk the query rows in chunks of at most [`CHUNK_SCORES`] score elements, so no
//! more than one chunk's scores exist at any time. The products and elementwise passes are the
//! backend's own ops: the same code runs on every backend (the CPU trains f32 through its
//! fused kernel instead, [`crate::cpu_ops::fused_causal_attention`]).
//!
//! In half precision the two products and the three of the backward run on operands cast to
//! half, results rounded to half and held in f32, as the composite's do under autocast;
//! softmax and its gradient stay f32. The forward is the composite's, op for op.

use crate::precision::Precision;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, TensorMetadata, backend_extension};
use burn::tensor::{FloatDType, Slice, Tensor};
use std::ops::Range;

/// Score elements (`batch · heads · rows · keys`) per chunk: 2²⁶, 256 MiB of f32.
pub const CHUNK_SCORES: usize = 1 << 26;

/// Added to a row's sum of exponentials, as the composite does (`EMPTY_ROW` there): a row with
/// every key hidden gives 0, not 0/0.
const EMPTY_ROW: f64 = 1e-15;

/// Causal attention that recomputes its probabilities in the backward pass.
#[backend_extension(Flex, Cube: cfg(any(feature = "wgpu", feature = "cuda")), Autodiff)]
pub trait LeanAttentionBackend: Backend {
    /// # Shapes
    /// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, heads, seq_k, head_dim]`,
    ///   bias `[batch or 1, 1, seq_q, seq_k]` → `[batch, heads, seq_q, head_dim]`
    fn xwin_lean_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
        rows_per_chunk: usize,
        precision: Precision,
    ) -> FloatTensor<Self>;
}

/// `softmax(q·kᵀ/√d + bias)·v`, equal to [`crate::attention::attention_with_bias`] (values
/// and gradients, up to rounding), keeping for the backward pass only q, k, v, the bias and
/// one log-sum-exp per query row.
///
/// # Shapes
/// - q `[batch, heads, seq_q, head_dim]`, k and v `[batch, heads, seq_k, head_dim]` (key and
///   value heads already repeated), bias `[batch or 1, 1, seq_q, seq_k]` →
///   `[batch, heads, seq_q, head_dim]`
pub fn lean_attention(q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<4> {
    lean_attention_in(q, k, v, bias, Precision::F32)
}

/// [`lean_attention`] with its products in `precision`, equal to
/// [`crate::attention::attention_with_bias_in`].
///
/// # Shapes
/// - as [`lean_attention`]
pub fn lean_attention_in(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    precision: Precision,
) -> Tensor<4> {
    let [b, h, _, _] = q.dims();
    let keys = k.dims()[2];
    let rows = (CHUNK_SCORES / (b * h * keys).max(1)).max(1);
    lean_attention_in_chunks(q, k, v, bias, rows, precision)
}

/// [`lean_attention_in`] walking the query rows `rows_per_chunk` at a time.
///
/// # Shapes
/// - as [`lean_attention`]
pub fn lean_attention_in_chunks(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    bias: Tensor<4>,
    rows_per_chunk: usize,
    precision: Precision,
) -> Tensor<4> {
    let scale = 1.0 / (q.dims()[3] as f32).sqrt();
    let out = <burn::backend::Dispatch as LeanAttentionBackend>::xwin_lean_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        bias.into_dispatch(),
        scale,
        rows_per_chunk.max(1),
        precision,
    );
    Tensor::from_dispatch(out)
}

/// One call's operands and settings.
#[derive(Debug, Clone)]
struct Inputs<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    bias: FloatTensor<B>,
    scale: f32,
    rows_per_chunk: usize,
    precision: Precision,
}

/// What the backward pass recomputes from: the inputs and each query row's log-sum-exp.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    inputs: Inputs<B>,
    lse: FloatTensor<B>,
}

/// Rows `r` of dimension 2 (the query rows).
fn rows<B: Backend>(t: &FloatTensor<B>, r: Range<usize>) -> FloatTensor<B> {
    let all = || Slice::from(..);
    B::float_slice(t.clone(), &[all(), all(), Slice::from(r), all()])
}

/// The query-row chunks of `seq_q` rows.
fn chunks(seq_q: usize, rows_per_chunk: usize) -> impl Iterator<Item = Range<usize>> {
    (0..seq_q)
        .step_by(rows_per_chunk)
        .map(move |r0| r0..(r0 + rows_per_chunk).min(seq_q))
}

/// `a · b` in `precision`: operands cast to it, the product rounded to it, held in f32
/// ([`crate::precision::matmul`] on primitives).
fn matmul<B: Backend>(
    a: FloatTensor<B>,
    b: FloatTensor<B>,
    precision: Precision,
) -> FloatTensor<B> {
    match precision.half() {
        None => B::float_matmul(a, b),
        Some(half) => B::float_cast(
            B::float_matmul(B::float_cast(a, half), B::float_cast(b, half)),
            FloatDType::F32,
        ),
    }
}

/// `q · scale`, what the scores' product reads (the composite scales q, not the scores).
fn scaled<B: Backend>(q: FloatTensor<B>, scale: f32) -> FloatTensor<B> {
    B::float_mul_scalar(q, f64::from(scale).into())
}

/// One chunk's biased scores `[b, h, rows, seq_k]` from its scaled queries.
fn scores<B: Backend>(
    q_scaled: FloatTensor<B>,
    k: &FloatTensor<B>,
    bias: FloatTensor<B>,
    precision: Precision,
) -> FloatTensor<B> {
    let s = matmul::<B>(q_scaled, B::float_swap_dims(k.clone(), 2, 3), precision);
    B::float_add(s, bias)
}

/// The output and each query row's log-sum-exp (`[b, h, seq_q, 1]`; about `f32::MIN` for a
/// row that sees no key).
fn forward<B: Backend>(x: &Inputs<B>) -> (FloatTensor<B>, FloatTensor<B>) {
    let seq_q = x.q.shape()[2];
    let (mut outs, mut lses) = (Vec::new(), Vec::new());
    for r in chunks(seq_q, x.rows_per_chunk) {
        let q_c = scaled::<B>(rows::<B>(&x.q, r.clone()), x.scale);
        let s = scores::<B>(q_c, &x.k, rows::<B>(&x.bias, r), x.precision);
        // A fully hidden row has max −∞; clamping keeps (−∞) − shift at −∞, not NaN.
        let m = B::float_clamp_min(B::float_max_dim(s.clone(), 3), f64::from(f32::MIN).into());
        let e = B::float_exp(B::float_sub(s, m.clone()));
        let l = B::float_add_scalar(B::float_sum_dim(e.clone(), 3), EMPTY_ROW.into());
        let p = B::float_div(e, l.clone());
        outs.push(matmul::<B>(p, x.v.clone(), x.precision));
        lses.push(B::float_add(m, B::float_log(l)));
    }
    (B::float_cat(outs, 2), B::float_cat(lses, 2))
}

/// Gradients with respect to q, k and v of `Σ d_out ∘ out`.
fn backward<B: Backend>(
    saved: &Saved<B>,
    d_out: FloatTensor<B>,
) -> (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>) {
    let x = &saved.inputs;
    let seq_q = x.q.shape()[2];
    let (precision, scale) = (x.precision, f64::from(x.scale));
    let (mut d_q, mut d_k, mut d_v) = (Vec::new(), None, None);
    let add = |acc: Option<FloatTensor<B>>, t: FloatTensor<B>| match acc {
        Some(a) => Some(B::float_add(a, t)),
        None => Some(t),
    };
    for r in chunks(seq_q, x.rows_per_chunk) {
        let q_c = scaled::<B>(rows::<B>(&x.q, r.clone()), x.scale);
        let do_c = rows::<B>(&d_out, r.clone());
        let s = scores::<B>(q_c.clone(), &x.k, rows::<B>(&x.bias, r.clone()), precision);
        let p = B::float_exp(B::float_sub(s, rows::<B>(&saved.lse, r)));
        // dV = Pᵀ·dO, dP = dO·Vᵀ, dS = P ∘ (dP − rowsum(dP ∘ P)), dQ = dS·K·scale,
        // dK = dSᵀ·(Q·scale). The softmax correction is taken from dP and P themselves (not
        // rowsum(dO ∘ O)), which stays exact when the output's product was rounded to half.
        d_v = add(
            d_v,
            matmul::<B>(B::float_swap_dims(p.clone(), 2, 3), do_c.clone(), precision),
        );
        let dp = matmul::<B>(do_c, B::float_swap_dims(x.v.clone(), 2, 3), precision);
        let delta = B::float_sum_dim(B::float_mul(dp.clone(), p.clone()), 3);
        let ds = B::float_mul(p, B::float_sub(dp, delta));
        d_q.push(B::float_mul_scalar(
            matmul::<B>(ds.clone(), x.k.clone(), precision),
            scale.into(),
        ));
        d_k = add(
            d_k,
            matmul::<B>(B::float_swap_dims(ds, 2, 3), q_c, precision),
        );
    }
    let (d_k, d_v) = (
        d_k.expect("at least one query row"),
        d_v.expect("at least one query row"),
    );
    (B::float_cat(d_q, 2), d_k, d_v)
}

/// The forward alone (no graph) on an execution backend.
macro_rules! inference_backend {
    ($backend:ty) => {
        impl LeanAttentionBackend for $backend {
            fn xwin_lean_attention(
                q: FloatTensor<Self>,
                k: FloatTensor<Self>,
                v: FloatTensor<Self>,
                bias: FloatTensor<Self>,
                scale: f32,
                rows_per_chunk: usize,
                precision: Precision,
            ) -> FloatTensor<Self> {
                let inputs = Inputs {
                    q,
                    k,
                    v,
                    bias,
                    scale,
                    rows_per_chunk,
                    precision,
                };
                forward::<Self>(&inputs).0
            }
        }
    };
}

inference_backend!(Flex);
#[cfg(any(feature = "wgpu", feature = "cuda"))]
inference_backend!(burn::backend::Cube);

/// The backward step; its state is [`Saved`].
#[derive(Debug)]
struct LeanBackward;

impl<B: Backend> Backward<B, 3> for LeanBackward {
    type State = Saved<B>;

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
        let d_out = grads.consume::<B>(&ops.node);
        let (d_q, d_k, d_v) = backward::<B>(&ops.state, d_out);
        let [q_node, k_node, v_node] = ops.parents;
        for (node, grad) in [(q_node, d_q), (k_node, d_k), (v_node, d_v)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, grad);
            }
        }
    }
}

impl<B: Backend, C: CheckpointStrategy> LeanAttentionBackend for Autodiff<B, C> {
    fn xwin_lean_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        scale: f32,
        rows_per_chunk: usize,
        precision: Precision,
    ) -> FloatTensor<Self> {
        // The bias is a constant (no gradient flows to it).
        let guards = [q.node(), k.node(), v.node()];
        let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
        let inputs = Inputs {
            q,
            k,
            v,
            bias: bias.into_primitive(),
            scale,
            rows_per_chunk,
            precision,
        };
        let (out, lse) = forward::<B>(&inputs);
        match LeanBackward.prepare::<C>(guards).compute_bound().stateful() {
            OpsKind::Tracked(prep) => prep.finish(Saved { inputs, lse }, out),
            OpsKind::UnTracked(prep) => prep.finish(out),
        }
    }
}
