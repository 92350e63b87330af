//! AdamW with the paper's settings as defaults.

use crate::fused_adamw::FusedAdamW;
use burn::module::ParamGroup;
use burn::optim::{GradientsParams, ModuleOptimizer};
use serde::{Deserialize, Serialize};

/// Parameters whose module path contains one of these are not decayed.
pub const NO_DECAY: [&str; 2] = ["norm", "bias"];

/// AdamW hyper-parameters; defaults are the paper's (β 0.9/0.999, ε 1e-8, no weight decay).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdamWSettings {
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

impl Default for AdamWSettings {
    fn default() -> Self {
        Self {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamWSettings {
    /// AdamW over a whole model, with Hugging Face Trainer's parameter groups: weight decay
    /// on every parameter except norm weights and biases (`get_decay_parameter_names`
    /// excludes LayerNorm-family modules and names containing "bias" or "norm"; embeddings
    /// and the LM head are decayed).
    pub fn build(&self) -> ModuleOptimizer {
        let adamw = |decay| FusedAdamW::new(self.beta1, self.beta2, self.eps, decay);
        let decayed = ModuleOptimizer::from(adamw(self.weight_decay));
        if self.weight_decay == 0.0 {
            return decayed;
        }
        // Module paths are field names: `…input_layernorm.gamma`, `model.norm.gamma`, `…bias`.
        decayed.with_group(
            ParamGroup::from_any_predicates(NO_DECAY.to_vec()),
            adamw(0.0),
            None,
        )
    }
}

/// Global L2 norm of all gradients (what clipping compares against).
pub fn grad_norm<M: burn::module::Module>(module: &M, grads: &GradientsParams) -> f64 {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Norm<'a> {
        grads: &'a GradientsParams,
        sum: f64,
    }
    impl ModuleVisitor for Norm<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                let s = g
                    .square()
                    .sum()
                    .try_into_scalar::<f32>()
                    .unwrap_or(f32::NAN);
                self.sum += f64::from(s);
            }
        }
    }
    let mut v = Norm { grads, sum: 0.0 };
    module.visit(&mut v);
    v.sum.sqrt()
}
