//! Next-token cross-entropy fused with the LM head, for the vocabulary-sized part of training.
//!
//! The composite path (logits → log-softmax → gather, each an autodiff op over a
//! `[tokens, vocab]` tensor) made ~36 % of a training step on the 21M benchmark model: every
//! elementwise pass over 32,000 columns costs as much as a layer. Here the logits are only
//! computed for positions that have a target, softmax and its gradient are one parallel pass
//! per row over data still in cache, and the autodiff graph sees just two small products: a
//! surrogate whose gradients with respect to the hidden states and the head weight are the
//! exact ones (`dH = G·Wᵀ`, `dW = Hᵀ·G` with `G = (softmax − onehot) / targets`), plus the exact
//! loss value. The result is the same loss and gradients as the composite path (tested), which
//! remains in [`crate::logprob`] for per-sequence log-probabilities. That host pass is the CPU's
//! ([`HeadPath::Auto`]); on a GPU the same loss runs as device ops in row chunks
//! ([`crate::head_device`]), since reading the logits back costs more there than it saves.

use crate::error::{ModelError, Result};
use crate::head_host::HeadProducts;
use crate::model::LlamaForCausalLM;
use crate::vecmath::{exp_shifted, row_max, row_sum};
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

/// Mean negative log-likelihood of the tokens where `mask[b][t]` holds (t ≥ 1), given the
/// final hidden states. Equal to the mean of `-log_softmax(lm_logits(hidden))[b, t-1, ids[b][t]]`.
///
/// # Shapes
/// - hidden `[batch, seq, hidden]`, ids and mask `[batch][seq]` → `[1]`
pub fn lm_head_nll_mean(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
) -> Result<Tensor<1>> {
    lm_head_nll(model, hidden, ids, mask, true, HeadPath::Auto)
}

/// Summed negative log-likelihood of the same tokens: what a loop that weights every token of
/// an accumulated optimizer step equally divides by the step's token count.
///
/// # Shapes
/// - hidden `[batch, seq, hidden]`, ids and mask `[batch][seq]` → `[1]`
pub fn lm_head_nll_sum(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
) -> Result<Tensor<1>> {
    lm_head_nll(model, hidden, ids, mask, false, HeadPath::Auto)
}

/// Where the head's softmax runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadPath {
    /// The host on the CPU backend (one parallel pass per row), the device elsewhere.
    Auto,
    /// Logits read to the host, softmax and gradient there.
    Host,
    /// Tensor ops on the device in chunks of this many rows ([`crate::head_device`]).
    Device { rows_per_chunk: usize },
}

impl HeadPath {
    /// The path `Auto` stands for on `device`.
    pub fn resolve(self, device: &burn::tensor::Device, vocab: usize) -> Self {
        match self {
            Self::Auto if crate::device::is_cpu(device) => Self::Host,
            Self::Auto => Self::Device {
                rows_per_chunk: crate::head_device::chunk_rows(vocab),
            },
            other => other,
        }
    }
}

/// [`lm_head_nll_mean`] (`mean`) or [`lm_head_nll_sum`] on a chosen [`HeadPath`].
///
/// # Shapes
/// - hidden `[batch, seq, hidden]`, ids and mask `[batch][seq]` → `[1]`
pub fn lm_head_nll(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
    mean: bool,
    path: HeadPath,
) -> Result<Tensor<1>> {
    let [b, s, h] = hidden.dims();
    let vocab = model.config().vocab_size;
    let device = hidden.device();
    let (rows, targets, _) = target_rows(ids, mask, b, s, vocab)?;
    let n = targets.len();
    if n == 0 {
        return Err(ModelError::InvalidInput(
            "batch has no target tokens".into(),
        ));
    }
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
    let selected = hidden.reshape([b * s, h]).select(0, index);
    let weight = head_weight(model);
    let precision = model.precision();
    let divisor = if mean { n as f64 } else { 1.0 };
    if let HeadPath::Device { rows_per_chunk } = path.resolve(&device, vocab) {
        let scale = (1.0 / divisor) as f32;
        return Ok(crate::head_device::nll_sum_on_device(
            selected,
            weight,
            &targets,
            scale,
            precision,
            rows_per_chunk,
        ));
    }
    let products = HeadProducts::new(model, &selected)?;
    let logits = products.logits(&selected, &weight)?;
    let (grad, loss_sum) = softmax_xent_grad(logits, &targets, vocab, (1.0 / divisor) as f32);
    let value = Tensor::<1>::from_floats([(loss_sum / divisor) as f32], &device);
    if !selected.is_tracked() && !weight.is_tracked() {
        return Ok(value);
    }
    Ok(products.attach(value, selected, weight, grad))
}

