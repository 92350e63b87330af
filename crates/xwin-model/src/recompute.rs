//! Activation checkpointing (HF's `gradient_checkpointing`): a training pass that keeps only
//! each decoder layer's input instead of every activation inside the layers. The forward runs
//! on the model's autodiff-free copy; the backward goes from the top: the head's pass (final
//! norm, head, loss) from a leaf on the last hidden state, then each layer recomputed with
//! autodiff from its saved input and seeded with the gradient of its output, then the
//! embedding. Each pass's gradients go to the parameters it touched; a parameter in several
//! passes (a tied embedding) gets their sum. The gradients are those of one plain backward up
//! to float rounding (tested), at the price of a second forward per layer; activation memory
//! falls from every layer's intermediates to one `[batch, seq, hidden]` tensor per layer plus
//! one layer's intermediates.

use crate::error::{ModelError, Result};
use crate::layout::BatchLayout;
use crate::model::LlamaModel;
use burn::module::Module;
use burn::tensor::{Gradients, Int, Tensor};

/// A checkpointed pass: the loss (detached), what the head returned beside it, and the
/// gradient passes whose sum is the gradient of `loss / divisor`.
pub struct Recomputed<T> {
    pub loss: Tensor<1>,
    pub extra: T,
    pub passes: Vec<Gradients>,
}

/// Runs `head` on the final normed hidden states of `ids` and back-propagates
/// `loss / divisor` through the decoder one layer at a time (see the module docs). `head`
/// returns the loss (a tracked 1-element tensor) and anything else the caller needs from the
/// forward (metrics). `model` must be on an autodiff device.
///
/// # Shapes
/// - ids `[batch, seq]`; head gets hidden `[batch, seq, hidden]` → `[1]`
pub fn backward_recomputing_layers<T>(
    model: &LlamaModel,
    ids: Tensor<2, Int>,
    layout: &BatchLayout,
    divisor: f64,
    head: impl FnOnce(Tensor<3>) -> Result<(Tensor<1>, T)>,
) -> Result<Recomputed<T>> {
    let device = ids.device();
    if !device.is_autodiff() {
        return Err(ModelError::InvalidInput(
            "gradient checkpointing needs an autodiff device (training)".into(),
        ));
    }
    // Forward without a graph, keeping each layer's input.
    let frozen = model.valid();
    let inner = device.clone().inner();
    let ctx = frozen.layer_inputs(layout, &inner);
    let mut inputs = Vec::with_capacity(frozen.layers.len());
    let mut x = frozen.embed_tokens.forward(ids.clone().inner());
    for layer in &frozen.layers {
        inputs.push(x.clone());
        x = layer.forward(x, &ctx, None);
    }
    drop(ctx);

    // The head's pass: final norm, head and loss, from a leaf on the top hidden state.
    let top = x.autodiff().require_grad();
    let (loss, extra) = head(crate::cpu_ops::rms_norm(
        &model.norm,
        top.clone(),
        model.precision(),
    ))?;
    let value = loss.clone().detach();
    let pass = loss.div_scalar(divisor).backward();
    let mut upstream = leaf_grad(&top, &pass)?;
    let mut passes = vec![pass];

    // Each layer again with autodiff, from the top, seeded with its output's gradient.
    let ctx = model.layer_inputs(layout, &device);
    for (layer, input) in model.layers.iter().zip(inputs).rev() {
        let leaf = input.autodiff().require_grad();
        let out = layer.forward(leaf.clone(), &ctx, None);
        let pass = (out * upstream.autodiff()).sum().backward();
        upstream = leaf_grad(&leaf, &pass)?;
        passes.push(pass);
    }
    let embedded = model.embed_tokens.forward(ids);
    passes.push((embedded * upstream.autodiff()).sum().backward());
    Ok(Recomputed {
        loss: value,
        extra,
        passes,
    })
}

fn leaf_grad(leaf: &Tensor<3>, grads: &Gradients) -> Result<Tensor<3>> {
    leaf.grad(grads).ok_or_else(|| {
        ModelError::InvalidInput("the loss does not depend on the decoder's output".into())
    })
}
