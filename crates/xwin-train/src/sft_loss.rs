//! The SFT loss: next-token cross-entropy on the masked (assistant) tokens only,
//! averaged over those tokens, as `transformers` computes it with labels -100 elsewhere.

use burn::tensor::{Device, Int, Tensor};
use xwin_data::Batch;
use xwin_model::{BatchLayout, LlamaForCausalLM, ModelError, lm_head_nll_mean, lm_head_nll_sum};

/// Number of loss targets in a batch (position 0 is never a target: nothing predicts it).
pub fn num_targets(batch: &Batch) -> usize {
    batch
        .loss_mask
        .iter()
        .map(|r| r.iter().skip(1).filter(|m| **m).count())
        .sum()
}

/// Mean negative log-likelihood over the batch's target tokens, through the fused LM-head
/// loss. Returns a 1-element tensor that carries gradients on an autodiff device.
pub fn sft_loss(
    model: &LlamaForCausalLM,
    batch: &Batch,
    device: &Device,
) -> Result<Tensor<1>, ModelError> {
    let hidden = hidden_states(model, batch, device)?;
    lm_head_nll_mean(model, hidden, &batch.ids, &batch.loss_mask)
}

/// Final hidden states of a padded batch.
fn hidden_states(
    model: &LlamaForCausalLM,
    batch: &Batch,
    device: &Device,
) -> Result<Tensor<3>, ModelError> {
    let ids: Tensor<2, Int> = model.ids_tensor(&batch.ids, device)?;
    let layout = BatchLayout::from_attention_mask(&batch.attention)?;
    Ok(model.hidden_states(ids, &layout, None))
}

/// Summed negative log-likelihood over the batch's target tokens (fused LM head): the SFT
/// objective's micro-batch loss, which the loop divides by the optimizer step's token count.
pub fn sft_loss_sum(
    model: &LlamaForCausalLM,
    batch: &Batch,
    device: &Device,
) -> Result<Tensor<1>, ModelError> {
    let hidden = hidden_states(model, batch, device)?;
    lm_head_nll_sum(model, hidden, &batch.ids, &batch.loss_mask)
}
