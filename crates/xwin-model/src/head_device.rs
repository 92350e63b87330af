//! The LM head's loss and per-token log-probabilities as tensor ops on the device, in row
//! chunks: for a GPU. The host path ([`crate::fused_loss`]) reads the `[tokens, vocab]` logits
//! to the host and back; on the H200 that copy took 148 of a 191 ms step. Here each chunk of at
//! most [`CHUNK_LOGITS`] logits is formed, reduced (max, log-sum-exp, the target's logit) and
//! turned into `softmax − onehot` on the device, and its two gradient products are taken
//! there; nothing is read back (DPO alone reads its `n` per-token log-probabilities, which its
//! loss needs as numbers). The gradients are attached through the same surrogate as on the
//! host, so both paths give the same loss and gradients (tested).

use crate::precision::{Precision, matmul};
use burn::tensor::{IndexingUpdateOp, Int, Tensor, TensorData};

/// Logits per chunk: 2²⁴ (64 MiB of f32) bounds the transient memory whatever the vocabulary.
pub const CHUNK_LOGITS: usize = 1 << 24;

/// Rows per chunk for a vocabulary of `vocab` (at least one).
pub fn chunk_rows(vocab: usize) -> usize {
    (CHUNK_LOGITS / vocab.max(1)).max(1)
}

/// One chunk's `softmax − onehot(target)` and its rows' `logsumexp − logit[target]`, on the
/// device.
///
/// # Shapes
/// - x `[c, hidden]`, weight `[hidden, vocab]`, targets `[c]` → g `[c, vocab]`, nll `[c]`
fn chunk_softmax(
    x: Tensor<2>,
    weight: Tensor<2>,
    targets: &[usize],
    precision: Precision,
) -> (Tensor<2>, Tensor<1>) {
    let c = targets.len();
    let device = x.device();
    let logits = matmul(x, weight, precision);
    let shifted = logits.clone() - logits.max_dim(1);
    let e = shifted.clone().exp();
    let sum = e.clone().sum_dim(1);
    let index = Tensor::<2, Int>::from_data(
        TensorData::new(targets.iter().map(|&t| t as i64).collect(), [c, 1]),
        &device,
    );
    let picked = shifted.gather(1, index.clone());
    let nll = (sum.clone().log() - picked).reshape([c]);
    let minus_one = Tensor::<2>::full([c, 1], -1.0, &device);
    let g = (e / sum).scatter(1, index, minus_one, IndexingUpdateOp::Add);
    (g, nll)
}

/// The head's loss over the scored rows, on the device: the sum of each row's negative
/// log-likelihood times `scale`, carrying the exact gradients for `selected` and `weight`
/// (none for a frozen head) when they are tracked.
///
/// # Shapes
/// - selected `[n, hidden]`, weight `[hidden, vocab]`, targets `n` → `[1]`
pub fn nll_sum_on_device(
    selected: Tensor<2>,
    weight: Tensor<2>,
    targets: &[usize],
    scale: f32,
    precision: Precision,
    rows_per_chunk: usize,
) -> Tensor<1> {
    let tracked = selected.is_tracked() || weight.is_tracked();
    let (x, w) = (selected.clone().detach(), weight.clone().detach());
    let mut loss = Vec::new();
    let mut d_hidden = Vec::new();
    let mut d_weight: Option<Tensor<2>> = None;
    for (start, part) in chunks(targets, rows_per_chunk) {
        let xc = x.clone().slice(start..start + part.len());
        let (g, nll) = chunk_softmax(xc.clone(), w.clone(), part, precision);
        loss.push(nll.sum());
        if tracked {
            let g = g.mul_scalar(scale);
            d_hidden.push(matmul(g.clone(), w.clone().transpose(), precision));
            if weight.is_tracked() {
                let dw = matmul(xc.transpose(), g, precision);
                d_weight = Some(match d_weight {
                    Some(acc) => acc + dw,
                    None => dw,
                });
            }
        }
    }
    let value = Tensor::cat(loss, 0).sum().mul_scalar(scale);
    if !tracked {
        return value;
    }
    attach(value, selected, weight, Tensor::cat(d_hidden, 0), d_weight)
}

/// Each scored row's log-probability of its target on the device, and the chunks of
/// `onehot − softmax` (the direction of `log p`) kept for [`attach_weighted`].
///
/// # Shapes
/// - selected `[n, hidden]`, weight `[hidden, vocab]`, targets `n` → `[n]`, chunks `[c, vocab]`
pub fn token_logprobs_on_device(
    selected: Tensor<2>,
    weight: Tensor<2>,
    targets: &[usize],
    precision: Precision,
    rows_per_chunk: usize,
) -> (Tensor<1>, Vec<Tensor<2>>) {
    let (x, w) = (selected.detach(), weight.detach());
    let mut logps = Vec::new();
    let mut directions = Vec::new();
    for (start, part) in chunks(targets, rows_per_chunk) {
        let xc = x.clone().slice(start..start + part.len());
        let (g, nll) = chunk_softmax(xc, w.clone(), part, precision);
        logps.push(nll.neg());
        directions.push(g.neg());
    }
    (Tensor::cat(logps, 0), directions)
}

/// `value` carrying the gradients of a loss whose derivative with respect to row `t`'s
/// log-probability is `weights[t]`: `G_t = weights[t] · direction_t`, `dH = G·Wᵀ`, `dW = Hᵀ·G`.
///
/// # Shapes
/// - selected `[n, hidden]`, weight `[hidden, vocab]`, directions `[c, vocab]` chunks, weights `n`
pub fn attach_weighted(
    value: Tensor<1>,
    selected: Tensor<2>,
    weight: Tensor<2>,
    directions: Vec<Tensor<2>>,
    weights: &[f32],
    precision: Precision,
) -> Tensor<1> {
    let device = selected.device();
    let (x, w) = (selected.clone().detach(), weight.clone().detach());
    let mut d_hidden = Vec::new();
    let mut d_weight: Option<Tensor<2>> = None;
    let mut start = 0;
    for direction in directions {
        let c = direction.dims()[0];
        let k = Tensor::<2>::from_data(
            TensorData::new(weights[start..start + c].to_vec(), [c, 1]),
            &device,
        );
        let g = direction * k;
        d_hidden.push(matmul(g.clone(), w.clone().transpose(), precision));
        if weight.is_tracked() {
            let xc = x.clone().slice(start..start + c);
            let dw = matmul(xc.transpose(), g, precision);
            d_weight = Some(match d_weight {
                Some(acc) => acc + dw,
                None => dw,
            });
        }
        start += c;
    }
    attach(value, selected, weight, Tensor::cat(d_hidden, 0), d_weight)
}

/// The surrogate `Σ H·dH + Σ W·dW`, whose gradients are `dH` and `dW`, added to `value` with
/// its own value cancelled.
fn attach(
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

/// `(first row, targets)` of each chunk of at most `rows` rows.
fn chunks(targets: &[usize], rows: usize) -> impl Iterator<Item = (usize, &[usize])> {
    targets
        .chunks(rows.max(1))
        .enumerate()
        .map(move |(i, part)| (i * rows.max(1), part))
}
