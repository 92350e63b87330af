//! The SwiGLU feed-forward block of Llama.

use crate::error::Result;
use crate::params::{HfTensor, HfTensors, ParamSource, linear};
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
            gate_proj: linear(source, &format!("{prefix}.gate_proj.weight"), h, i)?,
            up_proj: linear(source, &format!("{prefix}.up_proj.weight"), h, i)?,
            down_proj: linear(source, &format!("{prefix}.down_proj.weight"), i, h)?,
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
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let gate = silu(self.gate_proj.forward(x.clone()));
        self.down_proj.forward(gate * self.up_proj.forward(x))
    }

    pub(crate) fn hf_tensors(&self, prefix: &str, out: &mut HfTensors) {
        for (name, layer) in [
            ("gate_proj", &self.gate_proj),
            ("up_proj", &self.up_proj),
            ("down_proj", &self.down_proj),
        ] {
            out.push((
                format!("{prefix}.{name}.weight"),
                HfTensor::Linear(layer.weight.val()),
            ));
        }
    }
}
