//! Per-sequence log-probabilities fused with the LM head: DPO's quantity, `Σ_t log p(y_t | y_<t)`
//! over each row's response tokens, without a vocabulary-sized autodiff graph.
//!
//! As in [`crate::fused_loss`], the logits exist only for positions with a target: on the CPU
//! one parallel pass per row on the host, elsewhere row chunks on the device
//! ([`crate::head_device`]), give each token's log-probability and the direction
//! `∂ log p / ∂ logits = onehot − softmax`. A loss built from the per-row sums (DPO and its
//! variants are) knows its derivative with respect to each sum only after seeing them, so the
//! gradient is attached afterwards: [`SequenceLogProbs::attach_loss`] takes the loss value
//! and `∂ loss / ∂ sum_r` and returns a scalar whose backward gives the decoder and the head
//! the exact gradients (`dH = G·Wᵀ`, `dW = Hᵀ·G`, `G_t = ∂loss/∂sum_row(t) · direction_t`).

use crate::error::{ModelError, Result};
use crate::fused_loss::{HeadPath, head_weight, softmax_rows, target_rows};
use crate::head_device::{attach_weighted, token_logprobs_on_device};
use crate::head_host::HeadProducts;
use crate::model::LlamaForCausalLM;
use crate::precision::Precision;
use burn::tensor::{Int, Tensor, TensorData};
use rayon::prelude::*;

/// Per-row log-probability sums of one batch, with what their gradient needs.
pub struct SequenceLogProbs {
    /// `Σ log p` over each row's masked tokens (f64 sums of f32 terms).
    pub sums: Vec<f64>,
    /// Masked tokens per row.
    pub counts: Vec<usize>,
    selected: Tensor<2>,
    weight: Tensor<2>,
    direction: Direction,
    row_of: Vec<usize>,
    vocab: usize,
}

/// `onehot − softmax` of each target token (`[tokens, vocab]`), where the path keeps it.
enum Direction {
    /// On the host, with the products that turn it into gradients.
    Host(Vec<f32>, HeadProducts),
    /// Row chunks on the device ([`crate::head_device`]), and the products' precision.
    Device(Vec<Tensor<2>>, Precision),
}

/// Log-probability sums of the tokens where `mask[b][t]` holds (t ≥ 1), per row, given the
/// final hidden states. Equal to `Σ_t log_softmax(lm_logits(hidden))[b, t-1, ids[b][t]]`.
///
/// # Shapes
/// - hidden `[batch, seq, hidden]`, ids and mask `[batch][seq]` → `batch` sums
pub fn sequence_logprobs(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
) -> Result<SequenceLogProbs> {
    sequence_logprobs_on(model, hidden, ids, mask, HeadPath::Auto)
}

/// [`sequence_logprobs`] on a chosen [`HeadPath`]. The device path reads only the per-token
/// log-probabilities (`n` numbers) to the host.
///
/// # Shapes
/// - hidden `[batch, seq, hidden]`, ids and mask `[batch][seq]` → `batch` sums
pub fn sequence_logprobs_on(
    model: &LlamaForCausalLM,
    hidden: Tensor<3>,
    ids: &[Vec<u32>],
    mask: &[Vec<bool>],
    path: HeadPath,
) -> Result<SequenceLogProbs> {
    let [b, s, h] = hidden.dims();
    let vocab = model.config().vocab_size;
    let device = hidden.device();
    let (rows, targets, row_of) = target_rows(ids, mask, b, s, vocab)?;
    let n = targets.len();
    let mut counts = vec![0usize; b];
    for &r in &row_of {
        counts[r] += 1;
    }
    let weight = head_weight(model);
    let selected = if n == 0 {
        Tensor::<2>::zeros([0, h], &device)
    } else {
        let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [n]), &device);
        hidden.reshape([b * s, h]).select(0, index)
    };
    let (direction, logps) = match path.resolve(&device, vocab) {
        HeadPath::Device { rows_per_chunk } if n > 0 => {
            let (logps, chunks) = token_logprobs_on_device(
                selected.clone(),
                weight.clone(),
                &targets,
                model.precision(),
                rows_per_chunk,
            );
            let logps = logps.try_into_vec_as::<f32>()?;
            let logps: Vec<f64> = logps.into_iter().map(f64::from).collect();
            (Direction::Device(chunks, model.precision()), logps)
        }
        _ => {
            let products = HeadProducts::new(model, &selected)?;
            let logits = if n == 0 {
                Vec::new()
            } else {
                products.logits(&selected, &weight)?
            };
            // Scale −1: each row becomes `onehot − softmax`, the direction of `log p`.
            let (direction, nll) = softmax_rows(logits, &targets, vocab, -1.0);
            let logps = nll.iter().map(|l| -l).collect();
            (Direction::Host(direction, products), logps)
        }
    };
    let mut sums = vec![0.0f64; b];
    for (&r, l) in row_of.iter().zip(&logps) {
        sums[r] += l;
    }
    Ok(SequenceLogProbs {
        sums,
        counts,
        selected,
        weight,
        direction,
        row_of,
        vocab,
    })
}

impl SequenceLogProbs {
    /// A scalar with value `loss` whose gradients are those of a loss with
    /// `∂ loss / ∂ sums[r] = grads[r]`. Untracked inputs give the plain value.
    pub fn attach_loss(self, loss: f32, grads: &[f32]) -> Result<Tensor<1>> {
        let device = self.selected.device();
        let value = Tensor::<1>::from_floats([loss], &device);
        if grads.len() != self.sums.len() {
            return Err(ModelError::InvalidInput(format!(
                "{} gradients for {} sequences",
                grads.len(),
                self.sums.len()
            )));
        }
        let n = self.row_of.len();
        if n == 0 || (!self.selected.is_tracked() && !self.weight.is_tracked()) {
            return Ok(value);
        }
        let (mut g, products) = match self.direction {
            Direction::Host(g, products) => (g, products),
            Direction::Device(chunks, precision) => {
                let weights: Vec<f32> = self.row_of.iter().map(|&r| grads[r]).collect();
                return Ok(attach_weighted(
                    value,
                    self.selected,
                    self.weight,
                    chunks,
                    &weights,
                    precision,
                ));
            }
        };
        g.par_chunks_mut(self.vocab)
            .zip(self.row_of.par_iter())
            .for_each(|(row, &r)| {
                let k = grads[r];
                row.iter_mut().for_each(|x| *x *= k);
            });
        Ok(products.attach(value, self.selected, self.weight, g))
    }
}
