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

/// Global L2 norm of all gradients (what clipping compares against): the f32 squared sum of
/// each gradient, added in f64.
pub fn grad_norm<M: burn::module::Module>(module: &M, grads: &GradientsParams) -> f64 {
    read_with_norm(Vec::new(), grad_square_sums(module, grads)).1
}

/// Reads `values` and the squared sums `squares` (1-element tensors) in one transfer; returns
/// the values and the norm the squares make (f64 sum of the f32 squared sums). A failed read
/// gives NaN for all of them.
pub(crate) fn read_with_norm(
    values: Vec<burn::tensor::Tensor<1>>,
    squares: Vec<burn::tensor::Tensor<1>>,
) -> (Vec<f32>, f64) {
    let (n, m) = (values.len(), squares.len());
    if n + m == 0 {
        return (Vec::new(), 0.0);
    }
    let all: Vec<_> = values.into_iter().chain(squares).collect();
    let read = burn::tensor::Tensor::cat(all, 0)
        .try_into_vec_as::<f32>()
        .unwrap_or_default();
    if read.len() != n + m {
        return (vec![f32::NAN; n], f64::NAN);
    }
    let norm_sq: f64 = read[n..].iter().map(|&s| f64::from(s)).sum();
    (read[..n].to_vec(), norm_sq.sqrt())
}

/// Each gradient's squared sum, as 1-element tensors left on the device (in the module's
/// parameter order), so a caller reads them with whatever else it needs in one transfer.
pub fn grad_square_sums<M: burn::module::Module>(
    module: &M,
    grads: &GradientsParams,
) -> Vec<burn::tensor::Tensor<1>> {
    use burn::module::{ModuleVisitor, Param};
    use burn::tensor::Tensor;
    struct Squares<'a> {
        grads: &'a GradientsParams,
        sums: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Squares<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.get::<D>(param.id) {
                self.sums.push(g.square().sum());
            }
        }
    }
    let mut v = Squares {
        grads,
        sums: Vec::new(),
    };
    module.visit(&mut v);
    v.sums
}
