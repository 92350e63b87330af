//! The SwiGLU feed-forward block of Llama.

use crate::cpu_ops::{fused_ops_apply, project, silu_mul};
use crate::error::Result;
use crate::names::{DOWN_PROJ, GATE_PROJ, UP_PROJ, join};
use crate::params::{HfTensor, HfTensors, ParamSource, linear};
use crate::precision::{Precision, round_to};
use burn::module::Module;
use burn::nn::Linear;
use burn::tensor::Tensor;
use burn::tensor::activation::silu;

/// Configuration of [`Mlp`].
#[derive(Debug, Clone)]
pub struct MlpConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
}

impl MlpConfig {
    /// Builds the block with HF names under `prefix` (e.g. `model.layers.0.mlp`).
    pub fn init(&self, source: &mut dyn ParamSource, prefix: &str) -> Result<Mlp> {
        let (h, i) = (self.hidden_size, self.intermediate_size);
        Ok(Mlp {
            gate_proj: linear(source, &join(prefix, GATE_PROJ), h, i)?,
            up_proj: linear(source, &join(prefix, UP_PROJ), h, i)?,
            down_proj: linear(source, &join(prefix, DOWN_PROJ), i, h)?,
        })
    }
}

/// `down(silu(gate(x)) * up(x))`.
///
/// # Shapes
/// - input `[batch, seq, hidden]` → output `[batch, seq, hidden]`
#[derive(Module, Debug)]
pub struct Mlp {
    pub gate_proj: Linear,
    pub up_proj: Linear,
    pub down_proj: Linear,
}

impl Mlp {
    /// The block with its three products in `precision`.
    pub fn forward(&self, x: Tensor<3>, precision: Precision) -> Tensor<3> {
        let gate = project(&self.gate_proj, x.clone(), precision);
        let up = project(&self.up_proj, x, precision);
        // On the CPU one fused pass each way (see `cpu_ops::silu_mul`).
        let hidden = if !precision.is_f32() {
            // autocast runs SiLU in the half dtype: its output is rounded before the product
            // (whose own rounding the down projection's cast does).
            round_to(silu(gate), precision) * up
        } else if fused_ops_apply(&gate.device(), gate.dtype()) {
            silu_mul(gate, up)
        } else {
            silu(gate) * up
        };
        project(&self.down_proj, hidden, precision)
    }

    pub(crate) fn hf_tensors(&self, prefix: &str, out: &mut HfTensors) {
        for (name, layer) in [
            (GATE_PROJ, &self.gate_proj),
            (UP_PROJ, &self.up_proj),
            (DOWN_PROJ, &self.down_proj),
        ] {
            out.push((join(prefix, name), HfTensor::Linear(layer.weight.val())));
        }
    }
}
