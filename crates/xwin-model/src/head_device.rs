//! The LM head's loss and per-token log-probabilities as tensor ops on the device, in row
//! chunks: for a GPU. The host path ([`crate::fused_loss`]) reads the `[tokens, vocab]` logits
//! to the host and back; on the H200 that copy took 148 of a 191 ms step. Here each chunk of at
//! most [`CHUNK_LOGITS`] logits is formed, reduced (max, log-sum-exp, the target's logit) and
//! turned into `softmax − onehot` on the device, and its two gradient products are taken
//! there; nothing is read back (DPO alone reads its `n` per-token log-probabilities, which its
//! loss needs as numbers). The gradients are attached through the same surrogate as on the
//! host, so both paths give the same loss and gradients (tested).

use crate::fused_loss::attach_head_gradients;
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

/// The gradient products of a head's loss as tensor ops, gathered chunk by chunk: `dH` per
/// chunk (their rows are the chunk's) and `dW` summed over chunks (not formed for a frozen
/// head). The device path's chunks, and the host path's one chunk in half precision.
pub(crate) struct HeadGrads {
    d_hidden: Vec<Tensor<2>>,
    d_weight: Option<Tensor<2>>,
    weight_trains: bool,
    precision: Precision,
}

impl HeadGrads {
    pub(crate) fn new(weight: &Tensor<2>, precision: Precision) -> Self {
        Self {
            d_hidden: Vec::new(),
            d_weight: None,
            weight_trains: weight.is_tracked(),
            precision,
        }
    }

    /// Adds a chunk: scored rows `x` (detached), the detached head `w`, `g = ∂loss/∂logits`.
    ///
    /// # Shapes
    /// - x `[c, hidden]`, w `[hidden, vocab]`, g `[c, vocab]`
    pub(crate) fn push(&mut self, x: Tensor<2>, w: Tensor<2>, g: Tensor<2>) {
        self.d_hidden
            .push(matmul(g.clone(), w.transpose(), self.precision));
        if self.weight_trains {
            let dw = matmul(x.transpose(), g, self.precision);
            self.d_weight = Some(match self.d_weight.take() {
                Some(acc) => acc + dw,
                None => dw,
            });
        }
    }

    /// `value` carrying the gathered gradients ([`attach_head_gradients`]).
    pub(crate) fn attach(
        self,
        value: Tensor<1>,
        selected: Tensor<2>,
        weight: Tensor<2>,
    ) -> Tensor<1> {
        let d_hidden = Tensor::cat(self.d_hidden, 0);
        attach_head_gradients(value, selected, weight, d_hidden, self.d_weight)
    }
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
    let mut grads = HeadGrads::new(&weight, precision);
    for (start, part) in chunks(targets, rows_per_chunk) {
        let xc = x.clone().slice(start..start + part.len());
        let (g, nll) = chunk_softmax(xc.clone(), w.clone(), part, precision);
        loss.push(nll.sum());
        if tracked {
            grads.push(xc, w.clone(), g.mul_scalar(scale));
        }
    }
    let value = Tensor::cat(loss, 0).sum().mul_scalar(scale);
    if !tracked {
        return value;
    }
    grads.attach(value, selected, weight)
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
    let mut grads = HeadGrads::new(&weight, precision);
    let mut start = 0;
    for direction in directions {
        let c = direction.dims()[0];
        let k = Tensor::<2>::from_data(
            TensorData::new(weights[start..start + c].to_vec(), [c, 1]),
            &device,
        );
        grads.push(x.clone().slice(start..start + c), w.clone(), direction * k);
        start += c;
    }
    grads.attach(value, selected, weight)
}

/// `(first row, targets)` of each chunk of at most `rows` rows.
fn chunks(targets: &[usize], rows: usize) -> impl Iterator<Item = (usize, &[usize])> {
    targets
        .chunks(rows.max(1))
        .enumerate()
        .map(move |(i, part)| (i * rows.max(1), part))
}
