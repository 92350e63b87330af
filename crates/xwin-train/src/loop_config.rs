//! The `[train]` table: the optimisation settings every stage shares.

use crate::lora::LoraConfig;
use crate::loss_scale::LossScaleConfig;
use crate::optim::AdamWSettings;
use crate::schedule::{Schedule, Warmup};
use serde::{Deserialize, Serialize};
use xwin_model::Precision;

/// Optimisation settings shared by every stage (the `[train]` table).
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
    /// Seeds the backend's random numbers, re-seeded every step from (seed, step) so that a
    /// resumed run draws what the uninterrupted one would have.
    #[serde(default)]
    pub seed: u64,
    /// Run the objective's evaluation every this many steps (and after the last).
    #[serde(default)]
    pub eval_every: Option<usize>,
    /// Train low-rank adapters instead of the weights (merged into them at the end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lora: Option<LoraConfig>,
    /// Precision of the matrix products (`"f32"`, `"bf16"`, `"f16"`); parameters, optimizer
    /// state and losses stay f32. Left out of the fingerprint when f32.
    #[serde(default, skip_serializing_if = "Precision::is_f32")]
    pub precision: Precision,
    /// Dynamic loss scaling; f16 only, where it is on by default with GradScaler's settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scale: Option<LossScaleConfig>,
    /// Activation checkpointing (HF's name): keep each decoder layer's input only and
    /// recompute the layer in the backward. The same gradients up to rounding, so left out of
    /// the fingerprint: a run may resume with it switched.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_checkpointing: bool,
}

impl LoopConfig {
    /// The loss scaler's settings when the run scales its loss (f16), or why the table is
    /// refused.
    pub fn loss_scaling(&self) -> Result<Option<LossScaleConfig>, String> {
        match (self.precision, self.loss_scale) {
            (Precision::F16, scale) => {
                let scale = scale.unwrap_or_default();
                scale.check()?;
                Ok(Some(scale))
            }
            (other, Some(_)) => Err(format!(
                "train.loss_scale: only with precision = \"f16\" ({other} needs no loss scaling)"
            )),
            (_, None) => Ok(None),
        }
    }
}

fn one() -> usize {
    1
}
