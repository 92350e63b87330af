//! DPO as an [`Objective`]: each micro-batch holds `P` pairs as `2P` right-padded rows
//! (chosen rows, then rejected rows) with their reference log-probabilities; one decoder
//! forward gives the policy's per-row sums through the fused head, the loss family gives the
//! loss and its derivatives, and the gradient is attached to the forward without a
//! vocabulary-sized graph. Items are pairs, so an accumulated step averages over its pairs.

use crate::loss::{LossConfig, PairLogps, pair_loss};
use burn::module::Module;
use burn::tensor::{Device, Gradients, Tensor};
use xwin_model::{BatchLayout, LlamaForCausalLM, ModelError, sequence_logprobs};
use xwin_train::{EpochPlan, Evaluation, MicroLoss, Objective, recomputed_loss};

/// `P` pairs as `2P` rows: chosen rows `0..P`, rejected rows `P..2P`.
#[derive(Debug, Clone, PartialEq)]
pub struct DpoBatch {
    pub ids: Vec<Vec<u32>>,
    pub attention: Vec<Vec<bool>>,
    /// The response tokens (what each row's log-probability sums over).
    pub mask: Vec<Vec<bool>>,
    /// Per pair: reference log-probabilities of (chosen, rejected).
    pub reference: Vec<(f64, f64)>,
}

impl DpoBatch {
    pub fn pairs(&self) -> usize {
        self.reference.len()
    }
}

/// Named metrics of a set of pairs, as sums (the loop divides by the step's pairs).
fn metric_sums(losses: &[(PairLogps, crate::loss::PairLoss)]) -> Vec<(String, f64)> {
    let sum = |f: &dyn Fn(&(PairLogps, crate::loss::PairLoss)) -> f64| losses.iter().map(f).sum();
    vec![
        ("rewards/chosen".into(), sum(&|(_, l)| l.chosen_reward)),
        ("rewards/rejected".into(), sum(&|(_, l)| l.rejected_reward)),
        ("rewards/margins".into(), sum(&|(_, l)| l.margin())),
        (
            "rewards/accuracy".into(),
            sum(&|(_, l)| f64::from(u8::from(l.correct()))),
        ),
        ("logps/chosen".into(), sum(&|(p, _)| p.policy_chosen)),
        ("logps/rejected".into(), sum(&|(p, _)| p.policy_rejected)),
    ]
}

/// Policy log-probability sums of a batch's rows and the per-pair losses.
struct Forward {
    logps: xwin_model::SequenceLogProbs,
    losses: Vec<(PairLogps, crate::loss::PairLoss)>,
}

fn forward(
    model: &LlamaForCausalLM,
    batch: &DpoBatch,
    loss: &LossConfig,
    device: &Device,
) -> Result<Forward, ModelError> {
    let p = batch.pairs();
    if batch.ids.len() != 2 * p {
        return Err(ModelError::InvalidInput(format!(
            "{} rows for {p} pairs",
            batch.ids.len()
        )));
    }
    let layout = BatchLayout::from_attention_mask(&batch.attention)?;
    let hidden = model.hidden_states(model.ids_tensor(&batch.ids, device)?, &layout, None);
    head(model, hidden, batch, loss)
}

/// The head's part of [`forward`]: per-sequence log-probabilities and each pair's loss from
/// the final hidden states.
fn head(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    batch: &DpoBatch,
    loss: &LossConfig,
) -> Result<Forward, ModelError> {
    let p = batch.pairs();
    let logps = sequence_logprobs(model, hidden, &batch.ids, &batch.mask)?;
    let losses = (0..p)
        .map(|i| {
            let pair = PairLogps {
                policy_chosen: logps.sums[i],
                policy_rejected: logps.sums[p + i],
                ref_chosen: batch.reference[i].0,
                ref_rejected: batch.reference[i].1,
                chosen_tokens: logps.counts[i],
                rejected_tokens: logps.counts[p + i],
            };
            (pair, pair_loss(loss, &pair))
        })
        .collect();
    Ok(Forward { logps, losses })
}

/// The summed loss carrying its gradients (through the log-probabilities) and the summed
/// metrics of a forward.
fn attached(f: Forward, batch: &DpoBatch) -> Result<MicroLoss, ModelError> {
    let p = batch.pairs();
    let mut grads = vec![0.0f32; 2 * p];
    for (i, (_, l)) in f.losses.iter().enumerate() {
        grads[i] = l.d_chosen as f32;
        grads[p + i] = l.d_rejected as f32;
    }
    let total: f64 = f.losses.iter().map(|(_, l)| l.loss).sum();
    let metrics = metric_sums(&f.losses);
    let sum = f.logps.attach_loss(total as f32, &grads)?;
    Ok(MicroLoss { sum, metrics })
}

/// The objective over fixed micro-batches laid out by an [`EpochPlan`].
pub struct DpoObjective {
    batches: Vec<DpoBatch>,
    eval: Vec<DpoBatch>,
    plan: EpochPlan,
    loss: LossConfig,
    device: Device,
}

impl DpoObjective {
    pub fn new(
        batches: Vec<DpoBatch>,
        eval: Vec<DpoBatch>,
        plan: EpochPlan,
        loss: LossConfig,
        device: Device,
    ) -> Self {
        Self {
            batches,
            eval,
            plan,
            loss,
            device,
        }
    }
}

impl Objective<LlamaForCausalLM> for DpoObjective {
    type Batch = DpoBatch;
    type Error = ModelError;

    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<DpoBatch> {
        let (_, index) = self.plan.locate(step, micro)?;
        self.batches.get(index).cloned()
    }

    fn items(&self, batch: &DpoBatch) -> usize {
        batch.pairs()
    }

    fn tokens(&self, batch: &DpoBatch) -> usize {
        batch.attention.iter().flatten().filter(|a| **a).count()
    }

    fn loss(
        &mut self,
        model: &LlamaForCausalLM,
        batch: &DpoBatch,
    ) -> Result<MicroLoss, ModelError> {
        attached(forward(model, batch, &self.loss, &self.device)?, batch)
    }

    fn loss_recomputing_layers(
        &mut self,
        model: &LlamaForCausalLM,
        batch: &DpoBatch,
        divisor: f64,
    ) -> Result<(MicroLoss, Vec<Gradients>), ModelError> {
        let layout = BatchLayout::from_attention_mask(&batch.attention)?;
        let ids = model.ids_tensor(&batch.ids, &self.device)?;
        let config = self.loss;
        recomputed_loss(&model.model, ids, &layout, divisor, |hidden| {
            attached(head(model, hidden, batch, &config)?, batch)
        })
    }

    /// Pair-weighted loss and metrics over the held-out pairs, without a graph.
    fn evaluate(&mut self, model: &LlamaForCausalLM) -> Result<Option<Evaluation>, ModelError> {
        if self.eval.is_empty() {
            return Ok(None);
        }
        let frozen = model.valid();
        let device = self.device.clone().inner();
        let mut all = Vec::new();
        for b in &self.eval {
            all.extend(forward(&frozen, b, &self.loss, &device)?.losses);
        }
        let n = all.len().max(1) as f64;
        let loss = all.iter().map(|(_, l)| l.loss).sum::<f64>() / n;
        let metrics = metric_sums(&all)
            .into_iter()
            .map(|(k, v)| (k, v / n))
            .collect();
        Ok(Some(Evaluation {
            loss: Some(loss),
            metrics,
        }))
    }
}
