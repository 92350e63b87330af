//! The Bradley–Terry reward loss, `−log σ(r_w − r_l − m)`, as an [`Objective`] of the shared
//! loop: chosen and rejected responses of a micro-batch in one forward, every pair of an
//! optimizer step weighted equally, accuracy / rewards / margin as named metrics.

use crate::data::TokenPair;
use burn::tensor::activation::log_sigmoid;
use burn::tensor::{Device, Gradients, Tensor, TensorData};
use serde::{Deserialize, Serialize};
use xwin_data::{Padding, Rating, length_buckets, pad_rows_to};
use xwin_model::{BatchLayout, LlamaForReward, ModelError};
use xwin_train::{EpochPlan, Evaluation, MicroLoss, Objective, recomputed_loss};

/// The `[loss]` table.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LossConfig {
    /// Subtract a margin by rating from `r_w − r_l` (Llama 2's margin loss): the judge's
    /// significantly / better / slightly / negligibly; pairs without a rating get none.
    pub margin: bool,
    /// Margins for the four ratings, in that order (Llama 2's "small" margins by default).
    pub margins: [f64; 4],
    /// Weight of `(r_w + r_l)²`, which keeps rewards centred on 0 (0 = off).
    pub center: f64,
}

impl Default for LossConfig {
    fn default() -> Self {
        Self {
            margin: false,
            margins: [1.0, 2.0 / 3.0, 1.0 / 3.0, 0.0],
            center: 0.0,
        }
    }
}

impl LossConfig {
    fn margin_for(&self, rating: Option<Rating>) -> f64 {
        match (self.margin, rating) {
            (true, Some(r)) => {
                let i = Rating::ALL.iter().position(|x| *x == r).unwrap_or(3);
                self.margins[i]
            }
            _ => 0.0,
        }
    }
}

/// A micro-batch: `n` chosen rows then their `n` rejected rows, padded together.
#[derive(Debug, Clone)]
pub struct PairBatch {
    pub ids: Vec<Vec<u32>>,
    pub attention: Vec<Vec<bool>>,
    pub margins: Vec<f64>,
    pub ratings: Vec<Option<Rating>>,
}

impl PairBatch {
    pub fn pairs(&self) -> usize {
        self.margins.len()
    }
}

/// Length-bucketed micro-batches of at most `pairs_per_batch` pairs (by the longer side).
pub fn pair_batches(
    pairs: &[TokenPair],
    pairs_per_batch: usize,
    max_tokens: usize,
    padding: Padding,
    loss: &LossConfig,
    seed: u64,
) -> Vec<PairBatch> {
    let lengths: Vec<usize> = pairs
        .iter()
        .map(|p| p.chosen.len().max(p.rejected.len()))
        .collect();
    // Two rows per pair: half the token budget per side.
    length_buckets(&lengths, pairs_per_batch, max_tokens / 2, seed)
        .into_iter()
        .map(|members| {
            let rows: Vec<&[u32]> = members
                .iter()
                .map(|&i| pairs[i].chosen.as_slice())
                .chain(members.iter().map(|&i| pairs[i].rejected.as_slice()))
                .collect();
            let (ids, attention) = pad_rows_to(&rows, padding);
            PairBatch {
                ids,
                attention,
                margins: members
                    .iter()
                    .map(|&i| loss.margin_for(pairs[i].rating))
                    .collect(),
                ratings: members.iter().map(|&i| pairs[i].rating).collect(),
            }
        })
        .collect()
}

/// Rewards of a batch's chosen and rejected rows.
pub fn pair_rewards(
    model: &LlamaForReward,
    batch: &PairBatch,
    device: &Device,
) -> Result<(Tensor<1>, Tensor<1>), ModelError> {
    Ok(split_pairs(
        model.rewards(&batch.ids, &batch.attention, device)?,
        batch,
    ))
}

/// A batch's rewards (chosen rows first) as the chosen and the rejected halves.
fn split_pairs(rewards: Tensor<1>, batch: &PairBatch) -> (Tensor<1>, Tensor<1>) {
    let n = batch.pairs();
    (rewards.clone().slice(0..n), rewards.slice(n..2 * n))
}

