//! Composite reference paths: what the fused, faster paths in the libraries must equal.

use burn::tensor::{Device, Int, Tensor, TensorData};
use xwin_data::Batch;
use xwin_model::{BatchLayout, LlamaForCausalLM, ModelError, masked_logprob_sum};

/// Number of loss targets in a batch (position 0 is never a target).
fn num_targets(batch: &Batch) -> usize {
    batch
        .loss_mask
        .iter()
        .map(|r| r.iter().skip(1).filter(|m| **m).count())
        .sum()
}

/// `xwin_train::sft_loss` through the composite path (logits, log-softmax, gather as autodiff ops):
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
