//! Learning-rate schedules with warm-up, as `transformers`' `get_*_schedule_with_warmup`.

use serde::{Deserialize, Serialize};

/// Warm-up length, as steps or as a fraction of all steps (the paper's RM uses 3 %).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Warmup {
    Steps(usize),
    Fraction(f64),
}

impl Warmup {
    pub fn steps(self, total: usize) -> usize {
        match self {
            Self::Steps(n) => n.min(total),
            Self::Fraction(f) => ((total as f64) * f.clamp(0.0, 1.0)).ceil() as usize,
        }
    }
}

/// Shape of the learning rate after warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    Constant,
    /// Half a cosine from the peak to 0 (SFT, RM, RS).
    Cosine,
    /// Straight line from the peak to 0 (DPO).
    Linear,
}

impl Schedule {
    /// Learning rate for optimizer step `step` (0-based) of `total`, peak `lr`.
    pub fn lr(self, lr: f64, step: usize, total: usize, warmup: Warmup) -> f64 {
        let warm = warmup.steps(total);
        if step < warm {
            return lr * step as f64 / warm.max(1) as f64;
        }
        let progress = (step - warm) as f64 / (total.saturating_sub(warm)).max(1) as f64;
        match self {
            Self::Constant => lr,
            Self::Cosine => lr * (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
            Self::Linear => {
                lr * ((total - step.min(total)) as f64 / (total.saturating_sub(warm)).max(1) as f64)
                    .max(0.0)
            }
        }
    }
}
