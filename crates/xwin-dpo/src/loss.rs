//! The DPO family as functions of four sequence log-probabilities per pair (policy and
//! reference, chosen and rejected), each with its exact derivatives with respect to the
//! policy's two, so the fused LM-head path can attach the gradient after the forward.
//! Formulas follow TRL's `DPOTrainer` (see `fixtures/dpo-loss.json`, which the tests match).

use serde::{Deserialize, Serialize};

/// Which preference loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossType {
    /// `−log σ(β δ)` (the paper's); with `label_smoothing` ε > 0, conservative DPO:
    /// `−(1−ε) log σ(β δ) − ε log σ(−β δ)`.
    Sigmoid,
    /// Robust DPO: `(−(1−ε) log σ(β δ) + ε log σ(−β δ)) / (1 − 2ε)` (TRL `robust`).
    Robust,
    /// IPO as TRL computes it: log-ratios averaged over each response's tokens,
    /// `(ρ_w/|y_w| − ρ_l/|y_l| − 1/(2β))²`.
    Ipo,
    /// IPO on summed log-ratios: `(δ − 1/(2β))²` (the paper's eq. 17).
    IpoSum,
    /// SLiC's hinge: `max(0, 1 − β δ)` (TRL `hinge`).
    Hinge,
}

/// The `[loss]` table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    #[serde(rename = "type")]
    pub loss_type: LossType,
    /// β (the paper: 0.1).
    pub beta: f64,
    /// ε of conservative / robust DPO.
    pub label_smoothing: f64,
    /// Weight of an SFT term on the chosen response (RPO): `α · (−log π(y_w|x) / |y_w|)`,
    /// the chosen response's mean token NLL per pair.
    pub sft_weight: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            loss_type: LossType::Sigmoid,
            beta: 0.1,
            label_smoothing: 0.0,
            sft_weight: 0.0,
        }
    }
}

impl LossConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(format!("loss.beta must be > 0, got {}", self.beta));
        }
        if !(0.0..0.5).contains(&self.label_smoothing) {
            return Err(format!(
                "loss.label_smoothing must be in [0, 0.5), got {}",
                self.label_smoothing
            ));
        }
        if self.sft_weight < 0.0 {
            return Err(format!(
                "loss.sft_weight must be ≥ 0, got {}",
                self.sft_weight
            ));
        }
        Ok(())
    }
}

/// One pair's log-probabilities (sums over response tokens) and response lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLogps {
    pub policy_chosen: f64,
    pub policy_rejected: f64,
    pub ref_chosen: f64,
    pub ref_rejected: f64,
    pub chosen_tokens: usize,
    pub rejected_tokens: usize,
}

/// One pair's loss, its derivatives and the implicit rewards.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairLoss {
    pub loss: f64,
    /// `∂ loss / ∂ policy_chosen`.
    pub d_chosen: f64,
    /// `∂ loss / ∂ policy_rejected`.
    pub d_rejected: f64,
    /// `β (policy_chosen − ref_chosen)`.
    pub chosen_reward: f64,
    pub rejected_reward: f64,
}

impl PairLoss {
    pub fn margin(&self) -> f64 {
        self.chosen_reward - self.rejected_reward
    }

    /// Strictly greater (ties count as wrong, as TRL's mean of `>`).
    pub fn correct(&self) -> bool {
        self.chosen_reward > self.rejected_reward
    }
}

/// `log σ(x)` without overflow for large |x|.
fn log_sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
    }
}

fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// The loss of one pair and its derivatives with respect to the policy's log-probabilities.
pub fn pair_loss(config: &LossConfig, p: &PairLogps) -> PairLoss {
    let beta = config.beta;
    let eps = config.label_smoothing;
    let chosen_ratio = p.policy_chosen - p.ref_chosen;
    let rejected_ratio = p.policy_rejected - p.ref_rejected;
    let delta = chosen_ratio - rejected_ratio;
    let z = beta * delta;
    // Loss as a function of z for the σ family: (loss, ∂loss/∂z); ∂z/∂pc = β, ∂z/∂pr = −β.
    let from_z = |loss: f64, dz: f64| (loss, beta * dz, -beta * dz);
    let (mut loss, mut d_chosen, d_rejected) = match config.loss_type {
        LossType::Sigmoid => from_z(
            -(1.0 - eps) * log_sigmoid(z) - eps * log_sigmoid(-z),
            -(1.0 - eps) * sigmoid(-z) + eps * sigmoid(z),
        ),
        LossType::Robust => from_z(
            (-(1.0 - eps) * log_sigmoid(z) + eps * log_sigmoid(-z)) / (1.0 - 2.0 * eps),
            (-(1.0 - eps) * sigmoid(-z) - eps * sigmoid(z)) / (1.0 - 2.0 * eps),
        ),
        LossType::Hinge => from_z((1.0 - z).max(0.0), if z < 1.0 { -1.0 } else { 0.0 }),
        LossType::IpoSum => {
            let r = delta - 1.0 / (2.0 * beta);
            (r * r, 2.0 * r, -2.0 * r)
        }
        LossType::Ipo => {
            let (lc, lr) = (
                p.chosen_tokens.max(1) as f64,
                p.rejected_tokens.max(1) as f64,
            );
            let r = chosen_ratio / lc - rejected_ratio / lr - 1.0 / (2.0 * beta);
            (r * r, 2.0 * r / lc, -2.0 * r / lr)
        }
    };
    if config.sft_weight > 0.0 {
        let lc = p.chosen_tokens.max(1) as f64;
        loss += config.sft_weight * (-p.policy_chosen / lc);
        d_chosen += -config.sft_weight / lc;
    }
    PairLoss {
        loss,
        d_chosen,
        d_rejected,
        chosen_reward: beta * chosen_ratio,
        rejected_reward: beta * rejected_ratio,
    }
}

#[cfg(test)]
mod checks {
    use super::*;

    /// Each derivative against a central difference of the loss.
    #[test]
    fn derivatives_match_finite_differences() {
        let p = PairLogps {
            policy_chosen: -20.0,
            policy_rejected: -23.5,
            ref_chosen: -21.0,
            ref_rejected: -22.0,
            chosen_tokens: 7,
            rejected_tokens: 9,
        };
        for loss_type in [
            LossType::Sigmoid,
            LossType::Robust,
            LossType::Ipo,
            LossType::IpoSum,
            LossType::Hinge,
        ] {
            let config = LossConfig {
                loss_type,
                beta: 0.1,
                label_smoothing: 0.1,
                sft_weight: 0.3,
            };
            let at = |pc: f64, pr: f64| {
                pair_loss(
                    &config,
                    &PairLogps {
                        policy_chosen: pc,
                        policy_rejected: pr,
                        ..p
                    },
                )
                .loss
            };
            let h = 1e-5;
            let l = pair_loss(&config, &p);
            let dc = (at(p.policy_chosen + h, p.policy_rejected)
                - at(p.policy_chosen - h, p.policy_rejected))
                / (2.0 * h);
            let dr = (at(p.policy_chosen, p.policy_rejected + h)
                - at(p.policy_chosen, p.policy_rejected - h))
                / (2.0 * h);
            assert!(
                (l.d_chosen - dc).abs() < 1e-6,
                "{loss_type:?}: {} vs {dc}",
                l.d_chosen
            );
            assert!(
                (l.d_rejected - dr).abs() < 1e-6,
                "{loss_type:?}: {} vs {dr}",
                l.d_rejected
            );
        }
    }
}