/// Summed loss of a batch and its summed metrics, from the two reward vectors.
///
/// # Shapes
/// - chosen, rejected `[pairs]` → loss `[1]`
pub fn bradley_terry(
    chosen: Tensor<1>,
    rejected: Tensor<1>,
    margins: &[f64],
    center: f64,
) -> (Tensor<1>, Vec<(String, f64)>) {
    let device = chosen.device();
    let n = margins.len();
    let margin = Tensor::<1>::from_data(
        TensorData::new(margins.iter().map(|&m| m as f32).collect(), [n]),
        &device,
    );
    let diff = chosen.clone() - rejected.clone();
    let mut loss = log_sigmoid(diff.clone() - margin).neg().sum();
    if center > 0.0 {
        let total = chosen.clone() + rejected.clone();
        loss = loss + (total.clone() * total).sum().mul_scalar(center);
    }
    let host = |t: Tensor<1>| t.try_into_vec_as::<f32>().unwrap_or_default();
    let (w, l) = (host(chosen), host(rejected));
    let sum = |v: &[f32]| v.iter().map(|x| f64::from(*x)).sum::<f64>();
    let correct = w.iter().zip(&l).filter(|(a, b)| a > b).count() as f64;
    let metrics = vec![
        ("accuracy".into(), correct),
        ("reward_chosen".into(), sum(&w)),
        ("reward_rejected".into(), sum(&l)),
        ("margin".into(), sum(&w) - sum(&l)),
    ];
    (loss, metrics)
}

/// The reward model's [`Objective`].
pub struct RmObjective {
    batches: Vec<PairBatch>,
    eval: Vec<PairBatch>,
    plan: EpochPlan,
    center: f64,
    device: Device,
}

impl RmObjective {
    pub fn new(
        batches: Vec<PairBatch>,
        eval: Vec<PairBatch>,
        plan: EpochPlan,
        center: f64,
        device: Device,
    ) -> Self {
        Self {
            batches,
            eval,
            plan,
            center,
            device,
        }
    }
}

/// A micro-batch's summed Bradley–Terry loss and metrics from its (chosen, rejected) rewards.
fn pair_loss(
    (chosen, rejected): (Tensor<1>, Tensor<1>),
    batch: &PairBatch,
    center: f64,
) -> MicroLoss {
    let (sum, metrics) = bradley_terry(chosen, rejected, &batch.margins, center);
    MicroLoss { sum, metrics }
}

impl Objective<LlamaForReward> for RmObjective {
    type Batch = PairBatch;
    type Error = ModelError;

    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<PairBatch> {
        let (_, index) = self.plan.locate(step, micro)?;
        self.batches.get(index).cloned()
    }

    fn items(&self, batch: &PairBatch) -> usize {
        batch.pairs()
    }

    fn loss(&mut self, model: &LlamaForReward, batch: &PairBatch) -> Result<MicroLoss, ModelError> {
        let rewards = pair_rewards(model, batch, &self.device)?;
        Ok(pair_loss(rewards, batch, self.center))
    }

    fn loss_recomputing_layers(
        &mut self,
        model: &LlamaForReward,
        batch: &PairBatch,
        divisor: f64,
    ) -> Result<(MicroLoss, Vec<Gradients>), ModelError> {
        let ids = model.ids_tensor(&batch.ids, &self.device)?;
        let layout = BatchLayout::from_attention_mask(&batch.attention)?;
        let center = self.center;
        recomputed_loss(&model.model, ids, &layout, divisor, |hidden| {
            let rewards = model.rewards_from_hidden(hidden, &batch.attention)?;
            Ok(pair_loss(split_pairs(rewards, batch), batch, center))
        })
    }

    fn tokens(&self, batch: &PairBatch) -> usize {
        batch.attention.iter().flatten().filter(|a| **a).count()
    }

    /// Held-out loss per pair, accuracy overall and per rating (the paper's Table 3).
    fn evaluate(&mut self, model: &LlamaForReward) -> Result<Option<Evaluation>, ModelError> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let report = crate::eval::evaluate(model, &self.eval, self.center, &self.device)?;
        Ok(Some(Evaluation {
            loss: Some(report.loss),
            metrics: report.metrics(),
        }))
    }
}
