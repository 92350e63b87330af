//! Our CPU kernels as burn operations with their own backward passes, through burn's
//! backend-extension route: each a trait implemented for `Flex` (forward only, inference) and
//! for `Autodiff<Flex, C>` (forward saving what its backward needs, then the fused backward).
//! burn's composites under autodiff run one tracked op per elementwise pass; these are one pass
//! each way. Other backends keep the composites ([`fused_ops_apply`]).

mod attention;
mod heads;
mod linear;
mod rms_norm;
mod swiglu;

pub use attention::{CausalAttentionBackend, fused_causal_attention};
pub use heads::{HeadsBackend, split_heads};
pub use linear::{LinearBackend, linear};
pub use rms_norm::{RmsNormBackend, rms_norm};
pub use swiglu::{SwiGluBackend, silu_mul};

use crate::precision::Precision;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, NodeGuard, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex};
use burn::tensor::{DType, Device, Shape, Tensor, TensorData};

/// Whether the fused CPU operations run for tensors on `device` of type `dtype`: f32 on the
/// CPU backend (with or without autodiff).
pub fn fused_ops_apply(device: &Device, dtype: DType) -> bool {
    dtype == DType::F32 && crate::device::is_cpu(device)
}

/// `layer.forward(x)` with its product in `precision`: through [`linear`] where the fused ops
/// apply (f32 on the CPU) and the layer has no bias (every Llama projection); in half
/// precision through [`crate::precision::matmul`] (operands cast at use, f32 out).
///
/// # Shapes
/// - x `[..., d_in]` → `[..., d_out]`
pub fn project<const D: usize>(
    layer: &burn::nn::Linear,
    x: Tensor<D>,
    precision: Precision,
) -> Tensor<D> {
    let weight = layer.weight.val();
    if !precision.is_f32() {
        let dims = x.dims();
        let d_in = dims[D - 1];
        let [_, d_out] = weight.dims();
        let rows = dims[..D - 1].iter().product::<usize>();
        let y = crate::precision::matmul(x.reshape([rows, d_in]), weight, precision);
        let y = match &layer.bias {
            Some(bias) => y + bias.val().unsqueeze::<2>(),
            None => y,
        };
        let mut out = dims;
        out[D - 1] = d_out;
        return y.reshape(out);
    }
    if layer.bias.is_none()
        && weight.dtype() == x.dtype()
        && fused_ops_apply(&x.device(), x.dtype())
    {
        linear(x, weight)
    } else {
        layer.forward(x)
    }
}

/// The autodiff side of every op here: `out` computed, the backward step registered with the
/// state `state` builds when some input wants a gradient (nothing kept otherwise).
fn record<const N: usize, B, C>(
    backward: B,
    inputs: [NodeGuard; N],
    out: FlexTensor,
    state: impl FnOnce() -> B::State,
) -> FloatTensor<Autodiff<Flex, C>>
where
    B: Backward<Flex, N>,
    C: CheckpointStrategy,
{
    match backward.prepare::<C>(inputs).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(state(), out),
        OpsKind::UnTracked(prep) => prep.finish(out),
    }
}

/// A contiguous f32 tensor's elements (every operand here is made contiguous first).
fn f32s(t: &FlexTensor) -> &[f32] {
    t.as_slice::<f32>().expect("contiguous f32 operand")
}

fn flex(data: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(data, shape))
}
