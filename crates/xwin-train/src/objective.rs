//! Objectives. SFT: next-token cross-entropy on the masked (assistant) tokens only,
//! averaged over those tokens, as `transformers` computes it with labels -100 elsewhere.

use burn::tensor::{Device, Int, Tensor, TensorData};
use xwin_data::Batch;
use xwin_model::{BatchLayout, LlamaForCausalLM, ModelError, lm_head_nll_mean, masked_logprob_sum};

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
    let ids: Tensor<2, Int> = model.ids_tensor(&batch.ids, device)?;
    let layout = BatchLayout::from_attention_mask(&batch.attention)?;
    let hidden = model.hidden_states(ids, &layout, None);
    lm_head_nll_mean(model, hidden, &batch.ids, &batch.loss_mask)
}

/// [`sft_loss`] through the composite path (logits, log-softmax, gather as autodiff ops):
/// the reference the fused path is tested against.
pub fn sft_loss_composite(
    model: &LlamaForCausalLM,
    batch: &Batch,
    device: &Device,
) -> Result<Tensor<1>, ModelError> {
    let (b, s) = (batch.ids.len(), batch.ids.first().map_or(0, Vec::len));
    let targets = num_targets(batch);
    if targets == 0 {
        return Err(ModelError::InvalidInput(
            "batch has no target tokens".into(),
        ));
    }
    let ids: Tensor<2, Int> = model.ids_tensor(&batch.ids, device)?;
    let layout = BatchLayout::from_attention_mask(&batch.attention)?;
    let logits = model.forward(ids.clone(), &layout, None);
    let mask: Vec<f32> = batch
        .loss_mask
        .iter()
        .flatten()
        .map(|&m| f32::from(u8::from(m)))
        .collect();
    let mask = Tensor::<2>::from_data(TensorData::new(mask, [b, s]), device);
    let total = masked_logprob_sum(logits, ids, mask).sum();
    Ok(total.neg().div_scalar(targets as f64))
}
