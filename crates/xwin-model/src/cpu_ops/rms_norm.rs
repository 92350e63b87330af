//! RMSNorm `x / sqrt(mean(x²) + eps) · γ` (burn's `RmsNorm`, in its order of operations) as one
//! operation: one pass over the rows forward, one backward, where burn's composite under
//! autodiff tracked a square, a mean, an add, a square root, a division and a product, each a
//! pass over the activation (13 norms a step on the benchmark model), on one core.

use super::{f32s, flex, record};
use crate::precision::Precision;
use crate::vecmath::{dot, min_items_per_task};
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, Flex, backend_extension};
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

/// Rows per block of the γ gradient's partial sums: fixed, so that the sum's order (blocks in
/// order) does not depend on the number of threads.
const GAMMA_BLOCK_ROWS: usize = 32;

/// RMSNorm as one operation.
#[backend_extension(Flex, Autodiff)]
pub trait RmsNormBackend: Backend {
    /// # Shapes
    /// - x `[..., d]`, gamma `[d]` → `[..., d]`
    fn xwin_rms_norm(x: FloatTensor<Self>, gamma: FloatTensor<Self>, eps: f64)
    -> FloatTensor<Self>;
}

/// `norm.forward(x)` in a model whose products run in `precision`: through the fused op where
/// fused ops apply (f32 on the CPU) and the model is f32; else burn's (whose order of
/// operations half precision's autocast parity was measured with).
///
/// # Shapes
/// - x `[..., d]` → `[..., d]`
pub fn rms_norm<const D: usize>(
    norm: &burn::nn::RmsNorm,
    x: Tensor<D>,
    precision: Precision,
) -> Tensor<D> {
    if !precision.is_f32() || !super::fused_ops_apply(&x.device(), x.dtype()) {
        return norm.forward(x);
    }
    let out = <burn::backend::Dispatch as RmsNormBackend>::xwin_rms_norm(
        x.into_dispatch(),
        norm.gamma.val().into_dispatch(),
        norm.epsilon,
    );
    Tensor::from_dispatch(out)
}

/// The normalised rows and each row's root mean square.
fn forward(x: &[f32], gamma: &[f32], eps: f64) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let rows = x.len() / d.max(1);
    let (mut y, mut rms) = (vec![0.0f32; x.len()], vec![0.0f32; rows]);
    let eps = eps as f32;
    y.par_chunks_mut(d)
        .zip(rms.par_iter_mut())
        .zip(x.par_chunks(d))
        .with_min_len(min_items_per_task(d))
        .for_each(|((y, r), x)| {
            *r = (dot(x, x) / d as f32 + eps).sqrt();
            for ((o, &v), &g) in y.iter_mut().zip(x).zip(gamma) {
                *o = v / *r * g;
            }
        });
    (y, rms)
}

/// Gradients of `Σ dy ∘ y` for x and γ: with `x̂ = x / r` and `g = dy · γ`,
/// `dx = (g − x̂ · mean(g · x̂)) / r` and `dγ = Σ_rows dy · x̂`.
fn backward(x: &[f32], gamma: &[f32], rms: &[f32], dy: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let d = gamma.len();
    let mut dx = vec![0.0f32; x.len()];
    let block = GAMMA_BLOCK_ROWS * d;
    let partial: Vec<Vec<f32>> = dx
        .par_chunks_mut(block)
        .zip(x.par_chunks(block).zip(dy.par_chunks(block)))
        .zip(rms.par_chunks(GAMMA_BLOCK_ROWS))
        .map(|((dx, (x, dy)), rms)| {
            let mut d_gamma = vec![0.0f32; d];
            let mut g = vec![0.0f32; d];
            let mut x_hat = vec![0.0f32; d];
            for (((dx, x), dy), &r) in dx.chunks_mut(d).zip(x.chunks(d)).zip(dy.chunks(d)).zip(rms)
            {
                for j in 0..d {
                    x_hat[j] = x[j] / r;
                    g[j] = dy[j] * gamma[j];
                    d_gamma[j] += dy[j] * x_hat[j];
                }
                let c = dot(&g, &x_hat) / d as f32;
                for j in 0..d {
                    dx[j] = (g[j] - x_hat[j] * c) / r;
                }
            }
            d_gamma
        })
        .collect();
    let mut d_gamma = vec![0.0f32; d];
    for p in &partial {
        for (a, b) in d_gamma.iter_mut().zip(p) {
            *a += b;
        }
    }
    (dx, d_gamma)
}

fn run(x: &FlexTensor, gamma: &FlexTensor, eps: f64) -> (FlexTensor, Vec<f32>) {
    let (y, rms) = forward(f32s(x), f32s(gamma), eps);
    (flex(y, x.layout().shape().clone()), rms)
}

impl RmsNormBackend for Flex {
    fn xwin_rms_norm(x: FlexTensor, gamma: FlexTensor, eps: f64) -> FlexTensor {
        run(&x.to_contiguous(), &gamma.to_contiguous(), eps).0
    }
}

/// The backward step; its state is the (contiguous) input, γ and each row's root mean square.
#[derive(Debug)]
struct RmsNormBackward;

impl Backward<Flex, 2> for RmsNormBackward {
    type State = (FlexTensor, FlexTensor, Vec<f32>);

    fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
        let (x, gamma, rms) = ops.state;
        let dy = grads.consume::<Flex>(&ops.node).to_contiguous();
        let (dx, d_gamma) = backward(f32s(&x), f32s(&gamma), &rms, f32s(&dy));
        let [x_node, gamma_node] = ops.parents;
        if let Some(node) = x_node {
            grads.register::<Flex>(node.id, flex(dx, x.layout().shape().clone()));
        }
        if let Some(node) = gamma_node {
            grads.register::<Flex>(node.id, flex(d_gamma, Shape::from([f32s(&gamma).len()])));
        }
    }
}

impl<C: CheckpointStrategy> RmsNormBackend for Autodiff<Flex, C> {
    fn xwin_rms_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        eps: f64,
    ) -> FloatTensor<Self> {
        let guards = [x.node(), gamma.node()];
        let x = x.into_primitive().to_contiguous();
        let gamma = gamma.into_primitive().to_contiguous();
        let (y, rms) = run(&x, &gamma, eps);
        record::<2, _, C>(RmsNormBackward, guards, y, || (x, gamma, rms))
    }
}
