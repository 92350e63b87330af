//! Log-probabilities of token sequences: the quantity SFT, RS and DPO are built on.

use crate::error::{ModelError, Result};
use crate::layout::BatchLayout;
use crate::model::LlamaForCausalLM;
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Int, Tensor};

/// `log p(ids[t] | ids[..t])` for `t = 1..seq`, from logits of the whole sequence.
///
/// # Shapes
/// - logits `[batch, seq, vocab]`, ids `[batch, seq]` → `[batch, seq - 1]`
pub fn next_token_logprobs(logits: Tensor<3>, ids: Tensor<2, Int>) -> Tensor<2> {
    let [b, s, v] = logits.dims();
    let logp = log_softmax(logits.slice([0..b, 0..s - 1, 0..v]), 2);
    let targets = ids.slice([0..b, 1..s]).unsqueeze_dim::<3>(2);
    logp.gather(2, targets).squeeze_dim::<2>(2)
}

/// Sum of `log p` over the tokens where `mask` is 1 (mask aligned with `ids`, so `mask[t]`
/// selects the prediction of token `t`; position 0 is never predicted).
///
/// # Shapes
/// - logits `[batch, seq, vocab]`, ids `[batch, seq]`, mask `[batch, seq]` → `[batch]`
pub fn masked_logprob_sum(logits: Tensor<3>, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<1> {
    let [b, s] = mask.dims();
    let per_token = next_token_logprobs(logits, ids);
    (per_token * mask.slice([0..b, 1..s]))
        .sum_dim(1)
        .squeeze_dim::<1>(1)
}

/// Log-probabilities of a continuation.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanLogProbs {
    /// `log p` of each token in the span, in order.
    pub per_token: Vec<f32>,
    /// Their sum.
    pub sum: f32,
}

/// For each `(ids, start)`, the log-probability of `ids[start..]` given `ids[..start]`.
/// Sequences may differ in length; they are right-padded into one batch.
pub fn span_logprobs(
    model: &LlamaForCausalLM,
    requests: &[(Vec<u32>, usize)],
    device: &Device,
) -> Result<Vec<SpanLogProbs>> {
    if requests.is_empty() {
        return Ok(Vec::new());
    }
    for (i, (ids, start)) in requests.iter().enumerate() {
        if *start == 0 || *start > ids.len() {
            return Err(ModelError::InvalidInput(format!(
                "request {i}: span start {start} must be in 1..={} (a prefix is required)",
                ids.len()
            )));
        }
    }
    let max_len = requests.iter().map(|(ids, _)| ids.len()).max().unwrap_or(0);
    let padded: Vec<Vec<u32>> = requests
        .iter()
        .map(|(ids, _)| {
            ids.iter()
                .copied()
                .chain(std::iter::repeat(0))
                .take(max_len)
                .collect()
        })
        .collect();
    let mask: Vec<Vec<bool>> = requests
        .iter()
        .map(|(ids, _)| (0..max_len).map(|t| t < ids.len()).collect())
        .collect();
    let layout = BatchLayout::from_attention_mask(&mask)?;
    let ids = model.ids_tensor(&padded, device)?;
    let logits = model.forward(ids.clone(), &layout, None);
    let per_token = next_token_logprobs(logits, ids).try_into_vec_as::<f32>()?;
    Ok(requests
        .iter()
        .enumerate()
        .map(|(row, (ids, start))| {
            let base = row * (max_len - 1);
            let values: Vec<f32> = (*start..ids.len())
                .map(|t| per_token[base + t - 1])
                .collect();
            SpanLogProbs {
                sum: values.iter().sum(),
                per_token: values,
            }
        })
        .collect())
}
