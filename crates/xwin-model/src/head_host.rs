//! The LM head's three products (logits `H·W`, `dH = G·Wᵀ`, `dW = Hᵀ·G`) for the host paths
//! of the fused loss and of DPO's sequence log-probabilities.
//!
//! On the CPU in f32 they run on host buffers through [`crate::matmul::split_product`]: the
//! scored rows and the weight are read once (2 + 32 MB at the 21M benchmark's shape), the
//! `[tokens, vocab]` logits are computed straight into the buffer the softmax pass rewrites in
//! place, and the gradient products read that buffer where it lies. Through burn's matmul the
//! same step read the logits out of a tensor (a 262 MB copy) and uploaded `G` (another), and its
//! products with a transposed operand ran at 120–160 GFLOP/s against 230 for the split
//! products (`cargo run -p xwin-bench --example head_parts`). Half precision (emulated on the
//! CPU) keeps burn's products, cast at use as autocast does.

use crate::error::Result;
use crate::fused_loss::attach_head_gradients;
use crate::head_device::HeadGrads;
use crate::matmul::{Operand, split_product};
use crate::model::LlamaForCausalLM;
use crate::precision::{Precision, matmul};
use burn::tensor::{DType, Tensor, TensorData};

/// How the head's products run for one batch.
pub(crate) enum HeadProducts {
    /// f32 on the CPU: host buffers.
    Host(HostOperands),
    /// burn's matmul in this precision (operands cast at use, f32 out).
    Burn(Precision),
}

/// The scored hidden rows and the head's weight as host buffers.
pub(crate) struct HostOperands {
    /// `[n, hidden]`.
    selected: Vec<f32>,
    /// `[hidden, vocab]` (an untied head), or `[vocab, hidden]` (the tied embedding) when
    /// `vocab_major`.
    weight: Vec<f32>,
    vocab_major: bool,
    hidden: usize,
    vocab: usize,
}

impl HostOperands {
    /// The weight as the `[hidden, vocab]` operand of `H·W`.
    fn w(&self) -> Operand<'_> {
        if self.vocab_major {
            Operand::transposed(&self.weight, self.hidden)
        } else {
            Operand::rows(&self.weight, self.vocab)
        }
    }

    /// The weight as the `[vocab, hidden]` operand of `G·Wᵀ`.
    fn w_t(&self) -> Operand<'_> {
        if self.vocab_major {
            Operand::rows(&self.weight, self.hidden)
        } else {
            Operand::transposed(&self.weight, self.vocab)
        }
    }

    fn rows(&self) -> usize {
        self.selected.len() / self.hidden.max(1)
    }
}

impl HeadProducts {
    /// The products for `model`'s head over the scored rows `selected` (`[n, hidden]`):
    /// on the host where the model runs in f32 on the CPU, else burn's in its precision.
    pub(crate) fn new(model: &LlamaForCausalLM, selected: &Tensor<2>) -> Result<Self> {
        let precision = model.precision();
        if !precision.is_f32()
            || selected.dtype() != DType::F32
            || !crate::device::is_cpu(&selected.device())
        {
            return Ok(Self::Burn(precision));
        }
        let (weight, vocab_major) = match &model.lm_head {
            Some(head) => (head.weight.val(), false),
            None => (model.model.embed_tokens.weight.val(), true),
        };
        if weight.dtype() != DType::F32 {
            return Ok(Self::Burn(precision));
        }
        let [_, hidden] = selected.dims();
        Ok(Self::Host(HostOperands {
            selected: read(selected)?,
            weight: read(&weight)?,
            vocab_major,
            hidden,
            vocab: model.config().vocab_size,
        }))
    }

    /// The logits `selected · weight` as a row-major `n · vocab` buffer (f32; in half
    /// precision the product is autocast's, then `.float()`).
    ///
    /// # Shapes
    /// - selected `[n, hidden]`, weight `[hidden, vocab]` → `n · vocab` values
    pub(crate) fn logits(&self, selected: &Tensor<2>, weight: &Tensor<2>) -> Result<Vec<f32>> {
        match self {
            Self::Host(ops) => Ok(split_product(
                (ops.rows(), ops.vocab, ops.hidden),
                Operand::rows(&ops.selected, ops.hidden),
                ops.w(),
            )),
            Self::Burn(precision) => read(&matmul(
                selected.clone().detach(),
                weight.clone().detach(),
                *precision,
            )),
        }
    }

    /// `value` carrying the gradients of the head's loss, given `g = ∂loss/∂logits` (`n ·
    /// vocab`, row-major) for the scored rows `selected` and the head `weight` (`[hidden,
    /// vocab]`): `dH = g·Wᵀ`, `dW = Hᵀ·g`, through [`attach_head_gradients`]. A frozen head
    /// (LoRA) gets no `[hidden, vocab]` gradient block.
    pub(crate) fn attach(
        self,
        value: Tensor<1>,
        selected: Tensor<2>,
        weight: Tensor<2>,
        g: Vec<f32>,
    ) -> Tensor<1> {
        let device = selected.device();
        let [n, hidden] = selected.dims();
        let [_, vocab] = weight.dims();
        match self {
            Self::Host(ops) => {
                let g_op = Operand::rows(&g, vocab);
                let d_hidden = split_product((n, hidden, vocab), g_op, ops.w_t());
                let d_weight = weight.is_tracked().then(|| {
                    let d_w = split_product(
                        (hidden, vocab, n),
                        Operand::transposed(&ops.selected, hidden),
                        g_op,
                    );
                    Tensor::<2>::from_data(TensorData::new(d_w, [hidden, vocab]), &device)
                });
                let d_hidden =
                    Tensor::<2>::from_data(TensorData::new(d_hidden, [n, hidden]), &device);
                attach_head_gradients(value, selected, weight, d_hidden, d_weight)
            }
            Self::Burn(precision) => {
                // One chunk of the device path's products, in `precision` as the backward of
                // autocast's head product.
                let g = Tensor::<2>::from_data(TensorData::new(g, [n, vocab]), &device);
                let mut grads = HeadGrads::new(&weight, precision);
                grads.push(selected.clone().detach(), weight.clone().detach(), g);
                grads.attach(value, selected, weight)
            }
        }
    }
}

/// A tensor's elements as f32 on the host.
fn read<const D: usize>(tensor: &Tensor<D>) -> Result<Vec<f32>> {
    Ok(tensor.clone().detach().try_into_vec_as::<f32>()?)
}