/// `value` with the gradients `d_hidden` for `selected` and `d_weight` for `weight` (none
/// for a frozen head) attached, through the surrogate `Σ H·dH + Σ W·dW` whose own value is
/// cancelled. The host and the device head paths both end here.
pub(crate) fn attach_head_gradients(
    value: Tensor<1>,
    selected: Tensor<2>,
    weight: Tensor<2>,
    d_hidden: Tensor<2>,
    d_weight: Option<Tensor<2>>,
) -> Tensor<1> {
    let mut surrogate = (selected * d_hidden).sum();
    if let Some(dw) = d_weight {
        surrogate = surrogate + (weight * dw).sum();
    }
    surrogate.clone() - surrogate.detach() + value
}

/// The LM head's weight as `[hidden, vocab]` (as the head multiplies it; tied or not).
pub(crate) fn head_weight(model: &LlamaForCausalLM) -> Tensor<2> {
    match &model.lm_head {
        Some(head) => head.weight.val(),
        None => model.model.embed_tokens.weight.val().transpose(),
    }
}

/// The flat `[batch · seq]` row of the hidden state predicting each masked token (the one
/// before it), the token ids, and each target's batch row; checked against the shapes and
/// the vocabulary.
pub(crate) fn target_rows(
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
    b: usize,
    s: usize,
    vocab: usize,
) -> Result<(Vec<i64>, Vec<usize>, Vec<usize>)> {
    if ids.len() != b || mask.len() != b {
        return Err(ModelError::InvalidInput(format!(
            "{} rows of ids and {} of mask for a batch of {b}",
            ids.len(),
            mask.len()
        )));
    }
    let (mut rows, mut targets, mut row_of) = (Vec::new(), Vec::new(), Vec::new());
    for (r, (row_ids, row_mask)) in ids.iter().zip(mask).enumerate() {
        if row_ids.len() != s || row_mask.len() != s {
            return Err(ModelError::InvalidInput(format!(
                "row {r}: {} ids and {} mask entries for sequence length {s}",
                row_ids.len(),
                row_mask.len()
            )));
        }
        for t in 1..s {
            if row_mask[t] {
                let id = row_ids[t] as usize;
                if id >= vocab {
                    return Err(ModelError::InvalidInput(format!(
                        "row {r}: token id {id} outside the vocabulary ({vocab})"
                    )));
                }
                rows.push((r * s + t - 1) as i64);
                targets.push(id);
                row_of.push(r);
            }
        }
    }
    Ok((rows, targets, row_of))
}

/// In place over `logits` (`[rows, vocab]`): each row becomes `scale · (softmax − onehot)`.
/// Returns the buffer and the summed loss `Σ (logsumexp − logit[target])` in f64.
fn softmax_xent_grad(
    logits: Vec<f32>,
    targets: &[usize],
    vocab: usize,
    scale: f32,
) -> (Vec<f32>, f64) {
    let (grad, nll) = softmax_rows(logits, targets, vocab, scale);
    (grad, nll.iter().sum())
}

/// In place over `logits` (`[rows, vocab]`), one parallel pass per row: each row becomes
/// `scale · (softmax − onehot(target))`; returns it and each row's `logsumexp − logit[target]`
/// (its negative log-likelihood) in f64. The SFT loss and DPO's sequence log-probabilities
/// both stand on it.
pub(crate) fn softmax_rows(
    mut logits: Vec<f32>,
    targets: &[usize],
    vocab: usize,
    scale: f32,
) -> (Vec<f32>, Vec<f64>) {
    let nll = logits
        .par_chunks_mut(vocab)
        .zip(targets.par_iter())
        .map(|(row, &target)| {
            let picked = row[target];
            let max = row_max(row);
            exp_shifted(row, max);
            let sum = row_sum(row);
            let k = scale / sum;
            for x in row.iter_mut() {
                *x *= k;
            }
            row[target] -= scale;
            f64::from(max + sum.ln() - picked)
        })
        .collect();
    (logits, nll)
}

#[cfg(test)]
mod tests {
    use super::softmax_xent_grad;

    /// A row of three logits, by hand: softmax of [0, ln 2, ln 5] is [1/8, 2/8, 5/8].
    #[test]
    fn one_row_by_hand() {
        let (g, loss) = softmax_xent_grad(vec![0.0, 2f32.ln(), 5f32.ln()], &[1], 3, 0.5);
        // loss = logsumexp − logit[1] = ln 8 − ln 2 = ln 4
        assert!((loss - 4f64.ln()).abs() < 1e-6, "{loss}");
        let expected = [0.5 / 8.0, 0.5 * (2.0 / 8.0 - 1.0), 0.5 * 5.0 / 8.0];
        for (a, b) in g.iter().zip(expected) {
            assert!((a - b).abs() < 1e-6, "{g:?}");
        }
    }
}
