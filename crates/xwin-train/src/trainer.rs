//! The one optimisation loop every stage uses: gradient accumulation to an effective batch,
//! global-norm clipping, AdamW, a learning-rate schedule, per-step metrics, and a stop on a
//! non-finite loss. A stage supplies only an objective: a loss for a micro-batch.

use crate::optim::{AdamWSettings, grad_norm};
use crate::schedule::{Schedule, Warmup};
use burn::module::{Module, ModuleVisitor, Param};
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::Tensor;
use serde::{Deserialize, Serialize};

/// Errors of the loop.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(
        "step {step}: loss is {loss} (not finite); stopping with the parameters after {step} steps"
    )]
    NonFinite { step: usize, loss: f32 },
    #[error("objective failed at step {step}: {message}")]
    Objective { step: usize, message: String },
    #[error("invalid training config: {0}")]
    Config(String),
}

/// Optimisation settings shared by every stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoopConfig {
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    pub warmup: Warmup,
    /// Micro-batches per optimizer step (effective batch = micro-batch × this).
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub max_grad_norm: Option<f64>,
    #[serde(default)]
    pub adamw: AdamWSettings,
}

fn one() -> usize {
    1
}

/// What one optimizer step did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepMetrics {
    pub step: usize,
    /// Mean of the micro-batch losses.
    pub loss: f32,
    pub lr: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// Scales every gradient by `factor` (global-norm clipping).
fn scale_grads<M: Module>(module: &M, grads: &mut GradientsParams, factor: f64) {
    struct Scale<'a> {
        grads: &'a mut GradientsParams,
        factor: f64,
    }
    impl ModuleVisitor for Scale<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            if let Some(g) = self.grads.remove::<D>(param.id) {
                self.grads.register(param.id, g.mul_scalar(self.factor));
            }
        }
    }
    module.visit(&mut Scale { grads, factor });
}

/// Runs `total_steps` optimizer steps. `next_batch(step, micro)` yields each micro-batch and
/// `loss(model, batch)` its mean loss; `on_step` sees each step's metrics (log, progress).
pub fn train<M, B, E: std::fmt::Display>(
    mut model: M,
    config: &LoopConfig,
    total_steps: usize,
    mut next_batch: impl FnMut(usize, usize) -> B,
    mut loss: impl FnMut(&M, &B) -> Result<Tensor<1>, E>,
    mut on_step: impl FnMut(&StepMetrics),
) -> Result<M, (M, TrainError)>
where
    M: Module,
{
    if config.grad_accum == 0 || config.lr <= 0.0 {
        return Err((
            model,
            TrainError::Config("grad_accum must be ≥ 1 and lr > 0".into()),
        ));
    }
    let mut optim = config.adamw.build();
    for step in 0..total_steps {
        let mut accumulator = GradientsAccumulator::<M>::new();
        let mut loss_sum = 0.0f32;
        for micro in 0..config.grad_accum {
            let batch = next_batch(step, micro);
            let value = match loss(&model, &batch) {
                Ok(v) => v,
                Err(e) => {
                    return Err((
                        model,
                        TrainError::Objective {
                            step,
                            message: e.to_string(),
                        },
                    ));
                }
            };
            let scalar = value.clone().into_scalar::<f32>();
            if !scalar.is_finite() {
                return Err((model, TrainError::NonFinite { step, loss: scalar }));
            }
            loss_sum += scalar;
            let scaled = value.div_scalar(config.grad_accum as f64);
            let grads = GradientsParams::from_grads(scaled.backward(), &model);
            accumulator.accumulate(&model, grads);
        }
        let mut grads = accumulator.grads();
        let norm = grad_norm(&model, &grads);
        if !norm.is_finite() {
            return Err((
                model,
                TrainError::NonFinite {
                    step,
                    loss: f32::NAN,
                },
            ));
        }
        if let Some(max) = config.max_grad_norm
            && norm > max
        {
            scale_grads(&model, &mut grads, max / (norm + 1e-6));
        }
        let lr = config
            .schedule
            .lr(config.lr, step, total_steps, config.warmup);
        if lr > 0.0 {
            model = optim.step(lr, model, grads);
        }
        on_step(&StepMetrics {
            step: step + 1,
            loss: loss_sum / config.grad_accum as f32,
            lr,
            grad_norm: norm,
        });
    }
    Ok(model)
}
