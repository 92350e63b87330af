//! What a stage plugs into the shared loop: an [`Objective`] gives the micro-batches of each
//! optimizer step, their item counts (trained tokens, pairs) and summed losses with summed
//! named metrics, and optionally a held-out [`Evaluation`].

use burn::module::Module;
use burn::optim::{GradientsAccumulator, GradientsParams};
use burn::tensor::{Gradients, Int, Tensor};
use xwin_model::{BatchLayout, LlamaModel, ModelError, backward_recomputing_layers};

/// A micro-batch's loss as an objective reports it: sums over its items, never means, so
/// that the loop can weight every item of an optimizer step equally.
pub struct MicroLoss {
    /// Sum of the per-item losses (a 1-element tensor carrying gradients).
    pub sum: Tensor<1>,
    /// Named metrics, each summed over the items (the loop divides by the step's items).
    pub metrics: Vec<(String, f64)>,
}

impl MicroLoss {
    /// A loss sum without metrics.
    pub fn new(sum: Tensor<1>) -> Self {
        Self {
            sum,
            metrics: Vec::new(),
        }
    }
}

/// `out` with its sum detached, and the one backward pass of `sum / divisor`.
pub fn plain_backward(out: MicroLoss, divisor: f64) -> (MicroLoss, Vec<Gradients>) {
    let grads = out.sum.clone().div_scalar(divisor).backward();
    let detached = MicroLoss {
        sum: out.sum.detach(),
        metrics: out.metrics,
    };
    (detached, vec![grads])
}

/// A checkpointed pass through `decoder` ([`backward_recomputing_layers`]) as an objective
/// reports it: `head` gives the micro-batch's loss and metrics from the final hidden states.
///
/// # Shapes
/// - ids `[batch, seq]`; head gets hidden `[batch, seq, hidden]`
pub fn recomputed_loss(
    decoder: &LlamaModel,
    ids: Tensor<2, Int>,
    layout: &BatchLayout,
    divisor: f64,
    head: impl FnOnce(Tensor<3>) -> Result<MicroLoss, ModelError>,
) -> Result<(MicroLoss, Vec<Gradients>), ModelError> {
    let r = backward_recomputing_layers(decoder, ids, layout, divisor, |hidden| {
        head(hidden).map(|out| (out.sum, out.metrics))
    })?;
    let out = MicroLoss {
        sum: r.loss,
        metrics: r.extra,
    };
    Ok((out, r.passes))
}

/// Adds each backward pass's gradients to `accumulator` (a checkpointed pass gives several;
/// a parameter in more than one, such as a tied embedding, gets their sum).
pub fn accumulate_passes<M: Module>(
    accumulator: &mut GradientsAccumulator<M>,
    model: &M,
    passes: Vec<Gradients>,
) {
    for pass in passes {
        accumulator.accumulate(model, GradientsParams::from_grads(pass, model));
    }
}

/// A held-out evaluation: the mean loss per item and named metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    pub loss: Option<f64>,
    pub metrics: Vec<(String, f64)>,
}

/// What a stage plugs into the loop.
pub trait Objective<M> {
    type Batch;
    type Error: std::error::Error + Send + Sync + 'static;
    /// Micro-batch `micro` of optimizer step `step` (both from 0), or `None` when the step's
    /// accumulation window ends early (the last, shorter window of an epoch). Must depend
    /// only on its arguments: that is the data position a resumed run restarts from.
    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<Self::Batch>;
    /// Loss items in a micro-batch: trained tokens (SFT), pairs (RM, DPO). Known before the
    /// forward pass, so that every micro-batch's gradient is scaled by the step's total.
    fn items(&self, batch: &Self::Batch) -> usize;
    /// Summed loss (and summed metrics) of one micro-batch.
    fn loss(&mut self, model: &M, batch: &Self::Batch) -> Result<MicroLoss, Self::Error>;
    /// [`Objective::loss`] with activation checkpointing (`[train] gradient_checkpointing`):
    /// the micro-batch's loss (its `sum` detached) and the gradients of `sum / divisor` as
    /// backward passes whose gradients add up, each decoder layer recomputed in the backward
    /// instead of keeping its activations (see [`recomputed_loss`]). The default, for an
    /// objective that cannot recompute, is one plain backward.
    fn loss_recomputing_layers(
        &mut self,
        model: &M,
        batch: &Self::Batch,
        divisor: f64,
    ) -> Result<(MicroLoss, Vec<Gradients>), Self::Error> {
        Ok(plain_backward(self.loss(model, batch)?, divisor))
    }
    /// Tokens in a micro-batch, for tokens/s.
    fn tokens(&self, _batch: &Self::Batch) -> usize {
        0
    }
    /// Held-out evaluation; `None` when the stage has no evaluation data.
    fn evaluate(&mut self, _model: &M) -> Result<Option<Evaluation>, Self::Error> {
        Ok(None)
    }
}

/// An error carried as its message (what [`FnObjective`]'s closures return).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct MessageError(pub String);

/// An [`Objective`] from two closures: `batch(step, micro)` and `loss(model, batch)` giving a
/// micro-batch's *mean* loss. Every micro-batch counts as one item (the step's loss is the
/// mean of its micro-batch means); objectives that weight tokens or pairs implement
/// [`Objective`] themselves. The window is always `grad_accum` micro-batches.
pub struct FnObjective<F, L> {
    pub batch: F,
    pub loss: L,
}

impl<M, B, E, F, L> Objective<M> for FnObjective<F, L>
where
    F: FnMut(usize, usize) -> B,
    L: FnMut(&M, &B) -> Result<Tensor<1>, E>,
    E: std::fmt::Display,
{
    type Batch = B;
    type Error = MessageError;
    fn micro_batch(&mut self, step: usize, micro: usize) -> Option<B> {
        Some((self.batch)(step, micro))
    }
    fn items(&self, _batch: &B) -> usize {
        1
    }
    fn loss(&mut self, model: &M, batch: &B) -> Result<MicroLoss, MessageError> {
        (self.loss)(model, batch)
            .map(MicroLoss::new)
            .map_err(|e| MessageError(e.to_string()))
    }
}
