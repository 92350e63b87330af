//! Dynamic loss scaling for f16 training, with `torch.amp.GradScaler`'s rules: the loss is
//! multiplied by the scale before the backward pass so that small gradients survive f16's
//! range, the gradients are divided by it again before clipping, a step whose gradients
//! overflow is skipped (parameters and optimizer state untouched) and halves the scale, and
//! the scale doubles after `growth_interval` good steps in a row. bf16 has f32's range and
//! needs none of this.

use serde::{Deserialize, Serialize};

/// The `[train.loss_scale]` table (only with `precision = "f16"`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossScaleConfig {
    /// The first scale (GradScaler's `init_scale`).
    #[serde(default = "init_scale")]
    pub init: f64,
    /// Good steps in a row before the scale doubles (GradScaler's `growth_interval`).
    #[serde(default = "growth_interval")]
    pub growth_interval: usize,
}

fn init_scale() -> f64 {
    65536.0
}

fn growth_interval() -> usize {
    2000
}

impl Default for LossScaleConfig {
    fn default() -> Self {
        Self {
            init: init_scale(),
            growth_interval: growth_interval(),
        }
    }
}

impl LossScaleConfig {
    /// A finite positive scale and a growth interval ≥ 1.
    pub fn check(&self) -> Result<(), String> {
        if !(self.init.is_finite() && self.init > 0.0) || self.growth_interval == 0 {
            return Err(
                "train.loss_scale: init must be finite and > 0, growth_interval ≥ 1".into(),
            );
        }
        Ok(())
    }
}

/// The scaler's state: saved in each checkpoint so that a resumed run scales as the
/// uninterrupted one does.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LossScale {
    pub scale: f64,
    /// Good steps since the scale last changed.
    pub good_steps: usize,
}

impl LossScale {
    pub fn new(config: &LossScaleConfig) -> Self {
        Self {
            scale: config.init,
            good_steps: 0,
        }
    }

    /// After a step: `overflowed` (some gradient not finite) halves the scale, otherwise it
    /// doubles once `growth_interval` good steps have passed.
    pub fn update(&mut self, overflowed: bool, config: &LossScaleConfig) {
        if overflowed {
            self.scale *= 0.5;
            self.good_steps = 0;
        } else {
            self.good_steps += 1;
            if self.good_steps == config.growth_interval {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// GradScaler's sequence: halve on overflow (resetting the count), double after the
    /// interval.
    #[test]
    fn halves_on_overflow_and_grows_after_the_interval() {
        let config = LossScaleConfig {
            init: 1024.0,
            growth_interval: 3,
        };
        let mut s = LossScale::new(&config);
        let mut seen = Vec::new();
        for overflow in [true, false, false, true, false, false, false, false] {
            s.update(overflow, &config);
            seen.push(s.scale);
        }
        assert_eq!(
            seen,
            [512.0, 512.0, 512.0, 256.0, 256.0, 256.0, 512.0, 512.0]
        );
        assert_eq!(s.good_steps, 1);
        assert!(
            LossScaleConfig {
                init: 0.0,
                ..config
            }
            .check()
            .is_err()
        );
        assert!(
            LossScaleConfig {
                growth_interval: 0,
                ..config
            }
            .check()
            .is_err()
        );
    }
}
